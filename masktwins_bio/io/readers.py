"""Open EM volumes of any common format as lazy :class:`~masktwins_bio.io.volume.Volume` objects.

Supported path specs:

* Zarr v2 or v3 arrays (``vol.zarr``, ``vol.zarr/raw``) and OME-Zarr 0.4 / 0.5 multiscale groups (level 0 is
  opened; the voxel size comes from its ``scale`` transform, converted to nm from the axis units);
* HDF5: ``file.h5:/dataset`` (the key may be omitted when the file holds exactly one 3D dataset);
* multi-page TIFF (``.tif``/``.tiff``; ImageJ and OME voxel-size metadata are read);
* folders of per-slice PNG or TIFF files (natural sort order; 1-bit, 8/16-bit grey and RGB(A) slices; 1-bit slices
  read as 0/255 so mixed 1-bit/8-bit label folders are consistent; RGB(A) images are converted to grey, RGB(A)
  labels keep their first channel).

Every failure a user can cause raises :class:`~masktwins_bio.errors.InputError` with a one-line message naming the
file and how to fix it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..regions import roi_slices
from .attributes import ome_attributes
from .volume import Volume, normalize_key

__all__ = ["open_volume", "as_volume", "split_h5_spec", "natural_sort_key", "unit_to_nm", "IMAGE_SUFFIXES",
           "is_zarr_path"]

SLICE_SUFFIXES = (".png", ".tif", ".tiff")
IMAGE_SUFFIXES = (".zarr", ".h5", ".hdf5", ".hdf", ".tif", ".tiff", ".png")
_H5_RE = re.compile(r"^(.*\.(?:h5|hdf5|hdf))(?::(.*))?$", re.IGNORECASE)

_UNIT_TO_NM = {
    "nanometer": 1.0, "nm": 1.0, "nanometre": 1.0,
    "micrometer": 1e3, "micron": 1e3, "um": 1e3, "µm": 1e3, "\\u00b5m": 1e3, "micrometre": 1e3,
    "millimeter": 1e6, "mm": 1e6, "angstrom": 0.1, "å": 0.1, "picometer": 1e-3, "meter": 1e9, "m": 1e9,
    "centimeter": 1e7, "cm": 1e7,
}


def unit_to_nm(unit: Optional[str]) -> Optional[float]:
    """Factor converting a length unit name to nanometres; ``None`` for a missing or unknown unit (then the voxel
    size is unknown and asked for: reading a unitless scale as nm shrank an 8 x 600 x 600 volume to 1 x 75 x 75)."""
    if not unit:
        return None
    return _UNIT_TO_NM.get(str(unit).strip().lower())


def natural_sort_key(path: Path):
    """Sort ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def split_h5_spec(spec: str) -> tuple[str, Optional[str]]:
    """Split ``file.h5:/key`` into ``("file.h5", "/key")``."""
    m = _H5_RE.match(str(spec))
    if not m:
        return str(spec), None
    return m.group(1), (m.group(2) or None)


def is_zarr_path(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() == ".zarr" or (p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zarray", ".zgroup")))


def _as_triple(values, path: str, what: str) -> Optional[tuple[float, float, float]]:
    if values is None:
        return None
    vals = [float(v) for v in values]
    if len(vals) != 3:
        raise InputError(f"{path}: {what} has {len(vals)} values, expected 3 (z, y, x)")
    if any(not np.isfinite(v) or v <= 0 for v in vals):
        raise InputError(f"{path}: {what} {vals} must be positive (nm, z, y, x); give the right one with --voxel-size")
    return tuple(vals)  # type: ignore[return-value]


def _check_ndim(shape: Sequence[int], path: str) -> None:
    if len(shape) == 2:
        raise InputError(
            f"{path}: is a 2D image of shape {tuple(shape)}; a 3D (z, y, x) volume is needed "
            "(stack sections into a multi-page TIFF or a folder of slices)"
        )
    if len(shape) != 3:
        raise InputError(
            f"{path}: has {len(shape)} dimensions {tuple(shape)}; expected a greyscale 3D (z, y, x) volume "
            "(select one channel/time point first)"
        )


def _squeeze_leading(array, shape, path, axes_names=None):
    """Drop singleton non-spatial axes (OME t/c) so that three spatial axes remain."""
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 3:
        _check_ndim(shape, path)
        return array, shape
    extra = len(shape) - 3
    if all(s == 1 for s in shape[:extra]):
        return _Squeezed(array, extra), shape[extra:]
    names = f" (axes {''.join(axes_names)})" if axes_names else ""
    raise InputError(
        f"{path}: has shape {shape}{names}; only single-channel 3D volumes are supported, select one channel first"
    )


class _Squeezed:
    def __init__(self, base, n_leading: int):
        self.base = base
        self.n = n_leading
        self.shape = tuple(base.shape[n_leading:])
        self.dtype = base.dtype
        ch = getattr(base, "chunks", None)
        self.chunks = tuple(ch[n_leading:]) if ch else None

    def __getitem__(self, key):
        sl = normalize_key(key, self.shape)
        return np.asarray(self.base[(0,) * self.n + sl])


# -- Zarr / OME-Zarr -----------------------------------------------------------------------------------------


def _voxel_size_from_multiscales(ms: dict, level: int = 0) -> tuple[Optional[tuple], list]:
    axes = ms.get("axes") or []
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    types = [a.get("type") if isinstance(a, dict) else None for a in axes]
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes]
    scale = None
    ds = ms["datasets"][level]
    for tr in (ms.get("coordinateTransformations") or []) + (ds.get("coordinateTransformations") or []):
        if tr.get("type") == "scale" and "scale" in tr:
            s = np.asarray(tr["scale"], dtype=float)
            scale = s if scale is None else scale * s
    if scale is None or not names:
        return None, names
    spatial = [i for i, (n, t) in enumerate(zip(names, types)) if t == "space" or (t is None and n in "zyx")]
    if len(spatial) != 3:
        return None, names
    factors = [unit_to_nm(units[i]) for i in spatial]
    if any(f is None for f in factors):  # no (or an unknown) unit: the scale is in unknown units
        return None, names
    vs = tuple(float(scale[i]) * f for i, f in zip(spatial, factors))
    return vs, names


def _open_zarr(path: str, kind: str) -> Volume:
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # zarr raises several types for non-stores
        raise InputError(f"{path}: cannot be opened as Zarr ({type(exc).__name__}: {exc}); is it a Zarr store?") from None
    fmt_num = node.metadata.zarr_format
    attrs = dict(node.attrs)
    voxel_size = None
    fmt = f"Zarr v{fmt_num}"
    axes_names = None
    if isinstance(node, zarr.Group):
        ome = ome_attributes(attrs)
        if "multiscales" in ome:
            ms = ome["multiscales"][0]
            version = ome.get("version") or ms.get("version") or "?"
            level_path = ms["datasets"][0]["path"]
            voxel_size, axes_names = _voxel_size_from_multiscales(ms)
            fmt = f"OME-Zarr {version}"
            arr_path = f"{path.rstrip('/')}/{level_path}"
            try:
                array = zarr.open_array(arr_path, mode="r")
            except Exception:
                raise InputError(f"{path}: OME-Zarr level 0 ('{level_path}') is missing or unreadable") from None
            array_attrs = attrs
        else:
            arrays = sorted(name for name, _ in node.arrays())
            if len(arrays) == 1:
                arr_path = f"{path.rstrip('/')}/{arrays[0]}"
                array = node[arrays[0]]
                array_attrs = {**attrs, **dict(array.attrs)}
            elif not arrays:
                groups = sorted(name for name, _ in node.groups())
                hint = f"; groups inside: {', '.join(groups)} (open one as {path}/<group>)" if groups else ""
                raise InputError(f"{path}: Zarr group holds no arrays{hint}")
            else:
                raise InputError(
                    f"{path}: Zarr group holds several arrays ({', '.join(arrays)}); choose one, e.g. {path}/{arrays[0]}"
                )
    else:
        array = node
        arr_path = path
        array_attrs = attrs
        # a bare array inside an OME group (e.g. vol.zarr/0): take the parent's scale for that level
        parent = Path(path).parent
        try:
            pnode = zarr.open_group(str(parent), mode="r")
            pome = ome_attributes(dict(pnode.attrs))
            if "multiscales" in pome:
                ms = pome["multiscales"][0]
                names = [d["path"] for d in ms["datasets"]]
                if Path(path).name in names:
                    voxel_size, axes_names = _voxel_size_from_multiscales(ms, names.index(Path(path).name))
        except Exception:
            pass
    if voxel_size is None:
        for key in ("voxel_size", "resolution"):
            if key in array_attrs:
                vals = array_attrs[key]
                if isinstance(vals, (list, tuple)) and len(vals) == 3:
                    voxel_size = _as_triple(vals, path, f"attribute '{key}'")
                    break
    array, _ = _squeeze_leading(array, array.shape, path, axes_names)
    return Volume(
        array=array,
        voxel_size=_as_triple(voxel_size, path, "voxel size metadata") if voxel_size else None,
        path=path,
        kind=kind,
        format=fmt,
        attrs=attrs,
    )


# -- HDF5 ----------------------------------------------------------------------------------------------------


class H5Array:
    """A lazily opened HDF5 dataset that survives pickling and ``fork`` (each process opens its own handle)."""

    def __init__(self, filename: str, key: str):
        self.filename = filename
        self.key = key
        self._local = threading.local()
        ds = self._dataset()
        self.shape = tuple(ds.shape)
        self.dtype = ds.dtype
        self.chunks = ds.chunks

    def _dataset(self):
        import h5py

        pid = os.getpid()
        cache = getattr(self._local, "handle", None)
        if cache is None or cache[0] != pid:
            f = h5py.File(self.filename, "r")
            self._local.handle = (pid, f)
        return self._local.handle[1][self.key]

    def __getitem__(self, key):
        return self._dataset()[key]

    def __getstate__(self):
        return {"filename": self.filename, "key": self.key}

    def __setstate__(self, state):
        self.__init__(state["filename"], state["key"])


def _h5_datasets(f) -> list[str]:
    import h5py

    names: list[str] = []
    f.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _open_h5(filename: str, key: Optional[str], kind: str, spec: str) -> Volume:
    import h5py

    try:
        f = h5py.File(filename, "r")
    except OSError as exc:
        raise InputError(f"{filename}: cannot be read as HDF5 ({exc}); is the file complete?") from None
    with f:
        datasets = _h5_datasets(f)
        if key is None:
            three_d = [d for d in datasets if f[d].ndim >= 3]
            if len(datasets) == 1:
                key = datasets[0]
            elif len(three_d) == 1:
                key = three_d[0]
            elif not datasets:
                raise InputError(f"{filename}: HDF5 file contains no datasets")
            else:
                listing = ", ".join(datasets[:10]) + (" ..." if len(datasets) > 10 else "")
                raise InputError(
                    f"{filename}: HDF5 file needs a dataset key; choose one of {listing} as {filename}:{datasets[0]}"
                )
        if not key.startswith("/"):
            key = "/" + key
        if key not in f or not isinstance(f[key], h5py.Dataset):
            listing = ", ".join(datasets[:10]) or "none"
            raise InputError(f"{filename}: HDF5 file has no dataset '{key}'; available datasets: {listing}")
        ds = f[key]
        attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in ds.attrs.items()}
        shape = ds.shape
    voxel_size = None
    for name in ("voxel_size", "resolution"):
        if name in attrs and np.size(attrs[name]) == 3:
            voxel_size = _as_triple(np.ravel(attrs[name]), spec, f"attribute '{name}'")
            break
    if voxel_size is None and "element_size_um" in attrs and np.size(attrs["element_size_um"]) == 3:
        voxel_size = _as_triple(np.ravel(attrs["element_size_um"]) * 1e3, spec, "attribute 'element_size_um'")
    array = H5Array(filename, key)
    array, _ = _squeeze_leading(array, shape, spec)
    return Volume(array=array, voxel_size=voxel_size, path=f"{filename}:{key}", kind=kind, format="HDF5", attrs=attrs)


# -- TIFF ------------------------------------------------------------------------------------------------------


def _why_undecodable(exc) -> str:
    """The likely cause of a TIFF decoding error: a missing codec package, or a damaged file."""
    if "imagecodecs" in str(exc):
        return "its compression needs the imagecodecs package: pip install imagecodecs"
    return "the file may be corrupt or truncated"


def _tiff_error(path, exc) -> InputError:
    return InputError(f"{path}: cannot be read as TIFF ({type(exc).__name__}: {exc}); {_why_undecodable(exc)}")


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence a library's warnings while we turn its failures into our own one-line errors."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        logger.setLevel(level)


class TiffStackArray:
    """Pages of a multi-page TIFF read lazily (a memory map when the file allows it)."""

    def __init__(self, path: str):
        import tifffile

        self.path = path
        try:
            with _quiet("tifffile"), tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                self.shape = tuple(series.shape)
                self.dtype = np.dtype(series.dtype)
                self.n_pages = len(series.pages)
                self.page_shape = tuple(series.pages[0].shape) if self.n_pages else ()
                self.axes = series.axes
        except Exception as exc:
            raise _tiff_error(path, exc) from None
        self._mm = None
        try:
            self._mm = tifffile.memmap(path, mode="r")
        except Exception:
            self._mm = None
        self.chunks = (1,) + tuple(self.shape[1:]) if len(self.shape) == 3 else None
        self._local = threading.local()

    def _file(self):
        import tifffile

        pid = os.getpid()
        cache = getattr(self._local, "tf", None)
        if cache is None or cache[0] != pid:
            self._local.tf = (pid, tifffile.TiffFile(self.path))
        return self._local.tf[1]

    def __getitem__(self, key):
        sl = normalize_key(key, self.shape)
        whole_sections = len(self.shape) == 3 and sl[1] == slice(0, self.shape[1]) and sl[2] == slice(0, self.shape[2])
        if self._mm is not None and not whole_sections:
            # patches: the memory map reads only the rows needed; whole sections (streaming) are read page by page
            # below, so resident memory does not grow with the pages a long conversion has touched
            return np.array(self._mm[sl])
        if len(self.shape) != 3 or self.n_pages != self.shape[0]:
            # unusual layouts (e.g. one page holding several sections): decode the series once
            try:
                return np.asarray(self._file().series[0].asarray()[sl])
            except Exception as exc:
                raise _tiff_error(self.path, exc) from None
        pages = self._file().series[0].pages
        out = np.empty([s.stop - s.start for s in sl], dtype=self.dtype)
        for i, z in enumerate(range(sl[0].start, sl[0].stop)):
            try:
                out[i] = pages[z].asarray()[sl[1], sl[2]]
            except Exception as exc:
                raise InputError(
                    f"{self.path}: page {z} cannot be decoded ({type(exc).__name__}: {exc}); {_why_undecodable(exc)}"
                ) from None
        return out

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])


def _tiff_voxel_size(path: str) -> Optional[tuple[float, float, float]]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            if tf.is_ome and tf.ome_metadata:
                m = {k: re.search(rf'{k}="([0-9.eE+-]+)"', tf.ome_metadata) for k in
                     ("PhysicalSizeZ", "PhysicalSizeY", "PhysicalSizeX")}
                u = {k: re.search(rf'{k}Unit="([^"]+)"', tf.ome_metadata) for k in
                     ("PhysicalSizeZ", "PhysicalSizeY", "PhysicalSizeX")}
                if all(m.values()):  # OME-XML's default unit is the micrometre
                    f = [unit_to_nm(u[k].group(1) if u[k] else "micrometer")
                         for k in ("PhysicalSizeZ", "PhysicalSizeY", "PhysicalSizeX")]
                    if any(x is None for x in f):
                        return None
                    return tuple(float(m[k].group(1)) * x for k, x in zip(
                        ("PhysicalSizeZ", "PhysicalSizeY", "PhysicalSizeX"), f))  # type: ignore[return-value]
            ij = tf.imagej_metadata or {}
            unit = ij.get("unit")
            if unit and "spacing" in ij and "XResolution" in page.tags:
                xr = page.tags["XResolution"].value
                yr = page.tags["YResolution"].value
                x = xr[1] / xr[0]
                y = yr[1] / yr[0]
                f = unit_to_nm(unit.replace("\\u00B5", "µ"))
                return None if f is None else (float(ij["spacing"]) * f, y * f, x * f)
    except Exception:
        return None
    return None


def _open_tiff(path: str, kind: str) -> Volume:
    array = TiffStackArray(path)
    array_sq, _ = _squeeze_leading(array, array.shape, path)
    return Volume(array=array_sq, voxel_size=_tiff_voxel_size(path), path=path, kind=kind, format="TIFF")


# -- folders of slices ----------------------------------------------------------------------------------------


def _read_slice(path: Path, kind: str) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            data = tifffile.imread(str(path))
        except Exception as exc:
            raise InputError(f"{path}: cannot be decoded as TIFF ({type(exc).__name__}); {_why_undecodable(exc)}") from None
        if data.ndim == 3 and data.shape[-1] in (3, 4):
            data = data[..., 0] if kind == "labels" else np.round(data[..., :3].astype(np.float32) @ [0.299, 0.587, 0.114]).astype(data.dtype)
        return data
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "1":
                return np.asarray(im, dtype=np.uint8) * np.uint8(255)
            if mode in ("RGB", "RGBA", "P", "LA"):
                if kind == "labels":
                    rgb = im.convert("RGBA") if mode == "P" else im
                    return np.asarray(rgb)[..., 0].copy()
                return np.asarray(im.convert("L"))
            return np.asarray(im)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc}); the file may be corrupt") from None


class SectionCache:
    """A bounded LRU cache of decoded sections (per process; not pickled).

    Patch reads from formats that decode whole sections (PNG/TIFF slices, compressed TIFF pages) would otherwise
    decode the same sections again for every patch. Only partial-section reads fill the cache: streaming whole
    sections (convert, info) passes through, so it cannot raise the memory of a conversion.
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self._data: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, z: int, load, store: bool) -> np.ndarray:
        with self._lock:
            if z in self._data:
                self._data.move_to_end(z)
                return self._data[z]
        data = load(z)
        if store and data.nbytes <= self.max_bytes:
            with self._lock:
                self._data[z] = data
                self._bytes += data.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= old.nbytes
        return data


class SliceFolderArray:
    """A folder of per-section image files read lazily, one file per z (decoded sections cached for patch reads)."""

    def __init__(self, files: list[Path], kind: str, shape_yx: tuple[int, int], dtype):
        self.files = files
        self.kind = kind
        self.shape = (len(files),) + tuple(shape_yx)
        self.dtype = np.dtype(dtype)
        self.chunks = (1,) + tuple(shape_yx)
        self._cache = SectionCache()

    def _load(self, z: int) -> np.ndarray:
        data = _read_slice(self.files[z], self.kind)
        if data.shape != self.shape[1:]:
            raise InputError(f"{self.files[z]}: slice has shape {data.shape} but the folder's slices are {self.shape[1:]}")
        return data

    def __getitem__(self, key):
        sl = normalize_key(key, self.shape)
        partial = sl[1] != slice(0, self.shape[1]) or sl[2] != slice(0, self.shape[2])
        out = np.empty([s.stop - s.start for s in sl], dtype=self.dtype)
        for i, z in enumerate(range(sl[0].start, sl[0].stop)):
            out[i] = self._cache.get(z, self._load, store=partial)[sl[1], sl[2]]
        return out

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache = SectionCache()


def _probe_slice(path: Path, kind: str) -> tuple[tuple[int, int], np.dtype]:
    """Shape and dtype of one slice without decoding its pixels (PNG) or only its header (TIFF)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(str(path)) as tf:
                page = tf.pages[0]
                shape, dtype = page.shape, page.dtype
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as TIFF ({type(exc).__name__}); the file may be corrupt") from None
        if len(shape) == 3 and shape[-1] in (3, 4):
            shape = shape[:2]
        if len(shape) != 2:
            raise InputError(f"{path}: slice has shape {shape}; each file in a slice folder must be one 2D section")
        return tuple(shape), np.dtype(dtype)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: is not a readable image ({type(exc).__name__}); the file may be corrupt") from None
    dtype = {"I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    return (size[1], size[0]), np.dtype(dtype)


def _open_slice_folder(path: str, kind: str) -> Volume:
    folder = Path(path)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".")),
                   key=natural_sort_key)
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:5]
        hint = f" (it holds {', '.join(others)})" if others else " (it is empty)"
        raise InputError(f"{path}: folder contains no PNG or TIFF slices{hint}; point to a folder of per-section images")
    shapes = {}
    dtypes = set()
    for f in files:
        shape, dtype = _probe_slice(f, kind)
        shapes.setdefault(shape, f)
        dtypes.add(dtype)
    if len(shapes) > 1:
        (s1, f1), (s2, f2) = list(shapes.items())[:2]
        raise InputError(
            f"{path}: slices have different shapes ({f1.name}: {s1}, {f2.name}: {s2}); all sections must be the same size"
        )
    dtype = np.result_type(*dtypes)
    shape_yx = next(iter(shapes))
    return Volume(array=SliceFolderArray(files, kind, shape_yx, dtype), voxel_size=None, path=path, kind=kind,
                  format=f"{files[0].suffix.lstrip('.').upper()} slices")


# -- entry point -------------------------------------------------------------------------------------------------


def open_volume(
    spec: str | os.PathLike,
    voxel_size: Optional[Sequence[float]] = None,
    kind: str = "image",
    roi=None,
) -> Volume:
    """Open a 3D EM volume lazily.

    Args:
        spec: Path spec (see module docstring), e.g. ``vol.zarr``, ``vol.zarr/labels``, ``data.h5:/raw``,
            ``stack.tif``, ``slices/``.
        voxel_size: Voxel size in nm (z, y, x); overrides the file's metadata.
        kind: ``image`` or ``labels`` (labels must hold non-negative integers; RGB label slices keep channel 0).
        roi: Optional sub-region: three slices, or a string ``"z0:z1, y0:y1, x0:x1"``.

    Returns:
        A lazy :class:`Volume`.

    Raises:
        InputError: missing path, unsupported format, missing/wrong HDF5 key, 2D data, float labels, corrupt file.
    """
    if kind not in ("image", "labels"):
        raise ValueError("kind must be 'image' or 'labels'")
    if isinstance(spec, Volume):
        vol = spec
    else:
        spec = str(spec)
        filename, key = split_h5_spec(spec)
        p = Path(filename)
        if not p.exists():
            raise InputError(f"{filename}: no such file or directory; check the path")
        suffix = p.suffix.lower()
        if suffix in (".h5", ".hdf5", ".hdf"):
            vol = _open_h5(filename, key, kind, spec)
        elif is_zarr_path(p):
            vol = _open_zarr(filename, kind)
        elif suffix in (".tif", ".tiff"):
            vol = _open_tiff(filename, kind)
        elif p.is_dir():
            vol = _open_slice_folder(filename, kind)
        elif suffix == ".png":
            raise InputError(
                f"{filename}: a single PNG is a 2D image; a 3D volume is needed (point to the folder of PNG slices)"
            )
        else:
            raise InputError(
                f"{filename}: unsupported format '{suffix or p.name}'; use Zarr/OME-Zarr (.zarr), HDF5 (.h5:/key), "
                "TIFF (.tif) or a folder of PNG/TIFF slices"
            )
    if voxel_size is not None:
        vol = vol.with_voxel_size(_as_triple(voxel_size, str(spec), "voxel size"))
    if kind == "labels":
        vol.kind = "labels"
        if not (np.issubdtype(vol.dtype, np.integer) or vol.dtype == np.bool_):
            raise InputError(
                f"{vol.path}: labels have dtype {vol.dtype}; labels must be integers (0 = background), "
                "e.g. convert with --labels or cast to uint8/uint32"
            )
    if roi is not None:
        sl = roi_slices(roi, vol.shape, vol.path)
        vol = vol.crop(sl)
    return vol


def as_volume(obj, voxel_size=None, kind: str = "image", role: str = "input") -> Volume:
    """A path spec, :class:`Volume` or in-memory (z, y, x) array as a Volume - what every API function accepts.

    Args:
        obj: Path spec (see :func:`open_volume`), Volume, or an in-memory or lazy (z, y, x) array: numpy, dask,
            a zarr or h5py array, anything with ``shape``, ``dtype`` and slicing (napari layers, notebooks).
        voxel_size: nm (z, y, x), overriding (or, for arrays, supplying) the voxel size.
        kind: ``image`` or ``labels``.
        role: What the volume is to the caller, for messages (an array is named ``<role array>``).
    """
    if isinstance(obj, Volume):
        return obj.with_voxel_size(voxel_size)
    if isinstance(obj, np.ndarray) or _is_array_like(obj):
        what = "array" if isinstance(obj, np.ndarray) else f"{type(obj).__module__.split('.')[0]} array"
        if len(obj.shape) != 3:
            raise InputError(f"{role} {what} has shape {tuple(obj.shape)}; expected a 3D (z, y, x) volume")
        return Volume(array=obj, voxel_size=_as_triple(voxel_size, f"<{role} {what}>", "voxel size")
                      if voxel_size is not None else None, path=f"<{role} {what}>", kind=kind, format=what)
    return open_volume(obj, voxel_size=voxel_size, kind=kind)


def _is_array_like(obj) -> bool:
    """A lazy array (dask, zarr, h5py, xarray, ...): shape, dtype and slicing, not a path."""
    return (not isinstance(obj, (str, os.PathLike)) and hasattr(obj, "shape") and hasattr(obj, "dtype")
            and hasattr(obj, "__getitem__"))
