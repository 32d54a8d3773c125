"""Issue 15: the Python API takes numpy and dask arrays (with a voxel size) as well as paths, and returns arrays when
no output path is given - the same numbers as the path-based runs."""

from __future__ import annotations

import numpy as np
import pytest

import masktwins_bio as mtb
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume, write_ome_zarr

da = pytest.importorskip("dask.array")

VS = (40, 8, 8)


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((16, 64, 64)) * 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_predict_and_segment_return_arrays_equal_to_the_stores(image, kind, tmp_path):
    data = image if kind == "numpy" else da.from_array(image, chunks=(8, 32, 32))
    prob = mtb.predict("starter", data, None, voxel_size=VS, progress=False)
    stored = mtb.predict("starter", str(write_ome_zarr(tmp_path / "img.zarr", image, voxel_size=VS)),
                         tmp_path / "prob.zarr", progress=False)
    assert isinstance(prob, np.ndarray) and prob.dtype == np.uint8
    np.testing.assert_array_equal(prob, open_volume(str(stored))[:])
    labels = mtb.segment(prob if kind == "numpy" else da.from_array(prob, chunks=(8, 32, 32)), None,
                         progress=False)
    np.testing.assert_array_equal(labels, open_volume(str(mtb.segment(str(stored), tmp_path / "lab.zarr",
                                                                      progress=False)))[:])
    assert not list(tmp_path.glob("masktwins-*"))  # nothing of the temporary stores left here


def test_measure_and_evaluate_take_dask_arrays():
    lab = np.zeros((16, 64, 64), np.uint32)
    lab[2:6, 5:20, 5:20] = 1
    lab[8:12, 30:50, 30:60] = 2
    lazy = da.from_array(lab, chunks=(8, 32, 32))
    assert mtb.measure(lazy, voxel_size=VS).to_pandas().equals(mtb.measure(lab, voxel_size=VS).to_pandas())
    summary = mtb.evaluate(da.from_array((lab > 0).astype(np.uint8) * 255, chunks=(8, 32, 32)), lazy)
    assert summary["semantic"]["whole_volume"]["f1"] == 1.0
    assert summary["inputs"]["prediction"]["path"] == "<prediction dask array>"


def test_arrays_without_a_voxel_size_or_not_3d_are_refused(image):
    with pytest.raises(InputError, match="voxel size unknown"):
        mtb.predict("starter", da.from_array(image), None, progress=False)
    with pytest.raises(InputError, match="expected a 3D"):
        mtb.segment(da.from_array(image[0]), None)
