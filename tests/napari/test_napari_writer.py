"""The napari writers: label layers to OME-Zarr label images, images to OME-Zarr, voxel size from the scale."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from masktwins_bio.errors import InputError  # noqa: E402
from masktwins_bio.io import open_volume  # noqa: E402
from masktwins_bio.io.attributes import ome_attributes  # noqa: E402
from masktwins_bio.napari._reader import get_reader  # noqa: E402
from masktwins_bio.napari._writer import write_image, write_labels  # noqa: E402

VS = (30.0, 8.0, 8.0)


@pytest.fixture
def labels():
    data = np.zeros((5, 24, 20), np.uint32)
    data[1:3, 4:10, 4:9] = 7
    data[2:5, 12:20, 10:18] = 2
    return data


def test_labels_round_trip_through_viewer_save(tmp_path, labels):
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()
    viewer = ViewerModel()
    viewer.add_labels(labels, name="mito", scale=VS, units=("nm", "nm", "nm"))
    out = tmp_path / "mito.zarr"
    written = viewer.layers.save(str(out), selected=False, plugin="masktwins-bio")
    assert written == [str(out)]
    vol = open_volume(out, kind="labels")
    assert vol.voxel_size == VS and vol.dtype == labels.dtype
    assert "image-label" in ome_attributes(vol.attrs)  # an OME-Zarr label image
    np.testing.assert_array_equal(vol[:], labels)
    [(_, kwargs, kind)] = get_reader(str(out))(str(out))
    assert kind == "labels" and kwargs["scale"] == VS


def test_image_round_trip_and_units(tmp_path):
    image = np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32)
    # micrometre units are converted to nm; a pixel-unit layer with scale 1 has no voxel size
    [out] = write_image(str(tmp_path / "img"), image, {"name": "img", "scale": (0.03, 0.008, 0.008),
                                                          "units": ("micrometer",) * 3})
    assert out.endswith("img.zarr")
    vol = open_volume(out)
    np.testing.assert_allclose(vol.voxel_size, VS)
    np.testing.assert_array_equal(vol[:], image)
    [out2] = write_image(str(tmp_path / "nosize.zarr"), image, {"name": "x", "scale": (1, 1, 1)})
    assert ome_attributes(open_volume(out2).attrs)["multiscales"][0]["metadata"]["voxel_size_known"] is False


def test_writer_errors_and_overwrite(tmp_path, labels):
    with pytest.raises(InputError, match="3D"):
        write_labels(str(tmp_path / "flat.zarr"), labels[0], {"name": "flat"})
    with pytest.raises(InputError, match="integers"):
        write_labels(str(tmp_path / "float.zarr"), labels.astype(np.float32), {"name": "f"})
    (tmp_path / "taken.zarr").write_text("not a store")
    with pytest.raises(InputError, match="not a Zarr store"):
        write_labels(str(tmp_path / "taken.zarr"), labels, {"name": "t"})
    out = tmp_path / "again.zarr"
    write_labels(str(out), labels, {"name": "a", "scale": VS})
    write_labels(str(out), labels * 2, {"name": "a", "scale": VS})  # an existing store is replaced
    np.testing.assert_array_equal(open_volume(out)[:], labels * 2)
