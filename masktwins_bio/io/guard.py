"""Output guards: ``--overwrite`` deletes only what masktwins-bio made, and never an input.

Every output a command creates carries a mark of its origin: OME-Zarr stores the ``masktwins_bio`` provenance in
their root attributes (:class:`~masktwins_bio.io.ome_zarr.OmeZarrWriter`), folders (training runs, sample-data
folders) a small JSON file :data:`MARKER` naming the tool, the command and the version. :func:`check_replaceable` is
called before anything is deleted: it refuses a path that is, contains or lies inside one of the command's inputs,
and a path without such a mark (somebody else's folder, a raw image store, a file), with a one-line error naming
the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Optional, Union

from ..errors import Cancelled, InputError
from .attributes import provenance

__all__ = ["MARKER", "write_marker", "made_by_masktwins", "check_not_an_input", "check_replaceable", "check_parent",
           "refuse_existing", "check_complete", "set_aside", "restore_aside", "discard_asides", "settle_replacement"]

#: the marker file in folders masktwins-bio creates
MARKER = ".masktwins-bio.json"

PathLike = Union[str, "os.PathLike[str]"]


def write_marker(folder: PathLike, command: str) -> None:
    """Mark ``folder`` as an output of masktwins-bio ``command`` (tool, command, version, UTC creation time)."""
    from .._version import __version__

    info = {"tool": "masktwins-bio", "command": command, "version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    (Path(folder) / MARKER).write_text(json.dumps(info) + "\n")


def _zarr_root_attributes(path: Path) -> dict:
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        f = path / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                return {}
            attrs = doc.get(key, {}) if key else doc
            return attrs if isinstance(attrs, dict) else {}
    return {}


def _origin(p: Path) -> Optional[str]:
    """The masktwins-bio command that created folder ``p`` (``"?"``: ours, command unknown), or None."""
    if (p / MARKER).is_file():
        try:
            return str(json.loads((p / MARKER).read_text()).get("command") or "?")
        except (OSError, ValueError, AttributeError):
            return "?"
    prov = provenance(_zarr_root_attributes(p))
    if prov:
        return str(prov.get("task") or ("convert" if prov.get("converted") else "?"))
    if (p / "config.yaml").is_file() and (p / "config_hash").is_file():  # a run folder from before the marker
        return "train"
    return None


def made_by_masktwins(path: PathLike, command: Optional[str] = None) -> bool:
    """Whether ``path`` may be replaced by ``command``: an output of that masktwins-bio command (of any, for
    ``None``), or an empty folder.

    Ours means a marker file or ``masktwins_bio`` provenance attributes; training run folders from before the marker
    existed are recognised by the ``config.yaml`` + ``config_hash`` pair every run writes first. An empty folder
    holds nothing to lose. Files and symbolic links are never ours.
    """
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    origin = _origin(p)
    if origin is not None:
        return command is None or origin == command
    return not any(p.iterdir())


def _input_path(spec) -> Optional[Path]:
    """The file or folder on disk behind a path spec or an open volume (None for in-memory data)."""
    if spec is None:
        return None
    if not isinstance(spec, (str, os.PathLike)):
        spec = getattr(spec, "path", None)  # an open Volume: "vol.zarr", "f.h5:/key", "vol.zarr[0:8, ...]@40x8x8nm"
        if not isinstance(spec, str):
            return None
    s = os.fspath(spec)
    for cut in ("", "@", "[", ":"):  # strip a volume's resampling / crop decoration, then an HDF5 key
        if cut:
            s = s.split(cut, 1)[0] if cut != ":" else s.rsplit(":", 1)[0]
        if s and Path(s).expanduser().exists():
            return Path(s).expanduser().resolve()
    return None  # nothing on disk (an array, or a path that does not exist): nothing an output could destroy


def check_not_an_input(output: PathLike, inputs: Iterable, labels_group: bool = False) -> None:
    """Refuse an output path that is, contains or lies inside any of ``inputs`` (path specs or open volumes).

    ``labels_group``: a label output may be ``<input>/labels/<name>``, the OME-Zarr place for an image's labels
    (writing there leaves the image's own arrays untouched)."""
    out = Path(output).expanduser().resolve()
    for spec in inputs:
        inp = _input_path(spec)
        if inp is None:
            continue
        spec = spec if isinstance(spec, (str, os.PathLike)) else inp  # an open Volume: name its file
        if out == inp or out in inp.parents:
            raise InputError(f"{output}: this output path is (or contains) the input {os.fspath(spec)}; writing "
                             "there would destroy the input - choose an output path outside the inputs")
        if labels_group and out.parent.name == "labels" and out.parent.parent == inp:
            continue
        if inp in out.parents:
            raise InputError(f"{output}: this output path lies inside the input {os.fspath(spec)}; choose an "
                             "output path outside the inputs")


def check_parent(path: PathLike, other: str = "") -> None:
    """Refuse an output whose parent folder does not exist (outputs never create folders above themselves)."""
    p = Path(path)
    if not p.parent.exists():
        raise InputError(f"{p}: parent folder {p.parent} does not exist; create it first{other}")


def refuse_existing(path: PathLike, what: str = "output", *, resumable: bool = False,
                    other: str = "choose another path") -> None:
    """The one message for an existing output given neither ``--overwrite`` nor (where possible) ``--resume``."""
    resume = "--resume to continue an interrupted run, " if resumable else ""
    raise InputError(f"{path}: {what} already exists; pass --overwrite to replace it, {resume}or {other}")


def check_replaceable(path: PathLike, inputs: Iterable = (), what: str = "output",
                      command: Optional[str] = None) -> None:
    """Before ``--overwrite`` deletes ``path``: not an input, and an output of ``command`` (any of ours: None)."""
    check_not_an_input(path, inputs)
    p = Path(path)
    if not (p.exists() or p.is_symlink()) or made_by_masktwins(p, command):
        return
    origin = _origin(p) if p.is_dir() and not p.is_symlink() else None
    whose = (f"it is an output of masktwins-bio {origin}, not of {command}" if origin
             else f"it is not a masktwins-bio {what} (no {MARKER} marker or masktwins_bio provenance)")
    raise InputError(f"{p}: exists and {whose}; --overwrite only replaces what this command wrote - move it away "
                     "yourself or choose another path")


def drain_zarr_io(timeout: float = 30.0) -> None:
    """Wait (at most ``timeout`` seconds) for the work still running on Zarr's IO event loop.

    Zarr runs every chunk read and write as a coroutine on its own thread and blocks the calling thread until it is
    done. An exception raised in the calling thread meanwhile - Ctrl-C, or SIGTERM, which the CLI raises where the
    process is - ends the wait but not the write, which then recreates the directories of a store removed after it
    (seen in CI: a ``.partial`` store left behind by a SIGTERM during ``convert``).
    """
    from zarr.core import sync as zarr_sync

    loop = zarr_sync.loop[0]  # None until Zarr first ran something: nothing in flight
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def others_done():
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if running:
            await asyncio.wait(running, timeout=timeout)

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(others_done(), loop).result(timeout + 1)


def _remove(path: Path) -> None:
    drain_zarr_io()  # a write still in flight would recreate what is removed here
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def set_aside(path: PathLike) -> Path:
    """Move an output that ``--overwrite`` replaces to a hidden sibling ``.NAME.replaced-XXXXXXXX`` (one rename).

    The old output stays whole until the new one is finished (then :func:`discard_asides`), and comes back with
    :func:`restore_aside` when the new one fails. A ``kill -9`` leaves it there, hidden but intact, next to the
    unfinished new output; the next successful run of the command removes it.
    """
    p = Path(path)
    aside = p.with_name(f".{p.name}.replaced-{uuid.uuid4().hex[:8]}")
    os.rename(p, aside)
    return aside


def restore_aside(aside: PathLike, path: PathLike) -> None:
    """Undo :func:`set_aside`: drop whatever was started at ``path`` and move the old output back."""
    _remove(Path(path))
    os.rename(aside, path)


def discard_asides(path: PathLike) -> None:
    """Remove the outputs :func:`set_aside` kept for ``path`` (the new output is finished)."""
    p = Path(path)
    for old in p.parent.glob(f".{p.name}.replaced-*"):
        shutil.rmtree(old, ignore_errors=True)


def settle_replacement(path: PathLike, aside: PathLike, exc_type, has_progress, keep_on: tuple = ()) -> bool:
    """Decide between a new output and the old one it replaces (set aside), once writing the new one ended.

    Finished: the old one goes. Interrupted (Ctrl-C, SIGTERM, a GUI's Stop/Cancel; also ``keep_on`` exception types)
    after the new one made resumable progress (``has_progress()``): the new one stays for ``--resume`` and the old one
    goes, as the user asked. Any other failure (a bad input found mid-way, disk full), or an interruption before any
    progress: the new one goes and the old one comes back whole. Returns whether the old output was restored.
    """
    kept = (Cancelled, KeyboardInterrupt, SystemExit, *keep_on)
    if exc_type is None or (issubclass(exc_type, kept) and has_progress()):
        discard_asides(path)
        return False
    restore_aside(aside, path)
    return True


def check_complete(vol, role: str = "input", allow_incomplete: bool = False, then: str = "") -> None:
    """Refuse a store a resumable masktwins-bio job has not finished (``masktwins_bio.complete: false``).

    Args:
        vol: An open :class:`~masktwins_bio.io.Volume`.
        role: What the volume is to the caller, for the message.
        allow_incomplete: Accept it anyway (experts: unfinished blocks read as the fill value, 0).
        then: What to do after resuming, appended to the message (e.g. ``", then evaluate"``).
    """
    prov = provenance(getattr(vol, "attrs", None))
    if allow_incomplete or prov.get("complete") is not False:
        return
    cmd = prov.get("command") or prov.get("task")
    what = f"'masktwins-bio {cmd}'" if isinstance(cmd, str) and cmd else "the masktwins-bio command that wrote it"
    raise InputError(f"{vol.path}: {role} is incomplete (an interrupted or still running job; masktwins_bio.complete "
                     f"= false); rerun {what} with --resume to finish it{then}, or pass --allow-incomplete to use "
                     "it as it is")
