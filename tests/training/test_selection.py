"""Auditing label-free checkpoint selection on hand-made histories."""

from __future__ import annotations

import pytest

from masktwins_bio.training.selection import audit_selection, summarize_audits


def _hist(*rows):
    return [{"step": s, "label_free_score": sc, "target_iou_per_section": iou} for s, sc, iou in rows]


def test_audit_compares_the_selected_candidate_with_the_best_from_the_adaptation_start():
    h = _hist((100, 0.9, 0.80), (200, 0.1, 0.50), (300, 0.2, 0.55), (400, 0.3, 0.60))
    a = audit_selection(h, selected_step=400, adapt_from_step=100)  # step 100 is the adaptation's start: no candidate
    assert a["best"] == pytest.approx(0.60) and a["gap"] == pytest.approx(0.0) and a["candidates"] == 3
    assert a["spearman"] == pytest.approx(1.0)
    b = audit_selection(h, selected_step=200, adapt_from_step=100)
    assert b["gap"] == pytest.approx(0.10) and b["last"] == pytest.approx(0.60)


def test_audit_without_target_metrics_is_none_and_summary_counts_runs():
    assert audit_selection([{"step": 10, "label_free_score": 0.5}], 10) is None
    s = summarize_audits([None, {"gap": 0.01, "best": 0.6, "last": 0.6, "spearman": 0.5},
                          {"gap": 0.05, "best": 0.6, "last": 0.5, "spearman": None}])
    assert s["runs"] == 2 and s["within_tolerance"] == 1 and s["last_within_tolerance"] == 1
    assert s["mean_spearman"] == pytest.approx(0.5)
