"""Per-instance measurements of a label volume for the Inspect widget, streamed slab by slab.

:func:`instance_table` reads the volume one z-slab at a time (:meth:`Volume.iter_slabs`), measures each slab with
``cc3d.statistics`` on densely renumbered ids (so arbitrary, sparse ids cost no memory) and merges the slabs, so the
whole label volume is never held in memory.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..blockwise import ProgressCallback, StopCheck
from ..errors import Cancelled
from ..io import Volume

__all__ = ["instance_table"]


def instance_table(volume: Volume, slab_depth: Optional[int] = None, progress: bool = False,
                   callback: Optional[ProgressCallback] = None,
                   should_stop: Optional[StopCheck] = None) -> dict[str, np.ndarray]:
    """Id, size, bounding box and centroid of every instance (label > 0).

    Args:
        volume: A label volume (integer, 0 = background).
        slab_depth: Sections read at a time (default: the volume's chunk depth).
        progress: Show a tqdm bar over the sections.
        callback: ``callback("measure instances", done, total)`` in voxels, before every slab and at the end.
        should_stop: Polled between slabs; True raises :class:`~masktwins_bio.errors.Cancelled`.

    Returns:
        Arrays sorted by id: ``id`` (uint64), ``voxels`` (int64), ``volume_um3`` (float64; NaN without voxel size),
        ``bbox_start`` / ``bbox_stop`` ((N, 3) int64, voxels, half-open z-y-x), ``centroid`` ((N, 3) float64, voxel
        coordinates z-y-x).
    """
    import cc3d

    from tqdm import tqdm

    ids_l, counts_l, lo_l, hi_l, sums_l = [], [], [], [], []
    desc, plane, total = "measure instances", int(np.prod(volume.shape[1:])), int(np.prod(volume.shape))
    bar = tqdm(total=volume.shape[0], desc=desc, unit="section", disable=not progress, leave=False)
    for z0, slab in volume.iter_slabs(slab_depth):
        if callback is not None:
            callback(desc, z0 * plane, total)
        if should_stop is not None and should_stop():
            bar.close()
            raise Cancelled(f"{desc}: stopped at section {z0}")
        slab = np.asarray(slab)
        bar.update(slab.shape[0])
        if not slab.any():
            continue
        ids, dense = np.unique(slab, return_inverse=True)
        dense = dense.reshape(slab.shape).astype(np.uint32)
        stats = cc3d.statistics(dense, no_slice_conversion=True)
        keep = ids > 0
        n = stats["voxel_counts"].astype(np.int64)[: len(ids)]
        boxes = stats["bounding_boxes"].astype(np.int64)[: len(ids)]
        cent = np.nan_to_num(stats["centroids"][: len(ids)].astype(np.float64))
        offset = np.array([z0, 0, 0])
        ids_l.append(ids[keep].astype(np.uint64))
        counts_l.append(n[keep])
        lo_l.append(boxes[keep][:, 0::2] + offset)
        hi_l.append(boxes[keep][:, 1::2] + offset + 1)
        sums_l.append((cent[keep] + offset) * n[keep, None])
    bar.close()
    if callback is not None:
        callback(desc, total, total)
    if not ids_l:
        empty3 = np.zeros((0, 3), dtype=np.int64)
        return {"id": np.zeros(0, np.uint64), "voxels": np.zeros(0, np.int64), "volume_um3": np.zeros(0),
                "bbox_start": empty3, "bbox_stop": empty3.copy(), "centroid": np.zeros((0, 3))}
    ids = np.concatenate(ids_l)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    counts = np.add.reduceat(np.concatenate(counts_l)[order], starts)
    lo = np.minimum.reduceat(np.concatenate(lo_l)[order], starts, axis=0)
    hi = np.maximum.reduceat(np.concatenate(hi_l)[order], starts, axis=0)
    centroid = np.add.reduceat(np.concatenate(sums_l)[order], starts, axis=0) / counts[:, None]
    vs = volume.voxel_size
    um3 = counts * (float(np.prod(vs)) / 1e9 if vs is not None else np.nan)
    return {"id": ids[starts], "voxels": counts, "volume_um3": um3, "bbox_start": lo, "bbox_stop": hi,
            "centroid": centroid}
