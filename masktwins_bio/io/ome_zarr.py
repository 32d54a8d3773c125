"""Writing chunked, compressed OME-Zarr (NGFF 0.4 on Zarr v2, or 0.5 on Zarr v3) with multiscale metadata.

Outputs are written through :class:`OmeZarrWriter`: create the store, write level 0 region by region (never the
whole volume in memory), then :meth:`OmeZarrWriter.finalize` builds the down-sampled pyramid level by level, one
output chunk per task on a thread pool, and writes the ``multiscales`` metadata. Blockwise writers can instead write
the lower pyramid levels with each block (:meth:`OmeZarrWriter.create_block_levels`, :class:`BlockPyramid`), so that
``finalize`` only adds the small top levels. Outputs that are written in one go use
:func:`atomic_output`, so an interrupted write never leaves something at the final path that looks complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from .._version import __version__
from ..errors import InputError
from ..files import DEFAULT_OME_VERSION, OME_VERSIONS
from .attributes import PROVENANCE_KEY, ome_attributes, provenance
from .guard import check_not_an_input, check_parent, check_replaceable, drain_zarr_io, refuse_existing

__all__ = [
    "OmeZarrWriter",
    "BlockPyramid",
    "create_ome_zarr",
    "write_ome_zarr",
    "atomic_output",
    "check_output_path",
    "default_chunks",
    "pyramid_factors",
    "PROVENANCE_KEY",
]




def default_chunks(shape: Sequence[int], target: Sequence[int] = (32, 256, 256)) -> tuple[int, int, int]:
    """Chunk shape for EM volumes: ``target`` clipped to the volume shape."""
    return tuple(int(max(1, min(t, s))) for t, s in zip(target, shape))  # type: ignore[return-value]


def pyramid_factors(voxel_size: Sequence[float], shape: Sequence[int], levels: Optional[int] = None,
                    min_size: int = 256) -> list[tuple[int, int, int]]:
    """Per-level cumulative down-sampling factors (level 0 is (1, 1, 1)).

    Each level halves the axes that are currently finest (within 1.5x of the finest), so anisotropic volumes are
    first down-sampled in-plane until they become near-isotropic. With ``levels=None`` levels are added while the
    largest in-plane size of the last level exceeds ``2 * min_size``.
    """
    vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), dtype=float)
    factors = [np.ones(3, dtype=int)]
    while True:
        cur_f = factors[-1]
        cur_shape = np.ceil(np.asarray(shape) / cur_f)
        if levels is not None:
            if len(factors) >= levels:
                break
        elif max(cur_shape[1:]) <= 2 * min_size or len(factors) >= 8:
            break
        cur_vs = vs * cur_f
        step = np.where((cur_vs <= cur_vs.min() * 1.5) & (cur_shape > 1), 2, 1)
        if (step == 1).all():
            break
        factors.append(cur_f * step)
    return [tuple(int(v) for v in f) for f in factors]  # type: ignore[misc]


def check_output_path(path: str | os.PathLike, overwrite: bool = False, what: str = "output",
                      inputs: Iterable = (), command: Optional[str] = None) -> Path:
    """Refuse an output path that is or holds an input, and an existing one unless ``overwrite`` and it is ours.

    Args:
        path: The output path.
        overwrite: Whether an existing output may be replaced (only one masktwins-bio wrote, see :mod:`.guard`).
        what: What the output is, for messages.
        inputs: The command's inputs (path specs or open volumes); the output may not be, contain or lie in one.
        command: The masktwins-bio command writing it; ``overwrite`` replaces only that command's outputs
            (``None``: any masktwins-bio output).
    """
    p = Path(path)
    check_not_an_input(p, inputs)
    if p.exists() or p.is_symlink():
        check_replaceable(p, (), what, command)  # not ours: refused, naming whose it is (even with --overwrite)
        if not overwrite:
            refuse_existing(p, what)
    check_parent(p)
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False, inputs: Iterable = (),
                  what: str = "output", command: Optional[str] = None, locked: bool = False) -> Iterator[Path]:
    """Write to a temporary sibling and move it into place only when the block completes without error.

    Yields the temporary path. On error the temporary output is removed and an existing output is left untouched.
    The path is checked first with :func:`check_output_path` (``inputs``, ``what``, ``command``: as there).
    ``locked``: the caller holds the output's writer lock (:mod:`.lock`), so temporary siblings of this path are
    leftovers of a killed run (``kill -9`` allows no cleanup) and are removed first.
    """
    final = check_output_path(path, overwrite, what, inputs, command)
    if locked:
        for stale in final.parent.glob(f".{final.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        drain_zarr_io()  # else a chunk write still in flight would recreate the store after it is removed
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.is_file():
            tmp.unlink()
        raise
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _compressors(zarr_format: int):
    if zarr_format == 2:
        import numcodecs

        return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    import zarr

    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def _multiscales(voxel_size, factors, name: str, version: str, kind: str, extra_metadata: dict) -> dict:
    vs = [float(v) for v in (voxel_size if voxel_size is not None else (1.0, 1.0, 1.0))]
    unit = {"unit": "nanometer"} if voxel_size is not None else {}  # no unit: readers see an unknown voxel size
    datasets = []
    for level, f in enumerate(factors):
        scale = [v * fi for v, fi in zip(vs, f)]
        translation = [v * (fi - 1) / 2 for v, fi in zip(vs, f)]  # pixel centres of averaged blocks
        transforms = [{"type": "scale", "scale": scale}]
        if level > 0:
            transforms.append({"type": "translation", "translation": translation})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    ms = {
        "name": name,
        "axes": [{"name": a, "type": "space", **unit} for a in "zyx"],
        "datasets": datasets,
        "type": "mean" if kind == "image" else "nearest",
        "metadata": {"method": "masktwins_bio.io.ome_zarr", "version": __version__, **extra_metadata},
    }
    if version == "0.4":
        ms = {"version": "0.4", **ms}
    return ms


class OmeZarrWriter:
    """Incremental writer of one OME-Zarr multiscale image (or label image).

    Args:
        path: Output store path (``.zarr`` directory).
        shape: Level-0 shape (z, y, x) in voxels.
        dtype: Level-0 dtype.
        voxel_size: Level-0 voxel size in nm (z, y, x); ``None`` writes scale 1 without a unit, which
            readers take as unknown.
        chunks: Chunk shape; default :func:`default_chunks`.
        ome_version: ``"0.5"`` (Zarr v3, the default) or ``"0.4"`` (Zarr v2).
        kind: ``image`` or ``labels`` (labels get ``image-label`` metadata and nearest-neighbour pyramids).
        name: Name stored in the metadata.
        attrs: Extra provenance stored under the ``masktwins_bio`` attribute.
        fill_value: Value of chunks never written.
        source_image: Labels only: relative path from this store to the OME-Zarr image the labels belong to
            (``image-label.source.image``; ``"../../"`` for ``<image>.zarr/labels/<name>``), so that viewers find
            it (see :func:`label_placement`).
    """

    def __init__(self, path, shape, dtype, voxel_size=None, chunks=None, ome_version: str = DEFAULT_OME_VERSION,
                 kind: str = "image", name: Optional[str] = None, attrs: Optional[dict] = None, fill_value=0,
                 overwrite: bool = False, source_image: Optional[str] = None):
        import zarr

        if ome_version not in OME_VERSIONS:
            raise InputError(f"OME-Zarr version {ome_version!r} is not supported; use 0.4 or 0.5")
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.voxel_size = tuple(float(v) for v in voxel_size) if voxel_size is not None else None
        self.chunks = tuple(int(c) for c in (chunks or default_chunks(self.shape)))
        self.chunks = tuple(max(1, min(c, s)) for c, s in zip(self.chunks, self.shape))
        self.ome_version = ome_version
        self.zarr_format = 2 if ome_version == "0.4" else 3
        self.kind = kind
        self.name = name or self.path.stem
        self.attrs = dict(attrs or {})
        self.source_image = source_image if kind == "labels" else None
        self.group = zarr.open_group(str(self.path), mode="w" if overwrite else "w-", zarr_format=self.zarr_format)
        self.level0 = self._create_level(0, self.shape, fill_value)
        self.block_levels = 0  # pyramid levels written by the blocks themselves (create_block_levels)
        # metadata for level 0 right away, so that readers can open a store being written (e.g. resumable predict)
        self._write_metadata([(1, 1, 1)])

    @classmethod
    def reopen(cls, path) -> "OmeZarrWriter":
        """Re-open a store created by this class to continue writing level 0 and then :meth:`finalize` it.

        Used by resumable outputs (``predict``/``segment --resume``). Everything written is kept: level 0, the levels
        blocks write themselves (call :meth:`create_block_levels` again) and the provenance; levels left by an
        interrupted :meth:`finalize` are rebuilt by the next one.
        """
        import zarr

        self = cls.__new__(cls)
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r+")
        attrs = dict(self.group.attrs)
        ome = ome_attributes(attrs)
        ms = ome["multiscales"][0]
        self.level0 = self.group["0"]
        self.shape = tuple(int(s) for s in self.level0.shape)
        self.dtype = np.dtype(self.level0.dtype)
        self.chunks = tuple(int(c) for c in self.level0.chunks)
        self.zarr_format = self.group.metadata.zarr_format
        self.ome_version = "0.4" if self.zarr_format == 2 else "0.5"
        self.kind = "labels" if "image-label" in ome else "image"
        self.source_image = ((ome.get("image-label") or {}).get("source") or {}).get("image")
        self.name = ms.get("name", self.path.stem)
        scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
        known = ms.get("metadata", {}).get("voxel_size_known", True)
        self.voxel_size = tuple(float(v) for v in scale) if known else None
        self.attrs = {k: v for k, v in provenance(attrs).items() if k != "version"}
        self.block_levels = 0
        return self

    def create_block_levels(self, block_shape: Sequence[int], levels: Optional[int] = None,
                            min_size: int = 256) -> "BlockPyramid":
        """Create the pyramid levels that blocks of ``block_shape`` can write themselves, next to level 0.

        A block tiling of level 0 (blocks start at multiples of ``block_shape``) can also write level ``l`` of the
        pyramid if its shape is a multiple of the level's cumulative factor and, divided by it, of the level's
        chunks (or spans the axis): then its down-sampled copy covers whole chunks of level ``l`` that no other
        block touches, and equals what :meth:`finalize` would compute (same block means, same edge replication).
        Writing them with the block, in the write-behind thread, saves a second pass over the output; the levels
        above are left to :meth:`finalize` (they are small). Levels that already exist (resume) are kept.

        ``levels`` and ``min_size`` must be those later given to :meth:`finalize`.

        Returns:
            A picklable :class:`BlockPyramid` that writes a block into level 0 and these levels.
        """
        factors = pyramid_factors(self.voxel_size, self.shape, levels, min_size)
        n = 0
        for level in range(1, len(factors)):
            shape = tuple(-(-s // f) for s, f in zip(self.shape, factors[level]))
            chunks = tuple(min(c, s) for c, s in zip(self.chunks, shape))
            if not all(b >= s or (b % f == 0 and (b // f) % c == 0)
                       for b, s, f, c in zip(block_shape, self.shape, factors[level], chunks)):
                break
            if str(level) not in self.group.array_keys():
                self._create_level(level, shape)
            n = level
        self.block_levels = n
        steps = [tuple(a // b for a, b in zip(factors[lv], factors[lv - 1])) for lv in range(1, n + 1)]
        return BlockPyramid(str(self.path), steps, self.kind, self.dtype.str)

    def _create_level(self, level: int, shape, fill_value=0, overwrite: bool = False):
        kwargs = {}
        if self.zarr_format == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            kwargs["dimension_names"] = ["z", "y", "x"]
        return self.group.create_array(
            str(level), shape=shape, chunks=tuple(min(c, s) for c, s in zip(self.chunks, shape)), dtype=self.dtype,
            compressors=_compressors(self.zarr_format), fill_value=fill_value, overwrite=overwrite, **kwargs,
        )

    def _write_metadata(self, factors) -> None:
        ms = _multiscales(self.voxel_size, factors, self.name, self.ome_version, self.kind,
                          {"voxel_size_known": self.voxel_size is not None})
        ome: dict = {"multiscales": [ms]}
        if self.kind == "labels":
            ome["image-label"] = {"version": self.ome_version} if self.ome_version == "0.4" else {}
            if self.source_image:
                ome["image-label"]["source"] = {"image": self.source_image}
        prov = {"version": __version__, **self.attrs}
        if self.zarr_format == 2:
            self.group.attrs.update({**ome, PROVENANCE_KEY: prov})
        else:
            self.group.attrs.update({"ome": {"version": "0.5", **ome}, PROVENANCE_KEY: prov})

    def update_provenance(self, **items) -> None:
        self.attrs.update(items)
        attrs = dict(self.group.attrs)
        prov = dict(attrs.get(PROVENANCE_KEY, {}))
        prov.update(items)
        self.group.attrs[PROVENANCE_KEY] = prov

    def write(self, offset: Sequence[int], data: np.ndarray) -> None:
        """Write ``data`` into level 0 at ``offset`` (voxels)."""
        sl = tuple(slice(o, o + s) for o, s in zip(offset, data.shape))
        self.level0[sl] = data.astype(self.dtype, copy=False)

    def finalize(self, levels: Optional[int] = None, min_size: int = 256,
                 workers: Optional[int] = None) -> list[tuple[int, int, int]]:
        """Build the pyramid (streamed) and write the complete multiscales metadata; returns the level factors.

        Each level is computed from the previous one, one output chunk per task, on ``workers`` threads (default:
        one per CPU, at most 8; numpy, Blosc and Zarr release the GIL) with at most ``2 * workers`` tasks in
        flight, so memory stays at a few chunks whatever the volume size. The result does not depend on
        ``workers``.
        """
        factors = pyramid_factors(self.voxel_size, self.shape, levels, min_size)
        workers = max(1, workers or min(8, os.cpu_count() or 1))
        first = min(self.block_levels, len(factors) - 1) + 1  # the levels below were written with the blocks
        prev = self.group[str(first - 1)]
        with ThreadPoolExecutor(workers, thread_name_prefix="mtb-pyramid") as pool:
            for level in range(first, len(factors)):
                step = tuple(a // b for a, b in zip(factors[level], factors[level - 1]))
                shape = tuple(-(-s // f) for s, f in zip(self.shape, factors[level]))
                arr = self._create_level(level, shape, overwrite=True)  # a resumed run rebuilds a partial level
                starts = itertools.product(*(range(0, n, c) for n, c in zip(shape, arr.chunks)))
                _map_bounded(pool, partial(_downsample_chunk, prev, arr, step, self.kind), starts, 2 * workers)
                prev = arr
        self._write_metadata(factors)
        return factors


class BlockPyramid:
    """Writes one block into level 0 of an OME-Zarr being written and into the levels blocks can fill themselves.

    Made by :meth:`OmeZarrWriter.create_block_levels`; picklable (arrays are opened lazily in each process), so dask
    workers write their blocks' pyramids too.

    Args:
        path: The OME-Zarr store. ``steps``: down-sampling step from level ``l - 1`` to ``l``, for ``l = 1..n``.
        kind: ``image`` (block mean) or ``labels`` (strided pick). ``dtype``: the store's dtype.
    """

    def __init__(self, path: str, steps: Sequence[Sequence[int]], kind: str, dtype: str):
        self.path, self.kind, self.dtype = str(path), kind, np.dtype(dtype)
        self.steps = [tuple(int(v) for v in s) for s in steps]
        self._arrays: dict = {}

    def __getstate__(self):
        return {**self.__dict__, "_arrays": {}}

    @property
    def levels(self) -> int:
        """Pyramid levels above 0 written with each block."""
        return len(self.steps)

    def _array(self, level: int):
        if level not in self._arrays:
            import zarr

            self._arrays[level] = zarr.open_array(f"{self.path}/{level}", mode="r+")
        return self._arrays[level]

    def write(self, start: Sequence[int], data: np.ndarray) -> None:
        """Write ``data`` at ``start`` (level-0 voxels, a block of the tiling) and its down-sampled copies."""
        data = data.astype(self.dtype, copy=False)
        self._array(0)[tuple(slice(a, a + n) for a, n in zip(start, data.shape))] = data
        for level, step in enumerate(self.steps, 1):
            stop = [a + n for a, n in zip(start, data.shape)]
            start = [a // s for a, s in zip(start, step)]
            shape = tuple(-(-b // s) - a for a, b, s in zip(start, stop, step))
            data = _downsample(data, step, self.kind, shape)
            self._array(level)[tuple(slice(a, a + n) for a, n in zip(start, shape))] = data


def _map_bounded(pool: ThreadPoolExecutor, fn, items, in_flight: int) -> None:
    """``fn(item)`` for every item on ``pool`` with at most ``in_flight`` submitted at once; re-raises errors."""
    pending: deque = deque()
    try:
        for item in items:
            if len(pending) >= in_flight:
                pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            pending.popleft().result()
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


def _downsample_chunk(src, dst, step, kind: str, start) -> None:
    """Write the chunk of ``dst`` (a pyramid level) at ``start`` from the matching region of ``src`` (the level
    below). Chunks of consecutive levels have the same shape, so every ``src`` chunk is read once per level."""
    stop = tuple(min(a + c, n) for a, c, n in zip(start, dst.chunks, dst.shape))
    data = np.asarray(src[tuple(slice(a * s, b * s) for a, b, s in zip(start, stop, step))])
    dst[tuple(slice(a, b) for a, b in zip(start, stop))] = _downsample(
        data, step, kind, tuple(b - a for a, b in zip(start, stop)))


# integer dtypes whose block sums (of at most 256 voxels) fit a narrower accumulator than int64
_SUM_DTYPES = {np.dtype(a): np.dtype(b) for a, b in
               (("uint8", "uint16"), ("int8", "int16"), ("uint16", "uint32"), ("int16", "int32"))}


def _downsample(data: np.ndarray, step, kind: str, out_shape) -> np.ndarray:
    """Block mean (images) or strided pick (labels) by ``step``; edge blocks are completed by replication.

    Integer images: ``(sum + n // 2) // n`` over the ``n`` voxels of a block (round half up). Small integers and
    float16 are summed by adding the ``n`` strided sub-grids (exact, so bit-identical to a numpy reduction and much
    faster); other dtypes use numpy's reduction.
    """
    if kind == "labels":
        return data[:: step[0], :: step[1], :: step[2]][: out_shape[0], : out_shape[1], : out_shape[2]]
    pad = [(0, o * s - n) for o, s, n in zip(out_shape, step, data.shape)]
    if any(p[1] for p in pad):
        data = np.pad(data, pad, mode="edge")
    n = step[0] * step[1] * step[2]
    # float16 sums of <= 256 values are exact in float64 (every float16 is a multiple of 2**-24 below 2**16)
    acc = np.dtype(np.float64) if data.dtype == np.float16 else _SUM_DTYPES.get(data.dtype)
    if acc is not None and n <= 256:
        total = np.zeros(out_shape, dtype=acc)
        for offset in itertools.product(*(range(s) for s in step)):
            total += data[tuple(slice(o, None, s) for o, s in zip(offset, step))]
    else:
        blocks = data.reshape(out_shape[0], step[0], out_shape[1], step[1], out_shape[2], step[2])
        if not np.issubdtype(data.dtype, np.integer):
            return blocks.mean(axis=(1, 3, 5), dtype=np.float64).astype(data.dtype)
        total = blocks.sum(axis=(1, 3, 5), dtype=np.int64)
    if total.dtype.kind == "f":
        return (total / n).astype(data.dtype)
    total += n // 2
    total //= n
    return total.astype(data.dtype)


def _ome_image_version(path: Path) -> Optional[str]:
    """The OME-Zarr version of the multiscale image at ``path``, or ``None`` when it is not one."""
    import zarr

    if not path.is_dir():
        return None
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:
        return None
    ome = ome_attributes(dict(group.attrs))
    if "multiscales" not in ome or "image-label" in ome:
        return None
    return "0.4" if group.metadata.zarr_format == 2 else "0.5"


@dataclasses.dataclass(frozen=True)
class LabelPlacement:
    """Where a label output sits relative to its image (:func:`label_placement`).

    Attributes:
        source_image: Relative path from the labels to their image (``image-label.source.image``), or ``None``.
        parent: The OME-Zarr image whose ``labels/`` group holds the output (register the name there), or ``None``.
        ome_version: The parent's OME-Zarr version, which the labels must share; ``None`` without a parent.
    """

    source_image: Optional[str] = None
    parent: Optional[Path] = None
    ome_version: Optional[str] = None


def label_placement(output, source=None) -> LabelPlacement:
    """How label ``output`` refers to an image, as OME-Zarr viewers expect (``ome_zarr info`` warns "no parent found
    for Label" otherwise).

    ``<image>.zarr/labels/<name>`` is the spec's place: the labels belong to that image (``"../../"``) and are listed
    in its ``labels`` group. A standalone output refers to ``source`` (e.g. the probability map it was segmented
    from) when that is an OME-Zarr image, by a relative path.
    """
    out = Path(output).expanduser().resolve()
    if out.parent.name == "labels":
        version = _ome_image_version(out.parent.parent)
        if version is not None:
            return LabelPlacement("../../", out.parent.parent, version)
    if source is not None:
        src = Path(os.fspath(source)).expanduser().resolve()
        if _ome_image_version(src) is not None:
            return LabelPlacement(os.path.relpath(src, out).replace(os.sep, "/"))
    return LabelPlacement()


def register_label(image: Path, name: str) -> None:
    """List label image ``name`` in ``image``'s ``labels`` group (created when missing), as OME-Zarr readers find
    labels: ``{"labels": [...]}`` (0.4) or ``{"ome": {"version": "0.5", "labels": [...]}}`` (0.5)."""
    import zarr

    version = _ome_image_version(Path(image))
    if version is None:
        raise InputError(f"{image}: is not an OME-Zarr image; labels can only be listed in an image's labels group")
    group = zarr.open_group(str(Path(image) / "labels"), mode="a", zarr_format=2 if version == "0.4" else 3)
    attrs = dict(group.attrs)
    if version == "0.4":
        names = list(attrs.get("labels", []))
        if name not in names:
            group.attrs["labels"] = names + [name]
    else:
        ome = dict(attrs.get("ome", {}))
        names = list(ome.get("labels", []))
        if name not in names:
            group.attrs["ome"] = {**ome, "version": "0.5", "labels": names + [name]}


def create_ome_zarr(path, shape, dtype, voxel_size=None, **kwargs) -> OmeZarrWriter:
    """Create an OME-Zarr store for incremental writing (see :class:`OmeZarrWriter`)."""
    return OmeZarrWriter(path, shape, dtype, voxel_size, **kwargs)


def write_ome_zarr(path, data, voxel_size=None, chunks=None, ome_version: str = DEFAULT_OME_VERSION,
                   kind: str = "image", levels: Optional[int] = None, overwrite: bool = False,
                   attrs: Optional[dict] = None, name: Optional[str] = None) -> Path:
    """Write an in-memory array or a lazy :class:`~masktwins_bio.io.volume.Volume` to OME-Zarr, atomically.

    Args:
        path: Output ``.zarr`` path.
        data: (z, y, x) array or Volume (read slab by slab).
        voxel_size: nm (z, y, x); defaults to the volume's own.
        chunks: Chunk shape (voxels).
        ome_version: ``"0.5"`` (Zarr v3, the default) or ``"0.4"`` (Zarr v2).
        kind: ``image`` or ``labels``.
        levels: Pyramid levels (``None``: automatic).
        overwrite: Replace an existing output.
        attrs: Provenance stored under ``masktwins_bio``.

    Returns:
        The output path.
    """
    if voxel_size is None:
        voxel_size = getattr(data, "voxel_size", None)
    shape = tuple(data.shape)
    if len(shape) != 3:
        raise InputError(f"{path}: data to write has shape {shape}; expected (z, y, x)")
    with atomic_output(path, overwrite) as tmp:
        w = OmeZarrWriter(tmp, shape, data.dtype, voxel_size, chunks=chunks, ome_version=ome_version, kind=kind,
                          attrs=attrs, name=name or Path(path).stem)
        depth = w.chunks[0]
        for z0 in range(0, shape[0], depth):
            w.write((z0, 0, 0), np.asarray(data[z0 : z0 + depth]))
        w.finalize(levels)
    return Path(path)
