"""Lazy views: crop, resampling consistency across blocks, pickling, edge-replicating reads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from skimage.transform import resize

from masktwins_bio.io import open_volume, read_region, write_ome_zarr
from masktwins_bio.io.volume import Volume


@pytest.fixture
def vol(tmp_path, rng):
    data = rng.integers(0, 255, (10, 48, 40), dtype=np.uint8)
    write_ome_zarr(tmp_path / "v.zarr", data, voxel_size=(40, 5, 5), chunks=(3, 16, 16))
    return open_volume(tmp_path / "v.zarr"), data


@pytest.mark.parametrize("target", [(40, 10, 10), (20, 5, 5), (30, 7, 7), (50, 4, 4)])
def test_resampled_blocks_equal_whole(vol, target):
    v, _ = vol
    r = v.resampled(target)
    whole = r[:]
    assert whole.shape == r.shape
    for sl in [(slice(0, 3), slice(5, 17), slice(0, 9)), (slice(2, None), slice(None), slice(7, None))]:
        np.testing.assert_allclose(r[sl], whole[sl], atol=1e-4)


def test_downsampling_close_to_skimage_antialiased(vol):
    v, data = vol
    r = v.resampled((40, 10, 10))[:]
    ref = resize(data.astype(np.float32), r.shape, order=1, anti_aliasing=True, preserve_range=True, mode="edge")
    assert np.abs(r - ref)[:, 2:-2, 2:-2].mean() < 3.0  # same filter, slightly different boundary handling


def test_label_resampling_is_nearest(tmp_path):
    lab = np.zeros((4, 16, 16), np.uint16)
    lab[:, 4:12, 4:12] = 7
    write_ome_zarr(tmp_path / "l.zarr", lab, voxel_size=(40, 5, 5), kind="labels")
    r = open_volume(tmp_path / "l.zarr", kind="labels").resampled((40, 10, 10))
    assert r.dtype == np.uint16 and set(np.unique(r[:])) == {0, 7}


def test_crop_and_pickle(vol):
    v, data = vol
    c = v.crop((slice(2, 5), slice(0, 20), slice(10, 30)))
    c2 = pickle.loads(pickle.dumps(c.resampled((40, 10, 10))))
    np.testing.assert_array_equal(c[:], data[2:5, :20, 10:30])
    assert c2.shape == (3, 10, 10)


def test_read_region_replicates_edges():
    a = np.arange(24).reshape(2, 3, 4)
    out = read_region(a, (-1, 0, 2), (3, 2, 6))
    expected = np.pad(a, ((1, 1), (0, 0), (0, 2)), mode="edge")[0:4, 0:2, 2:6]
    np.testing.assert_array_equal(out, expected)


def test_volume_indexing_squeezes_integers():
    v = Volume(np.arange(60).reshape(3, 4, 5), (1.0, 1.0, 1.0))
    assert v[1].shape == (4, 5) and v[1, 2, 3] == 33 and v[..., 1].shape == (3, 4)


def test_resampled_onto_an_explicit_shape_keeps_voxel_centres_and_replicates_the_edge():
    from masktwins_bio.io import Volume

    base = np.arange(16, dtype=np.float32).reshape(16, 1, 1) * np.ones((1, 4, 4), np.float32)
    vol = Volume(array=base, voxel_size=(50.0, 5.0, 5.0), path="<a>", kind="image")
    fine = vol.resampled((5.0, 5.0, 5.0), shape=(165, 4, 4))  # 800 nm of data onto an 825 nm grid
    assert fine.shape == (165, 4, 4)
    default = vol.resampled((5.0, 5.0, 5.0))
    assert default.shape == (160, 4, 4)
    np.testing.assert_array_equal(fine[:160], default[:])  # same centres where both grids have voxels
    np.testing.assert_array_equal(fine[160:], np.full((5, 4, 4), 15.0, np.float32))  # beyond the extent: the edge
    labels = Volume(array=base.astype(np.uint8), voxel_size=(50.0, 5.0, 5.0), path="<l>", kind="labels")
    assert labels.resampled((5.0, 5.0, 5.0), shape=(165, 4, 4))[164, 0, 0] == 15


def test_in_memory_holds_the_lazy_views_values_and_reads_storage_no_more(vol, tmp_path):
    v, data = vol
    r = v.resampled((40, 10, 10))
    mem = r.in_memory()
    assert isinstance(mem.array, np.ndarray) and mem.shape == r.shape and mem.voxel_size == r.voxel_size
    assert mem.format.endswith("in memory") and mem.in_memory() is mem
    np.testing.assert_allclose(mem[2:5, 3:9, 1:7], r[2:5, 3:9, 1:7], atol=1e-4)
    raw = v.in_memory()
    np.testing.assert_array_equal(raw[:], data)
    import shutil

    shutil.rmtree(tmp_path / "v.zarr")  # the copy no longer needs the file
    np.testing.assert_array_equal(raw[1:3], data[1:3])
