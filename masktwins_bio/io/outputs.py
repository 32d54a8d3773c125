"""Resumable blockwise outputs: the lifecycle predict, segment and label_components share.

A resumable output is an OME-Zarr store whose provenance (attribute ``masktwins_bio``) holds the ``task`` that
writes it, the ``settings`` it is written with and ``complete``. Its work area (:data:`WORK_FOLDER`, inside the store)
holds the per-pass completion markers and intermediate arrays until the output is finished::

    out = ResumableOutput(path, task="predict", settings=settings, inputs=[vol, model], overwrite=o, resume=r)
    if out.complete:                      # --resume of an output that is already finished
        return out.path
    with out:                             # the error policy below
        writer = out.writer or out.create(shape, dtype, voxel_size, kind="image", attrs={...})
        run_blockwise(grid, task, done=out.done("predict"), ...)
        out.finish()

The scheduler (:mod:`masktwins_bio.blockwise`) knows nothing of this: it gets the markers and runs blocks.

One policy for errors inside ``with``:

- ``--overwrite`` sets the old output aside (:func:`~masktwins_bio.io.guard.set_aside`) and writes the new one in
  its place. A failure (bad input, disk full, ...) brings the old output back whole; so does an interruption (Ctrl-C,
  SIGTERM, Cancel) before the first block is done. A finished new output, or an interrupted one with finished blocks
  (resumable with ``--resume``), removes the old one (:func:`~masktwins_bio.io.guard.settle_replacement`).
- A new output (nothing replaced) is deleted when a bad input is found mid-way (:class:`~masktwins_bio.errors.
  UserError`), so nothing that could be mistaken for a result is left; after a cancel or a system error it stays,
  marked ``complete: false``, and ``--resume`` finishes it.
- A resumed output stays as it is, resumable again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from ..blockwise import DoneMarkers
from ..errors import InputError, UserError
from ..files import plain
from .guard import (check_not_an_input, check_parent, check_replaceable, discard_asides, refuse_existing, set_aside,
                    settle_replacement)

__all__ = ["WORK_FOLDER", "ResumableOutput", "check_resumable", "work_folder", "output_chunks", "default_block",
           "temporary_store"]

log = logging.getLogger(__name__)

#: the work area inside an unfinished output store (markers, intermediate arrays)
WORK_FOLDER = ".masktwins_work"


def output_chunks(shape, chunks=None, block_shape=None) -> tuple[int, int, int]:
    """Output chunks: as given, else 32 x 256 x 256 reduced so that they tile a given ``block_shape``."""
    from .ome_zarr import default_chunks

    if chunks is None:
        chunks = default_chunks(shape)
        if block_shape is not None:
            chunks = [c if b >= s or b % c == 0 else (b if b < c else math.gcd(b, c))
                      for c, b, s in zip(chunks, block_shape, shape)]
    return tuple(max(1, min(int(c), s)) for c, s in zip(chunks, shape))  # type: ignore[return-value]


def default_block(shape, chunks, target) -> tuple[int, int, int]:
    """``target`` (voxels) rounded up to whole chunks and clipped to the volume."""
    return tuple(int(min(s, -(-int(t) // c) * c)) for s, t, c in zip(shape, target, chunks))  # type: ignore


@contextlib.contextmanager
def temporary_store(name: str) -> Iterator[Path]:
    """A store path in a temporary folder (under ``$TMPDIR``), removed afterwards: API calls given no output path
    compute into it blockwise and return the result as an array."""
    with tempfile.TemporaryDirectory(prefix=f"masktwins-{name}-") as tmp:
        yield Path(tmp) / f"{name}.zarr"


def work_folder(store: Union[str, os.PathLike], zarr_format: int = 2) -> Path:
    """The work area inside an output Zarr store, created as a Zarr group.

    Being a group keeps Zarr readers from warning about an unknown folder; outputs delete it once complete.
    """
    import zarr

    path = Path(store) / WORK_FOLDER
    zarr.open_group(str(path), mode="a", zarr_format=zarr_format)
    return path


def check_resumable(output: Path, settings: dict, task: str) -> dict:
    """Provenance of an existing output that ``--resume`` may continue; refuses a different model/input/settings."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(output), mode="r").attrs)
    except Exception:
        raise InputError(f"{output}: exists but is not a Zarr output of masktwins-bio {task}; "
                         "use --overwrite to replace it") from None
    prov = attrs.get("masktwins_bio", {})
    old = prov.get("settings") if isinstance(prov, dict) else None
    if not isinstance(prov, dict) or prov.get("task") != task or not isinstance(old, dict):
        raise InputError(f"{output}: was not written by masktwins-bio {task}; use --overwrite to replace it")
    for key in sorted(set(old) | set(settings)):
        if old.get(key) != settings.get(key):
            raise InputError(f"{output}: cannot resume, it was made with {key}={old.get(key)!r} but this run has "
                             f"{key}={settings.get(key)!r}; rerun with the original settings or use --overwrite")
    return prov


class ResumableOutput:
    """One blockwise output store from its checks to its completion (see the module docstring for the policy).

    The constructor only checks and changes nothing on disk; ``with`` starts the writing (an ``--overwrite`` sets the
    old output aside there).

    Args:
        path: The output store.
        task: The command writing it (``predict``, ``segment``, ``label``); ``--overwrite`` replaces only its
            outputs and ``--resume`` continues only them.
        settings: Everything that decides the output's values; a resume must match it exactly.
        inputs: The command's inputs (path specs or open volumes): the output may not be, contain or lie in one.
        overwrite: Replace an existing output of ``task``.
        resume: Continue an interrupted output written with the same ``settings``.
        what: What the output is, for messages.
        labels: A label output, which may go into an input image's ``labels/`` group.

    Raises:
        InputError: ``overwrite`` with ``resume``, the output is or holds an input, its folder is missing, it exists
            and neither flag is given, it is not ``task``'s, or a resume has other settings.
    """

    def __init__(self, path: Union[str, os.PathLike], *, task: str, settings: dict, inputs: Iterable = (),
                 overwrite: bool = False, resume: bool = False, what: str = "output", labels: bool = False):
        self.path = Path(path)
        self.task = task
        self.settings = plain(settings)
        self.writer = None
        self.resuming = False
        self._aside: Optional[Path] = None
        self._prov: dict = {}
        self._work: Optional[Path] = None
        if overwrite and resume:
            raise InputError(f"{self.path}: --overwrite and --resume exclude each other; choose one")
        inputs = list(inputs)
        check_not_an_input(self.path, inputs, labels_group=labels)
        from .ome_zarr import label_placement

        if not (labels and label_placement(self.path).parent is not None):  # an image's labels/ group is made
            check_parent(self.path)
        self._replace = False
        if self.path.exists() or self.path.is_symlink():
            if resume:
                self._prov = check_resumable(self.path, self.settings, task)
                self.resuming = True
            else:
                # not ours: refused, naming whose it is (the input check ran above, with the labels-group rule)
                check_replaceable(self.path, (), what, task)
                if not overwrite:
                    refuse_existing(self.path, what, resumable=True)
                self._replace = True

    @property
    def complete(self) -> bool:
        """Whether a resumed output is already finished (nothing to do)."""
        return bool(self._prov.get("complete"))

    def __enter__(self) -> "ResumableOutput":
        from .ome_zarr import OmeZarrWriter

        if self._replace:
            self._aside = set_aside(self.path)
        elif self.resuming:
            self.writer = OmeZarrWriter.reopen(self.path)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None or self.resuming:
            return False
        if self._aside is not None:
            if settle_replacement(self.path, self._aside, exc_type, self._has_progress):
                log.info("%s: not replaced (%s); the previous output is kept", self.path, exc_type.__name__)
        elif issubclass(exc_type, UserError) and self.writer is not None:  # bad input found mid-way
            shutil.rmtree(self.path, ignore_errors=True)
        return False

    def _has_progress(self) -> bool:
        work = self.path / WORK_FOLDER
        return work.is_dir() and any(work.glob("done_*/*.npz"))

    def create(self, shape, dtype, voxel_size, *, attrs: Optional[dict] = None, **kwargs):
        """Create the store (``kwargs``: :class:`~masktwins_bio.io.OmeZarrWriter`'s); provenance = task, settings,
        ``complete: false`` and ``attrs``. Returns the writer."""
        from .ome_zarr import create_ome_zarr

        prov = plain({"task": self.task, "complete": False, "settings": self.settings, **(attrs or {})})
        self.writer = create_ome_zarr(self.path, shape, dtype, voxel_size, attrs=prov, **kwargs)
        return self.writer

    @property
    def work(self) -> Path:
        """The work area inside the store (created on first use)."""
        if self._work is None:
            self._work = work_folder(self.path, self.writer.zarr_format)
        return self._work

    def done(self, name: str) -> DoneMarkers:
        """The completion markers of pass ``name``."""
        return DoneMarkers(self.work / f"done_{name}")

    def finish(self, **provenance) -> Path:
        """Build the pyramid, mark the output complete (plus ``provenance``), drop the work area and the output
        this one replaced."""
        self.writer.finalize()
        self.writer.update_provenance(complete=True, **provenance)
        shutil.rmtree(self.path / WORK_FOLDER, ignore_errors=True)
        discard_asides(self.path)
        self._aside = None
        return self.path
