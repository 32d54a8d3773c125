"""Auditing label-free checkpoint selection against target labels (experiments only; a real user has none).

A run's ``history`` holds, at every validation, the label-free monitors and - when the experiment has target labels
- the target metrics on a central crop of the evaluation volume. :func:`audit_selection` compares the checkpoint the
run selected without labels to the best one in hindsight among the same candidates (the validations after the
adaptation's start: the models adaptation produced), and measures how well the label-free score ranks the candidates (Spearman correlation with the
target IoU). :func:`summarize_audits` aggregates over runs: how often the selection lands within ``tolerance`` of the
best, and the mean rank correlation. ``compare`` reports both for every ladder with target labels.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

__all__ = ["audit_selection", "summarize_audits", "AUDIT_METRIC"]

AUDIT_METRIC = "target_iou_per_section"  # the DA-ISC IoU, on the in-training crop


def audit_selection(history: Sequence[dict], selected_step: int, adapt_from_step: int = 0,
                    metric: str = AUDIT_METRIC, score: str = "label_free_score") -> Optional[dict]:
    """Selected vs best-in-hindsight checkpoint of one run (``None`` without target metrics in the history).

    Returns:
        ``{"selected", "best", "last", "gap", "spearman", "candidates"}``: the target metric of the selected, best
        and last candidate, ``best - selected``, and the rank correlation of ``score`` with the metric over the
        candidates (``None`` for fewer than 3 candidates or a constant score).
    """
    cands = [h for h in history if h.get("step", -1) > adapt_from_step and _finite(h.get(metric))]
    if not cands:
        return None
    by_step = {h["step"]: h for h in cands}
    sel = by_step.get(selected_step, cands[-1])
    best = max(h[metric] for h in cands)
    return {"selected": float(sel[metric]), "best": float(best), "last": float(cands[-1][metric]),
            "gap": float(best - sel[metric]), "candidates": len(cands),
            "spearman": _spearman([h.get(score) for h in cands], [h[metric] for h in cands])}


def summarize_audits(audits: Sequence[Optional[dict]], tolerance: float = 0.02) -> Optional[dict]:
    """How often selection is within ``tolerance`` (IoU, 0-1) of the best candidate, and the mean Spearman rho."""
    audits = [a for a in audits if a]
    if not audits:
        return None
    rhos = [a["spearman"] for a in audits if a["spearman"] is not None]
    return {"runs": len(audits), "within_tolerance": sum(a["gap"] <= tolerance + 1e-9 for a in audits),
            "tolerance": tolerance, "mean_gap": float(np.mean([a["gap"] for a in audits])),
            "last_within_tolerance": sum(a["best"] - a["last"] <= tolerance + 1e-9 for a in audits),
            "mean_spearman": float(np.mean(rhos)) if rhos else None}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _spearman(a, b) -> Optional[float]:
    if len(a) < 3 or not all(_finite(v) for v in a) or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)
