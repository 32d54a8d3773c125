"""Instance ids that agree across blocks: provisional ids, union-find over block faces, consecutive final ids.

The standard three-stage scheme (label -> merge -> relabel) for labelling volumes larger than memory:

1. **Label** each block on its own (local ids ``1..n_b``). Block ``b``'s local id ``k`` has the provisional global
   id ``offsets[b] + k``, where ``offsets`` is the exclusive cumulative sum of the per-block counts in block-id order.
2. **Merge.** Every block looks at its three *high* faces (+z, +y, +x): each voxel of its last plane along an axis
   is compared with the voxels of the neighbouring plane that are adjacent to it under the connectivity (the face
   neighbour and, for 18/26-connectivity, the diagonal ones, which may lie in edge- and corner-adjacent blocks). Both
   foreground -> the pair of provisional ids must be the same object. Every pair of adjacent voxels in different
   blocks is seen from at least one of the two blocks, so the union of these pairs is complete.
3. **Relabel.** A union-find (``scipy.sparse.csgraph.connected_components``) over the pairs gives the objects;
   object sizes are the sums of the per-block sizes (so size filters use *global* sizes); surviving objects get
   consecutive ids in the order of their first provisional id (deterministic), and a lookup table maps every
   provisional id to its final id in a last pass over the blocks.

Seeded labellings (watershed) add "seed" nodes: pieces grown from the same seed in different blocks are joined
through their seed, and a face pair whose two pieces come from two *different* seeds is not merged (those are two
touching instances). Memory: the driver holds one entry per provisional id (a few bytes each), never voxels.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..blockwise import Block, BlockGrid

__all__ = ["CONNECTIVITIES", "neighbour_offsets", "block_offsets", "read_provisional", "face_pairs", "merge_lut",
           "apply_lut"]

CONNECTIVITIES = {6: 1, 18: 2, 26: 3}  # connectivity -> max number of non-zero offset components


def neighbour_offsets(connectivity: int, axis: int) -> list[tuple[int, int, int]]:
    """Neighbour offsets ``d`` with ``d[axis] == +1`` under 6-, 18- or 26-connectivity."""
    max_nonzero = CONNECTIVITIES[connectivity]
    return [d for d in itertools.product((-1, 0, 1), repeat=3)
            if d[axis] == 1 and sum(v != 0 for v in d) <= max_nonzero]


def block_offsets(grid: BlockGrid, counts: dict[int, int]) -> np.ndarray:
    """Provisional id offset of every block, shaped like the grid (exclusive cumulative sum in block-id order)."""
    n = np.zeros(len(grid), dtype=np.int64)
    for block_id, count in counts.items():
        n[block_id] = count
    return (np.cumsum(n) - n).reshape(grid.grid_shape)


def read_provisional(local, start, stop, grid: BlockGrid, offsets: np.ndarray) -> np.ndarray:
    """Provisional global ids in ``[start, stop)`` (int64; voxels outside the volume read as 0).

    Args:
        local: Array of per-block local ids (zarr or numpy), shaped like the volume.
        start, stop: Region in voxels; may extend one voxel beyond the volume.
        grid: The block grid; ``offsets``: from :func:`block_offsets`.
    """
    lo = [max(0, a) for a in start]
    hi = [min(n, b) for b, n in zip(stop, grid.shape)]
    out = np.zeros([b - a for a, b in zip(start, stop)], dtype=np.int64)
    if any(b <= a for a, b in zip(lo, hi)):
        return out
    data = np.asarray(local[tuple(slice(a, b) for a, b in zip(lo, hi))]).astype(np.int64)
    # the region may span several blocks: add each voxel's block offset
    index = np.ix_(*[np.arange(a, b) // s for a, b, s in zip(lo, hi, grid.block_shape)])
    data = np.where(data > 0, data + offsets[index], 0)
    out[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] = data
    return out


def face_pairs(local, block: Block, grid: BlockGrid, offsets: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs of provisional ids that touch across the block's high faces; ``(k, 2)`` int64, unique rows.

    Reads only the planes that matter: per axis, the block's last plane and the next plane widened by one voxel
    along the other two axes (zeros outside the volume).
    """
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for axis in range(3):
        edge = block.write_stop[axis]
        if edge >= grid.shape[axis]:
            continue
        p_start, p_stop = list(block.write_start), list(block.write_stop)
        p_start[axis] = edge - 1
        p = read_provisional(local, p_start, p_stop, grid, offsets).squeeze(axis)
        if not p.any():
            continue
        q_start = [a - 1 for a in block.write_start]
        q_stop = [b + 1 for b in block.write_stop]
        q_start[axis], q_stop[axis] = edge, edge + 1
        q = read_provisional(local, q_start, q_stop, grid, offsets).squeeze(axis)
        other = [a for a in range(3) if a != axis]
        n1, n2 = p.shape
        for d in neighbour_offsets(connectivity, axis):
            d1, d2 = d[other[0]], d[other[1]]
            qs = q[1 + d1 : 1 + d1 + n1, 1 + d2 : 1 + d2 + n2]
            hit = (p > 0) & (qs > 0)
            if hit.any():
                pairs.append(np.stack([p[hit], qs[hit]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def merge_lut(sizes: np.ndarray, pairs: np.ndarray, seed_of: np.ndarray | None = None, min_size: int = 0,
              dtype=np.uint32) -> tuple[np.ndarray, int]:
    """Union-find over provisional ids; returns ``(lut, n_objects)`` with ``lut[provisional id] = final id``.

    Args:
        sizes: Voxel count of provisional ids ``1..N`` (length N).
        pairs: ``(k, 2)`` provisional ids that belong together (from :func:`face_pairs`).
        seed_of: Per provisional id, the global seed it grew from (0 = none); pieces sharing a seed are joined and
            pairs of pieces from different seeds are not.
        min_size: Objects with fewer voxels (summed over blocks) are removed (final id 0).
        dtype: dtype of the table (of the output labels).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sizes = np.asarray(sizes, dtype=np.int64)
    n = len(sizes)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    rows, cols = [pairs[:, 0]], [pairs[:, 1]]
    n_seeds = 0
    if seed_of is not None and len(seed_of):
        seed_of = np.asarray(seed_of, dtype=np.int64)
        n_seeds = int(seed_of.max())
        both_seeded = (seed_of[pairs[:, 0] - 1] > 0) & (seed_of[pairs[:, 1] - 1] > 0)
        rows, cols = [pairs[~both_seeded, 0]], [pairs[~both_seeded, 1]]
        seeded = np.flatnonzero(seed_of)
        rows.append(seeded + 1)
        cols.append(n + seed_of[seeded])
    r, c = np.concatenate(rows), np.concatenate(cols)
    total = n + n_seeds + 1
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(total, total))
    n_comp, comp = connected_components(graph, directed=False)
    comp = comp[1 : n + 1]
    comp_size = np.bincount(comp, weights=sizes, minlength=n_comp)
    uniq, first = np.unique(comp, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]  # objects in the order of their first provisional id
    keep = comp_size[order] >= max(1, min_size)
    final = np.zeros(n_comp, dtype=np.int64)
    final[order[keep]] = np.arange(1, int(keep.sum()) + 1)
    lut = np.zeros(n + 1, dtype=dtype)
    lut[1:] = final[comp]
    return lut, int(keep.sum())


def apply_lut(local: np.ndarray, offset: int, lut: np.ndarray) -> np.ndarray:
    """Final ids of one block from its local ids (0 stays 0)."""
    index = local.astype(np.int64)
    index[index > 0] += offset
    return lut[index]
