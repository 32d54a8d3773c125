"""Inference over volumes of any size: blockwise sliding window with prefetch/write-behind, TTA, resume, dask.

See :func:`predict` (module :mod:`.predict`), :mod:`.blend` (MONAI's gaussian blending as running sums that blocks
hand on along z), :mod:`.tta` (flip test-time augmentation) and :mod:`.worker` (per-process device and model cache).
The block scheduler itself is :mod:`masktwins_bio.blockwise`.
"""

from __future__ import annotations

from .blend import WindowBlender
from .predict import OUTPUT_DTYPES, PredictTask, default_block_shape, predict, window_starts
from .tta import TTA_MODES, flip_dims, tta_predictor
from .worker import cached_model, resolve_device, worker_device

__all__ = [
    "predict",
    "PredictTask",
    "default_block_shape",
    "window_starts",
    "WindowBlender",
    "OUTPUT_DTYPES",
    "TTA_MODES",
    "flip_dims",
    "tta_predictor",
    "resolve_device",
    "worker_device",
    "cached_model",
]
