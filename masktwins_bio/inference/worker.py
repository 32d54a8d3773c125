"""Per-process state of inference tasks: the device to run on and one loaded model per worker.

A block task carries the model *path*, never the loaded network, so it pickles small and travels to dask workers
once. Each process (the serial driver or a dask worker) loads the model the first time it needs it and keeps it in
:data:`_MODELS`. On a multi-GPU ``LocalCluster`` every worker process sees all GPUs; a bare ``cuda`` device is then
pinned to GPU ``worker_index % device_count`` so the workers spread over the GPUs.
"""

from __future__ import annotations

import os
import threading
import zlib

import torch

from ..devices import resolve_device
from ..models import LoadedModel, load_model

__all__ = ["resolve_device", "worker_device", "cached_model"]

_MODELS: dict = {}
_LOCK = threading.Lock()


def worker_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device for this process; inside a dask worker an unindexed ``cuda`` is pinned to one GPU."""
    dev = resolve_device(device)
    if dev.type != "cuda" or dev.index is not None:
        return dev
    index = 0
    try:
        from distributed import get_worker

        name = str(get_worker().name)
        index = (int(name) if name.isdigit() else zlib.crc32(name.encode())) % torch.cuda.device_count()
    except (ImportError, ValueError):  # not inside a dask worker
        pass
    return torch.device("cuda", index)


def cached_model(path: str, device: torch.device) -> LoadedModel:
    """Load ``path`` onto ``device`` once per process (re-loaded if the file changes)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, str(device))
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(path, device)
        return _MODELS[key]
