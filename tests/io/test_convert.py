"""convert (streaming, atomic, exact round trips) and info."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from masktwins_bio.cli import main
from masktwins_bio.errors import InputError
from masktwins_bio.io import convert_volume, open_volume, volume_info
from masktwins_bio.io.attributes import ome_attributes


@pytest.fixture
def stack(rng):
    return rng.integers(0, 255, (9, 40, 36), dtype=np.uint8)


@pytest.mark.parametrize("ome_version", ["0.4", "0.5"])
@pytest.mark.parametrize("fmt", ["tif", "h5", "slices"])
def test_roundtrip_exact(tmp_path, stack, fmt, ome_version):
    if fmt == "tif":
        src = tmp_path / "v.tif"
        tifffile.imwrite(src, stack)
    elif fmt == "h5":
        src = f"{tmp_path / 'v.h5'}:/raw"
        with h5py.File(tmp_path / "v.h5", "w") as f:
            f["raw"] = stack
    else:
        from test_readers import write_slices

        src = write_slices(tmp_path / "slices", stack)
    out = convert_volume(src, tmp_path / "out.zarr", voxel_size=(50, 4.6, 4.6), ome_version=ome_version,
                         chunks=(4, 16, 16))
    vol = open_volume(out)
    np.testing.assert_array_equal(vol[:], stack)
    assert vol.voxel_size == pytest.approx((50, 4.6, 4.6)) and vol.chunks == (4, 16, 16)
    group = zarr.open_group(str(out), mode="r")
    assert group.metadata.zarr_format == (2 if ome_version == "0.4" else 3)


def test_ome_zarr_reader_accepts_output(tmp_path, stack):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    out = convert_volume(tmp_path / "in.tif" if tifffile.imwrite(tmp_path / "in.tif", stack) is None else None,
                         tmp_path / "o.zarr", voxel_size=(30, 8, 8), levels=2)
    node = next(iter(Reader(parse_url(str(out)))()))
    assert node.load(Multiscales) is not None
    assert [d.shape for d in node.data] == [(9, 40, 36), (9, 20, 18)]
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [30.0, 8.0, 8.0]
    np.testing.assert_array_equal(np.asarray(node.data[0]), stack)


def test_pyramid_downsamples_anisotropic_in_plane_first(tmp_path, stack):
    out = convert_volume(tmp_path / "t.tif" if tifffile.imwrite(tmp_path / "t.tif", stack) is None else None,
                         tmp_path / "p.zarr", voxel_size=(40, 5, 5), levels=3)
    attrs = ome_attributes(zarr.open_group(str(out), mode="r").attrs)
    scales = [d["coordinateTransformations"][0]["scale"] for d in attrs["multiscales"][0]["datasets"]]
    assert scales == [[40, 5, 5], [40, 10, 10], [40, 20, 20]]


def test_labels_binarize_and_nearest_pyramid(tmp_path, stack):
    tifffile.imwrite(tmp_path / "l.tif", stack)
    out = convert_volume(tmp_path / "l.tif", tmp_path / "l.zarr", binarize=128, voxel_size=(1, 1, 1))
    vol = open_volume(out, kind="labels")
    np.testing.assert_array_equal(vol[:], (stack >= 128).astype(np.uint8))
    assert "image-label" in ome_attributes(zarr.open_group(str(out), mode="r").attrs)


def test_negative_labels_rejected_and_nothing_left(tmp_path):
    tifffile.imwrite(tmp_path / "neg.tif", np.full((3, 8, 8), -1, np.int16))
    with pytest.raises(InputError, match="negative"):
        convert_volume(tmp_path / "neg.tif", tmp_path / "neg.zarr", labels=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.tif"]


def test_resample_on_conversion(tmp_path, stack):
    tifffile.imwrite(tmp_path / "r.tif", stack)
    out = convert_volume(tmp_path / "r.tif", tmp_path / "r.zarr", voxel_size=(50, 4, 4), resample_to=(50, 8, 8))
    vol = open_volume(out)
    assert vol.shape == (9, 20, 18) and vol.dtype == np.uint8 and vol.voxel_size == (50, 8, 8)


def test_memory_budget_caps_chunk_depth(tmp_path, stack):
    tifffile.imwrite(tmp_path / "m.tif", stack)
    out = convert_volume(tmp_path / "m.tif", tmp_path / "m.zarr", chunks=(8, 16, 16), memory_budget=3 * 40 * 36)
    assert open_volume(out).chunks == (3, 16, 16)


def test_existing_output_refused_then_overwritten(tmp_path, stack):
    tifffile.imwrite(tmp_path / "a.tif", stack)
    convert_volume(tmp_path / "a.tif", tmp_path / "a.zarr")
    with pytest.raises(InputError, match="already exists.*--overwrite"):
        convert_volume(tmp_path / "a.tif", tmp_path / "a.zarr")
    tifffile.imwrite(tmp_path / "b.tif", stack[::-1].copy())
    convert_volume(tmp_path / "b.tif", tmp_path / "a.zarr", overwrite=True)
    np.testing.assert_array_equal(open_volume(tmp_path / "a.zarr")[:], stack[::-1])


def test_interrupted_conversion_leaves_no_output(tmp_path, rng):
    from test_readers import write_slices

    folder = write_slices(tmp_path / "s", rng.integers(0, 255, (6, 32, 32), dtype=np.uint8))
    data = (folder / "4.png").read_bytes()
    (folder / "4.png").write_bytes(data[: len(data) // 2])  # corrupt a late slice: fails mid-way
    with pytest.raises(InputError, match="4.png"):
        convert_volume(folder, tmp_path / "o.zarr", chunks=(2, 32, 32))
    assert not any(p.name.endswith(".zarr") or ".partial" in p.name for p in tmp_path.iterdir())


def test_info_and_cli(tmp_path, stack, capsys):
    tifffile.imwrite(tmp_path / "i.tif", stack)
    assert main(["convert", str(tmp_path / "i.tif"), str(tmp_path / "i.zarr"), "--voxel-size", "50,4.6,4.6"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "i.zarr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [9, 40, 36] and info["voxel_size_nm"] == [50, 4.6, 4.6]
    assert info["value_range"] == [int(stack.min()), int(stack.max())]
    assert info == volume_info(tmp_path / "i.zarr")
    assert main(["info", str(tmp_path / "i.zarr")]) == 0
    assert "voxel size (nm)  50 x 4.6 x 4.6" in capsys.readouterr().out


def test_binarize_that_makes_everything_foreground_is_refused(tmp_path, stack):
    tifffile.imwrite(tmp_path / "m.tif", stack)
    with pytest.raises(InputError, match="--binarize 0: must be > 0"):
        convert_volume(tmp_path / "m.tif", tmp_path / "m.zarr", binarize=0)
    assert not (tmp_path / "m.zarr").exists()


def test_convert_accepts_no_progress_like_the_other_commands(tmp_path, capsys):
    """Issue 15: convert rejected --no-progress, which the other commands accept."""
    import tifffile

    from masktwins_bio.cli import main

    tifffile.imwrite(tmp_path / "s.tif", np.zeros((2, 8, 8), np.uint8))
    assert main(["convert", str(tmp_path / "s.tif"), str(tmp_path / "o.zarr"), "--voxel-size", "40,8,8",
                 "--no-progress"]) == 0
    assert "vox/s" not in capsys.readouterr().err


@pytest.mark.parametrize("dst", ["out.tif", "out.tiff", "out.h5", "out.h5:/prob/level0", "out.hdf5"])
@pytest.mark.parametrize("labels", [False, True])
def test_export_to_tiff_and_hdf5_round_trips_with_the_voxel_size(tmp_path, dst, labels):
    """Issue 15: probabilities and labels exported for tools that want TIFF or HDF5, voxel size included."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 7, (5, 20, 24)).astype(np.uint32) if labels else \
        rng.integers(0, 255, (5, 20, 24)).astype(np.uint8)
    src = tmp_path / "src.zarr"
    from masktwins_bio.io import write_ome_zarr

    write_ome_zarr(src, data, voxel_size=(40, 8, 8), kind="labels" if labels else "image")
    out = convert_volume(str(src), tmp_path / dst, labels=labels, chunks=(2, 8, 8))
    back = open_volume(str(tmp_path / dst))
    np.testing.assert_array_equal(back[:], data)
    assert back.voxel_size == (40.0, 8.0, 8.0) and back.dtype == data.dtype
    assert not list(tmp_path.glob(".*tmp"))  # the temporary sibling is gone
    if out.suffix.startswith(".tif"):
        with tifffile.TiffFile(out) as tf:  # what Fiji / Bio-Formats read
            assert tf.is_ome and 'PhysicalSizeX="8.0"' in tf.ome_metadata and 'PhysicalSizeXUnit="nm"' in tf.ome_metadata
    else:
        with h5py.File(out, "r") as f:
            ds = f[dst.partition(":")[2] or "/data"]
            np.testing.assert_allclose(ds.attrs["element_size_um"], [0.04, 0.008, 0.008])
    with pytest.raises(InputError, match="already exists"):
        convert_volume(str(src), tmp_path / dst, labels=labels)
    convert_volume(str(src), tmp_path / dst, labels=labels, overwrite=True)


def test_export_refusals(tmp_path):
    src = tmp_path / "src.zarr"
    from masktwins_bio.io import write_ome_zarr

    write_ome_zarr(src, np.zeros((2, 8, 8), np.uint8), voxel_size=(40, 8, 8))
    with pytest.raises(InputError, match="unknown output format"):
        convert_volume(str(src), tmp_path / "out.png")
    with pytest.raises(InputError, match="one resolution level"):
        convert_volume(str(src), tmp_path / "out.tif", levels=2)
    assert main(["convert", str(src), str(tmp_path / "x.n5"), "-q"]) == 2
    assert main(["convert", str(src), str(tmp_path / "x.n5"), "--format", "tiff", "-q"]) == 2  # names x.tif
    assert main(["convert", str(src), str(tmp_path / "x.tif"), "--format", "tiff", "-q"]) == 0
    assert open_volume(str(tmp_path / "x.tif")).format == "TIFF" and not (tmp_path / "x.n5").exists()
