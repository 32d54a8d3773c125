"""Atomic file writes: a file is either absent, the old one, or complete - never half-written."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, Union

__all__ = ["atomic_file"]


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
