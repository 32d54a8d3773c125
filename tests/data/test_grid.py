"""The default training grid (``data.voxel_size: null``): enough in-plane context per patch, no domain thinned out."""

from __future__ import annotations

import pytest

from masktwins_bio.data.grid import MAX_COARSENING, MIN_CONTEXT_NM, training_voxel_size


@pytest.mark.parametrize("source, target, patch, expected", [
    ((50, 4.6, 4.6), (40, 8, 8), (8, 96, 96), (40, 12, 12)),    # VNC III -> FAFB: 96 px span 1.15 um at 12 nm
    ((40, 8, 8), (50, 4.6, 4.6), (8, 96, 96), (40, 12, 12)),    # FAFB -> VNC III: the same grid
    ((40, 8, 8), (50, 4.6, 4.6), (16, 256, 256), (40, 8, 8)),   # GPU patches span enough at FAFB's own pixel
    ((30, 16, 16), (30, 8, 8), (16, 256, 256), (30, 16, 16)),   # a coarser domain is never upsampled in-plane
    ((5, 5, 5), (30, 8, 8), (16, 96, 96), (30, 12, 12)),        # Lucchi -> MitoEM: MitoEM's sections
    ((50, 4.6, 4.6), (5, 5, 5), (16, 96, 96), (50, 7.5, 7.5)),  # VNC III -> Lucchi: TEM sections, not re-sliced
    ((5, 5, 5), (5, 5, 5), (16, 96, 96), (7.5, 7.5, 7.5)),      # isotropic stays isotropic when coarsened
    ((4, 4, 4), (4, 4, 4), (32, 96, 96), (6, 6, 6)),            # fine FIB-SEM: at most 1.5x coarser
    ((8, 8, 8), (8, 8, 8), (32, 256, 256), (8, 8, 8)),          # nothing to change
])
def test_training_voxel_size_case_table(source, target, patch, expected):
    assert training_voxel_size(source, target, patch) == pytest.approx(expected)


def test_the_patch_spans_the_minimum_context_unless_that_costs_more_than_the_coarsening_cap():
    z, y, x = training_voxel_size((40, 10, 10), (40, 8, 8), (8, 96, 96))
    assert 96 * y == pytest.approx(MIN_CONTEXT_NM) and y == x and z == 40
    _, y, _ = training_voxel_size((40, 8, 8), (40, 8, 8), (4, 32, 32))  # tiny patches: capped
    assert y == pytest.approx(8 * MAX_COARSENING)


@pytest.mark.parametrize("args", [((40, 8), (40, 8, 8), (8, 96, 96)), ((40, 0, 8), (40, 8, 8), (8, 96, 96)),
                                  ((40, 8, 8), (40, 8, 8), (8, 0, 96))])
def test_bad_arguments_are_refused(args):
    with pytest.raises(ValueError):
        training_voxel_size(*args)
