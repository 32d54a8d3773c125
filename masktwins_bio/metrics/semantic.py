"""Streamed semantic (pixel-level) metrics: the DA-ISC set (pixel AP, F1, MCC, foreground IoU) plus Dice, precision,
recall and accuracy, per z section and over the whole volume.

Nothing here ever holds a whole volume: :class:`SemanticAccumulator` takes one block at a time and keeps, per z
section, the confusion counts at the threshold (``tp, fp, fn, tn``) and a histogram of the prediction scores split by
ground truth. Pixel AP is then computed exactly from the histograms (it only depends on how many positives and
negatives share each distinct score), which reproduces :func:`sklearn.metrics.average_precision_score` on the
flattened volume.

Score binning (how a prediction value becomes a histogram bin):

* ``uint8`` probabilities (``v`` means ``p = v / 255``): one bin per value, 256 bins -> exact.
* ``float16`` probabilities: one bin per float16 value in [0, 1] (15361 bins, the bit pattern) -> exact.
* ``float32``/``float64`` probabilities: rounded to the nearest float16 first, so AP equals scikit-learn's AP on
  ``p.astype(np.float16)`` (relative precision 2**-11; differences to the unrounded AP are typically < 1e-4). The
  threshold itself is applied to the unrounded values, so F1/MCC/IoU/... are exact.
* label or binary-mask predictions: 2 bins (foreground or not).

Per-section histograms are only kept until a section is complete (all its voxels seen), then turned into that
section's AP and folded into the whole-volume histogram, so memory is bounded by the sections a block spans.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = [
    "SCORE_KINDS",
    "N_BINS",
    "SemanticAccumulator",
    "score_bins",
    "average_precision_from_histogram",
    "confusion_metrics",
    "SEMANTIC_METRICS",
]

#: bins per score kind (see the module docstring)
N_BINS = {"uint8": 256, "float": 0x3C00 + 1, "binary": 2}
SCORE_KINDS = tuple(N_BINS)
#: metric names in report order
SEMANTIC_METRICS = ("ap", "f1", "mcc", "iou", "dice", "precision", "recall", "accuracy")

# confusion codes: 2 * pred_fg + gt_fg
_TN, _FN, _FP, _TP = 0, 1, 2, 3


def score_bins(scores: np.ndarray, kind: str) -> np.ndarray:
    """Histogram bin index of each score (monotone in the score), see the module docstring.

    Args:
        scores: Block of prediction values; uint8 (``p * 255``), float in [0, 1] (already validated), or a boolean
            foreground mask for ``kind="binary"``.
        kind: ``uint8``, ``float`` or ``binary``.

    Returns:
        Integer array of the same shape with values in ``[0, N_BINS[kind])``.
    """
    if kind == "uint8":
        return scores.astype(np.intp, copy=False)
    if kind == "binary":
        return scores.astype(np.intp)
    if kind == "float":
        # non-negative float16 values sort like their bit patterns; & 0x7FFF maps -0.0 to +0.0
        bits = np.asarray(scores, dtype=np.float16).view(np.uint16) & np.uint16(0x7FFF)
        return bits.astype(np.intp)
    raise ValueError(f"unknown score kind {kind!r}")


def average_precision_from_histogram(neg: np.ndarray, pos: np.ndarray) -> float:
    """Average precision from score histograms, identical to scikit-learn's ``average_precision_score``.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct scores in decreasing order (no interpolation).

    Args:
        neg: (n_bins,) counts of ground-truth negatives per score bin (bins ordered by increasing score).
        pos: (n_bins,) counts of ground-truth positives per score bin.

    Returns:
        AP in [0, 1], or NaN when there are no positives (AP is undefined; scikit-learn would warn and return 0).
    """
    pos = np.asarray(pos, dtype=np.int64)[::-1]
    neg = np.asarray(neg, dtype=np.int64)[::-1]
    keep = (pos + neg) > 0
    tp = np.cumsum(pos)[keep].astype(np.float64)
    fp = np.cumsum(neg)[keep].astype(np.float64)
    n_pos = tp[-1] if tp.size else 0.0
    if n_pos == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def confusion_metrics(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Threshold metrics from confusion counts (scalars or arrays, e.g. one entry per section).

    Conventions (see also ``summary.json`` -> ``conventions``):

    * where prediction and ground truth are both empty (``tp + fp + fn == 0``) every metric but accuracy is
      undefined (NaN) - such sections are excluded from per-section means;
    * otherwise a 0/0 ratio is 0, as scikit-learn with ``zero_division=0`` (precision without predicted foreground,
      recall without true foreground) and ``matthews_corrcoef`` (MCC = 0 when its denominator is 0).

    Returns:
        Dict of float64 arrays: precision, recall, f1, dice (== f1 for binary masks), iou (foreground Jaccard), mcc,
        accuracy.
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    empty = (tp + fp + fn) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(denom > 0, (tp * tn - fp * fn) / denom, 0.0)
        n = tp + fp + fn + tn
        accuracy = np.where(n > 0, (tp + tn) / n, np.nan)
    out = {"precision": precision, "recall": recall, "f1": f1, "dice": f1.copy(), "iou": iou, "mcc": mcc}
    for key, value in out.items():
        out[key] = np.where(empty, np.nan, value)
    out["accuracy"] = accuracy
    return out


class SemanticAccumulator:
    """Accumulate semantic metrics block by block.

    Args:
        shape: Volume shape (z, y, x) in voxels.
        score_kind: ``uint8``, ``float`` or ``binary`` (see :func:`score_bins`).
        per_section: Also keep per-section histograms (for per-section AP). Confusion counts are always per section.

    Usage::

        acc = SemanticAccumulator(shape, "uint8")
        for block in grid:
            acc.add(z0, scores, pred_fg, gt_fg)     # arrays of the block, z0 = first section of the block
        result = acc.result()
    """

    def __init__(self, shape, score_kind: str, per_section: bool = True):
        if score_kind not in N_BINS:
            raise ValueError(f"unknown score kind {score_kind!r}")
        self.shape = tuple(int(s) for s in shape)
        self.score_kind = score_kind
        self.n_bins = N_BINS[score_kind]
        self.per_section = per_section
        nz = self.shape[0]
        self.section_size = int(self.shape[1]) * int(self.shape[2])
        self.counts = np.zeros((nz, 4), dtype=np.int64)  # columns: tn, fn, fp, tp
        self.hist = np.zeros((2, self.n_bins), dtype=np.int64)  # [neg, pos] x bins, whole volume
        self.section_ap = np.full(nz, np.nan)
        self._seen = np.zeros(nz, dtype=np.int64)
        self._open: dict[int, np.ndarray] = {}  # z -> (2, n_bins) histogram of a section still being filled

    def add(self, z0: int, scores: np.ndarray, pred_fg: np.ndarray, gt_fg: np.ndarray) -> None:
        """Add one block.

        Args:
            z0: Index of the block's first section in the volume.
            scores: (dz, by, bx) prediction scores as accepted by :func:`score_bins` for this accumulator's kind.
            pred_fg: (dz, by, bx) bool, prediction foreground at the threshold.
            gt_fg: (dz, by, bx) bool, ground-truth foreground.
        """
        dz = scores.shape[0]
        if dz == 0 or scores.size == 0:
            return
        z_local = np.arange(dz, dtype=np.intp).reshape(dz, 1, 1)
        gt_i = gt_fg.astype(np.intp)
        code = (pred_fg.astype(np.intp) << 1) | gt_i
        self.counts[z0 : z0 + dz] += np.bincount((z_local * 4 + code).ravel(), minlength=dz * 4).reshape(dz, 4)
        bins = score_bins(scores, self.score_kind)
        nb = self.n_bins
        if self.per_section:
            idx = (z_local * 2 + gt_i) * nb + bins
            h = np.bincount(idx.ravel(), minlength=dz * 2 * nb).reshape(dz, 2, nb)
            for i in range(dz):
                z = z0 + i
                if z in self._open:
                    self._open[z] += h[i]
                else:
                    self._open[z] = h[i].copy()
        else:
            self.hist += np.bincount((gt_i * nb + bins).ravel(), minlength=2 * nb).reshape(2, nb)
        self._seen[z0 : z0 + dz] += scores.shape[1] * scores.shape[2]
        if self.per_section:
            for z in range(z0, z0 + dz):
                if self._seen[z] >= self.section_size:
                    self._close(z)

    def _close(self, z: int) -> None:
        h = self._open.pop(z, None)
        if h is None:
            return
        self.section_ap[z] = average_precision_from_histogram(h[0], h[1])
        self.hist += h

    def result(self) -> dict:
        """Metrics and counts.

        Returns:
            Dict with ``whole_volume`` and ``per_section_mean`` (metric -> float or NaN), ``per_section``
            (metric -> (Z,) float array, plus tp/fp/fn/tn count arrays; only with ``per_section``),
            ``n_sections_used`` (metric -> sections where it is defined), ``counts`` (whole-volume tp/fp/fn/tn) and
            ``sections`` (numbers of sections that are empty in both, have no GT foreground, ...).
        """
        for z in list(self._open):  # sections never completed (only when blocks did not cover the volume)
            self._close(z)
        tn, fn, fp, tp = (self.counts[:, i] for i in range(4))
        total = self.counts.sum(axis=0)
        whole = {k: float(v) for k, v in confusion_metrics(total[3], total[2], total[1], total[0]).items()}
        whole["ap"] = average_precision_from_histogram(self.hist[0], self.hist[1])
        out: dict = {
            "whole_volume": {k: whole[k] for k in SEMANTIC_METRICS},
            "counts": {"tp": int(total[3]), "fp": int(total[2]), "fn": int(total[1]), "tn": int(total[0])},
        }
        if self.per_section:
            sec = confusion_metrics(tp, fp, fn, tn)
            sec["ap"] = self.section_ap.copy()
            out["per_section_mean"] = {
                k: (float(np.nanmean(sec[k])) if np.isfinite(sec[k]).any() else float("nan")) for k in SEMANTIC_METRICS
            }
            out["n_sections_used"] = {k: int(np.isfinite(sec[k]).sum()) for k in SEMANTIC_METRICS}
            out["per_section"] = {**{k: sec[k] for k in SEMANTIC_METRICS},
                                  "tp": tp.copy(), "fp": fp.copy(), "fn": fn.copy(), "tn": tn.copy()}
        gt_empty = (tp + fn) == 0
        pred_empty = (tp + fp) == 0
        out["sections"] = {
            "total": int(self.shape[0]),
            "both_empty": int((gt_empty & pred_empty).sum()),
            "gt_empty": int(gt_empty.sum()),
            "prediction_empty": int(pred_empty.sum()),
        }
        return out


def semantic_metrics(pred: np.ndarray, gt_fg: np.ndarray, kind: Optional[str] = None, threshold: float = 0.5,
                     per_section: bool = True) -> dict:
    """Semantic metrics of in-memory arrays (a convenience wrapper of :class:`SemanticAccumulator`, one block).

    Args:
        pred: (z, y, x) probabilities (uint8 ``p * 255`` or float in [0, 1]) or a boolean/integer mask (> 0).
        gt_fg: (z, y, x) ground-truth foreground (anything > 0).
        kind: Score kind; default from the dtype (uint8 -> ``uint8``, float -> ``float``, else ``binary``).
        threshold: Foreground probability threshold (``p >= threshold``).
        per_section: Also compute per-section metrics.
    """
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred[None]
    gt_fg = np.asarray(gt_fg).reshape(pred.shape) > 0
    if kind is None:
        kind = "uint8" if pred.dtype == np.uint8 else "float" if np.issubdtype(pred.dtype, np.floating) else "binary"
    if kind == "uint8":
        fg = threshold_lut(threshold)[pred]
    elif kind == "float":
        fg = pred >= np.float64(threshold)  # float64 scalar: the threshold is not rounded to float16/32
    else:
        pred = pred > 0
        fg = pred
    acc = SemanticAccumulator(pred.shape, kind, per_section)
    acc.add(0, pred, fg, gt_fg)
    return acc.result()


def threshold_lut(threshold: float) -> np.ndarray:
    """(256,) bool lookup: uint8 value ``v`` is foreground when ``v / 255 >= threshold`` (exact, no rounding)."""
    return np.arange(256, dtype=np.float64) / 255.0 >= float(threshold)


__all__ += ["semantic_metrics", "threshold_lut"]
