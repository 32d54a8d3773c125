"""Streamed instance metrics from a sparse overlap (contingency) table.

:class:`ContingencyAccumulator` takes (prediction ids, ground-truth ids) one block at a time and keeps only the
unique id pairs with their voxel counts (the background/background pair is not stored, only counted), plus the
per-instance sum of a probability volume when one is given. Everything else follows from that table:

* instance sizes (row/column sums, background included);
* IoU of every overlapping pair ``|p & g| / (|p| + |g| - |p & g|)``;
* MitoEM-style 3D AP (:func:`average_precision`), one-to-one precision/recall/F1 at an IoU threshold
  (:func:`match_counts`), false merges and splits (:func:`merges_and_splits`);
* VOI and adapted Rand error through scikit-image, which accept the table directly (:func:`voi_arand`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "ContingencyTable",
    "ContingencyAccumulator",
    "contingency_table",
    "average_precision",
    "match_counts",
    "merges_and_splits",
    "voi_arand",
    "instance_metrics",
    "AP_CONVENTION",
]

AP_CONVENTION = (
    "COCO/MitoEM-style 3D AP (as ygCoconut/mAP_3Dvolume, COCO matching): predicted instances are ranked by score "
    "(descending, ties by id); each is matched greedily to the still unmatched GT instance with the highest 3D IoU "
    ">= threshold (true positive) or counts as a false positive; precision is made monotone (envelope) and sampled "
    "at the 101 recall points 0, 0.01, ..., 1 (0 beyond the reached recall); no size ranges, no detection limit. "
    "AP is undefined (null) without GT instances and 0 with GT but no predictions."
)


def _reduce_pairs(p: np.ndarray, g: np.ndarray, c: np.ndarray):
    """Sum ``c`` over equal ``(p, g)`` pairs; returns the unique pairs (sorted by p, then g) and their sums."""
    if p.size == 0:
        return p, g, c
    order = np.lexsort((g, p))
    p, g, c = p[order], g[order], c[order]
    start = np.ones(p.size, dtype=bool)
    start[1:] = (p[1:] != p[:-1]) | (g[1:] != g[:-1])
    idx = np.flatnonzero(start)
    return p[idx], g[idx], np.add.reduceat(c, idx)


def _reduce_ids(ids: np.ndarray, values: np.ndarray):
    if ids.size == 0:
        return ids, values
    order = np.argsort(ids, kind="stable")
    ids, values = ids[order], values[order]
    start = np.ones(ids.size, dtype=bool)
    start[1:] = ids[1:] != ids[:-1]
    idx = np.flatnonzero(start)
    return ids[idx], np.add.reduceat(values, idx)


def _block_pairs(p: np.ndarray, g: np.ndarray):
    """Unique (pred, gt) pairs of one block with counts; ids are uint64 arrays, (0, 0) excluded."""
    p = p.ravel()
    g = g.ravel()
    mask = (p != 0) | (g != 0)
    p = p[mask].astype(np.uint64, copy=False)
    g = g[mask].astype(np.uint64, copy=False)
    if p.size == 0:
        e = np.zeros(0, np.uint64)
        return e, e, np.zeros(0, np.int64)
    g_max = int(g.max())
    if (int(p.max()) + 1) * (g_max + 1) < 2**64:
        # one sort of a combined key instead of a lexsort of two
        key = p * np.uint64(g_max + 1) + g
        uk, cnt = np.unique(key, return_counts=True)
        return uk // np.uint64(g_max + 1), uk % np.uint64(g_max + 1), cnt.astype(np.int64)
    return _reduce_pairs(p, g, np.ones(p.size, dtype=np.int64))


@dataclass
class ContingencyTable:
    """Sparse overlap table between a predicted and a ground-truth label volume.

    Attributes:
        pred: (K,) uint64 prediction ids of the pairs (0 = background).
        gt: (K,) uint64 ground-truth ids of the pairs.
        count: (K,) int64 voxels in both; the (0, 0) pair is not listed.
        n_voxels: Voxels in the volume (so ``n_voxels - count.sum()`` is the background/background count).
        score_ids, score_sums: Prediction ids (> 0) and the sum of a probability volume over each (optional; the mean
            probability is the score of an instance).
    """

    pred: np.ndarray
    gt: np.ndarray
    count: np.ndarray
    n_voxels: int
    score_ids: Optional[np.ndarray] = None
    score_sums: Optional[np.ndarray] = None

    @property
    def background_count(self) -> int:
        return int(self.n_voxels - self.count.sum())

    def sizes(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids > 0, voxel counts) of the prediction (``"pred"``) or ground-truth (``"gt"``) instances."""
        ids = self.pred if which == "pred" else self.gt
        keep = ids != 0
        return _reduce_ids(ids[keep], self.count[keep])

    def ids(self, which: str) -> np.ndarray:
        return self.sizes(which)[0]

    def best_iou(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, best IoU with any instance of the other volume) of the ``"gt"`` or ``"pred"`` instances.

        GT side: near 0 = missed, (0, 0.5) = merged/split/badly shaped, above 0.5 = matched. Prediction side: near
        0 = false positives.
        """
        other = "pred" if which == "gt" else "gt"
        ids, sizes = self.sizes(which)
        other_ids, other_sizes = self.sizes(other)
        both = (self.pred != 0) & (self.gt != 0)
        mine = np.searchsorted(ids, getattr(self, which)[both])
        theirs = np.searchsorted(other_ids, getattr(self, other)[both])
        inter = self.count[both]
        best = np.zeros(ids.size)
        np.maximum.at(best, mine, inter / (sizes[mine] + other_sizes[theirs] - inter))
        return ids, best


class ContingencyAccumulator:
    """Accumulate a :class:`ContingencyTable` block by block (memory ~ number of distinct overlapping pairs)."""

    def __init__(self, merge_every: int = 1_000_000):
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._scores: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending = 0
        self._pending_scores = 0
        self.merge_every = merge_every
        self.n_voxels = 0
        self.has_scores = False

    def add(self, pred_ids: np.ndarray, gt_ids: np.ndarray, prob: Optional[np.ndarray] = None) -> None:
        """Add one block.

        Args:
            pred_ids: Prediction instance ids (non-negative integers or bool), any shape.
            gt_ids: Ground-truth ids, same shape.
            prob: Optional foreground probability in [0, 1], same shape (float; the mean over an instance is its score).
        """
        self.n_voxels += int(pred_ids.size)
        part = _block_pairs(pred_ids, gt_ids)
        if part[0].size:
            self._parts.append(part)
            self._pending += part[0].size
        if prob is not None:
            self.has_scores = True
            ids = pred_ids.ravel()
            fg = ids != 0
            if fg.any():
                u, inv = np.unique(ids[fg].astype(np.uint64, copy=False), return_inverse=True)
                sums = np.bincount(inv.ravel(), weights=prob.ravel()[fg].astype(np.float64), minlength=u.size)
                self._scores.append((u, sums))
                self._pending_scores += u.size
        if self._pending > self.merge_every:
            self._merge()
        if self._pending_scores > self.merge_every:
            self._merge_scores()

    def _merge(self) -> None:
        if len(self._parts) > 1:
            p, g, c = (np.concatenate(x) for x in zip(*self._parts))
            self._parts = [_reduce_pairs(p, g, c)]
        self._pending = self._parts[0][0].size if self._parts else 0

    def _merge_scores(self) -> None:
        if len(self._scores) > 1:
            ids, sums = (np.concatenate(x) for x in zip(*self._scores))
            self._scores = [_reduce_ids(ids, sums)]
        self._pending_scores = self._scores[0][0].size if self._scores else 0

    def result(self) -> ContingencyTable:
        self._merge()
        self._merge_scores()
        if self._parts:
            p, g, c = self._parts[0]
        else:
            p = g = np.zeros(0, np.uint64)
            c = np.zeros(0, np.int64)
        table = ContingencyTable(p, g, c, self.n_voxels)
        if self.has_scores:
            if self._scores:
                table.score_ids, table.score_sums = self._scores[0]
            else:
                table.score_ids, table.score_sums = np.zeros(0, np.uint64), np.zeros(0)
        return table


def contingency_table(pred: np.ndarray, gt: np.ndarray, prob: Optional[np.ndarray] = None) -> ContingencyTable:
    """The contingency table of two in-memory label arrays (one block)."""
    acc = ContingencyAccumulator()
    acc.add(np.asarray(pred), np.asarray(gt), None if prob is None else np.asarray(prob))
    return acc.result()


# -- matching ------------------------------------------------------------------------------------------------


@dataclass
class _Overlaps:
    pred_ids: np.ndarray  # (P,) ids > 0
    gt_ids: np.ndarray  # (G,)
    pred_sizes: np.ndarray
    gt_sizes: np.ndarray
    pi: np.ndarray  # (K,) index into pred_ids of each foreground pair
    gi: np.ndarray  # (K,) index into gt_ids
    inter: np.ndarray
    iou: np.ndarray


def _overlaps(table: ContingencyTable) -> _Overlaps:
    pred_ids, pred_sizes = table.sizes("pred")
    gt_ids, gt_sizes = table.sizes("gt")
    both = (table.pred != 0) & (table.gt != 0)
    pi = np.searchsorted(pred_ids, table.pred[both])
    gi = np.searchsorted(gt_ids, table.gt[both])
    inter = table.count[both].astype(np.float64)
    iou = inter / (pred_sizes[pi] + gt_sizes[gi] - inter)
    return _Overlaps(pred_ids, gt_ids, pred_sizes, gt_sizes, pi, gi, inter, iou)


def instance_scores(table: ContingencyTable, score: str = "auto") -> tuple[np.ndarray, str]:
    """Score of each predicted instance (ordered like ``table.ids("pred")``) and the name of the convention.

    Args:
        score: ``size`` (voxels, the mAP_3Dvolume default), ``mean_prob`` (mean foreground probability; needs the
            table's score sums) or ``auto`` (``mean_prob`` when available, else ``size``).
    """
    ids, sizes = table.sizes("pred")
    if score == "auto":
        score = "mean_prob" if table.score_ids is not None else "size"
    if score == "size":
        return sizes.astype(np.float64), "size"
    if score == "mean_prob":
        if table.score_ids is None:
            raise ValueError("mean_prob scores need a probability volume")
        sums = np.zeros(ids.size)
        pos = np.searchsorted(table.score_ids, ids)
        ok = pos < table.score_ids.size
        ok[ok] = table.score_ids[pos[ok]] == ids[ok]
        sums[ok] = table.score_sums[pos[ok]]
        return sums / np.maximum(sizes, 1), "mean_prob"
    raise ValueError(f"unknown score {score!r}; use size, mean_prob or auto")


def _greedy_by_score(ov: _Overlaps, scores: np.ndarray, threshold: float) -> np.ndarray:
    """COCO matching: (P,) bool, True where the prediction (in ranking order) is a true positive."""
    order = np.lexsort((ov.pred_ids, -scores))
    # candidates of each prediction, best IoU first (ties: smaller GT id first)
    cand_order = np.lexsort((ov.gt_ids[ov.gi], -ov.iou, ov.pi))
    pi, gi, iou = ov.pi[cand_order], ov.gi[cand_order], ov.iou[cand_order]
    starts = np.searchsorted(pi, np.arange(ov.pred_ids.size + 1))
    matched_gt = np.zeros(ov.gt_ids.size, dtype=bool)
    tp = np.zeros(order.size, dtype=bool)
    for rank, p in enumerate(order):
        for k in range(starts[p], starts[p + 1]):
            if iou[k] < threshold:
                break
            if not matched_gt[gi[k]]:
                matched_gt[gi[k]] = True
                tp[rank] = True
                break
    return tp


def _coco_ap(tp_ranked: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    if tp_ranked.size == 0:
        return 0.0
    tps = np.cumsum(tp_ranked).astype(np.float64)
    fps = np.cumsum(~tp_ranked).astype(np.float64)
    recall = tps / n_gt
    precision = tps / (tps + fps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    rec_thrs = np.linspace(0.0, 1.0, 101)
    inds = np.searchsorted(recall, rec_thrs, side="left")
    q = np.where(inds < precision.size, precision[np.minimum(inds, precision.size - 1)], 0.0)
    return float(q.mean())


def average_precision(table: ContingencyTable, thresholds: Sequence[float] = (0.5, 0.75),
                      score: str = "auto") -> dict[float, float]:
    """MitoEM-style 3D AP at each IoU threshold (see :data:`AP_CONVENTION`); NaN without GT instances."""
    ov = _overlaps(table)
    scores, _ = instance_scores(table, score)
    return {float(t): _coco_ap(_greedy_by_score(ov, scores, t), ov.gt_ids.size) for t in thresholds}


def _one_to_one(ov: _Overlaps, threshold: float):
    """Greedy one-to-one matching by IoU (descending); returns the indices of matched pairs.

    Above IoU 0.5 a region overlaps at most one other region that much, so there the matching is unique and
    optimal; at exactly 0.5 ties are broken by (pred id, gt id).
    """
    ok = np.flatnonzero(ov.iou >= threshold)
    order = ok[np.lexsort((ov.gt_ids[ov.gi[ok]], ov.pred_ids[ov.pi[ok]], -ov.iou[ok]))]
    used_p = np.zeros(ov.pred_ids.size, dtype=bool)
    used_g = np.zeros(ov.gt_ids.size, dtype=bool)
    pairs = []
    for k in order:
        if not used_p[ov.pi[k]] and not used_g[ov.gi[k]]:
            used_p[ov.pi[k]] = used_g[ov.gi[k]] = True
            pairs.append(k)
    return np.asarray(pairs, dtype=np.intp)


def match_counts(table: ContingencyTable, threshold: float = 0.5) -> dict:
    """One-to-one matching at an IoU threshold: tp/fp/fn, precision, recall, F1 and mean IoU of the matches.

    Conventions: precision is NaN without predictions, recall NaN without GT instances, F1 = 2tp / (2tp + fp + fn)
    NaN only when both are empty; mean matched IoU NaN without matches.
    """
    ov = _overlaps(table)
    pairs = _one_to_one(ov, threshold)
    tp = int(pairs.size)
    n_pred, n_gt = int(ov.pred_ids.size), int(ov.gt_ids.size)
    fp, fn = n_pred - tp, n_gt - tp
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / n_pred if n_pred else float("nan"),
        "recall": tp / n_gt if n_gt else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if (n_pred or n_gt) else float("nan"),
        "mean_matched_iou": float(ov.iou[pairs].mean()) if tp else float("nan"),
    }


def merges_and_splits(table: ContingencyTable, fraction: float = 0.5) -> dict:
    """False merges and splits from majority overlaps.

    A GT instance belongs to the predicted instance that holds more than ``fraction`` of its voxels (at most one);
    a predicted instance holding two or more GT instances is a **false merge**. Symmetrically a predicted instance
    belongs to the GT instance holding more than ``fraction`` of it, and a GT instance holding two or more predicted
    instances is **falsely split**.

    Returns:
        ``false_merges`` (predicted instances), ``merged_gt`` (GT instances inside them), ``false_splits`` (GT
        instances) and ``split_pred`` (predicted instances inside them).
    """
    ov = _overlaps(table)
    gt_major = ov.inter > fraction * ov.gt_sizes[ov.gi]  # pair holds most of the GT instance
    per_pred = np.bincount(ov.pi[gt_major], minlength=ov.pred_ids.size)
    pred_major = ov.inter > fraction * ov.pred_sizes[ov.pi]
    per_gt = np.bincount(ov.gi[pred_major], minlength=ov.gt_ids.size)
    return {
        "false_merges": int((per_pred >= 2).sum()),
        "merged_gt": int(per_pred[per_pred >= 2].sum()),
        "false_splits": int((per_gt >= 2).sum()),
        "split_pred": int(per_gt[per_gt >= 2].sum()),
    }


def _compact(ids: np.ndarray) -> np.ndarray:
    """Map ids to 0..n-1 keeping 0 -> 0 (the labels' values do not matter to VOI/ARAND, only the partition)."""
    # concatenate as uint64: mixing with a Python int list would promote to float64 and merge large ids
    u, inv = np.unique(np.concatenate([np.zeros(1, np.uint64), ids.astype(np.uint64)]), return_inverse=True)
    return inv.ravel()[1:]


def voi_arand(table: ContingencyTable) -> dict:
    """Variation of information and adapted Rand error with scikit-image, computed from the streamed table.

    * VOI: ``skimage.metrics.variation_of_information(gt, pred)`` (no ignored labels, background is a segment):
      ``voi_split`` = H(pred | gt), ``voi_merge`` = H(gt | pred), in bits.
    * ARAND: ``skimage.metrics.adapted_rand_error(gt, pred)`` (GT background ignored, skimage's default): error,
      precision and recall. NaN when undefined (no GT foreground, or all GT segments single voxels).
    """
    import scipy.sparse as sparse
    from skimage.metrics import adapted_rand_error, variation_of_information

    rows = _compact(table.gt)
    cols = _compact(table.pred)
    n_rows = int(rows.max()) + 1 if rows.size else 1
    n_cols = int(cols.max()) + 1 if cols.size else 1
    n = table.n_voxels
    out = {"voi_split": float("nan"), "voi_merge": float("nan"), "voi": float("nan"),
           "arand": float("nan"), "arand_precision": float("nan"), "arand_recall": float("nan")}
    if n == 0:
        return out
    data = np.concatenate([table.count.astype(np.float64), [float(table.background_count)]])
    r = np.concatenate([rows, [0]])
    c = np.concatenate([cols, [0]])
    voi_table = sparse.csr_array((data / n, (r, c)), shape=(n_rows, n_cols))
    # skimage 0.2x checks the images' shapes even when a table is given; equal-shaped placeholders (ignored
    # otherwise) keep the call working on every version
    placeholder = np.zeros(1, dtype=np.uint8)
    split, merge = variation_of_information(placeholder, placeholder, table=voi_table)
    out.update(voi_split=float(split), voi_merge=float(merge), voi=float(split + merge))
    fg = table.gt != 0
    if fg.any():
        arand_table = sparse.csr_array((table.count[fg].astype(np.float64), (rows[fg], cols[fg])),
                                       shape=(n_rows, n_cols))
        with np.errstate(divide="ignore", invalid="ignore"):
            are, prec, rec = adapted_rand_error(table=arand_table)
        out.update(arand=float(are), arand_precision=float(prec), arand_recall=float(rec))
        for k in ("arand", "arand_precision", "arand_recall"):
            if not np.isfinite(out[k]):
                out[k] = float("nan")
    return out


def instance_metrics(table: ContingencyTable, thresholds: Sequence[float] = (0.5, 0.75), score: str = "auto",
                     match_threshold: float = 0.5) -> dict:
    """All instance metrics of a contingency table (AP per threshold, matching, merges/splits, VOI, ARAND).

    Returns:
        Flat dict: ``ap50``, ``ap75`` (keys ``ap{round(100 t)}``), ``precision50``, ``recall50``, ``f1_50``,
        ``mean_matched_iou``, ``tp50``/``fp50``/``fn50``, ``n_pred``, ``n_gt``, merges/splits, VOI/ARAND and
        ``score`` (the ranking convention used).
    """
    scores_used = instance_scores(table, score)[1]
    out: dict = {"n_pred": int(table.ids("pred").size), "n_gt": int(table.ids("gt").size), "score": scores_used}
    for t, ap in average_precision(table, thresholds, score).items():
        out[f"ap{round(100 * t)}"] = ap
    m = match_counts(table, match_threshold)
    tag = f"{round(100 * match_threshold)}"
    out.update({f"precision{tag}": m["precision"], f"recall{tag}": m["recall"], f"f1_{tag}": m["f1"],
                "mean_matched_iou": m["mean_matched_iou"], f"tp{tag}": m["tp"], f"fp{tag}": m["fp"],
                f"fn{tag}": m["fn"]})
    out.update(merges_and_splits(table))
    out.update(voi_arand(table))
    return out
