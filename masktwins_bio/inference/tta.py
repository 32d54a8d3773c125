"""Test-time augmentation by flips, applied to each sliding window.

EM volumes are usually anisotropic (e.g. 30 x 8 x 8 nm), so z is never swapped with y or x; flips along z, y and x
are all valid symmetries of the data. ``tta="flips"`` averages the probabilities of the 8 flip combinations
(in-plane flips and the z flip) of each window, each flipped back before averaging. Flipping windows rather than the
whole block keeps the sliding-window grid fixed, so blockwise results still equal a whole-volume sliding window
that uses the same TTA predictor.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch

from ..errors import InputError

__all__ = ["TTA_MODES", "flip_dims", "tta_predictor"]

TTA_MODES = ("none", "flips")


def flip_dims(tta: str, spatial_dims: tuple[int, int, int] = (2, 3, 4)) -> list[tuple[int, ...]]:
    """Tensor dims to flip for each TTA pass (``()`` is the identity), for a (B, C, Z, Y, X) tensor."""
    if tta == "none":
        return [()]
    if tta == "flips":
        return [tuple(d for d, on in zip(spatial_dims, bits) if on) for bits in itertools.product((0, 1), repeat=3)]
    raise InputError(f"tta {tta!r} is not known; choose one of {', '.join(TTA_MODES)}")


def tta_predictor(predict: Callable[[torch.Tensor], torch.Tensor], tta: str = "none"):
    """Wrap ``predict`` (windows (B, 1, Z, Y, X) -> probabilities of the same shape) with flip TTA.

    Returns:
        A callable returning the mean over the flipped copies, each result flipped back.
    """
    passes = flip_dims(tta)
    if len(passes) == 1:
        return predict

    def averaged(x: torch.Tensor) -> torch.Tensor:
        total = predict(x)
        for dims in passes[1:]:
            total = total.add_(torch.flip(predict(torch.flip(x, dims)), dims))
        return total.div_(len(passes))

    return averaged
