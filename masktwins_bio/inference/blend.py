"""Gaussian sliding-window blending as running sums, so that blocks can hand their overlap to the next block.

MONAI's :func:`~monai.inferers.sliding_window_inference` returns ``sum_w(p * w) / sum_w(w)`` over the windows of
one in-memory input; the two sums never leave the call. Blockwise inference over a volume larger than memory then
has to re-run, in every block, the windows that overlap the previous block (``window - stride`` voxels of every
block face cost a second forward pass). :class:`WindowBlender` computes the same two sums, the same way - MONAI's
window grid (:func:`~.predict.window_starts`), its gaussian importance map
(:func:`monai.data.utils.compute_importance_map`), its batching and its arithmetic (``p *= w`` on the batch, then
``num[window] += p`` and ``den[window] += w`` window by window in grid order) - but leaves them to the caller, who may
start them from the sums a previous block carried over. Because every voxel receives the same windows in the same
(C) order as in one whole-volume ``sliding_window_inference``, the result is bit-for-bit the same whether the sums
were carried or recomputed, and equals MONAI's to float rounding (``tests/inference/test_blend.py``).
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch

__all__ = ["WindowBlender"]


class WindowBlender:
    """Accumulate weighted window predictions into running numerator and weight sums.

    Args:
        window: Window shape (z, y, x) in voxels.
        predictor: ``f(windows (B, 1, Z, Y, X)) -> probabilities (B, C, Z, Y, X)`` (e.g. with flip TTA).
        batch_size: Windows per forward pass (MONAI's ``sw_batch_size``).
        importance_map: (1, 1, Z, Y, X) window weights, float32 on the compute device.
    """

    def __init__(self, window: Sequence[int], predictor: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                 importance_map: torch.Tensor):
        self.window = tuple(int(w) for w in window)
        self.predictor = predictor
        self.batch_size = max(1, int(batch_size))
        self.importance_map = importance_map

    def _slices(self, start: Sequence[int]) -> tuple:
        return (slice(None), slice(None)) + tuple(slice(s, s + w) for s, w in zip(start, self.window))

    def accumulate(self, x: torch.Tensor, starts_per_axis: Sequence[Sequence[int]], num: torch.Tensor,
                   den: torch.Tensor, should_stop=None) -> int:
        """Add the windows at every combination of ``starts_per_axis`` (C order) into ``num`` and ``den``.

        Args:
            x: Normalised input (1, 1, Z, Y, X) on the compute device; ``num`` (1, C, Z, Y, X) and ``den``
                (1, 1, Z, Y, X) float32 sums over the same voxels. Window starts are relative to ``x``.
            starts_per_axis: Window starts along z, y and x.
            should_stop: Polled before every batch of windows; True raises
                :class:`~masktwins_bio.errors.Cancelled` (a block of many windows stops within one batch).

        Returns:
            The number of windows evaluated.
        """
        starts = list(itertools.product(*starts_per_axis))
        for first in range(0, len(starts), self.batch_size):
            if should_stop is not None and should_stop():
                from ..errors import Cancelled

                raise Cancelled("stopped between windows")
            batch = starts[first:first + self.batch_size]
            windows = torch.cat([x[self._slices(s)] for s in batch])
            p = self.predictor(windows)
            p *= self.importance_map
            for s, p_i in zip(batch, p):
                num[self._slices(s)] += p_i
        for s in starts:  # weights after the predictions, as MONAI builds its count map in its own loop
            den[self._slices(s)] += self.importance_map
        return len(starts)
