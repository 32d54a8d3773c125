"""Reproducible GUI runs: a project folder, remembered between sessions, that holds every run the Adapt widget makes.

Layout of a project folder::

    project/
        runs/<YYYYmmdd-HHMMSS>-<method>/    one training run folder each (config.yaml, last.pt, model.pt, ...)
        data/<layer>-<digest>.zarr          OME-Zarr snapshots of layers that are no file's unchanged data

A run's ``config.yaml`` names files only - the files its layers came from, or their snapshots - with the voxel sizes
the run used, so ``masktwins-bio train <project>/runs/<run>/config.yaml`` repeats it (same seed, same weights on
CPU). A layer names its file when its data is that file's: lazily backed by it (the reader's Zarr/HDF5 arrays), or
loaded into memory and still byte-equal to it (checked). Anything else - a sample, a painted label layer, a layer
made in a notebook - is written once to ``data/`` under a content digest and named there.

The remembered settings are a small JSON file (:func:`settings_path`), never a Qt registry, so tests and users can
point it elsewhere with ``$MASKTWINS_BIO_NAPARI_SETTINGS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import yaml

from ..io import open_volume
from ..io.ome_zarr import write_ome_zarr
from ._layers import META_KEY, layer_level0

__all__ = ["settings_path", "remembered", "remember", "new_run_folder", "project_runs", "run_state",
           "layer_spec", "SETTINGS_ENV"]

SETTINGS_ENV = "MASKTWINS_BIO_NAPARI_SETTINGS"
RUNS = "runs"
DATA = "data"
#: z-slabs hashed at a time (bounded memory for a lazy layer)
_HASH_SLAB_BYTES = 64 << 20


def settings_path() -> Path:
    """The JSON file of remembered GUI settings: ``$MASKTWINS_BIO_NAPARI_SETTINGS``, else the user's config folder
    (``$XDG_CONFIG_HOME`` or ``~/.config``, ``%APPDATA%`` on Windows) ``/masktwins-bio/napari.json``."""
    env = os.environ.get(SETTINGS_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("APPDATA") if os.name == "nt" else os.environ.get("XDG_CONFIG_HOME")
    return Path(base or Path.home() / ".config") / "masktwins-bio" / "napari.json"


def _read_settings() -> dict:
    try:
        data = json.loads(settings_path().read_text())
    except (OSError, ValueError):  # none yet, or damaged: start afresh rather than fail a widget
        return {}
    return data if isinstance(data, dict) else {}


def remembered(key: str, default: Any = None) -> Any:
    """A remembered setting (``default`` when none)."""
    return _read_settings().get(key, default)


def remember(key: str, value: Any) -> None:
    """Remember a setting (atomic rewrite of the settings file; a failure to write is not an error of the run)."""
    data = _read_settings()
    if data.get(key) == value:
        return
    data[key] = value
    path = settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def new_run_folder(project: Path, method: str) -> Path:
    """A fresh (not yet created) run folder ``project/runs/<YYYYmmdd-HHMMSS>-<method>`` (``-2``, ... when taken)."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', method)}"
    runs = Path(project) / RUNS
    candidate, n = runs / stem, 1
    while candidate.exists():
        n += 1
        candidate = runs / f"{stem}-{n}"
    return candidate


def run_state(run: Path) -> str:
    """``finished`` (all its steps done), ``resumable`` (a checkpoint before its last step: stopped, interrupted or
    crashed) or ``empty`` (nothing to continue from)."""
    from ..training.choice import AGREEMENTS, candidate_dir

    run = Path(run)
    # a method.agreement=auto run keeps its checkpoints in its candidates' folders
    checkpoints = [run / "last.pt", *(candidate_dir(run, a) / "last.pt" for a in AGREEMENTS)]
    if not (any(c.exists() for c in checkpoints) and (run / "config.yaml").exists()):
        return "empty"
    try:
        done = json.loads((run / "summary.json").read_text())["steps"]
        planned = (yaml.safe_load((run / "config.yaml").read_text()) or {})["train"]["steps"]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):  # no summary yet: it did not end cleanly
        return "resumable"
    return "finished" if int(done) >= int(planned) else "resumable"


def project_runs(project: Optional[Path], state: Optional[str] = None) -> list[Path]:
    """The run folders of a project, newest first (only those in ``state`` when given)."""
    if project is None or not (Path(project) / RUNS).is_dir():
        return []
    runs = [p for p in (Path(project) / RUNS).iterdir() if p.is_dir() and (p / "config.yaml").exists()]
    runs.sort(key=lambda p: p.name, reverse=True)
    return [p for p in runs if state is None or run_state(p) == state]


def _digest(array, shape) -> str:
    """A content digest of a 3D array read by z-slabs (dtype and shape included)."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{np.dtype(array.dtype).str}{tuple(shape)}".encode())
    plane = max(1, int(np.prod(shape[1:])) * np.dtype(array.dtype).itemsize)
    step = max(1, _HASH_SLAB_BYTES // plane)
    for z in range(0, shape[0], step):
        h.update(np.ascontiguousarray(np.asarray(array[z:z + step])).tobytes())
    return h.hexdigest()


def _layer_array(layer):
    data = layer_level0(layer)
    while data.ndim > 3:
        data = data[0]
    return data


def _file_of(layer) -> Optional[str]:
    """The path spec a layer was read from (our reader's metadata, else napari's ``layer.source.path``)."""
    meta = (getattr(layer, "metadata", None) or {}).get(META_KEY) or {}
    if meta.get("path"):
        return str(meta["path"])
    source = getattr(layer, "source", None)
    path = getattr(source, "path", None) if source is not None else None
    return str(path) if path else None


def _same_as_file(layer, spec: str, kind: str) -> bool:
    """Whether the layer's data is exactly the file's (an unchanged read of it)."""
    try:
        vol = open_volume(spec, kind=kind)
    except Exception:  # moved, deleted, unreadable: not a file to name
        return False
    data = _layer_array(layer)
    if tuple(vol.shape) != tuple(data.shape) or np.dtype(vol.dtype) != np.dtype(data.dtype):
        return False
    if not isinstance(data, np.ndarray):
        return True  # lazily backed by the file: what it shows is what is on disk
    return _digest(vol, vol.shape) == _digest(data, data.shape)


def layer_spec(layer, kind: str, voxel_size, project: Path, log: Callable[[str], None] = lambda _m: None) -> str:
    """A path spec for a config that names a layer's data: its file when unchanged, else a snapshot in ``data/``.

    Args:
        layer: A napari Image or Labels layer (3D after leading singleton axes).
        kind: ``image`` or ``labels``.
        voxel_size: nm (z, y, x) the run uses (stored with a snapshot).
        project: The project folder (snapshots go to ``project/data``).
        log: Called with a line when a snapshot is written.

    Returns:
        An absolute path spec (``file.zarr``, ``file.h5:/key``, ...).
    """
    spec = _file_of(layer)
    if spec is not None and _same_as_file(layer, spec, kind):
        return os.path.abspath(spec) if ":/" not in spec else spec
    data = _layer_array(layer)
    digest = _digest(data, data.shape)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer.name).strip("_") or kind
    out = (Path(project) / DATA / f"{name}-{digest}.zarr").resolve()
    if not out.exists():  # content-addressed: the same layer data is written once per project
        out.parent.mkdir(parents=True, exist_ok=True)
        log(f"saving layer '{layer.name}' to {out} (the run's config names it)")
        write_ome_zarr(out, data, voxel_size, kind=kind, levels=1,
                       attrs={"task": "napari-layer-snapshot", "layer": layer.name})
    return str(out)

