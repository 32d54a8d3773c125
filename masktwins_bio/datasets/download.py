"""Fetch a public dataset: resumable HTTP downloads with checksums and a progress bar, then OME-Zarr conversion.

:func:`download` is what ``masktwins-bio download NAME DIR`` runs:

1. every file of the dataset (:mod:`.catalog`) goes to ``DIR/<path>.part`` first; an interrupted download continues
   where it stopped (an HTTP ``Range`` request; a server that ignores it sends the whole file again) and the file
   takes its final name only once complete and verified, so a half-downloaded file never looks finished;
2. checksums: the published sha256 where there is one, else the one recorded at the first complete download
   (``DIR/.masktwins-downloads.json``); a mismatch removes the damaged file and says so in one line;
3. archives are extracted, then each :class:`~.catalog.Conversion` writes an OME-Zarr with the dataset's voxel size
   and label binarisation (skipped when already there, so running the command again finishes an interrupted one).

``mirror`` (or ``$MASKTWINS_DATASETS_MIRROR``) fetches ``<mirror>/<path>`` instead of the official URLs: an
institutional copy, or a local server in the tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from ..files import atomic_file
from .catalog import DATASETS, Conversion, Dataset, RemoteFile

__all__ = ["download", "fetch", "RECORD"]

#: the checksums seen at first download, for files without a published one
RECORD = ".masktwins-downloads.json"
_CHUNK = 1 << 20
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Union[str, os.PathLike], sha256: Optional[str] = None, progress: bool = True,
          timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``sha256`` if given; returns the file's sha256.

    Raises:
        InputError: the server refused (HTTP error) or could not be reached, or the checksum does not match (the
            damaged file is removed).
    """
    from tqdm import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: the part file already holds the whole file
            raise InputError(f"{url}: the server answered HTTP {exc.code} ({exc.reason}); check the address or "
                             "try again later") from None
        response = None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{url}: cannot be reached ({reason}); check the network (a partial download is kept "
                         "and continues next time)") from None
    if response is not None:
        with response:
            resumed = start > 0 and response.status == 206
            total = response.headers.get("Content-Length")
            total = int(total) + (start if resumed else 0) if total else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=start if resumed else 0, unit="B", unit_scale=True, desc=dest.name,
                    disable=not progress, leave=False, dynamic_ncols=True) as bar:
                try:
                    while block := response.read(_CHUNK):
                        f.write(block)
                        bar.update(len(block))
                except (http.client.IncompleteRead, OSError):
                    pass  # judged by the size below
        have = part.stat().st_size
        if total is not None and have < total:  # the connection dropped: keep the part, the next run continues
            raise InputError(f"{url}: the download stopped after {have} of {total} bytes; run the command again to "
                             "continue it")
    digest = _sha256(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise InputError(f"{url}: checksum mismatch (sha256 {digest[:12]}..., expected {sha256[:12]}...); the download "
                         "was damaged or the file changed at its source - the damaged file was removed, run the "
                         "command again to download it anew")
    os.replace(part, dest)
    return digest


def _record(root: Path) -> dict:
    try:
        return json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _save_record(root: Path, record: dict) -> None:
    with atomic_file(root / RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))


def _fetch_file(ds: Dataset, f: RemoteFile, root: Path, mirror: Optional[str], progress: bool) -> None:
    dest = root / f.path
    record = _record(root)
    expected = f.sha256 or record.get(f.path)
    if dest.exists():
        if expected is None or _sha256(dest) == expected:
            return
        which = "the published one" if f.sha256 else "the one recorded when it was downloaded"
        raise InputError(f"{dest}: exists but its checksum differs from {which}; delete it and run the command again")
    url = f"{mirror.rstrip('/')}/{f.path}" if mirror else f.url
    digest = fetch(url, dest, expected, progress)
    if f.sha256 is None and f.path not in record:
        record[f.path] = digest
        _save_record(root, record)


def _unzip(archive: Path, into: Path) -> None:
    """Extract ``archive`` into ``into`` (atomically: a temporary sibling renamed when complete)."""
    if into.exists():
        return
    tmp = into.with_name(f".{into.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():  # never write outside the folder (a hostile archive)
                target = (tmp / member).resolve()
                if tmp.resolve() not in target.parents and target != tmp.resolve():
                    raise InputError(f"{archive}: member {member!r} would be written outside {into}; refused")
            z.extractall(tmp)
    except zipfile.BadZipFile:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{archive}: not a valid zip archive; delete it and run the command again") from None
    os.replace(tmp, into)


def _slices_folder(path: Path) -> Path:
    """``path`` itself if it holds image slices (or is a file), else the one folder below it that does (archives
    often wrap their slices in an extra folder)."""
    if path.is_file() or any(p.suffix.lower() in _IMAGE_SUFFIXES for p in path.iterdir()):
        return path
    found = sorted({p.parent for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES})
    if len(found) != 1:
        raise InputError(f"{path}: expected one folder of image slices inside, found {len(found)}; the archive's "
                         "layout is not the one masktwins-bio knows - please report it")
    return found[0]


def _locate(root: Path, rel: str) -> Path:
    p = root / rel
    if p.exists():
        return _slices_folder(p) if p.is_dir() else p
    parent = root / Path(rel).parent  # the folder may sit one level deeper in the extracted archive
    matches = sorted(parent.glob(f"*/{Path(rel).name}")) if parent.is_dir() else []
    if len(matches) == 1:
        return _slices_folder(matches[0])
    raise InputError(f"{p}: not found after the download; the archive's layout is not the one masktwins-bio knows - "
                     "please report it")


def _convert(c: Conversion, root: Path, progress: bool) -> None:
    from ..io import convert_volume, open_volume

    dst = root / c.dst
    if dst.exists():
        return
    kind = "labels" if c.labels else "image"
    vol = open_volume(_locate(root, c.src), voxel_size=c.voxel_size, kind=kind, roi=c.roi)
    convert_volume(vol, dst, voxel_size=c.voxel_size, labels=c.labels, binarize=c.binarize, progress=progress)


def download(name: str, root: Union[str, os.PathLike], *, mirror: Optional[str] = None, convert: bool = True,
             progress: bool = True) -> Path:
    """Fetch dataset ``name`` into the data root ``root`` and convert it (see the module docstring).

    Args:
        name: A key of :data:`~.catalog.DATASETS` (``lucchi``, ``vnc3``, ``mitoem-h``, ``mitoem-r``).
        root: The data root the configs read (``data_root``, e.g. ``$MASKTWINS_DATA_ROOT``); created if missing.
        mirror: Fetch ``<mirror>/<path>`` instead of the official URLs (default ``$MASKTWINS_DATASETS_MIRROR``).
        convert: Also write the OME-Zarr conversions.
        progress: Progress bars.

    Returns:
        ``root``.
    """
    if name not in DATASETS:
        raise InputError(f"dataset {name!r} is not known; choose one of {', '.join(DATASETS)}")
    ds = DATASETS[name]
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder; give the data root folder")
    if not root.parent.exists():
        raise InputError(f"{root}: parent folder {root.parent} does not exist; create it first")
    root.mkdir(exist_ok=True)
    mirror = mirror or os.environ.get("MASKTWINS_DATASETS_MIRROR") or None
    for f in ds.files:
        _fetch_file(ds, f, root, mirror, progress)
        if f.unzip:
            _unzip(root / f.path, root / f.unzip)
    if convert:
        for c in ds.conversions:
            _convert(c, root, progress)
    return root
