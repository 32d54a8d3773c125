"""Semantic metrics: hand-computed values, scikit-learn equality, streamed == whole, empty-case conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, jaccard_score, matthews_corrcoef

from masktwins_bio.blockwise import BlockGrid
from masktwins_bio.metrics.semantic import (
    SemanticAccumulator,
    average_precision_from_histogram,
    confusion_metrics,
    score_bins,
    semantic_metrics,
    threshold_lut,
)


def _sk(gt, p, threshold=0.5):
    """scikit-learn reference on flattened arrays (p = probabilities)."""
    g = gt.ravel().astype(bool)
    s = p.ravel()
    b = s >= threshold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "ap": average_precision_score(g, s),
            "f1": f1_score(g, b),
            "mcc": matthews_corrcoef(g, b),
            "iou": jaccard_score(g, b),
        }


def test_hand_computed():
    pred = np.array([255, 200, 100, 0], dtype=np.uint8).reshape(1, 1, 4)
    gt = np.array([1, 0, 1, 0]).reshape(1, 1, 4)
    r = semantic_metrics(pred, gt)["whole_volume"]
    # foreground = v >= 128: predicted [1, 1, 0, 0] vs gt [1, 0, 1, 0] -> tp = fp = fn = tn = 1
    assert r["precision"] == r["recall"] == r["f1"] == r["dice"] == pytest.approx(0.5)
    assert r["iou"] == pytest.approx(1 / 3)
    assert r["mcc"] == pytest.approx(0.0)
    assert r["accuracy"] == pytest.approx(0.5)
    # ranked 255(+) 200(-) 100(+) 0(-): AP = 0.5 * 1 + 0.5 * 2/3
    assert r["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_threshold_lut_is_exact_at_half():
    lut = threshold_lut(0.5)
    assert not lut[127] and lut[128]
    assert lut.sum() == 128


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32"])
def test_equals_sklearn_on_random_arrays(dtype):
    rng = np.random.default_rng(1)
    gt = rng.random((3, 17, 23)) < 0.3
    raw = rng.random(gt.shape) * 0.6 + 0.4 * gt  # informative scores
    if dtype == "uint8":
        pred = np.round(raw * 255).astype(np.uint8)
        p = pred / 255.0
    else:
        pred = raw.astype(dtype)
        p = pred.astype(np.float64)
    res = semantic_metrics(pred, gt)
    ref = _sk(gt, p)
    whole = res["whole_volume"]
    for key in ("f1", "mcc", "iou"):
        assert whole[key] == pytest.approx(ref[key], rel=1e-12)
    # AP is exact for uint8/float16; float32 is binned as float16 (documented)
    ap_ref = ref["ap"] if dtype != "float32" else _sk(gt, pred.astype(np.float16).astype(np.float64))["ap"]
    assert whole["ap"] == pytest.approx(ap_ref, rel=1e-12)
    if dtype == "float32":
        assert whole["ap"] == pytest.approx(ref["ap"], abs=2e-3)
    for z in range(gt.shape[0]):
        ref_z = _sk(gt[z], p[z]) if dtype != "float32" else _sk(gt[z], pred[z].astype(np.float16).astype(float))
        for key in ("ap", "f1", "mcc", "iou"):
            assert res["per_section"][key][z] == pytest.approx(ref_z[key], rel=1e-12), (key, z)
    for key in ("ap", "f1", "mcc", "iou"):
        assert res["per_section_mean"][key] == pytest.approx(np.mean(res["per_section"][key]))


def test_binary_prediction_ap_matches_sklearn():
    rng = np.random.default_rng(2)
    gt = rng.random((2, 9, 11)) < 0.4
    pred = (rng.random(gt.shape) < 0.5).astype(np.uint32) * 7  # a label volume: foreground = id > 0
    res = semantic_metrics(pred, gt, kind="binary")["whole_volume"]
    ref = _sk(gt, (pred > 0).astype(float))
    assert res["ap"] == pytest.approx(ref["ap"], rel=1e-12)
    assert res["f1"] == pytest.approx(ref["f1"], rel=1e-12)


def test_histogram_ap_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    neg = rng.integers(0, 5, 20)
    pos = rng.integers(0, 5, 20)
    scores = np.concatenate([np.repeat(np.arange(20), neg), np.repeat(np.arange(20), pos)])
    labels = np.concatenate([np.zeros(neg.sum()), np.ones(pos.sum())])
    assert average_precision_from_histogram(neg, pos) == pytest.approx(average_precision_score(labels, scores))
    assert np.isnan(average_precision_from_histogram(neg, np.zeros_like(pos)))


def test_float16_bins_are_monotone_and_map_negative_zero():
    values = np.array([-0.0, 0.0, 1e-7, 0.25, 0.5, 0.5009765625, 1.0], dtype=np.float16)
    bins = score_bins(values, "float")
    assert bins[0] == bins[1] == 0
    assert np.all(np.diff(bins[1:]) > 0)
    assert bins[-1] == 0x3C00


@pytest.mark.parametrize("block_shape", [(1, 5, 7), (2, 3, 4), (3, 17, 23), (4, 6, 9)])
@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_streamed_equals_whole(block_shape, kind):
    rng = np.random.default_rng(4)
    shape = (5, 17, 23)
    gt = rng.random(shape) < 0.3
    pred = (rng.integers(0, 256, shape).astype(np.uint8) if kind == "uint8"
            else rng.random(shape).astype(np.float32))
    fg = threshold_lut(0.5)[pred] if kind == "uint8" else pred >= 0.5
    whole = SemanticAccumulator(shape, kind)
    whole.add(0, pred, fg, gt)
    streamed = SemanticAccumulator(shape, kind)
    for block in BlockGrid(shape, block_shape):
        sl = block.write_slices
        streamed.add(block.write_start[0], pred[sl], fg[sl], gt[sl])
    a, b = whole.result(), streamed.result()
    assert a["counts"] == b["counts"]
    assert a["whole_volume"] == b["whole_volume"]
    for key, value in a["per_section"].items():
        np.testing.assert_array_equal(value, b["per_section"][key])
    assert not streamed._open  # every section closed as soon as it was complete


def test_confusion_conventions_for_empty_cases():
    # both empty -> undefined (NaN) except accuracy
    m = confusion_metrics(0, 0, 0, 10)
    for key in ("precision", "recall", "f1", "dice", "iou", "mcc"):
        assert np.isnan(m[key])
    assert m["accuracy"] == 1.0
    # empty prediction, GT foreground present -> zeros, no NaN
    m = confusion_metrics(0, 0, 5, 10)
    assert all(m[k] == 0.0 for k in ("precision", "recall", "f1", "iou", "mcc"))
    # empty GT, prediction present -> zeros, no NaN
    m = confusion_metrics(0, 5, 0, 10)
    assert all(m[k] == 0.0 for k in ("precision", "recall", "f1", "iou", "mcc"))


def test_empty_sections_are_excluded_and_counted():
    gt = np.zeros((3, 4, 4), dtype=bool)
    pred = np.zeros((3, 4, 4), dtype=np.uint8)
    gt[1, :2] = True
    pred[1, :2] = 255  # section 1 perfect
    pred[2, 0, 0] = 255  # section 2: false positive only, GT empty
    res = semantic_metrics(pred, gt)
    sec = res["per_section"]
    assert np.isnan(sec["f1"][0]) and np.isnan(sec["ap"][0])  # both empty
    assert sec["f1"][1] == 1.0 and sec["ap"][1] == 1.0
    assert sec["f1"][2] == 0.0 and np.isnan(sec["ap"][2])  # no GT foreground: AP undefined
    assert res["per_section_mean"]["f1"] == pytest.approx(0.5)
    assert res["per_section_mean"]["ap"] == 1.0
    assert res["n_sections_used"]["f1"] == 2 and res["n_sections_used"]["ap"] == 1
    assert res["sections"] == {"total": 3, "both_empty": 1, "gt_empty": 2, "prediction_empty": 1}


def test_all_empty_volume_has_no_nan_surprises():
    res = semantic_metrics(np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 3), bool))
    assert np.isnan(res["whole_volume"]["f1"]) and np.isnan(res["whole_volume"]["ap"])
    assert res["whole_volume"]["accuracy"] == 1.0
    assert res["n_sections_used"]["f1"] == 0
    assert np.isnan(res["per_section_mean"]["f1"])


def test_float_threshold_is_not_rounded_to_the_data_precision():
    # float32(0.7) < 0.7: such a voxel is background at threshold 0.7, as with float64 comparison in scikit-learn
    pred = np.array([np.float32(0.7), 0.71, 0.2, 0.9], dtype=np.float32).reshape(1, 1, 4)
    gt = np.array([1, 1, 0, 0]).reshape(1, 1, 4)
    res = semantic_metrics(pred, gt, threshold=0.7)
    assert res["counts"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert res["whole_volume"]["f1"] == pytest.approx(_sk(gt, pred.astype(np.float64), 0.7)["f1"])
