"""Per-volume intensity normalisation.

Each volume (source, target, any volume given to ``predict``) is normalised by its *own* statistics, estimated once
from a deterministic sample of blocks spread over the volume (never the whole volume in memory). Normalising each
domain by its own statistics removes global brightness/contrast differences between microscopes before any
learning happens; the masked voxels of MaskTwins then take the value 0, the normalised mean.

``histogram`` goes one step further: every volume's intensity distribution is mapped onto a *reference* one, the
training source's, by matching quantiles (piecewise-linear between 201 quantiles), then z-scored with the reference's
mean and std. The reference travels in the model file, so ``predict`` maps any new volume the same way. It aligns
the whole shape of the histogram (e.g. a microscope's grey-level compression), not only its mean and spread.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch

from ..errors import InputError
from ..io.volume import Volume

log = logging.getLogger(__name__)

__all__ = ["volume_statistics", "normalize", "with_reference", "normalization_metadata", "statistics_for",
           "NORMALIZATION_MODES"]

NORMALIZATION_MODES = ("zscore", "percentile", "histogram")
QUANTILE_LEVELS = np.linspace(0.0, 100.0, 201)


def _sample_blocks(vol: Volume, max_voxels: int, seed: int = 0):
    """Whole chunks (the unit a store decodes) spread over the volume, up to ``max_voxels`` voxels in total.

    Without chunks, blocks of 8 x 128 x 128; slice folders have one-section chunks, so whole sections are sampled.
    """
    shape = np.asarray(vol.shape)
    if vol.size <= max_voxels:
        yield vol[:]
        return
    block = np.minimum(np.asarray(vol.chunks or (8, 128, 128)), shape)
    if np.prod(block) > max_voxels // 4:  # huge chunks (whole sections of a big stack): parts of them
        block = np.minimum(block, (max(1, block[0] // 2), 512, 512))
    n_blocks = max(1, int(max_voxels // np.prod(block)))
    grid = np.maximum(1, shape // block)
    cells = np.random.default_rng(seed).permutation(int(np.prod(grid)))[:n_blocks]  # distinct aligned cells
    for cell in cells:
        origin = np.minimum(np.array(np.unravel_index(int(cell), grid)) * block, shape - block)
        yield vol[tuple(slice(int(o), int(o + b)) for o, b in zip(origin, block))]


def volume_statistics(vol: Volume, max_voxels: int = 4_000_000, seed: int = 0) -> dict:
    """Intensity statistics of a volume from up to ``max_voxels`` sampled voxels.

    Non-finite voxels (NaN, inf) are left out of the statistics and counted: ``"nonfinite_fraction"`` (of the
    sampled voxels) is added when there are any; :func:`normalize` maps them to the mean.

    Returns:
        ``{"mean", "std", "p1", "p99", "quantiles"}``: floats, and the 201 quantiles at 0, 0.5, ..., 100 %.
    """
    samples = [np.asarray(b).ravel() for b in _sample_blocks(vol, max_voxels, seed=seed)]
    data = np.concatenate(samples) if samples else np.zeros(1, np.float32)
    nonfinite = 0.0
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            nonfinite = 1.0 - float(finite.mean())
            data = data[finite]
            if data.size == 0:
                raise InputError(f"{vol.path}: every sampled voxel is NaN or infinite; check the volume")
    if data.dtype.kind in "iub" and data.dtype.itemsize <= 2:
        mean, std, quantiles = _integer_statistics(data, QUANTILE_LEVELS)
    else:
        data = data.astype(np.float32, copy=False)
        mean, std = float(data.mean()), float(data.std())
        quantiles = [float(v) for v in np.percentile(data, QUANTILE_LEVELS)]
    p1, p99 = quantiles[2], quantiles[198]
    if std == 0 or p99 <= p1:
        raise InputError(f"{vol.path}: image is constant (value {mean:g}) in the sampled region; "
                         "check that the right volume/dataset was given")
    stats = {"mean": mean, "std": std, "p1": p1, "p99": p99, "quantiles": quantiles}
    if nonfinite:
        log.warning("%s: %.3g %% of the sampled voxels are NaN or infinite; they are treated as the volume's mean",
                    vol.path, 100 * nonfinite)
        stats["nonfinite_fraction"] = nonfinite
    return stats


def with_reference(stats: dict, reference: Optional[dict]) -> dict:
    """``stats`` plus the reference distribution ``histogram`` normalisation maps onto (``None``: unchanged)."""
    if reference is None:
        return stats
    return {**stats, "reference": {k: reference[k] for k in ("mean", "std", "quantiles")}}


def _integer_statistics(data: np.ndarray, levels) -> tuple[float, float, list[float]]:
    """Mean, std and percentiles at ``levels`` of (at most 16-bit) integers from their histogram: exact (float64),
    and about 20x faster than sorting float copies - it is a fixed cost of every ``predict``.

    Percentiles interpolate linearly between order statistics, as :func:`numpy.percentile` does.
    """
    low, high = int(data.min()), int(data.max())
    counts = np.zeros(high - low + 1, dtype=np.int64)
    step = 1 << 20  # bincount copies its input to intp: bound that copy to 8 MiB
    for i in range(0, data.size, step):
        part = data[i:i + step].astype(np.intp)
        counts += np.bincount(part - low if low else part, minlength=len(counts))
    values = np.arange(low, low + len(counts), dtype=np.float64)
    n = int(counts.sum())
    mean = float(counts @ values / n)
    std = float(np.sqrt(counts @ (values - mean) ** 2 / n))
    ends = np.cumsum(counts)  # order statistics 0 .. ends[i] - 1 have value values[i]

    def percentile(q: float) -> float:
        rank = q / 100 * (n - 1)
        lo, hi = values[np.searchsorted(ends, [np.floor(rank), np.ceil(rank)], side="right")]
        t = rank - np.floor(rank)
        return float(hi - (hi - lo) * (1 - t) if t >= 0.5 else lo + (hi - lo) * t)  # numpy's _lerp

    return mean, std, [percentile(q) for q in levels]


def normalization_metadata(mode: str, source_stats: dict) -> dict:
    """The ``normalization`` entry of a model file: the mode, and for ``histogram`` the reference distribution."""
    meta = {"mode": mode, "per_volume": True}
    if mode == "histogram":
        meta["reference"] = with_reference({}, source_stats)["reference"]
    return meta


def statistics_for(vol: Volume, normalization: Optional[dict], seed: int = 0) -> dict:
    """Statistics of ``vol`` for normalising it the way a model expects (its metadata's ``normalization``)."""
    normalization = normalization or {}
    stats = volume_statistics(vol, seed=seed)
    if normalization.get("mode") == "histogram":
        ref = normalization.get("reference")
        if not isinstance(ref, dict) or not {"mean", "std", "quantiles"} <= set(ref):
            raise InputError(f"{vol.path}: the model uses histogram normalisation but its file has no reference "
                             "distribution; re-export it with this version of masktwins-bio")
        stats = with_reference(stats, ref)
    return stats


def _matching_map(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing knots (this volume's quantiles) and their values (the reference's), ties averaged."""
    if "reference" not in stats:
        raise ValueError("histogram normalisation needs statistics with a reference (with_reference)")
    x = np.asarray(stats["quantiles"], dtype=np.float64)
    y = np.asarray(stats["reference"]["quantiles"], dtype=np.float64)
    knots, inverse = np.unique(x, return_inverse=True)
    values = np.bincount(inverse, weights=y) / np.bincount(inverse)
    return knots, values


def normalize(data, stats: dict, mode: str = "zscore"):
    """Normalise an array or tensor with :func:`volume_statistics` output.

    ``zscore``: ``(x - mean) / std``. ``percentile``: maps [p1, p99] to [-1, 1] (then roughly zero-mean).
    ``histogram``: quantile matching onto ``stats["reference"]`` (:func:`with_reference`), then the reference's
    z-score; values outside the quantile range are clamped to the reference's extremes. Non-finite voxels (NaN,
    inf) become 0, the normalised mean: a NaN would otherwise spread through every window that holds it.
    """
    out = _normalize(data, stats, mode)
    if isinstance(data, torch.Tensor):
        return torch.nan_to_num(out, 0.0, 0.0, 0.0) if data.is_floating_point() else out
    if np.asarray(data).dtype.kind == "f":
        return np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def _normalize(data, stats: dict, mode: str):
    if mode == "histogram":
        knots, values = _matching_map(stats)
        ref = stats["reference"]
        values = (values - ref["mean"]) / ref["std"]
        if isinstance(data, torch.Tensor):
            return _interp_torch(data.float(), knots, values)
        return np.interp(np.asarray(data, dtype=np.float32), knots, values).astype(np.float32)
    if mode == "zscore":
        shift, scale = stats["mean"], stats["std"]
    elif mode == "percentile":
        shift, scale = (stats["p1"] + stats["p99"]) / 2, (stats["p99"] - stats["p1"]) / 2
    else:
        raise ValueError(f"unknown normalization {mode!r}; choose one of {NORMALIZATION_MODES}")
    if isinstance(data, torch.Tensor):
        return (data.float() - shift) / scale
    return (np.asarray(data, dtype=np.float32) - np.float32(shift)) / np.float32(scale)


def _interp_torch(x: torch.Tensor, knots: np.ndarray, values: np.ndarray) -> torch.Tensor:
    """``np.interp`` for a tensor, on its own device (clamped at both ends)."""
    if len(knots) == 1:
        return torch.full_like(x, float(values[0]))
    k = torch.as_tensor(knots, dtype=torch.float32, device=x.device)
    v = torch.as_tensor(values, dtype=torch.float32, device=x.device)
    i = torch.searchsorted(k, x.contiguous()).clamp(1, len(k) - 1)
    x0, x1, y0, y1 = k[i - 1], k[i], v[i - 1], v[i]
    t = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return y0 + t * (y1 - y0)
