"""Instance metrics: hand-built AP case, matching, merges/splits, VOI/ARAND vs scikit-image, streamed tables."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error, variation_of_information

from masktwins_bio.blockwise import BlockGrid
from masktwins_bio.metrics.instance import (
    ContingencyAccumulator,
    average_precision,
    contingency_table,
    instance_metrics,
    instance_scores,
    match_counts,
    merges_and_splits,
    voi_arand,
)


def _case():
    """Along x: A matched perfectly, B split 6/4, C+D (5+3) merged, E missed, F a false positive."""
    gt = np.zeros((1, 1, 40), dtype=np.uint16)
    pred = np.zeros_like(gt)
    gt[..., 0:5] = 1          # A
    pred[..., 0:5] = 10       # A' (IoU 1)
    gt[..., 6:16] = 2         # B
    pred[..., 6:12] = 20      # B1 (IoU 0.6)
    pred[..., 12:16] = 21     # B2 (IoU 0.4)
    gt[..., 17:22] = 3        # C
    gt[..., 22:25] = 4        # D
    pred[..., 17:25] = 30     # C+D (IoU 0.625 with C, 0.375 with D)
    gt[..., 27:30] = 5        # E, missed
    pred[..., 32:36] = 40     # F, false positive
    return pred, gt


def test_hand_built_case():
    pred, gt = _case()
    table = contingency_table(pred, gt)
    ap = average_precision(table, (0.5, 0.75), score="size")
    # ranked by size: 30, 20, 10, 21, 40 -> TP TP TP FP FP at 0.5: precision 1 up to recall 0.6 -> 61 of 101 points
    assert ap[0.5] == pytest.approx(61 / 101)
    # at 0.75 only A matches (3rd in rank): precision 1/3 up to recall 0.2 -> 21 of 101 points
    assert ap[0.75] == pytest.approx(21 / 101 / 3)
    m = match_counts(table, 0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (3, 2, 2)
    assert m["precision"] == m["recall"] == m["f1"] == pytest.approx(0.6)
    assert m["mean_matched_iou"] == pytest.approx((1 + 0.6 + 0.625) / 3)
    ms = merges_and_splits(table)
    assert ms == {"false_merges": 1, "merged_gt": 2, "false_splits": 1, "split_pred": 2}
    full = instance_metrics(table)
    assert full["n_pred"] == 5 and full["n_gt"] == 5
    assert full["ap50"] == pytest.approx(61 / 101) and full["score"] == "size"


def test_perfect_match_is_one():
    _, gt = _case()
    res = instance_metrics(contingency_table(gt, gt))
    assert res["ap50"] == res["ap75"] == res["f1_50"] == res["mean_matched_iou"] == 1.0
    assert res["voi"] == pytest.approx(0.0, abs=1e-12) and res["arand"] == pytest.approx(0.0, abs=1e-12)
    assert res["false_merges"] == res["false_splits"] == 0


def test_ids_do_not_matter():
    pred, gt = _case()
    big = np.where(pred > 0, pred.astype(np.uint64) + np.uint64(2**62), 0).astype(np.uint64)
    a = instance_metrics(contingency_table(pred, gt))
    b = instance_metrics(contingency_table(big, gt.astype(np.uint64) * np.uint64(2**40)))  # lexsort fallback
    assert a.keys() == b.keys()
    for key in a:
        expected = pytest.approx(a[key], nan_ok=True, rel=1e-12) if isinstance(a[key], float) else a[key]
        assert b[key] == expected, key


def test_mean_probability_score_changes_ranking():
    pred, gt = _case()
    prob = np.full(pred.shape, 0.5, dtype=np.float32)
    prob[pred == 40] = 0.99  # the false positive is the most confident
    table = contingency_table(pred, gt, prob)
    scores, name = instance_scores(table)
    assert name == "mean_prob"
    assert scores[list(table.ids("pred")).index(40)] == pytest.approx(0.99)
    ap = average_precision(table, (0.5,))[0.5]
    assert ap < average_precision(table, (0.5,), score="size")[0.5]


def test_empty_prediction_and_empty_gt():
    _, gt = _case()
    empty = np.zeros_like(gt)
    no_pred = instance_metrics(contingency_table(empty, gt))
    assert no_pred["ap50"] == 0.0 and no_pred["recall50"] == 0.0 and no_pred["f1_50"] == 0.0
    assert np.isnan(no_pred["precision50"])  # no predictions: precision undefined (null), not a surprise 0/0 NaN
    no_gt = instance_metrics(contingency_table(gt, empty))
    assert np.isnan(no_gt["ap50"]) and np.isnan(no_gt["recall50"]) and np.isnan(no_gt["arand"])
    assert no_gt["precision50"] == 0.0 and no_gt["f1_50"] == 0.0
    both = instance_metrics(contingency_table(empty, empty))
    assert np.isnan(both["ap50"]) and np.isnan(both["f1_50"])
    assert both["voi"] == 0.0


def test_voi_arand_equal_skimage_on_random_arrays():
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 6, (4, 9, 13))
    pred = rng.integers(0, 8, gt.shape) * 1000  # sparse ids
    res = voi_arand(contingency_table(pred, gt))
    split, merge = variation_of_information(gt, pred)
    are, prec, rec = adapted_rand_error(gt, pred)
    assert res["voi_split"] == pytest.approx(split, rel=1e-12)
    assert res["voi_merge"] == pytest.approx(merge, rel=1e-12)
    assert res["arand"] == pytest.approx(are, rel=1e-12)
    assert res["arand_precision"] == pytest.approx(prec, rel=1e-12)
    assert res["arand_recall"] == pytest.approx(rec, rel=1e-12)


@pytest.mark.parametrize("block_shape", [(1, 4, 5), (3, 7, 11), (2, 9, 13)])
def test_streamed_table_equals_whole(block_shape):
    rng = np.random.default_rng(6)
    shape = (5, 9, 13)
    gt = rng.integers(0, 5, shape).astype(np.uint32)
    pred = rng.integers(0, 7, shape).astype(np.int64)
    prob = rng.random(shape)
    whole = contingency_table(pred, gt, prob)
    acc = ContingencyAccumulator(merge_every=10)  # force frequent merges
    for block in BlockGrid(shape, block_shape):
        sl = block.write_slices
        acc.add(pred[sl], gt[sl], prob[sl])
    streamed = acc.result()
    np.testing.assert_array_equal(whole.pred, streamed.pred)
    np.testing.assert_array_equal(whole.gt, streamed.gt)
    np.testing.assert_array_equal(whole.count, streamed.count)
    np.testing.assert_allclose(whole.score_sums, streamed.score_sums, rtol=1e-12)
    assert whole.n_voxels == streamed.n_voxels == int(np.prod(shape))
    assert streamed.background_count == int(((pred == 0) & (gt == 0)).sum())


def test_best_iou_per_instance():
    from masktwins_bio.metrics import contingency_table

    gt = np.zeros((1, 1, 10), np.uint32)
    gt[0, 0, :4], gt[0, 0, 6:] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, 0, :4], pred[0, 0, 5:7], pred[0, 0, 9] = 7, 8, 9  # exact, partial, partial
    table = contingency_table(pred, gt)
    ids, best = table.best_iou("gt")
    assert ids.tolist() == [1, 2] and best.tolist() == pytest.approx([1.0, 1 / 4])  # gt 2: best of 1/5, 1/4
    ids, best = table.best_iou("pred")
    assert ids.tolist() == [7, 8, 9] and best.tolist() == pytest.approx([1.0, 1 / 5, 1 / 4])
