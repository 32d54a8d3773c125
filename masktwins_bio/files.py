"""What goes into files: atomic writes (a file is absent, the old one, or complete - never half-written) and plain
values (what JSON, YAML, Zarr attributes and the weights-only unpickler accept)."""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

__all__ = ["atomic_file", "plain", "OME_VERSIONS", "DEFAULT_OME_VERSION"]

#: the OME-Zarr versions outputs can be written as: 0.4 (Zarr v2) and 0.5 (Zarr v3)
OME_VERSIONS = ("0.4", "0.5")
#: what every output is written as unless asked otherwise: OME-Zarr 0.5 (Zarr v3), the current NGFF version, which
#: ome-zarr-py, napari-ome-zarr, neuroglancer and vizarr read without warnings (ome-zarr-py warns on every 0.4
#: store); ``--ome-version 0.4`` (Zarr v2) remains for readers that predate Zarr v3
DEFAULT_OME_VERSION = "0.5"


def plain(obj: Any, finite: bool = False) -> Any:
    """``obj`` as plain Python: dict keys as strings, tuples/arrays as lists, numpy scalars as numbers, paths (and str
    subclasses such as ``torch.__version__``) as ``str``; with ``finite``, NaN/inf as ``None`` (JSON has no NaN).
    Settings compare equal to the same settings read back from a file."""
    if isinstance(obj, dict):
        return {str(k): plain(v, finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v, finite) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and finite and not math.isfinite(obj):
        return None
    if isinstance(obj, (Path, str)):
        return str(obj)
    return obj


@contextlib.contextmanager
def atomic_file(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a unique temporary sibling of ``path`` to write; it replaces ``path`` (one rename) when the block
    completes, and is removed when it fails, so nothing is left behind either way.

    Example::

        with atomic_file(run / "last.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
