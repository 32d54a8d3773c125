"""The cross-block union-find: offsets, face pairs, seeds, global size filter, deterministic consecutive ids."""

from __future__ import annotations

import numpy as np
import pytest

from masktwins_bio.blockwise import BlockGrid
from masktwins_bio.postprocess.relabel import apply_lut, block_offsets, face_pairs, merge_lut, neighbour_offsets


@pytest.mark.parametrize("connectivity,n", [(6, 1), (18, 5), (26, 9)])
def test_neighbour_offsets(connectivity, n):
    for axis in range(3):
        offsets = neighbour_offsets(connectivity, axis)
        assert len(offsets) == n and all(d[axis] == 1 for d in offsets)


def test_block_offsets_exclusive_cumsum():
    grid = BlockGrid((4, 4, 4), (2, 4, 4))
    assert block_offsets(grid, {0: 3, 1: 5}).ravel().tolist() == [0, 3]


def test_face_pairs_across_face_and_corner():
    grid = BlockGrid((4, 4, 8), (2, 2, 4))
    local = np.zeros((4, 4, 8), np.uint32)
    local[1, 1, 3] = 1                   # block (0,0,0), its corner voxel
    local[2, 2, 4] = 1                   # block (1,1,1): touches it only by a corner
    local[1, 0, 0] = 2                   # block (0,0,0); face neighbour below in block (1,0,0)
    local[2, 0, 0] = 1
    counts = {b.block_id: int(local[b.write_slices].max()) for b in grid}
    offsets = block_offsets(grid, counts)
    block = grid.block((0, 0, 0))
    got = {tuple(p) for p in face_pairs(local, block, grid, offsets, 26)}
    corner = (1, 1 + offsets[1, 1, 1])
    face = (2, 1 + offsets[1, 0, 0])
    assert got == {corner, face}
    assert {tuple(p) for p in face_pairs(local, block, grid, offsets, 6)} == {face}


def test_merge_lut_global_sizes_and_order():
    sizes = np.array([5, 5, 30, 2])            # provisional ids 1..4
    lut, n = merge_lut(sizes, np.array([[1, 2], [4, 2]]), min_size=11)
    # {1, 2, 4} -> 12 voxels (kept, first), {3} -> 30 (kept, second)
    assert n == 2 and lut.tolist() == [0, 1, 1, 2, 1]
    lut, n = merge_lut(sizes, np.zeros((0, 2), int), min_size=6)
    assert n == 1 and lut.tolist() == [0, 0, 0, 1, 0]


def test_merge_lut_seeds():
    # pieces 1 and 3 grew from seed 1, piece 2 from seed 2, piece 4 is unseeded (fallback)
    seed_of = np.array([1, 2, 1, 0])
    sizes = np.ones(4, int)
    lut, n = merge_lut(sizes, np.array([[1, 2], [2, 4]]), seed_of)
    # 1-2 touch but have different seeds: not merged; 1 and 3 share seed 1; 4 (unseeded) joins 2
    assert n == 2 and lut[1] == lut[3] != lut[2] == lut[4]


def test_apply_lut():
    lut = np.array([0, 7, 8, 9], np.uint32)
    np.testing.assert_array_equal(apply_lut(np.array([[0, 1], [2, 0]]), 1, lut), [[0, 8], [9, 0]])
