"""summary.json: the stated conventions, JSON conversion, atomic writing and the printed table."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError
from ..files import atomic_file, plain
from ..io.guard import check_parent, refuse_existing
from .instance import AP_CONVENTION

__all__ = ["CONVENTIONS", "to_jsonable", "dumps", "resolve_output", "write_summary", "format_summary"]

CONVENTIONS = {
    "threshold": "prediction foreground = probability >= threshold (as DA-ISC); a uint8 value v means p = v / 255, "
                 "so at 0.5 foreground is v >= 128; label predictions: foreground = id > 0",
    "ground_truth": "foreground = value > 0, or value >= gt_threshold when given (e.g. 128 for 8-bit masks)",
    "pixel_ap": "scikit-learn average_precision_score on the flattened foreground probability (step-wise, no "
                "interpolation), computed exactly from score histograms: uint8 -> 256 bins, float16 -> one bin per "
                "float16 value (both exact); float32/float64 are rounded to float16 for the histogram only (AP equals "
                "scikit-learn's on p.astype(float16)); label/binary predictions -> 2 bins",
    "per_section": "per_section_mean = mean over z sections of the metric computed on each section (DA-ISC default), "
                   "over the sections where it is defined (n_sections_used); whole_volume = one computation over all "
                   "voxels (DA-ISC map_3d)",
    "empty": "where prediction and GT are both empty (section or volume) F1/Dice/IoU/MCC/precision/recall are "
             "undefined (null) and such sections are excluded from per-section means; otherwise 0/0 ratios are 0 "
             "(scikit-learn zero_division=0; MCC = 0 for a zero denominator, as matthews_corrcoef). Pixel AP is "
             "undefined (null, excluded) without GT foreground. Accuracy is always defined. Reported null values "
             "are never silently averaged in.",
    "dice": "Dice equals F1 for binary masks; both are listed because papers report either",
    "scale": "metrics are fractions in [0, 1] in this file; the printed table shows them x100 like the papers "
             "(VOI in bits and ARAND are printed unscaled)",
    "instance_ap": AP_CONVENTION,
    "instance_score": "ranking score for AP: instance size in voxels (the mAP_3Dvolume default when no confidence "
                      "is given) or, when a probability volume is given, the mean foreground probability over the "
                      "instance; see instance.score",
    "instance_matching": "precision/recall/F1 at IoU >= 0.5 with one-to-one matching, greedy by IoU (unique and "
                         "optimal above 0.5); mean_matched_iou over those matches; precision null without "
                         "predictions, recall null without GT instances",
    "merges_splits": "a GT instance belongs to the predicted instance holding > 50 % of its voxels; a prediction "
                     "holding >= 2 GT instances is a false merge. Symmetrically a GT instance holding > 50 % of >= 2 "
                     "predictions is a false split",
    "voi": "skimage.metrics.variation_of_information(gt, pred) on the streamed contingency table, background "
           "included as a segment: voi_split = H(pred|gt), voi_merge = H(gt|pred), bits",
    "arand": "skimage.metrics.adapted_rand_error(gt, pred) on the streamed contingency table, GT background ignored "
             "(skimage default); null when undefined (no GT foreground)",
    "instances_from_masks": "a binary mask - a prediction or GT with a single foreground value, with the values "
                            "1 and 255 only (a mask saved partly as 1-bit, partly as 8-bit images), a GT with one "
                            "value on >= 99 % of its foreground voxels (a drawn mask with stray anti-aliasing "
                            "values), or GT given gt_threshold - is split into its connected components (cc3d, "
                            "connectivity in settings) by the blockwise labeller, in memory up to max_label_voxels voxels and in "
                            "a temporary Zarr store beyond",
}


def to_jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    return plain(obj, finite=True)


_SCALAR_LIST = re.compile(r"\[([-+\d.eE,\s]|null|true|false)*\]")


def dumps(summary: dict) -> str:
    """JSON text of a summary: indented, NaN as null, lists of numbers (per-section arrays) on one line."""
    text = json.dumps(to_jsonable(summary), indent=2, allow_nan=False)
    return _SCALAR_LIST.sub(lambda m: "[" + " ".join(m.group(0)[1:-1].split()) + "]", text)


def resolve_output(output, overwrite: bool = False) -> Optional[Path]:
    """``.json`` path -> itself; anything else is a folder (created if needed) -> folder/summary.json.

    Checked before any work so that a bad path fails fast.
    """
    if output is None:
        return None
    p = Path(output)
    if p.suffix.lower() == ".json":
        if not p.parent.exists():
            raise InputError(f"{p}: folder {p.parent} does not exist; create it first or choose another --out")
    else:
        if p.exists() and not p.is_dir():
            raise InputError(f"{p}: exists and is not a folder; give a folder or a .json file name for --out")
        if not p.exists():
            check_parent(p)
        p = p / "summary.json"
    if p.exists() and not overwrite:
        refuse_existing(p, "summary", other="choose another --out")
    return p


def write_summary(summary: dict, path: Path) -> Path:
    """Write atomically (temporary sibling renamed into place), so a partial file never looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(dumps(summary) + "\n")
    return path


# -- printed table -----------------------------------------------------------------------------------------------

_SEMANTIC_ROWS = (("ap", "pixel AP"), ("f1", "F1"), ("mcc", "MCC"), ("iou", "IoU (foreground)"), ("dice", "Dice"),
                  ("precision", "precision"), ("recall", "recall"), ("accuracy", "accuracy"))


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * float(v):.2f}"


def _num(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):.{digits}f}"


def _describe(info: dict) -> str:
    shape = " x ".join(str(s) for s in info.get("shape", []))
    vs = info.get("voxel_size_nm")
    vs_text = "x".join(f"{v:g}" for v in vs) + " nm" if vs else "voxel size unknown"
    return f"{info.get('path')}  ({info.get('kind')}, {info.get('dtype')}, {shape}, {vs_text})"


def format_summary(summary: dict) -> str:
    """A readable aligned table of a summary (metrics x100, per-section and whole-volume columns)."""
    lines = ["masktwins-bio evaluate"]
    inputs = summary.get("inputs", {})
    for key, label in (("prediction", "prediction"), ("ground_truth", "ground truth"), ("probability", "scores")):
        if key in inputs:
            lines.append(f"  {label:<13}{_describe(inputs[key])}")
    if inputs.get("roi"):
        lines.append(f"  {'roi':<13}{inputs['roi']}")
    sem = summary.get("semantic")
    if sem:
        per = sem.get("per_section_mean")
        whole = sem["whole_volume"]
        lines.append("")
        header = f"  {'semantic (x100)':<20}" + (f"{'per-section':>13}" if per else "") + f"{'whole-volume':>14}"
        lines.append(header)
        for key, label in _SEMANTIC_ROWS:
            row = f"  {label:<20}" + (f"{_pct(per.get(key)):>13}" if per else "") + f"{_pct(whole.get(key)):>14}"
            lines.append(row)
        s = sem.get("sections", {})
        if per:
            used = sem.get("n_sections_used", {})
            lines.append(
                f"  sections: {s.get('total')} ({s.get('both_empty', 0)} empty in prediction and GT, excluded; "
                f"{s.get('gt_empty', 0)} without GT foreground; AP over {used.get('ap', 0)}, F1 over "
                f"{used.get('f1', 0)})"
            )
        c = sem.get("counts", {})
        lines.append(f"  voxels: tp {c.get('tp')}  fp {c.get('fp')}  fn {c.get('fn')}  tn {c.get('tn')}")
    inst = summary.get("instance")
    if inst is not None:
        lines.append("")
        if "skipped" in inst:
            lines.append(f"  instance metrics skipped: {inst['skipped']}")
        else:
            lines.append(f"  {'instance (x100)':<20}{'value':>13}")
            rows = [("AP@0.50", _pct(inst.get("ap50"))), ("AP@0.75", _pct(inst.get("ap75"))),
                    ("precision@0.50", _pct(inst.get("precision50"))), ("recall@0.50", _pct(inst.get("recall50"))),
                    ("F1@0.50", _pct(inst.get("f1_50"))), ("mean matched IoU", _pct(inst.get("mean_matched_iou"))),
                    ("VOI split (bits)", _num(inst.get("voi_split"))),
                    ("VOI merge (bits)", _num(inst.get("voi_merge"))),
                    ("ARAND error", _num(inst.get("arand")))]
            for label, value in rows:
                lines.append(f"  {label:<20}{value:>13}")
            lines.append(
                f"  instances: {inst.get('n_pred')} predicted, {inst.get('n_gt')} GT; at IoU 0.5 tp {inst.get('tp50')} "
                f"fp {inst.get('fp50')} fn {inst.get('fn50')}; false merges {inst.get('false_merges')}, false splits "
                f"{inst.get('false_splits')}; AP ranked by {inst.get('score')}"
            )
            for side in ("prediction", "ground_truth"):
                src = inst.get("instances_from", {}).get(side)
                if src and src != "labels":
                    lines.append(f"  {side.replace('_', ' ')} instances: {src}")
    for note in summary.get("notes", []):
        lines.append(f"  note: {note}")
    if summary.get("output"):
        lines.append(f"  summary written to {summary['output']}")
    return "\n".join(lines)
