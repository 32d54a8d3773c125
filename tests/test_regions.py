"""One region parser and check for every roi (issue 13, item 2): predict, evaluate, volume specs and configs."""

from __future__ import annotations

import numpy as np
import pytest

from masktwins_bio.errors import InputError
from masktwins_bio.regions import format_roi, parse_roi, roi_slices

SHAPE = (4, 10, 12)


@pytest.mark.parametrize("roi, expected", [
    ("0:4, :, :", (slice(0, 4), slice(0, 10), slice(0, 12))),
    ("1:3, 2:, :5", (slice(1, 3), slice(2, 10), slice(0, 5))),
    ("-1, -3:, 0:-2", (slice(3, 4), slice(7, 10), slice(0, 10))),   # negatives count from the end
    ("2, 0, 11", (slice(2, 3), slice(0, 1), slice(11, 12))),          # single indices: one voxel
    ((slice(None), slice(1, 2), 3), (slice(0, 4), slice(1, 2), slice(3, 4))),
])
def test_regions_resolve_inside_the_volume(roi, expected):
    assert roi_slices(roi, SHAPE) == expected
    assert format_roi(expected).count(":") == 3


@pytest.mark.parametrize("roi, message", [
    ("0:4, :", "three comma-separated ranges"),
    ("0:4, a:b, :", "is not of the form start:stop"),
    ("0:5, :, :", "z range 0:5 lies outside the volume"),             # refused, never clipped
    (":, 8:20, :", "y range 8:20 lies outside"),
    ("2:2, :, :", "z range 2:2 lies outside the volume or is empty"),
    ((slice(0, 4, 2), slice(None), slice(None)), "has a step"),
    ((slice(None),) * 2, "needs three ranges"),
])
def test_bad_regions_are_one_line_errors_naming_where(roi, message):
    with pytest.raises(InputError, match="^vol.zarr: .*" + message.replace("(", r"\(")):
        roi_slices(roi, SHAPE, "vol.zarr")


def test_parse_roi_keeps_bounds_as_written():
    assert parse_roi("0:4, :, 10:") == (slice(0, 4), slice(None), slice(10, None))


def test_every_roi_consumer_refuses_a_region_outside_the_volume(tmp_path):
    import masktwins_bio as mtb
    from masktwins_bio.io import write_ome_zarr

    path = write_ome_zarr(tmp_path / "v.zarr", np.zeros(SHAPE, np.uint8), voxel_size=(40, 8, 8), kind="labels")
    with pytest.raises(InputError, match="x range 0:99 lies outside"):
        mtb.open_volume(str(path), roi=":, :, 0:99")
    with pytest.raises(InputError, match="x range 0:99 lies outside"):
        mtb.evaluate(str(path), str(path), roi=":, :, 0:99")
