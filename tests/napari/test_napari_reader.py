"""The napari reader: lazy layers with voxel size from Zarr/OME-Zarr, HDF5, TIFF and slice folders (no Qt needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
da = pytest.importorskip("dask.array")

from masktwins_bio.io import convert_volume, write_ome_zarr  # noqa: E402
from masktwins_bio.napari._reader import find_layers, get_reader  # noqa: E402

VS = (30.0, 8.0, 8.0)


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (6, 40, 36), dtype=np.uint8)
    labels = np.zeros(image.shape, np.uint32)
    labels[1:4, 5:15, 5:12] = 3
    labels[2:5, 20:30, 18:30] = 9
    return image, labels


def read(path):
    reader = get_reader(str(path))
    assert reader is not None, f"reader declined {path}"
    return reader(str(path))


def test_ome_zarr_pyramid_is_multiscale_and_lazy(tmp_path, volume):
    image, _ = volume
    path = write_ome_zarr(tmp_path / "raw.zarr", image, voxel_size=VS, chunks=(2, 16, 16), levels=3)
    [(data, kwargs, kind)] = read(path)
    assert kind == "image" and kwargs["multiscale"] is True
    assert len(data) == 3 and all(isinstance(level, da.Array) for level in data)
    assert data[0].shape == image.shape and data[1].shape[1] < image.shape[1]
    np.testing.assert_array_equal(np.asarray(data[0]), image)
    assert kwargs["scale"] == VS and kwargs["units"] == ("nm", "nm", "nm")
    assert kwargs["contrast_limits"] == (0, 255)
    assert kwargs["metadata"]["masktwins_bio"]["path"] == str(path)


@pytest.mark.parametrize("ome_version", ["0.4", "0.5"])
def test_ome_zarr_labels_become_label_layers(tmp_path, volume, ome_version):
    _, labels = volume
    path = write_ome_zarr(tmp_path / "seg.zarr", labels.astype(np.uint8), voxel_size=VS, kind="labels",
                          ome_version=ome_version)
    [(data, kwargs, kind)] = read(path)
    assert kind == "labels" and kwargs["scale"] == VS
    np.testing.assert_array_equal(np.asarray(data), labels)


def test_ome_image_with_labels_subgroup(tmp_path, volume):
    from masktwins_bio.io.ome_zarr import register_label

    image, labels = volume
    path = write_ome_zarr(tmp_path / "img.zarr", image, voxel_size=VS)
    register_label(path, "mito")  # the image's labels group, listing it, in the image's OME version
    write_ome_zarr(path / "labels" / "mito", labels, voxel_size=VS, kind="labels")
    layers = read(path)
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    assert layers[1][1]["name"].endswith("mito")


def test_plain_zarr_group_and_array(tmp_path, volume):
    import zarr

    image, labels = volume
    group = zarr.open_group(str(tmp_path / "container.zarr"), mode="w")
    raw = group.create_array("volumes/raw", shape=image.shape, dtype=image.dtype, chunks=(2, 20, 18))
    raw[:] = image
    raw.attrs["resolution"] = list(VS)
    group.create_array("volumes/labels", shape=labels.shape, dtype=labels.dtype)[:] = labels
    group.create_array("flat2d", shape=(10, 10), dtype="u1")
    layers = read(tmp_path / "container.zarr")
    kinds = {kw["name"]: kind for _, kw, kind in layers}
    assert kinds == {"container/volumes/labels": "labels", "container/volumes/raw": "image"}
    raw_layer = next(layer for layer in layers if layer[2] == "image")
    assert raw_layer[1]["scale"] == VS
    # a single array inside the store
    [(data, kwargs, kind)] = read(tmp_path / "container.zarr" / "volumes" / "raw")
    assert kind == "image" and data.chunksize == (2, 20, 18)


def test_converted_zarr(tmp_path, volume):
    import tifffile

    image, _ = volume
    tifffile.imwrite(tmp_path / "stack.tif", image)
    out = convert_volume(tmp_path / "stack.tif", tmp_path / "converted.zarr", voxel_size=VS)
    [(data, kwargs, kind)] = read(out)
    assert kind == "image" and kwargs["scale"] == VS
    np.testing.assert_array_equal(np.asarray(data[0] if kwargs.get("multiscale") else data), image)


def test_hdf5_one_layer_per_3d_dataset(tmp_path, volume):
    h5py = pytest.importorskip("h5py")
    image, labels = volume
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=image).attrs["resolution"] = VS
        f.create_dataset("annotations/mito", data=labels)
        f.create_dataset("thumbnail", data=image[0])  # 2D: not a layer
    layers = read(path)
    assert [(kw["name"], kind) for _, kw, kind in layers] == [("data annotations/mito", "labels"),
                                                             ("data raw", "image")]
    raw = layers[1]
    assert raw[1]["scale"] == VS and raw[1]["metadata"]["masktwins_bio"]["path"].endswith("data.h5:/raw")
    np.testing.assert_array_equal(np.asarray(raw[0]), image)


def test_tiff_stack_and_png_folder(tmp_path, volume):
    import tifffile
    from PIL import Image

    image, _ = volume
    tifffile.imwrite(tmp_path / "stack.tif", image)
    [(data, kwargs, kind)] = read(tmp_path / "stack.tif")
    assert kind == "image" and "scale" not in kwargs  # no voxel size in a plain TIFF
    np.testing.assert_array_equal(np.asarray(data), image)
    folder = tmp_path / "slices"
    folder.mkdir()
    for z, section in enumerate(image):
        Image.fromarray(section).save(folder / f"s{z}.png")
    [(data, kwargs, kind)] = read(folder)
    assert kind == "image" and data.shape == image.shape
    np.testing.assert_array_equal(np.asarray(data), image)


def test_foreign_paths_return_none(tmp_path, volume):
    import tifffile

    image, _ = volume
    (tmp_path / "notes.txt").write_text("hello")
    tifffile.imwrite(tmp_path / "flat.tif", image[0])
    (tmp_path / "fake.zarr").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    for name in ("notes.txt", "flat.tif", "fake.zarr", "empty", "broken.h5", "missing.zarr"):
        assert get_reader(str(tmp_path / name)) is None, name
        assert find_layers(tmp_path / name) == []
    assert get_reader([]) is None


def test_viewer_open_with_plugin(tmp_path, volume):
    from napari.components import ViewerModel

    import npe2

    npe2.PluginManager.instance().discover()  # napari.Viewer does this at start; a bare ViewerModel does not
    image, labels = volume
    a = write_ome_zarr(tmp_path / "a.zarr", image, voxel_size=VS)
    b = write_ome_zarr(tmp_path / "b.zarr", labels, voxel_size=VS, kind="labels")
    viewer = ViewerModel()
    viewer.open([str(a), str(b)], plugin="masktwins-bio", stack=False)
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]
    assert tuple(viewer.layers[0].scale) == VS
    assert [str(u) for u in viewer.layers[0].units] == ["nanometer"] * 3


def test_an_incomplete_store_says_so(tmp_path, volume, caplog):
    """Issue 12: readers never mistake an interrupted job's store for a finished one."""
    path = write_ome_zarr(tmp_path / "p.zarr", volume[0], voxel_size=VS, attrs={"task": "predict", "complete": False})
    with caplog.at_level("WARNING"):
        [(_, kwargs, _)] = read(path)
    assert kwargs["name"].endswith("(incomplete)") and "--resume" in caplog.text
