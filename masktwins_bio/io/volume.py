"""The :class:`Volume`: a lazy (z, y, x) array with its voxel size in nanometres.

Everything downstream of I/O (patch sampling, inference, post-processing, metrics, napari) receives a ``Volume``,
never a bare path. Indexing a volume reads only the requested region from disk. Volumes pickle by re-opening their
source, so they can be handed to DataLoader workers and dask workers.

Two lazy views are provided: :meth:`Volume.crop` (a sub-region) and :meth:`Volume.resampled` (another voxel size;
linear interpolation for images, nearest neighbour for labels, Gaussian anti-aliasing when down-sampling). Resampling
happens per read, so it costs no disk space and any block of the view equals the same block of a whole-volume
resampling exactly: each output voxel depends only on the source voxels around its own centre.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import Cancelled, InputError, UserError

__all__ = ["Volume", "ResampledArray", "CroppedArray", "normalize_key", "read_region", "check_resampling",
           "MAX_RESAMPLING"]

log = logging.getLogger(__name__)

#: resampling by more than this factor along an axis is refused unless allowed (a wrong voxel size is the usual
#: cause: e.g. an OME-Zarr without units read as 1 nm); by more than 2x it is announced
MAX_RESAMPLING = 8.0


def check_resampling(path, from_nm: Sequence[float], to_nm: Sequence[float], what: str = "input",
                     allow: bool = False) -> None:
    """Announce (> 2x along an axis) or refuse (> :data:`MAX_RESAMPLING`, unless ``allow``) a resampling.

    Raises:
        InputError: the factor exceeds :data:`MAX_RESAMPLING` along some axis and ``allow`` is False.
    """
    factors = [float(f) / float(t) for f, t in zip(from_nm, to_nm)]
    worst = max(max(f, 1 / f) for f in factors)
    if worst <= 2:
        return
    text = (f"{path}: {what} resampled from {'x'.join(f'{v:g}' for v in from_nm)} nm to "
            f"{'x'.join(f'{v:g}' for v in to_nm)} nm (factors {', '.join(f'{f:.3g}' for f in factors)} along z, y, x)")
    if worst > MAX_RESAMPLING and not allow:
        raise InputError(f"{text}: more than {MAX_RESAMPLING:g}x along an axis is usually a wrong voxel size; check "
                         "it (give the right one with --voxel-size), or pass --allow-resampling if it is intended")
    log.warning("%s; check the voxel sizes if that is not intended", text)

Triple = tuple[float, float, float]


def normalize_key(key, shape: Sequence[int]) -> tuple[slice, ...]:
    """Turn an indexing key into one ``slice(start, stop)`` per axis with non-negative bounds (no steps)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = [k is Ellipsis for k in key].index(True)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    out = []
    for k, n in zip(key, shape):
        if isinstance(k, (int, np.integer)):
            k = int(k) + (n if k < 0 else 0)
            out.append(slice(k, k + 1))
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step != 1:
                raise IndexError("volumes support contiguous slices only (step 1)")
            out.append(slice(start, max(start, stop)))
        else:
            raise IndexError(f"unsupported index {k!r}; use integers or slices")
    return tuple(out)


def _squeeze_int_axes(key, data: np.ndarray) -> np.ndarray:
    """Drop the axes indexed by integers (numpy semantics), after expanding an Ellipsis."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = [k is Ellipsis for k in key].index(True)
        key = key[:i] + (slice(None),) * (data.ndim - len(key) + 1) + key[i + 1 :]
    axes = tuple(i for i, k in enumerate(key) if isinstance(k, (int, np.integer)))
    return data.squeeze(axis=axes) if axes else data


def read_region(array, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
    """Read ``array[start:stop]`` where the region may extend beyond the array; outside voxels replicate the edge.

    Used wherever a block needs a halo at the volume border (resampling, sliding-window inference).
    """
    idx = [np.clip(np.arange(a, b), 0, n - 1) for a, b, n in zip(start, stop, array.shape)]
    lo = [int(i[0]) if len(i) else 0 for i in idx]
    hi = [int(i[-1]) + 1 if len(i) else 0 for i in idx]
    data = np.asarray(array[tuple(slice(a, b) for a, b in zip(lo, hi))])
    if all(len(i) == 0 or (i[0] == a and i[-1] == b - 1) for i, a, b in zip(idx, start, stop)):
        return data  # nothing was clipped
    return data[np.ix_(*[i - a for i, a in zip(idx, lo)])]


@dataclass
class Volume:
    """A lazy 3D EM volume.

    Attributes:
        array: Array-like object indexed with slices (zarr.Array, h5py dataset wrapper, TIFF/slice readers, views).
        voxel_size: Voxel size in nm (z, y, x), or ``None`` when neither metadata nor the user gave one.
        path: The path spec the volume was opened from (for messages and provenance).
        kind: ``image`` or ``labels``.
        format: Human-readable storage format (``OME-Zarr 0.4``, ``HDF5``, ...).
        attrs: Extra metadata (provenance of outputs written by masktwins-bio, OME metadata, ...).

    Pickling pickles the array object; the readers' arrays pickle as "file name + key" and re-open in the new
    process, so a volume can be sent to DataLoader or dask workers.
    """

    array: Any
    voxel_size: Optional[Triple]
    path: str = "<array>"
    kind: str = "image"
    format: str = "array"
    attrs: dict = field(default_factory=dict)

    # -- array protocol -----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> Optional[tuple[int, int, int]]:
        chunks = getattr(self.array, "chunksize", None) or getattr(self.array, "chunks", None)  # dask: chunksize
        if chunks is None or len(chunks) != 3:
            return None
        # dask's .chunks lists every block's size per axis; the first is the regular one
        return tuple(int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks)

    def __getitem__(self, key) -> np.ndarray:
        sl = normalize_key(key, self.shape)
        try:
            data = np.asarray(self.array[sl])
        except (UserError, Cancelled, MemoryError):
            raise
        except Exception as exc:  # a damaged chunk or file: name the file and the region, not a codec's internals
            region = ", ".join(f"{s.start}:{s.stop}" for s in sl)
            raise InputError(f"{self.path}: cannot read voxels [{region}] ({type(exc).__name__}: {exc}); the data is "
                             "damaged or unreadable there - restore the file from a copy, or convert the original "
                             "again") from None
        return _squeeze_int_axes(key, data)

    def __array__(self, dtype=None, copy=None):
        data = self[:]
        return data.astype(dtype) if dtype is not None else data

    def __repr__(self) -> str:
        vs = "unknown" if self.voxel_size is None else "x".join(f"{v:g}" for v in self.voxel_size)
        return f"Volume({self.path!r}, shape={self.shape}, dtype={self.dtype}, voxel_size={vs} nm, {self.format})"

    # -- world units ----------------------------------------------------------------------------------------
    @property
    def extent_nm(self) -> Optional[Triple]:
        if self.voxel_size is None:
            return None
        return tuple(n * v for n, v in zip(self.shape, self.voxel_size))  # type: ignore[return-value]

    def with_voxel_size(self, voxel_size: Optional[Sequence[float]]) -> "Volume":
        """The same data with another voxel size (metadata override, no resampling)."""
        if voxel_size is None:
            return self
        return replace(self, voxel_size=tuple(float(v) for v in voxel_size))

    # -- lazy views -----------------------------------------------------------------------------------------
    def crop(self, roi: Sequence[slice]) -> "Volume":
        """A lazy view of a sub-region given as three slices in voxels."""
        sl = normalize_key(tuple(roi), self.shape)
        if all(s.start == 0 and s.stop == n for s, n in zip(sl, self.shape)):
            return self
        return replace(
            self,
            array=CroppedArray(self.array, sl),
            path=f"{self.path}[{', '.join(f'{s.start}:{s.stop}' for s in sl)}]",
        )

    def resampled(self, voxel_size: Sequence[float], order: Optional[int] = None,
                  shape: Optional[Sequence[int]] = None) -> "Volume":
        """A lazy view at another voxel size (nm, z-y-x).

        Args:
            voxel_size: Output voxel size in nm.
            order: Interpolation order; default 1 (linear) for images, 0 (nearest) for labels.
            shape: Output shape in voxels; default ``round(extent / voxel_size)`` per axis. Give it to land exactly
                on another grid of (nearly) the same extent, e.g. a prediction onto its ground truth: output voxel
                ``i`` still has its centre at ``(i + 0.5) * voxel_size`` nm, and centres beyond this volume's
                extent take the value at its edge.
        """
        if self.voxel_size is None:
            from ..errors import InputError

            raise InputError(
                f"{self.path}: voxel size unknown, cannot resample to {list(voxel_size)} nm; "
                "give it with --voxel-size z,y,x (or voxel_size: in the config)"
            )
        voxel_size = tuple(float(v) for v in voxel_size)
        if np.allclose(voxel_size, self.voxel_size, rtol=1e-6) and (shape is None or tuple(shape) == self.shape):
            return self
        order = (0 if self.kind == "labels" else 1) if order is None else order
        return replace(
            self,
            array=ResampledArray(self.array, self.voxel_size, voxel_size, order, shape),
            voxel_size=voxel_size,
            path=f"{self.path}@{'x'.join(f'{v:g}' for v in voxel_size)}nm",
        )

    def in_memory(self) -> "Volume":
        """The same voxels read once into a numpy array, slab by slab: no more reads from storage, and a lazy
        resampling is computed once instead of for every region read. Values equal the lazy view's (its blocks
        equal the whole-volume resampling up to float rounding)."""
        if isinstance(self.array, np.ndarray):
            return self
        data = np.empty(self.shape, self.dtype)
        for z0, slab in self.iter_slabs():
            data[z0 : z0 + slab.shape[0]] = slab
        return replace(self, array=data, format=f"{self.format}, in memory")

    # -- whole-volume helpers (streamed) -------------------------------------------------------------------
    def iter_slabs(self, depth: Optional[int] = None):
        """Yield ``(z0, data)`` slabs of ``depth`` sections covering the volume (default: the chunk depth)."""
        depth = depth or (self.chunks[0] if self.chunks else 8)
        for z0 in range(0, self.shape[0], depth):
            yield z0, self[z0 : z0 + depth]

    def value_range(self) -> tuple[float, float]:
        """Exact (min, max), streamed slab by slab."""
        lo, hi = math.inf, -math.inf
        for _, slab in self.iter_slabs():
            if slab.size:
                lo, hi = min(lo, slab.min().item()), max(hi, slab.max().item())
        return lo, hi

    def to_dask(self, chunks=None):
        """A dask array over this volume (needs dask)."""
        import dask.array as da

        # the Volume itself is the array-like (it has ndim/shape/dtype); meta avoids a probing read
        return da.from_array(self, chunks=chunks or self.chunks or "auto", asarray=True, lock=False,
                             meta=np.empty((0, 0, 0), dtype=self.dtype))


class CroppedArray:
    """A sub-region of another array, read lazily."""

    def __init__(self, base, roi: tuple[slice, ...]):
        self.base = base
        self.roi = roi
        self.shape = tuple(s.stop - s.start for s in roi)
        self.dtype = np.dtype(base.dtype)
        base_chunks = getattr(base, "chunks", None)
        self.chunks = tuple(min(c, n) for c, n in zip(base_chunks, self.shape)) if base_chunks else None

    def __getitem__(self, key):
        sl = normalize_key(key, self.shape)
        inner = tuple(slice(r.start + s.start, r.start + s.stop) for r, s in zip(self.roi, sl))
        return np.asarray(self.base[inner])


class ResampledArray:
    """Lazy resampling of an array from one voxel size to another.

    Output voxel ``i`` along an axis has its centre at ``(i + 0.5) * out_vs`` nm, i.e. at input coordinate
    ``c = (i + 0.5) * out_vs / in_vs - 0.5``; linear interpolation (order 1) or nearest neighbour (order 0) along
    each axis, with edge replication at the borders. When down-sampling by a factor ``f > 1`` along an axis (and
    ``order > 0``), the input is first smoothed with a Gaussian of sigma ``(f - 1) / 2`` input voxels, like
    :func:`skimage.transform.resize` with ``anti_aliasing=True``. Reads fetch the needed input region plus a halo,
    so any block equals the corresponding block of a whole-volume resampling. ``shape`` overrides the default
    output shape ``round(n / factor)`` (centres outside the input take its edge values).
    """

    def __init__(self, base, in_voxel_size, out_voxel_size, order: int = 1, shape: Optional[Sequence[int]] = None):
        if order not in (0, 1):
            raise ValueError("order must be 0 (nearest) or 1 (linear)")
        self.base = base
        self.in_vs = np.asarray(in_voxel_size, dtype=np.float64)
        self.out_vs = np.asarray(out_voxel_size, dtype=np.float64)
        self.order = order
        self.factor = self.out_vs / self.in_vs
        self.shape = (tuple(max(1, int(round(n / f))) for n, f in zip(base.shape, self.factor)) if shape is None
                      else tuple(int(n) for n in shape))
        if any(n < 1 for n in self.shape):
            raise ValueError(f"resampled shape {self.shape} must be positive")
        self.dtype = np.dtype(base.dtype) if order == 0 else np.dtype(np.float32)
        base_chunks = getattr(base, "chunks", None)
        self.chunks = (
            tuple(max(1, min(n, int(round(c / f)))) for c, f, n in zip(base_chunks, self.factor, self.shape))
            if base_chunks
            else None
        )
        self.sigma = np.where((self.factor > 1) & (order > 0), (self.factor - 1) / 2, 0.0)
        self.halo = np.where(self.sigma > 0, np.ceil(4 * self.sigma).astype(int) + 1, 0)

    def _coords(self, axis: int, start: int, stop: int) -> np.ndarray:
        i = np.arange(start, stop, dtype=np.float64)
        return (i + 0.5) * self.factor[axis] - 0.5

    def __getitem__(self, key):
        sl = normalize_key(key, self.shape)
        coords = [self._coords(a, s.start, s.stop) for a, s in enumerate(sl)]
        if any(len(c) == 0 for c in coords):
            return np.zeros([len(c) for c in coords], dtype=self.dtype)
        if self.order == 0:
            idx = [np.clip(np.floor(c + 0.5).astype(np.int64), 0, n - 1) for c, n in zip(coords, self.base.shape)]
            lo = [int(i.min()) for i in idx]
            hi = [int(i.max()) + 1 for i in idx]
            data = np.asarray(self.base[tuple(slice(a, b) for a, b in zip(lo, hi))])
            return data[np.ix_(*[i - a for i, a in zip(idx, lo)])]
        lo = [int(math.floor(c.min())) - int(h) for c, h in zip(coords, self.halo)]
        hi = [int(math.floor(c.max())) + 2 + int(h) for c, h in zip(coords, self.halo)]
        data = read_region(self.base, lo, hi).astype(np.float32)
        for axis, sigma in enumerate(self.sigma):
            if sigma > 0:
                data = ndimage.gaussian_filter1d(data, sigma, axis=axis, mode="nearest", truncate=4.0)
        for axis, c in enumerate(coords):
            local = c - lo[axis]
            i0 = np.floor(local).astype(np.int64)
            w = (local - i0).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = -1
            w = w.reshape(shape)
            a = np.take(data, i0, axis=axis)
            b = np.take(data, i0 + 1, axis=axis)
            data = a * (1 - w) + b * w
        return data
