"""The built-in demo: synthetic domains -> source-only and MaskTwins -> predictions -> instances -> metrics -> figure.

``masktwins-bio demo`` runs the whole toolkit on a synthetic labelled source and a synthetic unlabelled target with
a controlled domain shift (voxel size, contrast, gamma, noise, blur, texture, distractors), on the CPU in a few
minutes:

1. ``sample_data``: source (labelled) and target (unlabelled; its ground truth is kept for evaluation only);
2. ``train``: a source-only model, then MaskTwins adaptation of that model to the target (no target labels; the
   checkpoint is chosen by the label-free rule);
3. ``predict`` + ``segment`` on the target for both models, ``evaluate`` against the target ground truth;
4. a table (printed and ``demo_results.md``/``.json``) and a figure (``demo_figure.png``: target input, the two
   complementary masked views, the teacher's pseudo-label, both predictions and the ground truth).

The configuration is :func:`demo_config` (identical to ``configs/demo.yaml``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import Config, apply_overrides, config_from_dict

__all__ = ["demo_config", "run_demo", "DEMO_STEPS", "demo_figure"]

#: default budget: source-only steps, then MaskTwins adaptation steps (CPU-sized)
DEMO_STEPS = (300, 150)


def demo_config(data_dir: str = "data", run_dir: str = "runs/demo", steps: int = DEMO_STEPS[0],
                device: str = "auto", seed: int = 0) -> Config:
    """The demo experiment on ``masktwins-bio sample-data`` output (same as ``configs/demo.yaml``)."""
    return config_from_dict({
        "name": "demo",
        "seed": seed,
        "data_root": str(data_dir),
        "run_dir": str(run_dir),
        "source": {"image": "source/raw.zarr", "labels": "source/mito.zarr"},
        "target": {"image": "target/raw.zarr",
                   "eval": {"image": "target/raw.zarr", "labels": "target_groundtruth/mito.zarr"}},
        "data": {"voxel_size": [40, 8, 8], "patch_size": [16, 64, 64], "foreground_fraction": 0.5},
        "model": {"name": "unet", "channels": [8, 16, 32, 64], "num_res_units": 1},
        # 2 x 8 x 8 blocks, not the whole sections the default gives 40 nm sections: on these synthetic volumes
        # whole-section views lost to source-only (BENCHMARKS.md, "Demo"); on real ssTEM they win
        "method": {"name": "masktwins", "ema_alpha": 0.99, "lambda_cm": 0.1, "pseudo_loss": "dice_ce",
                   "mask_block": [2, 8, 8]},
        "train": {"steps": steps, "batch_source": 2, "batch_target": 2, "lr": 0.002, "warmup_steps": 20,
                  "val_every": 50, "val_patches": 4, "checkpoint_every": 100, "log_every": 10, "device": device},
        "inference": {"overlap": 0.25},
    }, "demo config")


def _metrics(prob: Path, labels: Path, gt: Path, out_dir: Path) -> dict:
    from ..metrics import evaluate

    sem = evaluate(prob, gt, out_dir / "semantic_summary.json", instance=False, overwrite=True)
    ins = evaluate(labels, gt, out_dir / "instance_summary.json", prob=prob, instance=True, overwrite=True)
    s, i = sem["semantic"]["per_section_mean"], ins.get("instance", {})
    return {"IoU": s["iou"], "F1": s["f1"], "MCC": s["mcc"], "AP": s["ap"],
            "IoU (vol)": sem["semantic"]["whole_volume"]["iou"],
            "inst AP50": i.get("ap50"), "inst AP75": i.get("ap75"), "inst F1@0.5": i.get("f1_50")}


def format_table(results: dict) -> str:
    cols = list(next(iter(results.values()))["metrics"])
    lines = ["| model | " + " | ".join(cols) + " | train s |", "|---" * (len(cols) + 2) + "|"]
    for name, r in results.items():
        cells = ["-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"
                 for v in r["metrics"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def run_demo(out_dir: str = "masktwins-demo", size: str = "demo", steps: Optional[int] = None,
             adapt_steps: Optional[int] = None, device: str = "auto", seed: int = 0, overwrite: bool = False,
             progress: bool = True, log=print) -> dict:
    """Run the demo end to end; returns ``{model name: {"metrics", "model", ...}}``.

    Args:
        out_dir: Output folder (data, runs, predictions, table, figure). Existing synthetic data of the same size
            and seed is reused.
        size: Synthetic data size (``tiny``, ``small``, ``demo``, ``large``).
        steps: Source-only training steps (default :data:`DEMO_STEPS`).
        adapt_steps: MaskTwins adaptation steps after source-only training.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: Seed of data and training.
        overwrite: Retrain existing runs.
        progress: Progress bars.
        log: Where progress lines go.
    """
    from ..data.synthetic import sample_data
    from ..inference import predict
    from ..postprocess import segment
    from ..training import train

    steps = steps or DEMO_STEPS[0]
    adapt_steps = adapt_steps or DEMO_STEPS[1]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    meta = data / "sample_data.json"
    if not (meta.exists() and json.loads(meta.read_text()).get("size") == size
            and json.loads(meta.read_text()).get("seed") == seed):
        log(f"[1/4] synthetic source and target ({size}) -> {data}")
        sample_data(data, size=size, seed=seed, overwrite=True)
    else:
        log(f"[1/4] reusing synthetic data in {data}")
    cfg = demo_config(str(data), str(out / "runs"), steps, device, seed)
    gt = data / "target_groundtruth" / "mito.zarr"
    results: dict = {}
    t0 = time.perf_counter()
    log(f"[2/4] training source-only ({steps} steps), then MaskTwins adaptation ({adapt_steps} steps)")
    so = train(cfg, ["method.name=source_only"], run_dir=out / "runs" / "source_only", overwrite=True,
               progress=progress)
    results["source-only"] = {"train_seconds": time.perf_counter() - t0, "model": str(so.model_path)}
    t1 = time.perf_counter()
    mt_cfg = config_from_dict(apply_overrides(cfg.resolved(), [f"train.steps={adapt_steps}", "train.warmup_steps=0",
                                                               f"train.init={so.model_path}"]), "demo config")
    mt = train(mt_cfg, run_dir=out / "runs" / "masktwins", overwrite=True, progress=progress)
    results["MaskTwins"] = {"train_seconds": time.perf_counter() - t1, "model": str(mt.model_path),
                            "adapted_from": str(so.model_path)}
    log("[3/4] predicting and segmenting the target with both models")
    for name, r in results.items():
        pred_dir = out / "predictions" / name.lower().replace("-", "_")
        pred_dir.mkdir(parents=True, exist_ok=True)
        prob = predict(r["model"], data / "target" / "raw.zarr", pred_dir / "probability.zarr", overwrite=True,
                       device=device, progress=progress)
        labels = segment(prob, pred_dir / "instances.zarr", overwrite=True, progress=progress)
        r.update(probability=str(prob), instances=str(labels), metrics=_metrics(prob, labels, gt, pred_dir))
    log("[4/4] results on the synthetic target (metrics x100, per-section means unless 'vol')")
    table = format_table(results)
    (out / "demo_results.md").write_text(
        f"Synthetic {size} pair, seed {seed}. Source-only: {steps} steps; MaskTwins: adapted from it for "
        f"{adapt_steps} more steps without target labels.\n\n{table}\n")
    (out / "demo_results.json").write_text(json.dumps(results, indent=2, default=float))
    log(table)
    try:
        fig = demo_figure(out, mt_cfg, results)
        log(f"figure: {fig}")
    except Exception as exc:  # the figure is a bonus; never fail the demo for it
        log(f"(figure skipped: {type(exc).__name__}: {exc})")
    return results


def demo_figure(out: Path, cfg: Config, results: dict) -> Path:
    """One row of panels on a central target patch at the training grid (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..data.normalize import normalize, statistics_for
    from ..io import open_volume
    from ..methods.masks import complementary_masks, default_keep_ratio, default_mask_block
    from ..methods.losses import pseudo_labels
    from ..models import load_model

    data = Path(cfg.data_root)
    model = load_model(results["MaskTwins"]["model"])
    vs = model.voxel_size
    target = open_volume(data / "target" / "raw.zarr")
    grid = target.resampled(vs)
    gt = open_volume(data / "target_groundtruth" / "mito.zarr", kind="labels").resampled(vs)
    pz, py, px = cfg.data.patch_size
    py, px = min(grid.shape[1], 2 * py), min(grid.shape[2], 2 * px)
    z0 = max(0, grid.shape[0] // 2 - pz // 2)
    y0, x0 = (grid.shape[1] - py) // 2, (grid.shape[2] - px) // 2
    sl = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
    norm = model.metadata.get("normalization") or {}
    x = torch.from_numpy(normalize(grid[sl], statistics_for(target, norm), norm.get("mode", "zscore")))[None, None]
    block = cfg.method.mask_block or default_mask_block(cfg.data.patch_size, vs)
    keep = cfg.method.keep_ratio or default_keep_ratio(block, cfg.data.patch_size)
    m1, m2 = complementary_masks(x.shape, block, keep, torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels, _, _ = pseudo_labels(model.network(x), model.model_cfg.head, cfg.method.confidence_threshold)
    zc = pz // 2
    preds = {name: open_volume(r["probability"])[sl][zc] / 255.0 for name, r in results.items()}
    panels = [("target input", x[0, 0, zc], "gray"), ("view M", (x * m1)[0, 0, zc], "gray"),
              ("view 1 - M", (x * m2)[0, 0, zc], "gray"), ("teacher pseudo-label", labels[0, zc], "magma")]
    panels += [(f"{name} prediction", p, "magma") for name, p in preds.items()]
    panels.append(("ground truth", gt[sl][zc] > 0, "magma"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (title, img, cmap) in zip(axes, panels):
        vmin, vmax = (0, 1) if cmap == "magma" else (None, None)
        ax.imshow(np.asarray(img, dtype=np.float32), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    for ax, name in zip(axes[4:], results):
        iou = results[name]["metrics"]["IoU"]
        ax.set_xlabel(f"IoU {100 * iou:.1f}")
    fig.suptitle("masktwins-bio demo: synthetic target, one section of a central patch (training grid)", fontsize=10)
    fig.tight_layout()
    path = out / "demo_figure.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
