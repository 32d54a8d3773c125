"""measure: per-instance morphology equal to scikit-image (regionprops, whole-volume marching cubes), identical for
every block shape, written as CSV with a column sidecar; bad input refused in one line."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from skimage.measure import marching_cubes, mesh_surface_area, regionprops

from masktwins_bio import cli
from masktwins_bio.errors import InputError
from masktwins_bio.io import write_ome_zarr
from masktwins_bio.postprocess import measure

VS = (40.0, 8.0, 8.0)


def _scene(shape=(14, 60, 52), seed=0):
    """Ellipsoids of several sizes and orientations (one cut by the border), a tube, one-voxel specks."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint32)
    for i, (c, r) in enumerate([((6, 20, 18), (4, 12, 7)), ((8, 44, 38), (5, 9, 9)), ((0, 8, 45), (3, 6, 6))], 1):
        labels[((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 < 1] = i
    labels[3:11, 50:53, 5:30] = 4            # a tube
    labels[12, 2, 2] = 5                      # a speck
    labels[7, 30, 50] = 9                     # an id gap
    image = rng.normal(100, 10, shape).astype(np.float32) + 30 * (labels > 0)
    return labels, image


def _surface(mask):
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=VS, method="lewiner")
    return mesh_surface_area(verts, faces)


def test_columns_equal_regionprops_and_the_whole_volume_surface():
    labels, image = _scene()
    table = measure(labels, image, voxel_size=VS)
    props = {p.label: p for p in regionprops(labels.astype(np.int64), intensity_image=image, spacing=VS)}
    cols = table.columns
    assert cols["label"].tolist() == sorted(props)
    for i, label in enumerate(cols["label"]):
        p = props[label]
        assert cols["voxels"][i] == p.num_pixels
        assert cols["volume_um3"][i] == pytest.approx(p.area / 1e9)
        np.testing.assert_allclose([cols[f"centroid_{a}_nm"][i] for a in "zyx"], p.centroid, rtol=1e-9)
        np.testing.assert_allclose([cols[f"bbox_{a}0_nm"][i] for a in "zyx"], np.asarray(p.bbox[:3]) * VS)
        np.testing.assert_allclose([cols[f"bbox_{a}1_nm"][i] for a in "zyx"], np.asarray(p.bbox[3:]) * VS)
        assert cols["axis_major_nm"][i] == pytest.approx(p.axis_major_length, rel=1e-6, abs=1e-6)
        assert cols["axis_minor_nm"][i] == pytest.approx(p.axis_minor_length, rel=1e-6, abs=1e-6)
        assert cols["mean_intensity"][i] == pytest.approx(p.intensity_mean, rel=1e-6)
        assert cols["surface_um2"][i] == pytest.approx(_surface(labels == label) / 1e6, rel=1e-9)
    border = dict(zip(cols["label"].tolist(), cols["touches_border"].tolist()))
    assert border[3] and not border[1] and not border[2]


@pytest.mark.parametrize("block_shape", [(4, 16, 16), (5, 7, 11), (1, 60, 52), (14, 60, 52)])
def test_blockwise_equals_one_block(block_shape):
    labels, image = _scene()
    ref = measure(labels, image, voxel_size=VS, block_shape=labels.shape).columns
    got = measure(labels, image, voxel_size=VS, block_shape=block_shape).columns
    assert list(got) == list(ref)
    for name in ref:
        np.testing.assert_allclose(got[name].astype(float), ref[name].astype(float), rtol=1e-9, err_msg=name)


def test_a_sphere_is_round_and_an_empty_volume_gives_an_empty_table():
    zz, yy, xx = np.indices((40, 40, 40))
    ball = ((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 15 ** 2).astype(np.uint8)
    cols = measure(ball, voxel_size=(5, 5, 5)).columns
    assert cols["elongation"][0] == pytest.approx(1.0, abs=0.01)
    assert 0.9 < cols["sphericity"][0] <= 1.0
    assert cols["axis_major_nm"][0] == pytest.approx(2 * 15 * 5, rel=0.03)
    assert cols["volume_um3"][0] == pytest.approx(4 / 3 * math.pi * (15 * 5) ** 3 / 1e9, rel=0.02)
    empty = measure(np.zeros((4, 8, 8), np.uint16), voxel_size=VS)
    assert len(empty) == 0 and "mean_intensity" not in empty.columns


def test_select_keeps_the_rows_within_bounds():
    labels, image = _scene()
    table = measure(labels, image, voxel_size=VS)
    cols = table.columns
    big = table.select(voxels=(10, None))
    assert list(big.columns["label"]) == [i for i, n in zip(cols["label"], cols["voxels"]) if n >= 10]
    inner = table.select(touches_border=False, volume_um3=(None, float(np.max(cols["volume_um3"]))))
    assert not inner.columns["touches_border"].any() and len(inner) == int((~cols["touches_border"]).sum())
    assert set(big.columns) == set(cols) and big.voxel_size == table.voxel_size
    assert len(table.select(voxels=(1e9, None))) == 0
    with pytest.raises(InputError, match="'touches' is not a numeric column"):
        table.select(touches=(0, 1))


def test_save_writes_csv_and_sidecar_atomically_and_refuses_an_existing_table(tmp_path):
    labels, image = _scene()
    table = measure(labels, image, voxel_size=VS)
    out = table.save(tmp_path / "mito.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(table) and float(rows[0]["volume_um3"]) == pytest.approx(table.columns["volume_um3"][0])
    side = json.loads((tmp_path / "mito.csv.json").read_text())
    assert side["rows"] == len(table) and "surface_um2" in side["columns"] and side["voxel_size_nm"] == list(VS)
    with pytest.raises(InputError, match="table already exists; pass --overwrite"):
        table.save(out)
    table.save(out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mito.csv", "mito.csv.json"]  # no temporary leftovers
    (tmp_path / "other.csv.json").write_text("{}")  # somebody's file where the sidecar would go: kept
    with pytest.raises(InputError, match="table sidecar already exists"):
        table.save(tmp_path / "other.csv")
    assert (tmp_path / "other.csv.json").read_text() == "{}" and not (tmp_path / "other.csv").exists()
    assert table.to_pandas().shape == (len(table), len(table.columns))


@pytest.mark.parametrize("labels, kwargs, message", [
    (np.ones((2, 4, 4), np.uint8), {}, "voxel size unknown"),
    (np.ones((2, 4, 4), np.float32), {"voxel_size": VS}, "needs integer instance ids"),
    (-np.ones((2, 4, 4), np.int16), {"voxel_size": VS}, "negative labels"),
    (np.ones((2, 4, 4), np.uint8), {"voxel_size": VS, "image": np.zeros((2, 4, 5), np.uint8)},
     "voxel size is unknown; give it with --image-voxel-size"),
])
def test_bad_input_is_refused(labels, kwargs, message):
    image = kwargs.pop("image", None)
    with pytest.raises(InputError, match=message):
        measure(labels, image, **kwargs)


def test_cli_measure(tmp_path, capsys, refusal):
    labels, image = _scene()
    write_ome_zarr(tmp_path / "inst.zarr", labels, voxel_size=VS, kind="labels", chunks=(7, 30, 26))
    write_ome_zarr(tmp_path / "raw.zarr", image, voxel_size=VS)
    out = tmp_path / "t.csv"
    assert cli.main(["measure", str(tmp_path / "inst.zarr"), "--image", str(tmp_path / "raw.zarr"), "--out", str(out),
                     "--no-progress"]) == 0
    assert "6 instances" in capsys.readouterr().out
    assert len(list(csv.DictReader(out.open()))) == 6
    assert cli.main(["measure", str(tmp_path / "inst.zarr"), "--out", str(out)]) == 2
    refusal("already exists", "--overwrite")
    assert cli.main(["measure", str(tmp_path / "inst.zarr"), "--out", str(tmp_path / "t.txt")]) == 2
    refusal(".csv or .parquet")


def test_progress_and_stop_hooks():
    """The napari Inspect widget runs measure in a worker with these hooks."""
    from masktwins_bio.errors import Cancelled

    labels, _ = _scene()
    calls = []
    measure(labels, voxel_size=VS, block_shape=(7, 60, 52), callback=lambda *a: calls.append(a))
    assert calls[0] == ("measure", 0, labels.size) and calls[-1] == ("measure", labels.size, labels.size)
    with pytest.raises(Cancelled):
        measure(labels, voxel_size=VS, should_stop=lambda: True)
