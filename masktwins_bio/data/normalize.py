"""Per-volume intensity normalisation.

Each volume (source, target, any volume given to ``predict``) is normalised by its *own* statistics, estimated once
from a deterministic sample of blocks spread over the volume (never the whole volume in memory). Normalising each
domain by its own statistics removes global brightness/contrast differences between microscopes before any
learning happens; the masked voxels of MaskTwins then take the value 0, the normalised mean.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..io.volume import Volume

__all__ = ["volume_statistics", "normalize", "NORMALIZATION_MODES"]

NORMALIZATION_MODES = ("zscore", "percentile")


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

    Returns:
        ``{"mean", "std", "p1", "p99"}`` as floats.
    """
    samples = [np.asarray(b).ravel() for b in _sample_blocks(vol, max_voxels, seed=seed)]
    data = np.concatenate(samples) if samples else np.zeros(1, np.float32)
    if data.dtype.kind in "iub" and data.dtype.itemsize <= 2:
        mean, std, p1, p99 = _integer_statistics(data)
    else:
        data = data.astype(np.float32, copy=False)
        mean, std = float(data.mean()), float(data.std())
        p1, p99 = (float(v) for v in np.percentile(data, [1, 99]))
    if std == 0 or p99 <= p1:
        raise InputError(f"{vol.path}: image is constant (value {mean:g}) in the sampled region; "
                         "check that the right volume/dataset was given")
    return {"mean": mean, "std": std, "p1": p1, "p99": p99}


def _integer_statistics(data: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, std, 1st and 99th percentile of (at most 16-bit) integers from their histogram: exact (float64), and
    about 20x faster than sorting float copies - it is a fixed cost of every ``predict``.

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

    return mean, std, percentile(1), percentile(99)


def normalize(data, stats: dict, mode: str = "zscore"):
    """Normalise an array or tensor with :func:`volume_statistics` output.

    ``zscore``: ``(x - mean) / std``. ``percentile``: maps [p1, p99] to [-1, 1] (then roughly zero-mean).
    """
    if mode == "zscore":
        shift, scale = stats["mean"], stats["std"]
    elif mode == "percentile":
        shift, scale = (stats["p1"] + stats["p99"]) / 2, (stats["p99"] - stats["p1"]) / 2
    else:
        raise ValueError(f"unknown normalization {mode!r}; choose one of {NORMALIZATION_MODES}")
    if isinstance(data, torch.Tensor):
        return (data.float() - shift) / scale
    return (np.asarray(data, dtype=np.float32) - np.float32(shift)) / np.float32(scale)
