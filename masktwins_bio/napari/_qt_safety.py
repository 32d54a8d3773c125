"""Keep triton out of a process whose Qt / OpenGL is up (the segfault of the default CUDA torch wheel).

The default torch wheel on PyPI is a CUDA build that bundles triton, and torch imports triton lazily from
``torch._dynamo`` - for instance the first time an optimiser is constructed. Importing triton *after* napari has
created its OpenGL context segfaults the process where OpenGL is Mesa's llvmpipe (remote desktops, clusters, Xvfb):
both bring their own LLVM. Importing triton *before* Qt is harmless, but a plugin is only loaded once the viewer is
up. The plugin never compiles anything (eager mode needs no triton), so in a process that has Qt loaded and has not
imported triton yet, :func:`keep_triton_out` makes ``import triton`` fail cleanly; torch then treats triton as not
installed. The only cost: ``torch.compile`` on a CUDA device is unavailable inside that napari process.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["keep_triton_out", "QT_BINDINGS"]

log = logging.getLogger("masktwins_bio.napari")

QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")


def keep_triton_out() -> bool:
    """Block later ``import triton`` calls when Qt is loaded and triton is not; returns whether it is blocked now.

    Idempotent and cheap: every widget and job calls it. A triton imported before Qt (safe) is left alone.
    """
    if sys.modules.get("triton", False) is None:
        return True  # already blocked
    if "triton" in sys.modules or not any(name in sys.modules for name in QT_BINDINGS):
        return False
    sys.modules["triton"] = None  # `import triton` now raises ImportError (ModuleNotFoundError)
    log.debug("triton blocked in this Qt process (importing it after OpenGL is up can segfault)")
    return True
