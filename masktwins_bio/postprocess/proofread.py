"""Proofreading a label volume: merge, split, delete and filter instances, with undo, saved back to OME-Zarr.

:class:`Proofreader` edits a label volume of any size without loading it: an index built in one blockwise pass
records which chunks hold each id (and its voxel count and whether it touches the volume's border), so an edit reads
and rewrites only the chunks of the instances it changes. Edits go to an overlay of changed chunks kept in memory;
the store on disk is unchanged until :meth:`Proofreader.save`, and every edit can be undone (and redone) until then.

Saving writes the changed chunks into level 0 of the OME-Zarr labels (or a copy, ``save(output)``), rebuilds the
pyramid and appends the edits to the store's provenance (``masktwins_bio.proofreading``). While the chunks are being
written the store is marked incomplete, so an interrupted save is refused by the commands that read it
(``--allow-incomplete`` to read it anyway) instead of looking finished.

The operations, as a biologist would name them:

- :meth:`~Proofreader.merge` ``([3, 8, 12])``: one instance (the smallest id) from several (a false split);
- :meth:`~Proofreader.split` ``(5, seeds)``: one instance into as many as seed points were clicked (a false merge), by
  a compact watershed of the anisotropic distance transform (nm) from the seeds, inside the instance only;
- :meth:`~Proofreader.delete` ``([4])``: remove instances (false positives);
- :meth:`~Proofreader.filter` ``(min_voxels=..., max_voxels=..., touching_border=...)``: delete by size or border
  contact (cut-off instances).
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from .._version import __version__
from ..errors import InputError

__all__ = ["Proofreader", "Edit", "SPLIT_COMPACTNESS"]

#: compactness of the split's watershed on the distance transform normalised to [0, 1] (skimage's parameter)
SPLIT_COMPACTNESS = 0.05

log = logging.getLogger(__name__)


@dataclass
class Edit:
    """One proofreading step: what was done, and the chunks it changed (their content before and after)."""

    op: str
    args: dict
    before: dict = field(default_factory=dict)  # chunk index -> array before the edit
    after: dict = field(default_factory=dict)  # chunk index -> array after it


class Proofreader:
    """Edits of one label volume (an OME-Zarr labels store), with undo.

    Args:
        labels: The labels store (``.zarr``, e.g. the output of ``masktwins-bio segment``), or a (z, y, x) integer
            array (edited in memory; :meth:`save` then needs an output path).
        voxel_size: Voxel size in nm (z, y, x), for the split's distance transform; default from the store.
        chunks: Edit granularity for an array input (default: 32 x 256 x 256).

    Example::

        pr = Proofreader("instances.zarr")
        pr.merge([3, 8])
        pr.split(5, [(2, 40, 51), (2, 60, 80)])
        pr.filter(min_voxels=200)
        pr.undo()
        pr.save()
    """

    def __init__(self, labels: Union[str, os.PathLike, np.ndarray], voxel_size: Optional[Sequence[float]] = None,
                 chunks: Optional[Sequence[int]] = None):
        if isinstance(labels, np.ndarray):
            if labels.ndim != 3 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
                raise InputError(f"labels array of shape {labels.shape}, dtype {labels.dtype}: expected a 3D integer "
                                 "label volume")
            self.path = None
            self._array = labels
            self.voxel_size = tuple(float(v) for v in voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
            self.chunks = tuple(int(min(c, s)) for c, s in zip(chunks or (32, 256, 256), labels.shape))
        else:
            import zarr

            from ..io import open_volume
            from ..io.guard import check_complete

            self.path = Path(labels)
            vol = open_volume(str(labels), voxel_size=voxel_size, kind="labels")
            check_complete(vol, "labels", False, then=", then proofread it")
            if not np.issubdtype(vol.dtype, np.integer):
                raise InputError(f"{labels}: has dtype {vol.dtype}; proofreading needs integer labels (segment "
                                 "the probabilities first)")
            try:
                self._array = zarr.open_group(str(self.path), mode="r")["0"]
            except Exception:
                raise InputError(f"{labels}: is not an OME-Zarr label store (no level 0); convert it first: "
                                 "masktwins-bio convert INPUT labels.zarr --labels") from None
            self.voxel_size = vol.voxel_size or (1.0, 1.0, 1.0)
            self.chunks = tuple(int(c) for c in self._array.chunks)
        self.shape = tuple(int(s) for s in self._array.shape)
        self.dtype = np.dtype(self._array.dtype)
        self._overlay: dict = {}
        self._done: list[Edit] = []
        self._undone: list[Edit] = []
        self._log: list[dict] = []  # what was done since the last save, undo and redo included (the provenance)
        self._build_index()

    # -- reading ------------------------------------------------------------------------------------------------
    def _chunk_slices(self, idx) -> tuple[slice, ...]:
        return tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, self.chunks, self.shape))

    def _chunk(self, idx) -> np.ndarray:
        if idx in self._overlay:
            return self._overlay[idx]
        return np.asarray(self._array[self._chunk_slices(idx)])

    def __getitem__(self, key) -> np.ndarray:
        """Read a region (with the edits applied), e.g. ``pr[10:20, :, :]``."""
        from ..io.volume import normalize_key

        sl = normalize_key(key, self.shape)
        out = np.asarray(self._array[sl]).copy()
        for idx, data in self._overlay.items():
            csl = self._chunk_slices(idx)
            lo = [max(a.start, b.start) for a, b in zip(sl, csl)]
            hi = [min(a.stop, b.stop) for a, b in zip(sl, csl)]
            if all(h > lo_ for lo_, h in zip(lo, hi)):
                out[tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sl))] = \
                    data[tuple(slice(a - c.start, b - c.start) for a, b, c in zip(lo, hi, csl))]
        return out

    # -- the index: id -> chunks, voxels, border ---------------------------------------------------------------
    def _chunk_ids(self) -> Iterable[tuple]:
        return itertools.product(*(range(-(-s // c)) for s, c in zip(self.shape, self.chunks)))

    def _scan(self, idx, data: np.ndarray) -> None:
        ids, counts = np.unique(data, return_counts=True)
        keep = ids != 0
        self._chunk_content[idx] = dict(zip(ids[keep].tolist(), counts[keep].tolist()))
        sl = self._chunk_slices(idx)
        border: set = set()
        for axis, s in enumerate(sl):
            if s.start == 0:
                border.update(np.unique(np.take(data, 0, axis=axis)).tolist())
            if s.stop == self.shape[axis]:
                border.update(np.unique(np.take(data, -1, axis=axis)).tolist())
        border.discard(0)
        self._chunk_border[idx] = border

    def _build_index(self) -> None:
        self._chunk_content: dict = {}
        self._chunk_border: dict = {}
        for idx in self._chunk_ids():
            self._scan(idx, self._chunk(idx))

    def _chunks_of(self, ids: Iterable[int]) -> list:
        ids = set(int(i) for i in ids)
        return [idx for idx, content in self._chunk_content.items() if ids & content.keys()]

    def ids(self) -> np.ndarray:
        """The instance ids present (sorted)."""
        return np.array(sorted(set().union(*self._chunk_content.values())), dtype=np.int64)

    def voxels(self, label: int) -> int:
        """Voxel count of instance ``label`` (0 when absent)."""
        return int(sum(c.get(int(label), 0) for c in self._chunk_content.values()))

    def touches_border(self, label: int) -> bool:
        return any(int(label) in b for b in self._chunk_border.values())

    def _check_ids(self, ids: Sequence[int], what: str) -> list[int]:
        ids = sorted(set(int(i) for i in ids))
        if not ids:
            raise InputError(f"{what}: no instance ids given")
        if ids[0] <= 0:
            raise InputError(f"{what}: id {ids[0]} is background or invalid; give instance ids > 0")
        present = set(self.ids().tolist())
        missing = [i for i in ids if i not in present]
        if missing:
            raise InputError(f"{what}: no instance with id {missing[0]} in {self.path or 'the labels'}; check the id "
                             "(the Inspect table lists them)")
        return ids

    # -- editing ------------------------------------------------------------------------------------------------
    def _apply(self, op: str, args: dict, chunks: Sequence, change) -> Edit:
        """Run ``change(idx, data) -> new data or None`` over ``chunks`` as one undoable edit."""
        edit = Edit(op, args)
        for idx in chunks:
            data = self._chunk(idx)
            new = change(idx, data)
            if new is not None and not np.array_equal(new, data):
                edit.before[idx] = data
                edit.after[idx] = new
        self._commit(edit)
        return edit

    def _commit(self, edit: Edit) -> None:
        for idx, data in edit.after.items():
            self._overlay[idx] = data
            self._scan(idx, data)
        self._done.append(edit)
        self._undone.clear()
        self._log.append({"op": edit.op, **edit.args})
        log.info("%s %s: %d chunks changed", edit.op, edit.args, len(edit.after))

    def merge(self, ids: Sequence[int]) -> Edit:
        """Merge instances into one, keeping the smallest id."""
        ids = self._check_ids(ids, "merge")
        if len(ids) < 2:
            raise InputError("merge: give at least two different instance ids")
        target, rest = ids[0], np.asarray(ids[1:])
        return self._apply("merge", {"ids": ids, "into": target}, self._chunks_of(rest),
                           lambda idx, d: np.where(np.isin(d, rest), d.dtype.type(target), d))

    def delete(self, ids: Sequence[int]) -> Edit:
        """Remove instances (set to background)."""
        ids = self._check_ids(ids, "delete")
        arr = np.asarray(ids)
        return self._apply("delete", {"ids": ids}, self._chunks_of(ids),
                           lambda idx, d: np.where(np.isin(d, arr), d.dtype.type(0), d))

    def filter(self, min_voxels: Optional[int] = None, max_voxels: Optional[int] = None,
               touching_border: bool = False) -> Edit:
        """Delete instances smaller than ``min_voxels``, larger than ``max_voxels`` or (``touching_border``) cut off
        by a face of the volume. Returns the edit (``edit.args["ids"]`` are the deleted ids)."""
        sizes: dict = {}
        for content in self._chunk_content.values():
            for i, n in content.items():
                sizes[i] = sizes.get(i, 0) + n
        border = set().union(*self._chunk_border.values()) if touching_border else set()
        drop = sorted(i for i, n in sizes.items() if (min_voxels is not None and n < min_voxels)
                      or (max_voxels is not None and n > max_voxels) or i in border)
        args = {"min_voxels": min_voxels, "max_voxels": max_voxels, "touching_border": touching_border, "ids": drop}
        arr = np.asarray(drop, dtype=np.int64)
        return self._apply("filter", args, self._chunks_of(drop) if drop else [],
                           lambda idx, d: np.where(np.isin(d, arr), d.dtype.type(0), d))

    def split(self, label: int, seeds: Sequence[Sequence[float]]) -> Edit:
        """Split instance ``label`` at ``seeds`` (voxel coordinates z, y, x; one new instance per seed, the first
        keeps ``label``), by a compact watershed of the distance transform (nm, anisotropic) inside the instance: the cut
        falls at the neck between the parts.

        Raises:
            InputError: fewer than two seeds, a seed outside the volume or not on the instance.
        """
        from skimage.segmentation import watershed

        import edt

        (label,) = self._check_ids([label], "split")
        pts = np.round(np.asarray(seeds, dtype=float)).astype(np.int64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
            raise InputError("split: give at least two seed points (z, y, x), one inside each part")
        chunks = self._chunks_of([label])
        lo = np.min([[s.start for s in self._chunk_slices(i)] for i in chunks], axis=0)
        hi = np.max([[s.stop for s in self._chunk_slices(i)] for i in chunks], axis=0)
        region = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        data = self[region]
        mask = data == label
        markers = np.zeros(mask.shape, dtype=np.int32)
        for k, p in enumerate(pts, start=1):
            q = p - lo
            if np.any(q < 0) or np.any(q >= mask.shape) or not mask[tuple(q)]:
                raise InputError(f"split: seed {tuple(int(v) for v in p)} is not on instance {label}; click inside "
                                 "it")
            markers[tuple(q)] = k
        dist = edt.edt(mask, anisotropy=self.voxel_size, black_border=False, parallel=1)
        # a compact watershed: the distance transform puts the cut at a neck between the parts; the compactness
        # keeps a seed near the object's edge from being flooded by the deeper one (a plain watershed of a uniform
        # tube gives nearly everything to the seed nearer its middle)
        parts = watershed(-dist / max(float(dist.max()), 1e-9), markers, mask=mask, compactness=SPLIT_COMPACTNESS)
        next_id = int(max(self.ids().max(), 0)) + 1
        if next_id + len(pts) - 2 > np.iinfo(self.dtype).max:
            raise InputError(f"split: no free ids left in dtype {self.dtype}")
        new_ids = np.array([0, label] + list(range(next_id, next_id + len(pts) - 1)), dtype=self.dtype)
        relabelled = np.where(mask, new_ids[parts], data)

        def change(idx, d):
            csl = self._chunk_slices(idx)
            return relabelled[tuple(slice(c.start - a, c.stop - a) for c, a in zip(csl, lo))].copy()

        return self._apply("split", {"id": label, "seeds": pts.tolist(), "new_ids": new_ids[2:].tolist()}, chunks,
                           change)

    def as_array(self) -> "_Edited":
        """The labels with the edits applied as a lazy (z, y, x) array (``shape``, ``dtype``, slicing), e.g. for a
        napari layer; it follows later edits."""
        return _Edited(self)

    # -- history ------------------------------------------------------------------------------------------------
    @property
    def history(self) -> list[dict]:
        """The edits in effect, oldest first (``op`` and its arguments)."""
        return [{"op": e.op, **e.args} for e in self._done]

    @property
    def modified(self) -> bool:
        """Whether there is anything :meth:`save` would record (edits, undos or redos since the last save)."""
        return bool(self._log)

    def undo(self) -> Optional[Edit]:
        """Undo the last edit (``None`` when there is none)."""
        if not self._done:
            return None
        edit = self._done.pop()
        for idx, data in edit.before.items():
            self._overlay[idx] = data
            self._scan(idx, data)
        self._undone.append(edit)
        self._log.append({"op": "undo", "of": edit.op})
        return edit

    def redo(self) -> Optional[Edit]:
        """Redo the last undone edit."""
        if not self._undone:
            return None
        edit = self._undone.pop()
        for idx, data in edit.after.items():
            self._overlay[idx] = data
            self._scan(idx, data)
        self._done.append(edit)
        self._log.append({"op": "redo", "of": edit.op})
        return edit

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self, output: Union[str, os.PathLike, None] = None, overwrite: bool = False) -> Path:
        """Write the edits: into the store itself (``output=None``) or into a new OME-Zarr copy at ``output``.

        The pyramid is rebuilt and the edits appended to the provenance (``masktwins_bio.proofreading``). In place,
        the store is marked incomplete until every changed chunk is written.
        """
        from ..io import Volume, write_ome_zarr
        from ..io.ome_zarr import OmeZarrWriter

        changed = {idx: data for idx, data in self._overlay.items()
                   if not np.array_equal(data, np.asarray(self._array[self._chunk_slices(idx)]))}
        record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "version": __version__, "edits": list(self._log), "result": self.history}
        if output is not None:
            out = write_ome_zarr(output, Volume(array=self.as_array(), voxel_size=self.voxel_size, kind="labels"),
                                 voxel_size=self.voxel_size, kind="labels",
                                 overwrite=overwrite, attrs={"source": str(self.path) if self.path else "<array>",
                                                             "proofreading": [record]})
            return Path(out)
        if self.path is None:
            raise InputError("save: the labels were given as an array; pass an output .zarr path")
        from ..io.lock import output_lock

        with output_lock(self.path, "proofread"):  # no other masktwins-bio job writes the store meanwhile
            writer = OmeZarrWriter.reopen(self.path)
            previous = list(writer.attrs.get("proofreading", []))
            writer.update_provenance(complete=False)  # an interrupted save must not look finished
            for idx, data in changed.items():
                writer.level0[self._chunk_slices(idx)] = data
            writer.finalize()
            writer.update_provenance(complete=True, proofreading=previous + [record],
                                     n_instances=int(len(self.ids())))
        import zarr

        self._array = zarr.open_group(str(self.path), mode="r")["0"]
        self._overlay.clear()
        self._log.clear()
        return self.path


class _Edited:
    """The edited volume as an array (what :func:`~masktwins_bio.io.write_ome_zarr` reads slab by slab)."""

    def __init__(self, pr: Proofreader):
        self._pr = pr
        self.shape, self.dtype, self.ndim = pr.shape, pr.dtype, 3

    def __getitem__(self, key):
        return self._pr[key]
