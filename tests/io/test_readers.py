"""open_volume: every supported format, voxel-size metadata, and one-line errors for bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume, write_ome_zarr


@pytest.fixture
def stack(rng):
    return rng.integers(0, 255, (5, 20, 24), dtype=np.uint8)


def write_slices(folder, stack, fmt="png", modes=None):
    folder.mkdir(parents=True, exist_ok=True)
    for z, sl in enumerate(stack):
        path = folder / f"{z}.{fmt}"  # numeric names: natural sort must give 0, 1, ..., 10
        if fmt == "png":
            im = Image.fromarray(sl)
            mode = (modes or {}).get(z)
            if mode == "1":
                im = Image.fromarray(sl > 0)
            elif mode == "RGB":
                im = Image.fromarray(np.stack([sl] * 3, -1))
            elif mode == "RGBA":
                im = Image.fromarray(np.stack([sl] * 3 + [np.full_like(sl, 255)], -1))
            im.save(path)
        else:
            tifffile.imwrite(path, sl)
    return folder


@pytest.mark.parametrize("ome_version", ["0.4", "0.5"])
def test_ome_zarr_roundtrip_with_voxel_size(tmp_path, stack, ome_version):
    write_ome_zarr(tmp_path / "v.zarr", stack, voxel_size=(50, 4.6, 4.6), ome_version=ome_version, chunks=(2, 8, 8))
    vol = open_volume(tmp_path / "v.zarr")
    assert vol.shape == stack.shape and vol.dtype == np.uint8
    assert vol.voxel_size == pytest.approx((50, 4.6, 4.6))
    assert vol.format == f"OME-Zarr {ome_version}"
    np.testing.assert_array_equal(vol[:], stack)
    np.testing.assert_array_equal(vol[1:3, 5:9, 2], stack[1:3, 5:9, 2])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_zarr_array_and_group(tmp_path, stack, zarr_format):
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=stack.shape, dtype=stack.dtype, chunks=(2, 10, 10),
                            zarr_format=zarr_format)
    arr[:] = stack
    arr.attrs["resolution"] = [40, 8, 8]
    vol = open_volume(tmp_path / "a.zarr")
    assert vol.voxel_size == (40, 8, 8) and vol.chunks == (2, 10, 10)
    np.testing.assert_array_equal(vol[:], stack)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=zarr_format)
    g.create_array("raw", data=stack, chunks=(5, 20, 24))
    g.create_array("labels", data=stack > 100, chunks=(5, 20, 24))
    with pytest.raises(InputError, match="several arrays.*labels, raw"):
        open_volume(tmp_path / "g.zarr")
    np.testing.assert_array_equal(open_volume(tmp_path / "g.zarr" / "raw")[:], stack)


def test_hdf5_with_key_and_element_size(tmp_path, stack):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("volumes/raw", data=stack, chunks=(1, 20, 24))
        d.attrs["element_size_um"] = [0.03, 0.008, 0.008]
        f.create_dataset("volumes/labels", data=(stack > 100).astype(np.uint8))
    vol = open_volume(f"{path}:/volumes/raw")
    assert vol.voxel_size == pytest.approx((30, 8, 8)) and vol.format == "HDF5"
    np.testing.assert_array_equal(vol[:], stack)
    with pytest.raises(InputError, match=r"needs a dataset key.*/volumes/labels"):
        open_volume(path)
    with pytest.raises(InputError, match=r"no dataset '/nope'.*/volumes/raw"):
        open_volume(f"{path}:/nope")


def test_hdf5_single_dataset_needs_no_key(tmp_path, stack):
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["raw"] = stack
    np.testing.assert_array_equal(open_volume(tmp_path / "one.h5")[:], stack)


def test_multipage_tiff_with_imagej_voxel_size(tmp_path, stack):
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 0.0046, 1 / 0.0046),
                     metadata={"spacing": 0.05, "unit": "um"})
    vol = open_volume(path)
    assert vol.voxel_size == pytest.approx((50, 4.6, 4.6), rel=1e-4)
    np.testing.assert_array_equal(vol[:], stack)
    np.testing.assert_array_equal(vol[2:4, 3:7, 1:5], stack[2:4, 3:7, 1:5])


@pytest.mark.parametrize("compression", ["zlib", "lzw", "zstd"])  # lzw and zstd need imagecodecs (a dependency)
def test_compressed_tiff_is_read_page_by_page(tmp_path, stack, compression):
    tifffile.imwrite(tmp_path / "c.tif", stack, compression=compression)
    np.testing.assert_array_equal(open_volume(tmp_path / "c.tif")[1:4], stack[1:4])


def test_missing_codec_is_named(tmp_path, stack, monkeypatch):
    """Without imagecodecs an LZW TIFF said "the file may be corrupt"; the message now names the package."""
    tifffile.imwrite(tmp_path / "c.tif", stack, compression="lzw")
    vol = open_volume(tmp_path / "c.tif")
    page = type(tifffile.TiffFile(tmp_path / "c.tif").pages[0])

    def no_codec(self, *args, **kwargs):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(page, "asarray", no_codec)
    with pytest.raises(InputError, match="needs the imagecodecs package: pip install imagecodecs"):
        vol[0:1]


def test_png_slice_folder_natural_order_and_mixed_modes(tmp_path, rng):
    stack = rng.integers(0, 255, (12, 10, 14), dtype=np.uint8)
    folder = write_slices(tmp_path / "slices", stack)
    np.testing.assert_array_equal(open_volume(folder)[:], stack)  # 10.png after 9.png
    labels = (stack > 128).astype(np.uint8) * 255
    lab_folder = write_slices(tmp_path / "labels", labels, modes={1: "1", 3: "RGB", 4: "RGBA"})
    vol = open_volume(lab_folder, kind="labels")
    np.testing.assert_array_equal(vol[:] > 0, labels > 0)  # 1-bit slices read as 0/255 like the 8-bit ones
    assert set(np.unique(vol[:])) <= {0, 255}


def test_tiff_slice_folder(tmp_path, stack):
    np.testing.assert_array_equal(open_volume(write_slices(tmp_path / "t", stack, "tif"))[:], stack)


def test_roi_and_voxel_size_override(tmp_path, stack):
    write_ome_zarr(tmp_path / "v.zarr", stack, voxel_size=(50, 4, 4))
    vol = open_volume(tmp_path / "v.zarr", voxel_size=(30, 8, 8), roi="1:3, :, 4:")
    assert vol.voxel_size == (30, 8, 8) and vol.shape == (2, 20, 20)
    np.testing.assert_array_equal(vol[:], stack[1:3, :, 4:])


# -- bad input: one line naming the path and the fix ----------------------------------------------------------


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as e:
        open_volume(tmp_path / "nope.zarr")
    assert "nope.zarr" in _one_line(e) and "no such file" in str(e.value)


def test_unsupported_extension(tmp_path):
    (tmp_path / "v.nii").write_bytes(b"x")
    with pytest.raises(InputError, match=r"v.nii: unsupported format '.nii'; use Zarr"):
        open_volume(tmp_path / "v.nii")


@pytest.mark.parametrize("how", ["tiff", "zarr", "h5", "png"])
def test_2d_input_rejected(tmp_path, how):
    img = np.zeros((20, 30), np.uint8)
    if how == "tiff":
        path = tmp_path / "a.tif"
        tifffile.imwrite(path, img)
    elif how == "zarr":
        path = tmp_path / "a.zarr"
        zarr.create_array(str(path), data=img)
    elif how == "h5":
        path = tmp_path / "a.h5"
        with h5py.File(path, "w") as f:
            f["x"] = img
    else:
        path = tmp_path / "a.png"
        Image.fromarray(img).save(path)
    with pytest.raises(InputError) as e:
        open_volume(path)
    assert "2D" in _one_line(e) and "a." in str(e.value)


def test_float_labels_rejected(tmp_path):
    write_ome_zarr(tmp_path / "l.zarr", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(InputError, match="labels must be integers"):
        open_volume(tmp_path / "l.zarr", kind="labels")


def test_empty_slice_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG or TIFF slices"):
        open_volume(tmp_path / "empty")


def test_slices_of_different_shapes(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "0.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "1.png")
    with pytest.raises(InputError, match=r"different shapes \(0.png: \(10, 10\), 1.png: \(10, 12\)\)"):
        open_volume(folder)


def test_corrupt_png_header(tmp_path):
    folder = write_slices(tmp_path / "s", np.zeros((3, 8, 8), np.uint8))
    (folder / "1.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"1.png: is not a readable image"):
        open_volume(folder)


def test_truncated_png_detected_when_read(tmp_path, rng):
    folder = write_slices(tmp_path / "s", rng.integers(0, 255, (3, 64, 64), dtype=np.uint8))
    data = (folder / "2.png").read_bytes()
    (folder / "2.png").write_bytes(data[: len(data) // 2])
    vol = open_volume(folder)  # the header is fine
    with pytest.raises(InputError, match=r"2.png: cannot be decoded"):
        vol[:]


def test_corrupt_tiff(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match=r"bad.tif: cannot be read as TIFF"):
        open_volume(tmp_path / "bad.tif")


def test_non_positive_voxel_size(tmp_path, stack):
    write_ome_zarr(tmp_path / "v.zarr", stack, voxel_size=(50, 4, 4))
    with pytest.raises(InputError, match="must be positive"):
        open_volume(tmp_path / "v.zarr", voxel_size=(0, 4, 4))


def test_patch_reads_of_slice_folders_decode_each_section_once(tmp_path, rng, monkeypatch):
    import masktwins_bio.io.readers as readers

    stack = rng.integers(0, 255, (4, 32, 32), dtype=np.uint8)
    vol = open_volume(write_slices(tmp_path / "s", stack))
    calls = []
    real = readers._read_slice
    monkeypatch.setattr(readers, "_read_slice", lambda p, k: calls.append(p) or real(p, k))
    for _ in range(3):
        np.testing.assert_array_equal(vol[0:4, 2:10, 5:9], stack[0:4, 2:10, 5:9])
    assert len(calls) == 4  # patches: each section decoded once, then served from the cache
    vol[:]  # whole sections stream through without filling the cache further
    assert len(calls) == 4


@pytest.mark.parametrize("unit", [None, "pixel"])
def test_ome_zarr_axes_without_a_length_unit_have_an_unknown_voxel_size(tmp_path, unit):
    """Issue 15: a unitless scale was read as nm ('1 x 1 x 1 nm'), and predict shrank 8 x 600 x 600 to 1 x 75 x 75."""
    import zarr

    from masktwins_bio.io import open_volume

    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(2, 8, 8), dtype="uint8")
    axes = [{"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]
    vol = open_volume(str(tmp_path / "v.zarr"))
    assert vol.voxel_size is None
    assert open_volume(str(tmp_path / "v.zarr"), voxel_size=(40, 8, 8)).voxel_size == (40, 8, 8)


def test_a_volume_written_without_a_voxel_size_reads_back_unknown(tmp_path):
    from masktwins_bio.io import open_volume, write_ome_zarr

    path = write_ome_zarr(tmp_path / "v.zarr", np.zeros((2, 8, 8), np.uint8), voxel_size=None)
    assert open_volume(str(path)).voxel_size is None
