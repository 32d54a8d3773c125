"""The method ladder on one experiment: same data, seeds, network and budget for every method.

For each method and seed: train -> predict the labelled target evaluation volume -> evaluate (DA-ISC metrics per
section and whole volume; optionally instances via ``segment`` and instance metrics). Results are aggregated over
seeds (mean and standard deviation) and written as ``comparison.json`` and ``comparison.md`` in the output directory.

With a two-stage recipe (``method.adapt_from_step`` > 0) the first steps of every method are the source-only steps
of the same seed, bit for bit; they are trained once (by the ``source_only`` row, which keeps a snapshot at that
step) and every adaptation method forks from that snapshot. The budget per method is unchanged: ``train.steps``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .._version import __version__
from ..config import Config, apply_overrides, config_from_dict
from ..errors import ConfigError
from ..registry import METHODS
from ..training.selection import audit_selection, summarize_audits

__all__ = ["compare", "format_comparison", "evaluate_on_target", "KEY_METRICS", "INSTANCE_METRICS"]

# (summary section, metric) -> column title: the DA-ISC metrics per section (their protocol) and whole volume
KEY_METRICS = {
    ("per_section_mean", "ap"): "AP",
    ("per_section_mean", "f1"): "F1",
    ("per_section_mean", "mcc"): "MCC",
    ("per_section_mean", "iou"): "IoU",
    ("whole_volume", "ap"): "AP (vol)",
    ("whole_volume", "f1"): "F1 (vol)",
    ("whole_volume", "mcc"): "MCC (vol)",
    ("whole_volume", "iou"): "IoU (vol)",
}
INSTANCE_METRICS = {"ap50": "inst AP50", "ap75": "inst AP75", "f1_50": "inst F1@0.5"}


def _value(v) -> Optional[float]:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def evaluate_on_target(cfg: Config, model_path, out_dir, device: str = "auto", progress: bool = True,
                       instances: bool = False) -> dict:
    """Predict the labelled target evaluation volume (``target.eval``) and evaluate it.

    Writes ``target_probability.zarr`` and ``summary.json`` (and ``target_instances.zarr`` +
    ``instance_summary.json`` with ``instances``) to ``out_dir`` (a folder of its own: a run directory's
    ``summary.json`` is the trainer's).

    Returns:
        ``{column title: value}`` with the :data:`KEY_METRICS` (and :data:`INSTANCE_METRICS`).
    """
    from ..inference import predict
    from ..io import open_volume
    from ..metrics import evaluate

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    e = cfg.target.eval
    if e is None:
        raise ConfigError("target.eval is not set: evaluation needs a labelled target volume")
    image = open_volume(cfg.resolve_path(e.image), e.voxel_size, "image", e.roi)
    labels = open_volume(cfg.resolve_path(e.labels), e.voxel_size or image.voxel_size, "labels", e.roi)
    prob = predict(model_path, image, out_dir / "target_probability.zarr", overwrite=True, device=device,
                   overlap=cfg.inference.overlap, sw_batch_size=cfg.inference.sw_batch_size, tta=cfg.inference.tta,
                   progress=progress)
    # a threshold of 1 is what instance ids and 0/1 masks need anyway; passing it would make evaluate treat
    # instance ground truth as a mask (touching objects merged), so it is only given when it binarises
    gt_threshold = e.label_threshold if e.label_threshold != 1 else None
    summary = evaluate(prob, labels, out_dir / "summary.json", gt_threshold=gt_threshold, overwrite=True,
                       instance=False, progress=progress)
    sem = summary["semantic"]
    metrics = {title: _value(sem.get(sec, {}).get(m)) for (sec, m), title in KEY_METRICS.items()}
    if instances:
        from ..postprocess import segment

        s = cfg.segment
        inst = segment(prob, out_dir / "target_instances.zarr", threshold=s.threshold, method=s.method,
                       min_size=s.min_size, seed_distance=s.seed_distance, connectivity=s.connectivity,
                       overwrite=True, progress=progress)
        isum = evaluate(inst, labels, out_dir / "instance_summary.json", gt_threshold=gt_threshold, prob=prob,
                        instance=True, overwrite=True, progress=progress)
        metrics.update({title: _value(isum.get("instance", {}).get(k)) for k, title in INSTANCE_METRICS.items()})
    return metrics


def _train_prefix(base: Config, seed: int, prefix: Path, progress: bool, volumes) -> None:
    """Train only the shared source-only prefix of ``seed`` (when no source_only row is compared) into ``prefix``."""
    from ..training.api import train

    step = base.adapt_start_step() or 0
    cfg = config_from_dict(apply_overrides(base.resolved(), ["method.name=source_only", f"seed={seed}"]),
                           f"source-only prefix (seed {seed})")
    done = {"n": 0}

    def stop() -> bool:  # polled once per step, after the step
        done["n"] += 1
        return done["n"] >= step

    train(cfg, run_dir=prefix.parent, overwrite=True, progress=progress, volumes=volumes, should_stop=stop,
          snapshot_steps=(step,))


def _audit_choice(cfg: Config, choice: dict, chosen_metrics: Optional[dict], progress: bool,
                  instances: bool) -> dict:
    """The agreement choice of an ``auto`` run: each candidate's label-free score and, with target labels, its
    metrics (the chosen one's are the run's own; the others are evaluated here) - whether the choice was right."""
    out = {"chosen": choice["chosen"], "candidates": {}, "probe_step": choice.get("probe_step")}
    for agreement, score in choice["scores"].items():
        cand = {"label_free_score": score}
        if chosen_metrics is not None:
            run = Path(choice["runs"][agreement])
            cand["metrics"] = (chosen_metrics if agreement == choice["chosen"] else
                               evaluate_on_target(cfg, run / "model.pt", run / "target_eval",
                                                  cfg.train.device, progress, instances))
        out["candidates"][agreement] = cand
    return out


def compare(config: Config | str, methods: Sequence[str] = ("source_only", "mean_teacher", "masktwins"),
            seeds: Optional[Sequence[int]] = None, out_dir=None, overrides: Optional[Sequence[str]] = None,
            progress: bool = True, overwrite: bool = False, instances: bool = False, volumes=None,
            prefix_from=None) -> dict:
    """Run the ladder and write ``comparison.json`` / ``comparison.md``.

    Args:
        config: Base experiment (method-specific settings are taken from it, the name varies).
        methods: Method names to compare.
        seeds: Seeds (default: the config's seed). Each (method, seed) trains in ``out_dir/<method>/seed<k>``.
        out_dir: Output directory (default: ``<run_dir>/compare``).
        overrides: ``--set`` style overrides applied to the base config.
        progress: Progress bars.
        overwrite: Retrain runs that already have a model (otherwise finished runs are reused).
        instances: Also segment the target and report instance metrics.
        volumes: Pre-opened :class:`~masktwins_bio.training.TrainingVolumes` (default: from the config).
        prefix_from: Output directory of an earlier comparison of the same experiment whose source-only prefix
            snapshots (``source_only/seed<k>/step<N>.pt``) the adaptation methods fork from, instead of training
            them again (ablations of the adaptation recipe); the fork checks that the prefix is this config's.

    Returns:
        The comparison dict (also written to ``comparison.json``).
    """
    from ..training.api import _as_config, train

    base = _as_config(config, overrides)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if not methods:
        raise ConfigError("--methods: give at least one method, e.g. source_only,masktwins")
    seeds = list(seeds) if seeds else [base.seed]
    out = Path(out_dir) if out_dir else base.get_run_dir() / "compare"
    out.mkdir(parents=True, exist_ok=True)
    prefix_step = base.adapt_start_step() or 0  # None (a wall-clock budget): no shared prefix
    # source_only first: with a two-stage prefix it also provides the shared checkpoint the other methods fork from
    order = sorted(methods, key=lambda m: m != "source_only")
    runs = []
    for method in order:
        for seed in seeds:
            run_dir = out / method / f"seed{seed}"
            cfg = config_from_dict(apply_overrides(base.resolved(), [f"method.name={method}", f"seed={seed}"]),
                                   f"{method} (seed {seed})")
            shares_prefix = prefix_step > 0  # every registered method is the source-only step before it
            prefix = Path(prefix_from or out) / "source_only" / f"seed{seed}" / f"step{prefix_step}.pt"
            t0 = time.perf_counter()
            summary_path = run_dir / "summary.json"
            reuse = (not overwrite and summary_path.exists() and (run_dir / "model.pt").exists()
                     and json.loads(summary_path.read_text()).get("config_hash") == cfg.hash()
                     and json.loads(summary_path.read_text()).get("steps") == cfg.train.steps  # not a prefix only
                     and (method != "source_only" or not shares_prefix or prefix.exists()))
            if reuse:  # a finished run of exactly this configuration
                summary = json.loads(summary_path.read_text())
                steps, selected, score = summary["steps"], summary["selected_step"], summary.get("selection_score")
            else:
                fork = None
                if shares_prefix and method != "source_only":
                    if not prefix.exists():  # no source_only row asked for: train just its prefix
                        if prefix_from is not None:
                            raise ConfigError(f"{prefix}: no source-only prefix snapshot in {prefix_from} for seed "
                                              f"{seed}; run that comparison with source_only and the same seeds first")
                        _train_prefix(base, seed, prefix, progress, volumes)
                    fork = prefix
                result = train(cfg, run_dir=run_dir, overwrite=True, progress=progress, volumes=volumes,
                               fork_from=fork, snapshot_steps=(prefix_step,) if shares_prefix else ())
                steps, selected = result.steps, result.selected_step
                score = result.summary.get("selection_score")
            entry = {"method": method, "seed": seed, "run_dir": str(run_dir), "reused": reuse,
                     "train_seconds": None if reuse else time.perf_counter() - t0, "steps": steps,
                     "selected_step": selected, "label_free_score": score, "forked_at": prefix_step or None}
            if cfg.target.eval is not None:
                entry["metrics"] = evaluate_on_target(cfg, run_dir / "model.pt", run_dir / "target_eval",
                                                      cfg.train.device, progress, instances)
                if method != "source_only":
                    history = json.loads(summary_path.read_text()).get("history", [])
                    start = json.loads(summary_path.read_text()).get("adapt_from_step", 0)
                    entry["selection_audit"] = audit_selection(history, selected, start)
            choice = json.loads(summary_path.read_text()).get("agreement_choice")
            if choice:  # method.agreement=auto: the choice, and (with target labels) each candidate's metrics
                entry["agreement_choice"] = _audit_choice(cfg, choice, entry.get("metrics"), progress, instances)
            runs.append(entry)
    runs.sort(key=lambda r: (list(methods).index(r["method"]), seeds.index(r["seed"])))
    titles = list(KEY_METRICS.values()) + (list(INSTANCE_METRICS.values()) if instances else [])
    table = []
    for method in methods:
        rows = [r for r in runs if r["method"] == method]
        secs = [r["train_seconds"] for r in rows if r["train_seconds"] is not None]
        row = {"method": method, "seeds": len(rows), "train_seconds": float(np.mean(secs)) if secs else None,
               "steps": [r["steps"] for r in rows], "selected_step": [r["selected_step"] for r in rows]}
        for title in titles:
            vals = [r["metrics"][title] for r in rows if r.get("metrics") and r["metrics"].get(title) is not None]
            row[title] = (float(np.mean(vals)), float(np.std(vals))) if vals else None
        table.append(row)
    b = base.train
    selection = summarize_audits([r.get("selection_audit") for r in runs])
    result = {"config_hash": base.hash(), "columns": titles, "seeds": seeds, "runs": runs, "table": table,
              "selection": selection, "selection_rule": base.train.selection,
              "budget": {"steps": b.steps, "max_minutes": b.max_minutes, "batch_source": b.batch_source,
                         "batch_target": b.batch_target, "patch_size": list(base.data.patch_size),
                         "voxel_size": list(base.data.voxel_size) if base.data.voxel_size else None,
                         "model": base.model.name, "channels": list(base.model.channels), "device": b.device},
              "version": __version__}
    (out / "comparison.json").write_text(json.dumps(result, indent=2))
    (out / "comparison.md").write_text(format_comparison(result) + "\n")
    return result


def format_comparison(result: dict) -> str:
    """Markdown table: metrics x100, mean +- std over seeds."""
    titles = result.get("columns") or list(KEY_METRICS.values())
    b = result["budget"]
    budget = f"{b['steps']} steps" + (f" or {b['max_minutes']:g} min" if b.get("max_minutes") else "")
    lines = [f"Budget: {budget}, batch {b['batch_source']} source + {b['batch_target']} target, patch "
             f"{'x'.join(map(str, b['patch_size']))}, {b.get('model', '')} {b.get('channels', '')}; seeds "
             f"{', '.join(map(str, result['seeds']))}. Target metrics x100 (per-section means, DA-ISC protocol, "
             "and whole volume '(vol)'), mean +- std over seeds.", "",
             "| method | " + " | ".join(titles) + " | train s |",
             "|---" * (len(titles) + 2) + "|"]
    for row in result["table"]:
        cells = []
        for t in titles:
            v = row.get(t)
            cells.append("-" if v is None else
                         (f"{100 * v[0]:.1f}" + (f" +- {100 * v[1]:.1f}" if row["seeds"] > 1 else "")))
        secs = "-" if row.get("train_seconds") is None else f"{row['train_seconds']:.0f}"
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {secs} |")
    choices = [r for r in result.get("runs", []) if r.get("agreement_choice")]
    if choices:
        said = []
        for r in choices:
            c = r["agreement_choice"]
            iou = {a: (v.get("metrics") or {}).get("IoU") for a, v in c["candidates"].items()}
            shown = ", ".join(f"{a} {v['label_free_score']:.4f}"
                              + ("" if iou[a] is None else f" (IoU {100 * iou[a]:.1f})")
                              for a, v in c["candidates"].items())
            probe = f"; compared at step {c['probe_step']}, where the other stopped" if c.get("probe_step") else ""
            said.append(f"{r['method']} seed {r['seed']}: {c['chosen']} ({shown}{probe})")
        lines += ["", "Agreement chosen without target labels (method.agreement: auto; label-free scores): "
                  + "; ".join(said) + "."]
    sel = result.get("selection")
    if sel:
        rho = "-" if sel["mean_spearman"] is None else f"{sel['mean_spearman']:.2f}"
        lines += ["", f"Checkpoint selection ({result.get('selection_rule', 'label_free')}, no target labels) against "
                  f"the best candidate in hindsight (per-section IoU on the in-training crop): within "
                  f"{100 * sel['tolerance']:g} IoU in {sel['within_tolerance']}/{sel['runs']} adaptation runs (mean gap "
                  f"{100 * sel['mean_gap']:.1f}; the last checkpoint: {sel['last_within_tolerance']}/{sel['runs']}); "
                  f"mean Spearman rho of the score with IoU {rho}."]
    return "\n".join(lines)
