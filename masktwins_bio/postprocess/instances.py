"""Mitochondria instances from probabilities, blockwise and consistent across chunks.

:func:`segment` thresholds a probability volume (``uint8`` as written by ``predict``: ``p * 255``, or float in
[0, 1]; foreground is ``p >= threshold``), labels it and removes objects smaller than ``min_size`` voxels. It runs
block by block (never the whole volume in memory) with the label -> merge -> relabel scheme of
:mod:`masktwins_bio.postprocess.relabel`, so every instance has one id across all chunks and sizes are global.

Methods:

* ``cc``: connected components (``cc3d``) with 6-, 18- or 26-connectivity. The blockwise result is exactly the
  partition of one whole-volume ``cc3d.connected_components`` (ids may differ; they are consecutive, ordered by the
  first voxel of each object in block order).
* ``watershed``: seeded watershed that splits touching mitochondria. Seeds are maxima of the Euclidean distance
  transform of the foreground, computed in nm (anisotropy-aware ``sampling``), that are the largest value within
  ``seed_distance`` nm along every axis; a plateau of equal maxima is one seed, owned by the block holding its first
  voxel. Each block is processed with a halo of ``max(5 * seed_distance, 200)`` nm (distance transform, seed
  suppression and flooding all see it) and ``skimage.segmentation.watershed`` floods ``-distance`` from the global
  seeds inside the block plus halo; foreground not reached by any seed (no seed within the halo) falls back to
  connected components. Pieces of one seed in different blocks share its id; fallback pieces merge with whatever
  they touch across block faces; pieces of two different seeds never merge. This is not bit-identical to one
  whole-volume watershed (distances are exact only up to the halo), but it is independent of how the blocks are
  scheduled and consistent across chunks.

:func:`label_components` is the same machinery for binary masks (e.g. ground truth for ``evaluate``): to a Zarr
path, or in memory for small volumes.

Outputs are OME-Zarr label images (``uint32``, ``uint64`` for volumes of 2**32 voxels or more) with provenance;
they are resumable like ``predict`` (``.masktwins_work`` holds the per-pass markers and the provisional labels).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..blockwise import Block, BlockGrid, DoneMarkers, Execution, ProgressCallback, StopCheck, run_blockwise
from ..errors import InputError
from ..files import plain
from ..io import Volume, as_volume
from ..io.attributes import provenance as stored_provenance
from ..io.guard import check_complete
from ..io.lock import holds_output_lock
from ..io.ome_zarr import DEFAULT_OME_VERSION, BlockPyramid, label_placement, register_label
from ..io.outputs import ResumableOutput, default_block, output_chunks, temporary_store
from .relabel import CONNECTIVITIES, apply_lut, block_offsets, face_pairs, merge_lut

__all__ = ["segment", "label_components", "METHODS", "Foreground"]

log = logging.getLogger(__name__)

METHODS = ("cc", "watershed")
_DEFAULT_BLOCK = (64, 512, 512)
_EMPTY3 = np.zeros((0, 3), dtype=np.int64)


@dataclass
class Foreground:
    """Which voxels are foreground: ``data >= value``, or ``data != 0`` when ``value`` is ``None`` (masks).

    ``check_range``: float probabilities must lie in [0, 1] (raises :class:`InputError` naming ``path``).
    """

    value: Optional[float] = None
    check_range: bool = False
    path: str = "<array>"

    def __call__(self, data: np.ndarray) -> np.ndarray:
        if self.value is None:
            return data != 0
        if self.check_range and data.size:
            lo, hi = float(np.min(data)), float(np.max(data))
            if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
                raise InputError(f"{self.path}: probabilities must lie in [0, 1], found values in [{lo:g}, {hi:g}]; "
                                 "pass the output of 'masktwins-bio predict' or rescale the volume")
        return data >= self.value


class _ArrayRefs:
    """Resolves array references: a numpy array (in-memory runs) or a Zarr path opened once per process."""

    _cache: dict

    def __getstate__(self):
        return {**self.__dict__, "_cache": {}}

    def _array(self, ref):
        if isinstance(ref, np.ndarray):
            return ref
        if ref not in self._cache:
            import zarr

            self._cache[ref] = zarr.open_array(ref, mode="r+")
        return self._cache[ref]


@dataclass
class _Context:
    """Reads a block plus halo and computes foreground and distance transform (nm) on it."""

    source: Volume
    fg: Foreground
    voxel_size: tuple[float, float, float]

    def load(self, block: Block):
        import edt

        shape = self.source.shape
        region = block.read_slices(shape)
        fg = self.fg(self.source[region])
        # seung-lab's edt (the cc3d authors'): the same anisotropic Euclidean distances as
        # scipy.ndimage.distance_transform_edt(sampling=...), in float32, about 7x faster; it dominated watershed time.
        # black_border=False: the volume border is not background (scipy's convention too).
        dist = (edt.edt(fg, anisotropy=self.voxel_size, black_border=False, parallel=1) if fg.any()
                else np.zeros(fg.shape, dtype=np.float32))
        return fg, dist, tuple(s.start for s in region), block.core_in_read(shape)


@dataclass
class SeedTask:
    """Watershed pass 1: seeds (global voxel coordinates) owned by each block."""

    ctx: _Context
    radius: tuple[int, int, int]

    def __call__(self, block: Block) -> dict:
        import cc3d
        from scipy import ndimage

        fg, dist, start, core = self.ctx.load(block)
        if not fg.any():
            return {"seeds": _EMPTY3}
        peaks = (dist >= ndimage.maximum_filter(dist, size=[2 * r + 1 for r in self.radius], mode="nearest")) & fg
        plateaus = cc3d.connected_components(peaks, connectivity=26)
        labels, first = np.unique(plateaus.ravel(), return_index=True)
        coords = np.stack(np.unravel_index(first[labels > 0], plateaus.shape), axis=1)
        inside = np.all([(coords[:, a] >= core[a].start) & (coords[:, a] < core[a].stop) for a in range(3)], axis=0)
        seeds = coords[inside] + np.asarray(start)
        return {"seeds": seeds[np.lexsort(seeds.T[::-1])].astype(np.int64)}


@dataclass
class LabelTask(_ArrayRefs):
    """Pass "label": local ids of one block (cc, or watershed from the global seeds) written to ``local``.

    Returns ``sizes`` (voxels per local id) and ``seed_of`` (the global seed id of each local id, 0 = none).
    """

    ctx: _Context
    local: Union[str, np.ndarray]
    method: str
    connectivity: int
    grid: BlockGrid
    seeds: np.ndarray = field(default_factory=lambda: _EMPTY3)
    seed_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _cache: dict = field(default_factory=dict, repr=False)

    def __call__(self, block: Block) -> dict:
        import cc3d

        if self.method == "cc":
            fg = self.ctx.fg(self.ctx.source[block.write_slices])
            local, n = cc3d.connected_components(fg, connectivity=self.connectivity, return_N=True,
                                                 out_dtype=np.uint32)
            seed_of = np.zeros(n, dtype=np.int64)
        else:
            local, seed_of = self._watershed(block)
        self._array(self.local)[block.write_slices] = local
        sizes = np.bincount(local.ravel(), minlength=len(seed_of) + 1)[1:]
        return {"sizes": sizes.astype(np.int64), "seed_of": seed_of}

    def _seeds_in(self, start, stop) -> tuple[np.ndarray, np.ndarray]:
        """Global seeds inside ``[start, stop)``: coordinates and ids (1-based); seeds are stored per block."""
        ranges = [range(a // b, (c - 1) // b + 1) for a, c, b in zip(start, stop, self.grid.block_shape)]
        blocks = [int(np.ravel_multi_index(index, self.grid.grid_shape)) for index in itertools.product(*ranges)]
        ids = np.concatenate([np.arange(self.seed_ptr[b], self.seed_ptr[b + 1]) for b in blocks])
        coords = self.seeds[ids]
        inside = np.all((coords >= np.asarray(start)) & (coords < np.asarray(stop)), axis=1)
        return coords[inside], ids[inside] + 1

    def _watershed(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        import cc3d
        from skimage.segmentation import watershed

        fg, dist, start, core = self.ctx.load(block)
        stop = [a + n for a, n in zip(start, fg.shape)]
        coords, ids = self._seeds_in(start, stop)
        markers = np.zeros(fg.shape, dtype=np.int64)
        markers[tuple((coords - np.asarray(start)).T)] = ids
        flooded = watershed(-dist, markers, mask=fg, connectivity=CONNECTIVITIES[self.connectivity])[core]
        fg = fg[core]
        present = np.unique(flooded[flooded > 0])
        local = np.zeros(flooded.shape, dtype=np.uint32)
        local[flooded > 0] = np.searchsorted(present, flooded[flooded > 0]) + 1
        rest, n_rest = cc3d.connected_components(fg & (flooded == 0), connectivity=self.connectivity,
                                                 return_N=True, out_dtype=np.uint32)
        local[rest > 0] = rest[rest > 0] + len(present)
        return local, np.concatenate([present, np.zeros(n_rest, dtype=np.int64)]).astype(np.int64)


@dataclass
class MergeTask(_ArrayRefs):
    """Pass "merge": provisional id pairs touching across the block's high faces."""

    local: Union[str, np.ndarray]
    grid: BlockGrid
    offsets: np.ndarray
    connectivity: int
    _cache: dict = field(default_factory=dict, repr=False)

    def __call__(self, block: Block) -> dict:
        return {"pairs": face_pairs(self._array(self.local), block, self.grid, self.offsets, self.connectivity)}


@dataclass
class RelabelTask(_ArrayRefs):
    """Pass "relabel": final ids of one block through the lookup table (and the pyramid levels the block covers)."""

    local: Union[str, np.ndarray]
    output: Union[BlockPyramid, np.ndarray]
    offsets: np.ndarray
    lut: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    def __call__(self, block: Block) -> None:
        local = np.asarray(self._array(self.local)[block.write_slices])
        labels = apply_lut(local, int(self.offsets[block.index]), self.lut)
        if isinstance(self.output, BlockPyramid):
            self.output.write(block.write_start, labels)
        else:
            self.output[block.write_slices] = labels
        return None


def _results(res: dict, n_blocks: int, key: str, empty: np.ndarray) -> list[np.ndarray]:
    return [res[b][key] if b in res and key in res[b] else empty for b in range(n_blocks)]


def _label_blockwise(ctx: _Context, grid: BlockGrid, local, output, *, method: str, connectivity: int,
                     min_size: int, seed_radius, work: Optional[Path], execution: Execution, out_dtype,
                     desc: str = "segment") -> int:
    """The four passes (seeds for watershed, label, merge, relabel), reported as ``"{desc}: {pass}"``; returns the
    number of objects."""
    run = partial(run_blockwise, grid, execution=execution)

    def done(name: str) -> Optional[DoneMarkers]:
        return DoneMarkers(work / f"done_{name}") if work is not None else None

    n = len(grid)
    label_task = LabelTask(ctx=ctx, local=local, method=method, connectivity=connectivity, grid=grid)
    if method == "watershed":
        res = run(SeedTask(ctx=ctx, radius=seed_radius), done=done("seeds"), desc=f"{desc}: seeds")
        seeds = _results(res, n, "seeds", _EMPTY3)
        label_task.seeds = np.concatenate(seeds).astype(np.int64)
        label_task.seed_ptr = np.concatenate([[0], np.cumsum([len(s) for s in seeds])]).astype(np.int64)
    res = run(label_task, done=done("label"), desc=f"{desc}: label")
    sizes = _results(res, n, "sizes", np.zeros(0, dtype=np.int64))
    seed_of = _results(res, n, "seed_of", np.zeros(0, dtype=np.int64))
    offsets = block_offsets(grid, {b: len(s) for b, s in enumerate(sizes)})
    res = run(MergeTask(local=local, grid=grid, offsets=offsets, connectivity=connectivity), done=done("merge"),
              desc=f"{desc}: merge")
    pairs = np.concatenate([np.zeros((0, 2), dtype=np.int64)] + _results(res, n, "pairs", np.zeros((0, 2), np.int64)))
    lut, n_objects = merge_lut(np.concatenate(sizes), pairs, np.concatenate(seed_of) if method == "watershed" else None,
                               min_size, out_dtype)
    run(RelabelTask(local=local, output=output, offsets=offsets, lut=lut), done=done("relabel"),
        desc=f"{desc}: relabel")
    return n_objects


def _check_common(method: str, connectivity: int, min_size: int) -> None:
    if method not in METHODS:
        raise InputError(f"method {method!r} is not known; choose cc or watershed")
    if connectivity not in CONNECTIVITIES:
        raise InputError(f"connectivity {connectivity} is not supported; choose 6, 18 or 26")
    if min_size < 0:
        raise InputError(f"min size {min_size} must be >= 0 voxels")


def _run_to_store(vol: Volume, fg: Foreground, output, *, task: str, settings: dict, provenance: dict, method: str,
                  connectivity: int, min_size: int, seed_distance: float, block_shape, chunks, overwrite: bool,
                  resume: bool, execution: Execution, ome_version: str, desc: str = "segment") -> Path:
    """Shared by :func:`segment` and :func:`label_components`: output checks, resume, the passes, finalisation."""
    import zarr

    shape = vol.shape
    chunks = output_chunks(shape, chunks, block_shape)
    block_shape = tuple(block_shape or default_block(shape, chunks, _DEFAULT_BLOCK))
    vs = vol.voxel_size or (1.0, 1.0, 1.0)
    radius = tuple(max(1, math.ceil(seed_distance / v)) for v in vs)
    halo = tuple(max(r + 1, math.ceil(max(5 * seed_distance, 200.0) / v)) for r, v in zip(radius, vs))
    grid = BlockGrid(shape, block_shape, halo if method == "watershed" else (0, 0, 0), chunks=chunks,
                     voxel_size=vol.voxel_size)
    out_dtype = np.uint32 if vol.size < 2**32 else np.uint64
    settings = plain({**settings, "method": method, "connectivity": connectivity, "min_size": min_size,
                         "block_shape": grid.block_shape, "chunks": chunks, "shape": shape})
    out = ResumableOutput(output, task=task, settings=settings, inputs=[vol], overwrite=overwrite, resume=resume,
                          labels=True)
    if out.complete:
        log.info("%s: already complete, nothing to resume", out.path)
        return out.path
    # viewers find the image the labels belong to: <image>.zarr/labels/<name>, or the source store itself
    place = label_placement(output, vol.path if isinstance(vol.path, str) and not vol.path.startswith("<") else None)
    with out:
        writer = out.writer or out.create(shape, out_dtype, vol.voxel_size, chunks=chunks, kind="labels",
                                          ome_version=place.ome_version or ome_version, name="instances",
                                          attrs=provenance, source_image=place.source_image)
        work = out.work
        # provisional per-block ids (created once; kept on resume)
        zarr.open_array(str(work / "local"), mode="a", shape=shape, chunks=chunks, dtype="uint32", fill_value=0,
                        zarr_format=writer.zarr_format)
        pyramid = writer.create_block_levels(grid.block_shape)
        n = _label_blockwise(_Context(vol, fg, vs), grid, str(work / "local"), pyramid, method=method,
                             connectivity=connectivity, min_size=min_size, seed_radius=radius, work=work,
                             execution=execution, out_dtype=writer.dtype, desc=desc)
        out.finish(n_instances=n)
    if place.parent is not None:
        register_label(place.parent, out.path.name)
    return out.path


def _source_fingerprint(vol: Volume) -> dict:
    prov = stored_provenance(vol.attrs)
    return {"source_shape": vol.shape, "source_dtype": str(vol.dtype), "source_voxel_size": vol.voxel_size,
            "source_settings": prov.get("settings")}


@holds_output_lock("segment")
def segment(
    prob: Union[str, os.PathLike, Volume, np.ndarray],
    output: Union[str, os.PathLike, None],
    *,
    threshold: float = 0.5,
    method: str = "cc",
    min_size: int = 64,
    seed_distance: float = 40.0,
    connectivity: int = 26,
    block_shape: Optional[Sequence[int]] = None,
    chunks: Optional[Sequence[int]] = None,
    overwrite: bool = False,
    resume: bool = False,
    executor: str = "serial",
    address: Optional[str] = None,
    num_workers: Optional[int] = None,
    progress: bool = True,
    voxel_size: Optional[Sequence[float]] = None,
    ome_version: str = DEFAULT_OME_VERSION,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
    allow_incomplete: bool = False,
    execution: Optional[Execution] = None,
) -> Path:
    """Instances from a probability volume, blockwise, consistent across chunks; writes OME-Zarr labels.

    A probability store an interrupted ``predict`` left unfinished is refused unless ``allow_incomplete``.

    Args:
        prob: Probabilities: ``uint8`` (``p * 255``, as written by ``predict``) or float in [0, 1]; a path spec or
            a ``Volume``.
        output: Output ``.zarr`` path (a label image; 0 = background, objects 1..n); ``None`` segments blockwise
            into a temporary store and returns the labels as a (z, y, x) numpy array (fits in memory only).
        threshold: Foreground is ``p >= threshold`` (``value >= threshold * 255`` for ``uint8``).
        method: ``cc`` (connected components) or ``watershed`` (seeded, splits touching mitochondria).
        min_size: Objects with fewer voxels (whole-volume size, summed over blocks) are removed.
        seed_distance: Watershed seeds are at least this far apart along each axis (nm).
        connectivity: 6, 18 or 26.
        block_shape: Block shape (voxels), a multiple of ``chunks``; default about 64 x 512 x 512.
        chunks: Output chunks; default 32 x 256 x 256 (reduced to tile ``block_shape``).
        overwrite, resume: Replace an existing output / continue an interrupted run with the same settings.
        executor, address, num_workers: ``serial`` or ``dask`` (see :func:`~masktwins_bio.blockwise.run_blockwise`).
        progress: Progress bars.
        voxel_size: nm (z, y, x), overrides the input's (needed by ``watershed`` when the input has none).
        ome_version: ``0.5`` (Zarr v3, the default) or ``0.4`` (Zarr v2).
        callback: ``callback(desc, done, total)`` per pass (``segment: label``, ...; voxels), at the start of each
            pass and after every block.
        should_stop: Polled between blocks; True stops the run (see :func:`~masktwins_bio.blockwise.run_blockwise`).
        execution: ``executor`` ... ``should_stop`` as one :class:`~masktwins_bio.blockwise.Execution` (give either
            it or those arguments).

    Returns:
        The output path; its provenance holds ``n_instances``. For ``output=None``, the label array.

    Raises:
        InputError: output exists without ``overwrite``/``resume``, wrong dtype, probabilities outside [0, 1],
            block shape not a multiple of the chunks, bad settings.
        Cancelled: ``should_stop()`` returned True; the output stays ``complete: false``, ``resume=True`` finishes it.
    """
    if output is None:  # an array back: the same blockwise run, into a store that is removed afterwards
        args = {k: v for k, v in locals().items() if k not in ("output", "prob")}
        with temporary_store("segment") as tmp:
            return as_volume(str(segment(prob, tmp, **args)))[:]
    _check_common(method, connectivity, min_size)
    run = Execution.merge(execution, Execution(), executor=executor, address=address, num_workers=num_workers,
                          progress=progress, callback=callback, should_stop=should_stop)
    if not 0 < threshold < 1:
        raise InputError(f"threshold {threshold} must lie strictly between 0 and 1, e.g. 0.5")
    if seed_distance <= 0:
        raise InputError(f"seed distance {seed_distance} nm must be positive")
    vol = as_volume(prob, role="probability map")
    vol = vol.with_voxel_size(voxel_size)
    check_complete(vol, "probability volume", allow_incomplete, then=", then segment")
    if vol.dtype == np.uint8:
        fg = Foreground(threshold * 255, path=str(vol.path))
    elif np.issubdtype(vol.dtype, np.floating):
        fg = Foreground(threshold, check_range=True, path=str(vol.path))
    else:
        raise InputError(f"{vol.path}: has dtype {vol.dtype}; segment needs probabilities as uint8 (p * 255, as "
                         "written by 'masktwins-bio predict') or float in [0, 1]")
    if method == "watershed" and vol.voxel_size is None:
        raise InputError(f"{vol.path}: voxel size unknown, needed for the watershed seed distance (nm); "
                         "give it with --voxel-size Z,Y,X")
    prov = stored_provenance(vol.attrs)
    provenance = {"source": {"path": str(vol.path), **{k: prov[k] for k in ("model", "config_hash", "tta")
                                                       if k in prov}},
                  "threshold": threshold, "method": method, "min_size": min_size, "connectivity": connectivity,
                  **({"seed_distance": seed_distance} if method == "watershed" else {})}
    settings = {**_source_fingerprint(vol), "threshold": threshold,
                **({"seed_distance": seed_distance} if method == "watershed" else {})}
    return _run_to_store(vol, fg, output, task="segment", settings=settings, provenance=provenance, method=method,
                         connectivity=connectivity, min_size=min_size, seed_distance=seed_distance,
                         block_shape=block_shape, chunks=chunks, overwrite=overwrite, resume=resume,
                         execution=run, ome_version=ome_version)


@holds_output_lock("label_components")
def label_components(
    mask: Union[str, os.PathLike, Volume, np.ndarray],
    output: Union[str, os.PathLike, None] = None,
    *,
    connectivity: int = 26,
    min_size: int = 0,
    block_shape: Optional[Sequence[int]] = None,
    chunks: Optional[Sequence[int]] = None,
    overwrite: bool = False,
    resume: bool = False,
    executor: str = "serial",
    address: Optional[str] = None,
    num_workers: Optional[int] = None,
    progress: bool = False,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
    allow_incomplete: bool = False,
    execution: Optional[Execution] = None,
    desc: str = "segment",
) -> Union[Path, np.ndarray]:
    """Connected components of a binary mask (any non-zero voxel is foreground), blockwise.

    Args:
        mask: Mask volume (path spec, ``Volume`` or array), e.g. binary ground truth.
        output: ``.zarr`` path for the labels; ``None`` returns an in-memory array (small volumes; serial only).
        connectivity: 6, 18 or 26. ``min_size``: remove smaller objects (global sizes).
        block_shape, chunks, overwrite, resume, executor, address, num_workers, progress, callback, should_stop,
            execution: as for :func:`segment`.
        desc: Progress label of the passes (``"{desc}: label"``, ``"{desc}: merge"``, ``"{desc}: relabel"``).

    Returns:
        The output path, or a ``uint32`` (``uint64`` for huge volumes) array with objects ``1..n``.
    """
    _check_common("cc", connectivity, min_size)
    run = Execution.merge(execution, Execution(progress=False), executor=executor, address=address,
                          num_workers=num_workers, progress=progress, callback=callback, should_stop=should_stop)
    if isinstance(mask, np.ndarray):
        if mask.ndim != 3:
            raise InputError(f"mask has shape {mask.shape}; expected a 3D (z, y, x) array")
        vol = Volume(array=mask, voxel_size=None)
    else:
        vol = as_volume(mask, role="mask")
    check_complete(vol, "mask", allow_incomplete)
    fg = Foreground(None, path=str(vol.path))
    if output is not None:
        provenance = {"source": {"path": str(vol.path)}, "connectivity": connectivity, "min_size": min_size}
        return _run_to_store(vol, fg, output, task="label_components", settings=_source_fingerprint(vol),
                             provenance=provenance, method="cc", connectivity=connectivity, min_size=min_size,
                             seed_distance=1.0, block_shape=block_shape, chunks=chunks, overwrite=overwrite,
                             resume=resume, execution=run, ome_version=DEFAULT_OME_VERSION, desc=desc)
    if not run.serial:
        raise InputError("label_components without an output path runs in memory (serial); give an output .zarr "
                         "path to use the dask executor")
    chunks = output_chunks(vol.shape, chunks, block_shape)
    grid = BlockGrid(vol.shape, block_shape or default_block(vol.shape, chunks, _DEFAULT_BLOCK), chunks=chunks)
    local = np.zeros(vol.shape, dtype=np.uint32)
    out = np.zeros(vol.shape, dtype=np.uint32 if vol.size < 2**32 else np.uint64)
    _label_blockwise(_Context(vol, fg, (1.0, 1.0, 1.0)), grid, local, out, method="cc", connectivity=connectivity,
                     min_size=min_size, seed_radius=(1, 1, 1), work=None, execution=run, out_dtype=out.dtype,
                     desc=desc)
    return out
