"""The adaptation study on the two real directions: every row is one `masktwins-bio benchmark` command.

Rows share the CPU preset's budget, data, network and seeds; most ablation rows fork their adaptation methods from
the source-only prefix of the direction's ``base`` row (``--prefix-from``), so each costs only its adaptation steps.
Results land in ``<out>/<direction>/<row>/comparison.json``; ``--report`` prints one markdown table of all rows
found there (mean +- std over seeds, x100), which is what BENCHMARKS.md shows.

    python benchmarks/adaptation_study.py --rows base --seeds 0,1,2            # the ladder, both directions
    python benchmarks/adaptation_study.py --rows base --methods source_only,mean_teacher,masktwins --seeds 0,1,2 \
        --jobs 2                                                              # both directions at once, 1 thread each
    python benchmarks/adaptation_study.py --rows mix_box,cm_1 --seeds 0        # ablations (after base)
    python benchmarks/adaptation_study.py --report                             # the table
    python benchmarks/adaptation_study.py --report-runs                        # ... from every evaluated seed
    python benchmarks/adaptation_study.py --report-runs --out runs/final --also runs/s9   # seeds of several folders
    python benchmarks/adaptation_study.py --report-choice --out runs/s11 --also runs/s12  # the agreement choice
    python benchmarks/adaptation_study.py --report-choice --choice-method masktwins_random_pair --out runs/s14 \
        --also runs/s13                                                       # ... of the random pair
    python benchmarks/adaptation_study.py --rows base --dry-run                # print the commands only

Data: ``$MASKTWINS_DATA_ROOT`` or ``../shared/data`` beside the checkout (VNC III and FAFB, see their SOURCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: the two real directions (transductive: the target's images are adapted to and its labels evaluated)
DIRECTIONS = {
    "vnc2fafb": {"source": "vnc3_drosophila_mito", "source_labels": "mitochondria", "source_vs": "50,4.6,4.6",
                 "source_thr": "1", "target": "fafb_mito_damitoseg", "target_labels": "seg",
                 "target_vs": "40,8,8", "target_thr": "128", "image": "im", "source_image": "raw"},
    "fafb2vnc": {"source": "fafb_mito_damitoseg", "source_labels": "seg", "source_vs": "40,8,8",
                 "source_thr": "128", "target": "vnc3_drosophila_mito", "target_labels": "mitochondria",
                 "target_vs": "50,4.6,4.6", "target_thr": "1", "image": "raw", "source_image": "im"},
}

LADDER = "source_only,mean_teacher,mic,masktwins_random_pair,masktwins"

#: row name -> (methods, --set overrides, forks from the base row's source-only prefix); "base" is the shipped
#: preset's ladder. A row that changes what the prefix trains (the source recipe, the teacher's decay, adaptation
#: from the first step) trains its own source-only row instead of forking. The MaskTwins variants' keep ratio with
#: whole-section masks defaults to 0.3 since 2026-12-07 (session 9); every row measured before that ran at 0.5, so
#: BENCHMARKS.md's earlier screenings are reproduced with ``--set method.keep_ratio=0.5`` added. The preset's
#: ``method.agreement`` is ``auto`` since session 12; rows measured before it ran at ``symmetric`` (add
#: ``--set method.agreement=symmetric`` to reproduce them at one adaptation each).
ROWS: dict[str, tuple[str, list[str], bool]] = {
    "base": (LADDER, [], False),
    # the ladder's two controls (MIC's single masked view, a random non-complementary pair), forked from base
    "controls": ("mic,masktwins_random_pair", [], True),
    # the source recipe (shared by every method): each its own source-only run
    "src_affine_0": ("source_only", ["data.augment.affine_prob=0"], False),
    "src_affine_0.5": ("source_only", ["data.augment.affine_prob=0.5"], False),
    "src_histogram": ("source_only", ["data.normalization=histogram"], False),
    # the adaptation recipe, one change at a time against the base row
    "mix_none": ("mean_teacher,masktwins", ["method.mix=none"], True),
    "mix_box": ("mean_teacher,masktwins", ["method.mix=box"], True),
    "mix_objects": ("mean_teacher,masktwins", ["method.mix=objects"], True),
    "pl_scalar": ("mean_teacher,masktwins", ["method.weight_mode=scalar"], True),
    "pl_voxel": ("mean_teacher,masktwins", ["method.weight_mode=voxel"], True),
    "pl_class_balanced_0.8": ("mean_teacher,masktwins", ["method.weight_mode=class_balanced",
                                                         "method.class_keep=0.8"], True),
    "pl_class_balanced_0.5": ("mean_teacher,masktwins", ["method.weight_mode=class_balanced",
                                                         "method.class_keep=0.5"], True),
    "fg_cap_2": ("masktwins", ["method.weight_mode=class_balanced", "method.foreground_cap=2"], True),
    "cm_0.01": ("masktwins", ["method.lambda_cm=0.01"], True),
    "cm_1": ("masktwins", ["method.lambda_cm=1.0"], True),
    "block_2x12x12": ("masktwins", ["method.mask_block=[2,12,12]"], True),
    "block_1x12x12": ("masktwins", ["method.mask_block=[1,12,12]"], True),
    "block_1x96x96": ("masktwins", ["method.mask_block=[1,96,96]"], True),
    "block_4x24x24": ("masktwins", ["method.mask_block=[4,24,24]"], True),
    "views_3": ("masktwins", ["method.num_views=3"], True),
    # the teacher: adaptation from the first step (no source-trained start), same total budget
    "from_scratch": ("mean_teacher,masktwins", ["method.adapt_from_step=0"], False),
    # the fork point: adapt from a longer-trained source model (FAFB -> VNC III is still converging at step 2000)
    "adapt_3000": ("masktwins", ["method.adapt_from_step=3000"], False),
    # session 14: adapt from an earlier fork, 3000 adapting steps in the same budget (the symmetric candidate's target
    # IoU on FAFB -> VNC III still rises at the last step; adapting from step 3000 lost 1.5 there on the 8 nm grid)
    "adapt_1000_symmetric": ("masktwins", ["method.adapt_from_step=1000", "method.agreement=symmetric"], False),
    # a faster-converging source recipe, shared by every method (its own prefix)
    "lr_2e-3": ("source_only,masktwins", ["train.lr=0.002"], False),
    # source recipe x network / context (sixth session): each trains its own prefix
    "src_dynunet": ("source_only,masktwins", ["model.name=dynunet"], False),
    "src_patch_128": ("source_only,masktwins", ["data.patch_size=[8,128,128]"], False),
    "src_grid_12nm": ("source_only,masktwins", ["data.voxel_size=[40,12,12]"], False),
    "src_grid_10nm": ("source_only,masktwins", ["data.voxel_size=[40,10,10]"], False),
    # more in-plane context than the default rule's 1.15 um (12 nm): 1.54 um per 96-pixel patch
    "src_grid_16nm": ("source_only,masktwins", ["data.voxel_size=[40,16,16]"], False),
    "src_hist_shift": ("source_only,masktwins", ["data.augment.histogram_shift_prob=0.5"], False),
    "src_fg_0.1": ("source_only,masktwins", ["data.foreground_fraction=0.1"], False),
    # the adaptation recipe on top of whole-section masks (the default for anisotropic voxels since the sixth
    # session), forked from base
    "views_3_sections": ("masktwins", ["method.num_views=3"], True),
    "lambda_target_2": ("masktwins", ["method.lambda_target=2"], True),
    # keep ratio of the first view (default with whole-section masks since session 9: 0.3; before it 0.5)
    "keep_0.5": ("masktwins,masktwins_random_pair", ["method.keep_ratio=0.5"], True),
    "keep_0.2": ("masktwins", ["method.keep_ratio=0.2"], True),
    "keep_0.3": ("masktwins", ["method.keep_ratio=0.3"], True),
    "keep_0.35": ("masktwins", ["method.keep_ratio=0.35"], True),
    "keep_0.4": ("masktwins", ["method.keep_ratio=0.4"], True),
    # the views' agreement ramped in over the adaptation (the student learns to infer hidden sections first)
    "cm_ramp": ("masktwins", ["method.cm_rampup_steps=2000"], True),
    "cm_ramp_0.3": ("masktwins", ["method.cm_rampup_steps=2000", "method.lambda_cm=0.3"], True),
    # the random pair's matched control for uneven views: two independent masks keeping 30 % and 70 %
    "random_pair_keep_0.3": ("masktwins_random_pair", ["method.keep_ratio=0.3"], True),
    # session 10: the source patches of adapting steps seen through the same masks, supervised with their labels
    "src_mask_0.5": ("masktwins", ["method.source_mask_prob=0.5"], True),
    "src_mask_1": ("masktwins", ["method.source_mask_prob=1"], True),
    # hidden voxels filled with noise of the patch's own statistics instead of zeros (instance norm sees the same
    # moments in a sparse view as in the clean patch)
    "fill_noise": ("masktwins", ["method.mask_fill=noise"], True),
    # the teacher's decay (the preset's 1 - 20 / steps = 0.995 at 4000 steps; the paper's 0.999): it acts from step 0,
    # so these rows train their own source-only prefix
    "ema_0.999": ("masktwins", ["method.ema_alpha=0.999"], False),
    "ema_0.99": ("masktwins", ["method.ema_alpha=0.99"], False),
    # session 11: the agreement directed from the view that sees each voxel to the one that hides it
    "agree_visible": ("masktwins", ["method.agreement=visible"], True),
    "agree_symmetric": ("masktwins", ["method.agreement=symmetric"], True),
    # session 12: both agreements adapted from the prefix, the better label-free score kept (two adaptations a run)
    "agree_auto": ("masktwins", ["method.agreement=auto"], True),
    # session 13: the adaptation at twice the schedule's learning rate (FAFB -> VNC III still rises at the last step),
    # one row per agreement (an auto run's two candidates)
    "lr_adapt_2_symmetric": ("masktwins", ["method.adapt_lr_scale=2", "method.agreement=symmetric"], True),
    "lr_adapt_2_visible": ("masktwins", ["method.adapt_lr_scale=2", "method.agreement=visible"], True),
    # session 13: pseudo-labels learnt only where a view is blind (no self-training on what a view sees)
    "pl_hidden_symmetric": ("masktwins", ["method.pseudo_voxels=hidden", "method.agreement=symmetric"], True),
    "pl_hidden_visible": ("masktwins", ["method.pseudo_voxels=hidden", "method.agreement=visible"], True),
    "pseudo_ce": ("masktwins", ["method.pseudo_loss=ce"], True),
    "teacher_flips": ("masktwins", ["method.teacher_tta=flips"], True),
    # CE pseudo-labels shrink the foreground (right where the source over-segments, a collapse where it
    # under-segments); class-balanced thresholds are class-balanced self-training's remedy for that drift
    "pseudo_ce_cb_0.8": ("masktwins", ["method.pseudo_loss=ce", "method.weight_mode=class_balanced",
                                       "method.class_keep=0.8"], True),
    "pseudo_ce_cb_0.5": ("masktwins", ["method.pseudo_loss=ce", "method.weight_mode=class_balanced",
                                       "method.class_keep=0.5"], True),
}


def data_root() -> Path:
    env = os.environ.get("MASKTWINS_DATA_ROOT")
    return Path(env) if env else REPO.parent / "shared" / "data"


def command(direction: str, row: str, seeds: str, out: Path, extra: list[str],
            methods: str | None = None, fork_from: str | None = None, voxel_size: str | None = None) -> list[str]:
    d, root = DIRECTIONS[direction], data_root()
    row_methods, sets, fork = ROWS[row]
    methods = methods or row_methods
    src, tgt = root / d["source"], root / d["target"]
    cmd = ["masktwins-bio", "benchmark",
           "--source-image", str(src / d["source_image"]), "--source-labels", str(src / d["source_labels"]),
           "--source-voxel-size", d["source_vs"], "--source-label-threshold", d["source_thr"],
           "--target-image", str(tgt / d["image"]), "--target-voxel-size", d["target_vs"],
           "--test-labels", str(tgt / d["target_labels"]), "--test-label-threshold", d["target_thr"],
           "--methods", methods, "--seeds", seeds, "--device", "cpu",
           "--out", str(out / direction / row), "--no-progress"]
    if voxel_size:  # the training grid; default: the harness's rule (40 x 12 x 12 nm for both directions)
        cmd += ["--voxel-size", voxel_size]
    if fork:
        prefix = fork_from.format(direction=direction) if fork_from else out / direction / "base"
        cmd += ["--prefix-from", str(prefix)]
    for s in sets + extra:
        cmd += ["--set", s]
    return cmd


def report(out: Path) -> str:
    cols = ["IoU", "F1", "MCC", "AP", "IoU (vol)", "inst F1@0.5"]
    lines = ["| direction | row | method | seeds | " + " | ".join(cols) + " | train min |",
             "|---" * (len(cols) + 5) + "|"]
    for direction in DIRECTIONS:
        for row in ROWS:
            f = out / direction / row / "comparison.json"
            if not f.exists():
                continue
            res = json.loads(f.read_text())
            for r in res["table"]:
                cells = [("-" if r.get(c) is None else f"{100 * r[c][0]:.1f} +- {100 * r[c][1]:.1f}") for c in cols]
                mins = "-" if r.get("train_seconds") is None else f"{r['train_seconds'] / 60:.1f}"
                lines.append(f"| {direction} | {row} | {r['method']} | {r['seeds']} | " + " | ".join(cells)
                             + f" | {mins} |")
            sel = res.get("selection")
            if sel:
                lines.append(f"| {direction} | {row} | (selection) | | within 2 IoU: {sel['within_tolerance']}/"
                             f"{sel['runs']}, last: {sel['last_within_tolerance']}/{sel['runs']}, rho "
                             f"{sel['mean_spearman'] if sel['mean_spearman'] is None else round(sel['mean_spearman'], 2)}"
                             + " |" * (len(cols) + 1))
    return "\n".join(lines)


RUNS_COLUMNS = ["IoU", "F1", "MCC", "AP", "IoU (vol)", "inst F1@0.5"]


def _runs_line(direction: str, row: str, method: str, seed_dirs: dict, cols: Sequence[str]) -> str:
    """One table line of :func:`report_runs` from ``{"seed<N>": run folder}`` (each with ``target_eval/``)."""
    from masktwins_bio.experiments.ladder import INSTANCE_METRICS, KEY_METRICS

    seeds, values, pr, arith = [], {c: [] for c in cols}, [], set()
    for _, seed_dir in sorted(seed_dirs.items(), key=lambda kv: int(kv[0][len("seed"):])):
        sem = json.loads((seed_dir / "target_eval" / "summary.json").read_text())["semantic"]
        got = {title: sem.get(sec, {}).get(m) for (sec, m), title in KEY_METRICS.items()}
        per_section = sem.get("per_section_mean", {})
        if per_section.get("precision") is not None and per_section.get("recall") is not None:
            pr.append((100 * per_section["precision"], 100 * per_section["recall"]))
        inst_file = seed_dir / "target_eval" / "instance_summary.json"
        if inst_file.exists():
            inst = json.loads(inst_file.read_text()).get("instance", {})
            got.update({title: inst.get(k) for k, title in INSTANCE_METRICS.items()})
        seeds.append(seed_dir.name[len("seed"):])
        run_summary = seed_dir / "summary.json"
        arith.add(json.loads(run_summary.read_text()).get("precision", "?") if run_summary.exists() else "?")
        for c in cols:
            if got.get(c) is not None:
                values[c].append(100 * float(got[c]))
    if not seeds:
        return ""
    cells = [f"{np.mean(v):.1f} +- {np.std(v):.1f}" if v else "-" for v in values.values()]
    cells.append(" / ".join(f"{v:.1f}" for v in np.mean(pr, axis=0)) if pr else "-")
    return (f"| {direction} | {row} | {method} | {','.join(seeds)} | {'+'.join(sorted(arith))} | "
            + " | ".join(cells) + " |")


def report_runs(out: Path, also: Sequence[Path] = ()) -> str:
    """One line per direction, row and method from the runs' own target evaluations (``<method>/seed<N>/target_eval``
    summaries), whatever invocation made them: a row whose ladder was stopped early, or whose seeds were added by
    several invocations, is reported from every seed that was evaluated (each row names its seeds). ``also``: more
    study folders whose seeds of the same direction, row and method are pooled with ``out``'s (a seed found twice
    counts once, from the first folder). "P / R": the per-section precision and recall, means over the seeds.
    "arith.": the arithmetic the seeds trained in (``bf16`` autocast on CPUs with native bf16, ``fp32`` on others,
    ``?`` for runs before it was recorded), so seeds of different machines are not pooled unawares."""
    cols = RUNS_COLUMNS
    lines = ["| direction | row | method | seeds | arith. | " + " | ".join(cols) + " | P / R |",
             "|---" * (len(cols) + 6) + "|"]
    folders = [out, *also]
    for direction in DIRECTIONS:
        for row in ROWS:
            methods = sorted({d.name for f in folders for d in (f / direction / row).glob("*/") if d.is_dir()})
            for method in methods:
                seed_dirs = {}
                for f in folders:
                    for seed_dir in sorted((f / direction / row / method).glob("seed*")):
                        if (seed_dir / "target_eval" / "summary.json").exists():
                            seed_dirs.setdefault(seed_dir.name, seed_dir)
                line = _runs_line(direction, row, method, seed_dirs, cols)
                if line:
                    lines.append(line)
    return "\n".join(lines)


#: the label-free choice between two agreements, composed from the runs of separate rows (agreement -> rows, the
#: first found per seed counts): what ``method.agreement: auto`` chooses (training/choice.py). ``src_mask_0.5`` ran
#: at the symmetric agreement (the default before session 12)
CHOICE_ROWS = {"symmetric": ("agree_symmetric", "src_mask_0.5"), "visible": ("agree_visible",)}


def _budget(run: Path, summary: dict) -> int:
    """The run's step budget: ``train.steps`` of its ``config.yaml`` (a candidate stopped at the probe records the
    probe step as its ``steps``), else the summary's ``steps``."""
    config = run / "config.yaml"
    if config.exists():
        import yaml

        steps = (yaml.safe_load(config.read_text()) or {}).get("train", {}).get("steps")
        if steps:
            return int(steps)
    return int(summary["steps"])


def _score_at_probe(run: Path, share: float = 0.5):
    """``(step, score)``: a candidate's selection score as ``method.agreement_probe`` sees it - the best label-free
    score of its adaptation's validations up to the probe step (``share`` of the adaptation; the default 0.5) -
    from its ``summary.json`` history, or None (an ``agree_auto`` run's own folder: the candidate's is read)."""
    summary = run / "summary.json"
    if not summary.exists():
        return None
    s = json.loads(summary.read_text())
    if "agreement_choice" in s:  # an auto run evaluated as itself: its chosen candidate's history is the same
        run = Path(s["agreement_choice"]["runs"][s["agreement_choice"]["chosen"]])
        s = json.loads((run / "summary.json").read_text())
    if not {"adapt_from_step", "steps", "history"} <= set(s):
        return None
    adapt, steps = s["adapt_from_step"], _budget(run, s)
    limit = adapt + share * (steps - adapt)
    seen = [h for h in s["history"] if adapt < h["step"] <= limit]
    if not seen:
        return None
    return seen[-1]["step"], max(h["label_free_score"] for h in seen)


def _unfinished_at_probe(run: Path):
    """``(step, score)`` at the probe of a candidate run that stopped (or is still training) after its probe step,
    from its ``log.csv`` validations; None if it has not reached the probe."""
    import yaml

    from masktwins_bio.config import config_from_dict
    from masktwins_bio.training.choice import probe_step

    if not ((run / "config.yaml").exists() and (run / "log.csv").exists()):
        return None
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()), str(run / "config.yaml"))
    step, adapt = probe_step(cfg), cfg.adapt_start_step()
    if step is None:
        return None
    scores = {}
    with open(run / "log.csv") as f:
        for line in f:
            at, tag, value = line.rstrip("\n").split(",")[:3]
            if tag == "val/label_free_score" and adapt < int(at) <= step:
                scores[int(at)] = float(value)
    return (step, max(scores.values())) if step in scores else None


def _choice_candidates(folders: Sequence[Path], direction: str, method: str) -> dict:
    """``{seed: {agreement: candidate}}`` of one direction, each candidate a dict with its final label-free score
    (None for a candidate an ``auto`` run stopped at the probe), its per-section IoU, the folder evaluated, and its
    ``(step, score)`` at the probe (None where its history does not reach it)."""
    found: dict[str, dict[str, dict]] = {}

    def iou(folder: Path) -> float:
        return 100 * json.loads((folder / "target_eval" / "summary.json").read_text())["semantic"][
            "per_section_mean"]["iou"]

    for agreement, row in ((a, r) for a, rows in CHOICE_ROWS.items() for r in rows):
        for f in folders:
            for seed_dir in sorted((f / direction / row / method).glob("seed*")):
                run_summary, ev = seed_dir / "summary.json", seed_dir / "target_eval" / "summary.json"
                if run_summary.exists() and ev.exists():
                    found.setdefault(seed_dir.name, {}).setdefault(agreement, {
                        "score": json.loads(run_summary.read_text())["selection_score"], "iou": iou(seed_dir),
                        "run": seed_dir, "probe": _score_at_probe(seed_dir)})
                elif not run_summary.exists() and (probe := _unfinished_at_probe(seed_dir)):
                    # stopped by hand past the probe, as auto stops the lower-scoring candidate: never evaluated
                    found.setdefault(seed_dir.name, {}).setdefault(agreement, {
                        "score": None, "iou": None, "run": seed_dir, "probe": probe, "stopped": True})
    for f in folders:
        for seed_dir in sorted((f / direction / "agree_auto" / method).glob("seed*")):
            if not (seed_dir / "summary.json").exists():
                continue
            choice = json.loads((seed_dir / "summary.json").read_text())["agreement_choice"]
            for agreement in ("symmetric", "visible"):
                cand = seed_dir / f"agreement-{agreement}"
                # the chosen candidate is evaluated as the auto run itself, the other (with target labels) in its
                # own folder - at its probe model when the run stopped it there
                evaluated = seed_dir if agreement == choice["chosen"] else cand
                if not ((cand / "summary.json").exists() and (evaluated / "target_eval" / "summary.json").exists()):
                    continue
                stopped = "probe_step" in choice and agreement != choice["chosen"]
                probe = (choice["probe_step"], choice["scores"][agreement]) if "probe_step" in choice else None
                found.setdefault(seed_dir.name, {}).setdefault(agreement, {
                    "score": None if stopped else json.loads((cand / "summary.json").read_text())["selection_score"],
                    "iou": iou(evaluated), "run": evaluated, "probe": probe, "stopped": stopped})
    return found


def _score_cell(cand: dict) -> str:
    return "-" if cand["score"] is None else f"{cand['score']:.5f}"


def _iou_cell(cand: dict) -> str:
    if cand["iou"] is None:
        return "-"
    return f"{cand['iou']:.1f}" + (f" @{cand['probe'][0]}" if cand.get("stopped") else "")


def report_choice(out: Path, also: Sequence[Path] = (), method: str = "masktwins") -> str:
    """Per direction and seed: what ``method.agreement: auto`` keeps for ``method`` (a MaskTwins variant), composed
    from each agreement's run - the candidate with the higher label-free score at the probe (halfway through the
    adaptation, the default ``method.agreement_probe``; ties: symmetric), or at the end where the histories do not
    reach the probe - with each candidate's final score and per-section IoU, whether the kept one is the better, and
    what comparing the final scores (``agreement_probe: 1``) would keep. Then per direction the mean +- std of the
    symmetric, the directed and the chosen runs, and the chosen runs' metrics as a :func:`report_runs` line. Runs:
    the :data:`CHOICE_ROWS` runs of ``out`` and ``also`` (the same agreement's run is counted from the first folder
    that has it), and ``agree_auto`` runs' own candidates. A candidate an ``auto`` run stopped at the probe shows its
    IoU at the probe model (marked ``@step``) and leaves "right" unknown; a row's run stopped by hand after its probe
    validation (no ``summary.json``, as ``auto`` stops the lower-scoring candidate) counts with its probe score from
    ``log.csv`` and no IoU."""
    folders = [out, *also]
    lines = ["| direction | seed | score sym. | score vis. | IoU sym. | IoU vis. | at the probe (step: sym. / vis.) | "
             "chosen | right | final scores would choose |", "|---" * 10 + "|"]
    means, runs_lines = [], []
    for direction in DIRECTIONS:
        found = _choice_candidates(folders, direction, method)
        cols = {"symmetric": [], "visible": [], "chosen": []}
        right = known = 0
        chosen_runs = {}
        for seed, got in sorted(found.items(), key=lambda kv: int(kv[0][len("seed"):])):
            if len(got) < 2:
                continue
            sym, vis = got["symmetric"], got["visible"]
            if sym["probe"] and vis["probe"]:
                chosen = "visible" if vis["probe"][1] > sym["probe"][1] else "symmetric"
                at_probe = f"{sym['probe'][0]}: {sym['probe'][1]:.5f} / {vis['probe'][1]:.5f}"
            elif sym["score"] is not None and vis["score"] is not None:
                chosen = "visible" if vis["score"] > sym["score"] else "symmetric"
                at_probe = "-"
            else:  # a stopped candidate beside one whose history does not reach the probe: no choice to compose
                continue
            finals = sym["score"] is not None and vis["score"] is not None
            final_choice = ("visible" if vis["score"] > sym["score"] else "symmetric") if finals else "-"
            ok = "?"
            if finals:
                ok = "yes" if got[chosen]["iou"] >= max(sym["iou"], vis["iou"]) else "no"
                right, known = right + (ok == "yes"), known + 1
                cols["symmetric"].append(sym["iou"]), cols["visible"].append(vis["iou"])
            if got[chosen]["iou"] is None:  # the kept candidate was stopped at the probe: nothing to report yet
                ok = "kept run unfinished"
            else:
                cols["chosen"].append(got[chosen]["iou"])
                chosen_runs[seed] = got[chosen]["run"]
            lines.append(f"| {direction} | {seed[len('seed'):]} | {_score_cell(sym)} | {_score_cell(vis)} | "
                         f"{_iou_cell(sym)} | {_iou_cell(vis)} | {at_probe} | {chosen} | {ok} | {final_choice} |")
        if cols["chosen"]:
            cells = ", ".join(f"{k} {np.mean(v):.1f} +- {np.std(v):.1f}" + ("" if k == "chosen" else
                                                                            f" ({len(v)} seeds)")
                              for k, v in cols.items() if v)
            verdict = (f"the choice right in {right} of the {known} seeds with both candidates trained to the end"
                       if known else "no seed with both candidates trained to the end")
            means.append(f"{direction}: {cells} (IoU x100 over {len(cols['chosen'])} seeds; {verdict})")
            runs_lines.append(_runs_line(direction, "auto (chosen)", method, chosen_runs, RUNS_COLUMNS))
    head = ["| direction | row | method | seeds | arith. | " + " | ".join(RUNS_COLUMNS) + " | P / R |",
            "|---" * (len(RUNS_COLUMNS) + 6) + "|"]
    return "\n".join(lines + [""] + means + [""] + head + runs_lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="base", help=f"comma-separated rows: {', '.join(ROWS)}")
    ap.add_argument("--directions", default=",".join(DIRECTIONS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/study", type=Path)
    ap.add_argument("--methods", default=None, help="comma-separated methods instead of each row's own (a subset "
                    "of the ladder when time is short; finished runs are reused when the set grows)")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra overrides for every row")
    ap.add_argument("--report", action="store_true", help="print the table of the results found in --out")
    ap.add_argument("--also", action="append", type=Path, default=[], metavar="DIR",
                    help="with --report-runs: pool the seeds of another study folder (repeatable), e.g. seeds that "
                         "were added under another --out")
    ap.add_argument("--report-choice", action="store_true",
                    help="the label-free choice between the symmetric and the directed agreement, per seed (rows "
                         "agree_symmetric or src_mask_0.5, and agree_visible, or agree_auto runs; with --also)")
    ap.add_argument("--choice-method", default="masktwins", help="the MaskTwins variant whose agreement choice "
                    "--report-choice composes (e.g. masktwins_random_pair)")
    ap.add_argument("--report-runs", action="store_true", help="the table from every evaluated seed's own summary "
                    "(rows stopped early or grown by several invocations)")
    ap.add_argument("--jobs", type=int, default=1, help="directions trained at once, the CPU threads split between "
                    "them (2 on a 2-core machine: ~1.4x the throughput)")
    ap.add_argument("--fork-from", metavar="TEMPLATE", help="forking rows fork from this comparison folder instead of "
                    "<out>/<direction>/base, e.g. 'runs/study/{direction}/src_grid_12nm' (give that row's settings "
                    "with --set too: a fork must share every setting but the method's)")
    ap.add_argument("--voxel-size", metavar="Z,Y,X", help="training grid in nm (default: the harness's rule, "
                    "40,12,12 here; the rows of the sessions before 2026-12-06 used 40,8,8)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    if args.report:
        print(report(args.out))
        return 0
    if args.report_runs:
        print(report_runs(args.out, args.also))
        return 0
    if args.report_choice:
        print(report_choice(args.out, args.also, args.choice_method))
        return 0
    rows = args.rows.split(",")
    for row in rows:
        if row not in ROWS:
            ap.error(f"unknown row {row!r}; choose from {', '.join(ROWS)}")
    cmds = [command(d, row, args.seeds, args.out, args.extra, args.methods, args.fork_from, args.voxel_size)
            for row in rows for d in args.directions.split(",")]
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    # Two runs at one thread each train ~1.4x more steps per second on 2 cores than one run at two threads
    # (BENCHMARKS.md, "Adaptation study"): small 3D convolutions do not keep two threads busy. The directions of a
    # row are independent; rows run in order (a forking row needs its base row's prefix first).
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.jobs))}
    # the CLI installed next to this interpreter, so an un-activated virtual environment runs its own copy
    cli = shutil.which("masktwins-bio", path=str(Path(sys.executable).parent)) or shutil.which("masktwins-bio")
    if cli is None:
        ap.error("the masktwins-bio command is not installed with this Python; run `pip install -e .` first")
    cmds = [[cli, *c[1:]] for c in cmds]
    n_dirs = len(args.directions.split(","))
    for i in range(0, len(cmds), n_dirs):
        group = cmds[i:i + n_dirs]
        for j in range(0, len(group), args.jobs):
            procs = [subprocess.Popen(c, env=env if args.jobs > 1 else None) for c in group[j:j + args.jobs]]
            rcs = [p.wait() for p in procs]
            if any(rcs):
                return next(rc for rc in rcs if rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
