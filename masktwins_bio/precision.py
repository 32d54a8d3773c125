"""Mixed precision: which autocast dtype a device gets, in one place for training and inference.

``auto`` means bf16 on CUDA and bf16 on CPUs with native bf16 arithmetic (AVX512-BF16 / AMX, as oneDNN reports it):
there a 3D U-Net training step runs about 2x faster than in fp32 (``benchmarks/train_step.py`` prints both side by
side). CPUs without it keep fp32, because emulated bf16 is slower than fp32. Losses, softmax and the optimiser always
run in fp32; only the network's convolutions and activations use bf16.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Optional

import torch

__all__ = ["cpu_has_native_bf16", "autocast_dtype", "autocast"]

AMP_MODES = ("auto", "bf16", "fp16", "none")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device, amp: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype for ``amp`` (``auto``, ``bf16``, ``fp16``, ``none``) on ``device``; ``None`` = fp32.

    fp16 is a CUDA-only choice (it needs a gradient scaler, and CPUs have no fast fp16); on a CPU it means fp32.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    device = torch.device(device)
    if amp == "none":
        return None
    if device.type == "cuda":
        return torch.float16 if amp == "fp16" else torch.bfloat16
    if device.type == "cpu" and (amp == "bf16" or (amp == "auto" and cpu_has_native_bf16())):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
