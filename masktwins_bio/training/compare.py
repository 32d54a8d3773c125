"""The method ladder on one experiment: same data, seeds, network and budget for every method.

For each method and seed: train -> predict the labelled target evaluation volume -> evaluate (DA-ISC metrics per
section and whole volume; instance metrics after connected components). Results are aggregated over seeds (mean and
standard deviation) and written as ``comparison.json`` and ``comparison.md`` in the output directory.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .._version import __version__
from ..config import METHOD_NAMES, Config, apply_overrides, config_from_dict
from ..errors import ConfigError

__all__ = ["compare", "format_comparison", "KEY_METRICS"]

# (summary section, metric) -> column title
KEY_METRICS = {
    ("per_section_mean", "iou"): "IoU",
    ("per_section_mean", "f1"): "F1",
    ("per_section_mean", "mcc"): "MCC",
    ("per_section_mean", "ap"): "AP",
    ("whole_volume", "iou"): "IoU (vol)",
}


def _get(summary: dict, section: str, metric: str) -> Optional[float]:
    sem = summary.get("semantic", {})
    value = sem.get(section, {}).get(metric)
    return None if value is None else float(value)


def _eval_target(cfg: Config, model_path: Path, out_dir: Path, device: str, progress: bool) -> dict:
    from ..inference import predict
    from ..io import open_volume
    from ..metrics import evaluate

    e = cfg.target.eval
    image = open_volume(cfg.resolve_path(e.image), e.voxel_size, "image", e.roi)
    labels = open_volume(cfg.resolve_path(e.labels), e.voxel_size or image.voxel_size, "labels", e.roi)
    prob = predict(model_path, image, out_dir / "target_probability.zarr", overwrite=True, device=device,
                   overlap=cfg.inference.overlap, sw_batch_size=cfg.inference.sw_batch_size, tta=cfg.inference.tta,
                   progress=progress)
    return evaluate(prob, labels, out_dir / "summary.json", gt_threshold=e.label_threshold, overwrite=True,
                    instance=False, progress=progress)


def compare(config: Config | str, methods: Sequence[str] = ("source_only", "mean_teacher", "masktwins"),
            seeds: Optional[Sequence[int]] = None, out_dir=None, overrides: Optional[Sequence[str]] = None,
            progress: bool = True, overwrite: bool = False) -> dict:
    """Run the ladder and write ``comparison.json`` / ``comparison.md``.

    Args:
        config: Base experiment (method-specific settings are taken from it, the name varies).
        methods: Method names to compare.
        seeds: Seeds (default: the config's seed). Each (method, seed) trains in ``out_dir/<method>/seed<k>``.
        out_dir: Output directory (default: ``<run_dir>/compare``).
        overrides: ``--set`` style overrides applied to the base config.
        progress: Progress bars.
        overwrite: Replace existing runs.

    Returns:
        The comparison dict (also written to ``comparison.json``).
    """
    from .api import _as_config, train

    base = _as_config(config, overrides)
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; choose from {', '.join(METHOD_NAMES)}")
    if not methods:
        raise ConfigError("--methods: give at least one method, e.g. source_only,masktwins")
    seeds = list(seeds) if seeds else [base.seed]
    out = Path(out_dir) if out_dir else base.get_run_dir() / "compare"
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for method in methods:
        for seed in seeds:
            run_dir = out / method / f"seed{seed}"
            cfg = config_from_dict(apply_overrides(base.resolved(), [f"method.name={method}", f"seed={seed}"]),
                                   f"{method} (seed {seed})")
            t0 = time.perf_counter()
            result = train(cfg, run_dir=run_dir, overwrite=overwrite or not (run_dir / "model.pt").exists(),
                           progress=progress)
            entry = {"method": method, "seed": seed, "run_dir": str(run_dir), "train_seconds": time.perf_counter() - t0,
                     "selected_step": result.selected_step, "steps": result.steps,
                     "label_free_score": result.summary.get("selection_score")}
            if cfg.target.eval is not None:
                summary = _eval_target(cfg, result.model_path, run_dir, cfg.train.device, progress)
                entry["metrics"] = {title: _get(summary, sec, m) for (sec, m), title in KEY_METRICS.items()}
            runs.append(entry)
    table = []
    for method in methods:
        rows = [r for r in runs if r["method"] == method]
        row = {"method": method, "seeds": len(rows),
               "train_seconds": float(np.mean([r["train_seconds"] for r in rows]))}
        for title in KEY_METRICS.values():
            vals = [r["metrics"][title] for r in rows if r.get("metrics") and r["metrics"][title] is not None]
            row[title] = (float(np.mean(vals)), float(np.std(vals))) if vals else None
        table.append(row)
    result = {"config_hash": base.hash(), "budget": {"steps": base.train.steps, "batch_source": base.train.batch_source,
              "batch_target": base.train.batch_target, "patch_size": list(base.data.patch_size)},
              "seeds": seeds, "runs": runs, "table": table, "version": __version__}
    (out / "comparison.json").write_text(json.dumps(result, indent=2))
    (out / "comparison.md").write_text(format_comparison(result) + "\n")
    return result


def format_comparison(result: dict) -> str:
    """Markdown table: metrics x100, mean +- std over seeds."""
    titles = list(KEY_METRICS.values())
    b = result["budget"]
    lines = [f"Budget: {b['steps']} steps, batch {b['batch_source']} source + {b['batch_target']} target, patch "
             f"{'x'.join(map(str, b['patch_size']))}; seeds {', '.join(map(str, result['seeds']))}. "
             "Target metrics x100 (per-section mean unless marked vol), mean +- std over seeds.", "",
             "| method | " + " | ".join(titles) + " | train s |",
             "|---" * (len(titles) + 2) + "|"]
    for row in result["table"]:
        cells = []
        for t in titles:
            v = row[t]
            cells.append("-" if v is None or math.isnan(v[0]) else
                         (f"{100 * v[0]:.1f}" + (f" +- {100 * v[1]:.1f}" if row["seeds"] > 1 else "")))
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
    return "\n".join(lines)
