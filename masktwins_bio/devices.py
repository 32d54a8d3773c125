"""Devices: one resolution of ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` for training, inference and the GUI, and
one way to reach the network inside a DistributedDataParallel wrapper."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .errors import InputError, UserError

__all__ = ["resolve_device", "unwrap"]


def resolve_device(device=None, local_rank: Optional[int] = None, what: str = "device",
                   error: type[UserError] = InputError) -> torch.device:
    """The torch device for ``device``; refuses what this machine does not have with a one-line ``error``.

    Args:
        device: ``auto``/``None`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or a torch device.
        local_rank: Under torchrun, the process's local rank: an unindexed ``cuda`` becomes ``cuda:<local_rank>``
            and is made the current device.
        what: The option or key being resolved, for messages (``--device``, ``train.device``).
        error: The :class:`~masktwins_bio.errors.UserError` subclass to raise.
    """
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise error(f"{what} {device!r} is not valid; use auto, cpu, cuda or cuda:N") from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise error(f"{what} {str(device)!r}: CUDA is not available on this machine; use cpu or auto")
    if dev.index is None and local_rank is not None:
        dev = torch.device("cuda", local_rank)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise error(f"{what} {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    if local_rank is not None:
        torch.cuda.set_device(dev)
    return dev


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP (or DataParallel) wrapper; the module itself otherwise."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module
