"""Blockwise instances: exact partition equality with whole-volume cc3d, global sizes, watershed, resume, dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cc3d
import numpy as np
import pytest
import zarr
from scipy import ndimage

from masktwins_bio import cli
from masktwins_bio.errors import Cancelled, InputError
from masktwins_bio.io import open_volume, write_ome_zarr
from masktwins_bio.io.attributes import ome_attributes
from masktwins_bio.postprocess import label_components, segment

VOXEL = (30.0, 8.0, 8.0)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a bijection of ids, with 0 (background) fixed."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    one_to_one = len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    return one_to_one and bool(((pairs[0] == 0) == (pairs[1] == 0)).all())


def consecutive(labels: np.ndarray) -> bool:
    ids = np.unique(labels)
    return ids.tolist() == list(range(int(ids[0] == 0) ^ 1, len(ids) + int(ids[0] != 0)))


def random_mask(shape, seed, level=0.1) -> np.ndarray:
    return ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.2) > level


def prob_volume(tmp_path, prob: np.ndarray, name="prob.zarr", chunks=(4, 8, 8)):
    return write_ome_zarr(tmp_path / name, prob, voxel_size=VOXEL, chunks=chunks)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("block_shape", [(4, 8, 8), (5, 6, 7), (1, 37, 41)])
def test_cc_equals_whole_volume(connectivity, block_shape):
    """Random blobs cross many block faces, edges and corners."""
    for seed in range(2):
        mask = random_mask((17, 37, 41), seed)
        ours = label_components(mask, connectivity=connectivity, block_shape=block_shape)
        ref = cc3d.connected_components(mask, connectivity=connectivity)
        assert same_partition(ours, ref) and ours.max() == ref.max() and consecutive(ours)


@pytest.mark.parametrize("offset,expected", [
    ((1, 1, 1), {6: 2, 18: 2, 26: 1}),   # touch only at a block corner
    ((1, 1, 0), {6: 2, 18: 1, 26: 1}),   # touch only across a block edge
    ((1, 0, 0), {6: 1, 18: 1, 26: 1}),   # face neighbours
    ((0, 1, -1), {6: 2, 18: 1, 26: 1}),  # in-plane diagonal across a block edge
])
def test_objects_touching_across_corners_and_edges(offset, expected):
    """Two voxels in different blocks, adjacent by a face, edge or corner: merged exactly as cc3d does."""
    mask = np.zeros((8, 16, 16), bool)
    a = np.array([3, 7, 8])  # last z/y plane of block (0, 0, 1) with blocks of (4, 8, 8)
    mask[tuple(a)] = mask[tuple(a + offset)] = True
    for connectivity, n in expected.items():
        ours = label_components(mask, connectivity=connectivity, block_shape=(4, 8, 8))
        assert ours.max() == n == cc3d.connected_components(mask, connectivity=connectivity).max()


def test_snake_through_many_blocks_is_one_object():
    mask = np.zeros((12, 24, 24), bool)
    path = [(z, y, x) for z, y, x in zip(np.r_[0:12, 11:-1:-1], np.r_[0:24], np.r_[0:24])]
    for p in path:
        mask[p] = True  # a diagonal, 26-connected only
    ours = label_components(mask, connectivity=26, block_shape=(2, 4, 4))
    assert ours.max() == 1 and (ours > 0).sum() == len(path)
    assert label_components(mask, connectivity=6, block_shape=(2, 4, 4)).max() == len(path)


def test_size_filter_uses_global_sizes():
    mask = np.zeros((8, 16, 16), bool)
    mask[2:6, 6:10, 6:10] = True    # 64 voxels split over 8 blocks of 4 x 8 x 8 (8 voxels each)
    mask[0:2, 0:2, 12:16] = True    # 16 voxels inside one block
    ours = label_components(mask, block_shape=(4, 8, 8), min_size=20)
    assert ours.max() == 1 and (ours > 0).sum() == 64
    ref = cc3d.dust(cc3d.connected_components(mask), 20)
    assert same_partition(ours, ref)


def test_segment_zarr_matches_whole_volume_cc(tmp_path):
    smooth = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=(12, 40, 48)), 1.2)
    prob = np.clip(128 + (smooth - 0.1) * 800, 0, 255).astype(np.uint8)
    out = segment(prob_volume(tmp_path, prob), tmp_path / "labels.zarr", block_shape=(4, 16, 16), min_size=5,
                  progress=False)
    vol = open_volume(out)
    ref = cc3d.dust(cc3d.connected_components(prob >= 128, connectivity=26), 5, connectivity=26)
    assert vol.dtype == np.uint32 and vol.voxel_size == VOXEL and same_partition(vol[:], ref)
    prov = dict(zarr.open_group(str(out), mode="r").attrs)
    assert "image-label" in ome_attributes(prov) and prov["masktwins_bio"]["complete"] is True
    assert prov["masktwins_bio"]["n_instances"] == len(np.unique(ref)) - 1 > 3  # dust keeps gaps in ids
    assert not (out / ".masktwins_work").exists()


def test_segment_float_probabilities_and_threshold(tmp_path):
    prob = np.zeros((4, 16, 16), np.float32)
    prob[1:3, 2:6, 2:6] = 0.7
    prob[1:3, 10:14, 10:14] = 0.4
    path = prob_volume(tmp_path, prob)
    assert open_volume(segment(path, tmp_path / "a.zarr", min_size=0, progress=False))[:].max() == 1
    assert open_volume(segment(path, tmp_path / "b.zarr", threshold=0.3, min_size=0, progress=False))[:].max() == 2


def balls(shape=(24, 96, 120)):
    grid = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VOXEL)], indexing="ij")

    def ball(c, r):
        return sum((g - ci) ** 2 for g, ci in zip(grid, c)) <= r * r

    return ball((360, 380, 330), 170), ball((360, 390, 600), 150), ball((200, 150, 160), 60)


def test_watershed_splits_touching_objects_consistently(tmp_path):
    a, b, c = balls()
    assert (ndimage.binary_dilation(a) & b).any()  # a and b touch: one connected component
    path = prob_volume(tmp_path, np.where(a | b | c, 230, 10).astype(np.uint8), chunks=(4, 16, 24))
    whole = open_volume(segment(path, tmp_path / "one.zarr", method="watershed", block_shape=(24, 96, 120),
                                min_size=10, progress=False))[:]
    blocks = open_volume(segment(path, tmp_path / "many.zarr", method="watershed", block_shape=(12, 48, 48),
                                 min_size=10, progress=False))[:]
    assert open_volume(segment(path, tmp_path / "cc.zarr", progress=False))[:].max() == 2
    for labels in (whole, blocks):
        assert labels.max() == 3
        ids = [np.bincount(labels[m]).argmax() for m in (a, b, c)]
        assert len(set(ids)) == 3 and 0 not in ids
        assert all((labels[m] == i).mean() > 0.95 for m, i in zip((a, b, c), ids))
    assert same_partition(whole, blocks)


@pytest.mark.parametrize("method", ["cc", "watershed"])
def test_dask_equals_serial(tmp_path, method):
    from distributed import LocalCluster

    a, b, c = balls((12, 48, 60))
    path = prob_volume(tmp_path, np.where(a | b | c, 200, 0).astype(np.uint8))
    kw = dict(method=method, block_shape=(6, 24, 30), min_size=0, progress=False)
    serial = segment(path, tmp_path / "serial.zarr", **kw)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        dask = segment(path, tmp_path / "dask.zarr", executor="dask", address=cluster.scheduler_address, **kw)
    np.testing.assert_array_equal(open_volume(dask)[:], open_volume(serial)[:])


def test_label_components_to_zarr(tmp_path):
    mask = random_mask((10, 20, 24), 5)
    write_ome_zarr(tmp_path / "gt.zarr", mask.astype(np.uint8), voxel_size=VOXEL, kind="labels")
    out = label_components(tmp_path / "gt.zarr", tmp_path / "gt_labels.zarr", block_shape=(4, 8, 8))
    assert same_partition(open_volume(out)[:], cc3d.connected_components(mask))
    with pytest.raises(InputError, match="output path"):
        label_components(mask, executor="dask")


@pytest.mark.parametrize("prob,kwargs,match", [
    (np.full((4, 8, 8), 1.5, np.float32), {}, r"\[0, 1\]"),
    (np.full((4, 8, 8), np.nan, np.float32), {}, r"\[0, 1\]"),
    (np.zeros((4, 8, 8), np.int16), {}, "dtype int16"),
    (np.zeros((4, 8, 8), np.uint8), {"block_shape": (3, 8, 8), "chunks": (2, 8, 8)}, "not a multiple"),
    (np.zeros((4, 8, 8), np.uint8), {"threshold": 1.0}, "threshold"),
    (np.zeros((4, 8, 8), np.uint8), {"connectivity": 4}, "connectivity"),
    (np.zeros((4, 8, 8), np.uint8), {"method": "magic"}, "method"),
])
def test_bad_input(tmp_path, prob, kwargs, match):
    path = write_ome_zarr(tmp_path / "p.zarr", prob, voxel_size=VOXEL)
    with pytest.raises(InputError, match=match):
        segment(path, tmp_path / "out.zarr", progress=False, **kwargs)
    assert not (tmp_path / "out.zarr").exists()  # nothing half-written left behind


def test_output_exists_and_resume_checks(tmp_path, capsys):
    path = prob_volume(tmp_path, (random_mask((8, 16, 16), 0) * 200).astype(np.uint8))
    out = tmp_path / "l.zarr"
    assert cli.main(["segment", str(path), str(out), "--no-progress"]) == 0
    assert cli.main(["segment", str(path), str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["segment", str(path), str(out), "--no-progress", "--resume"]) == 0
    with pytest.raises(InputError, match="min_size"):
        segment(path, out, resume=True, min_size=3, progress=False)
    assert cli.main(["segment", str(path), str(out), "--no-progress", "--overwrite", "--min-size", "3"]) == 0


def _count(folder) -> int:
    return len([n for n in os.listdir(folder) if n.endswith(".npz")]) if folder.is_dir() else 0


@pytest.mark.parametrize("kill_in", ["label", "merge"])
def test_kill_and_resume_identical(tmp_path, kill_in):
    """kill -9 the CLI during a pass, --resume, compare with an uninterrupted run byte for byte."""
    mask = random_mask((8, 32, 32), 7, level=0.05)  # 64 blocks of 2 x 8 x 8
    path = prob_volume(tmp_path, (mask * 255).astype(np.uint8), chunks=(2, 8, 8))
    args = ["--block-shape", "2,8,8", "--min-size", "4", "--no-progress"]
    reference = tmp_path / "ref.zarr"
    assert cli.main(["segment", str(path), str(reference), *args]) == 0
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "masktwins_bio.cli", "segment", str(path), str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = out / ".masktwins_work" / f"done_{kill_in}"
    deadline = time.time() + 120
    while proc.poll() is None and _count(markers) < 5 and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= _count(markers) < 64, "the run should have been killed part-way"
    assert cli.main(["segment", str(path), str(out), *args, "--resume"]) == 0
    for level in ("0", "1"):
        if (reference / level).exists():
            np.testing.assert_array_equal(zarr.open_array(str(out / level))[:],
                                          zarr.open_array(str(reference / level))[:])
    assert same_partition(open_volume(out)[:], cc3d.dust(cc3d.connected_components(mask), 4))


@pytest.mark.parametrize("method,stop_in", [("cc", "label"), ("cc", "relabel"), ("watershed", "seeds")])
def test_should_stop_then_resume_identical(tmp_path, method, stop_in):
    """Stop through should_stop during a pass, resume=True, compare with an uninterrupted run byte for byte."""
    mask = random_mask((8, 32, 32), 7, level=0.05)
    path = prob_volume(tmp_path, (mask * 255).astype(np.uint8), chunks=(2, 8, 8))
    kw = {"method": method, "block_shape": (2, 16, 16), "min_size": 4, "progress": False}  # 16 blocks
    calls = []
    reference = segment(path, tmp_path / "ref.zarr", callback=lambda *a: calls.append(a), **kw)
    passes = (["segment: seeds"] if method == "watershed" else []) + ["segment: label", "segment: merge",
                                                                      "segment: relabel"]
    assert [c for c in calls if c[1] == 0] == [(p, 0, mask.size) for p in passes]
    assert [c for c in calls if c[1] == mask.size] == [(p, mask.size, mask.size) for p in passes]
    calls.clear()
    out = tmp_path / "out.zarr"

    def should_stop():
        return sum(desc == f"segment: {stop_in}" for desc, _, _ in calls) > 4  # start + 4 blocks

    with pytest.raises(Cancelled):
        segment(path, out, callback=lambda *a: calls.append(a), should_stop=should_stop, **kw)
    assert open_volume(out).attrs["masktwins_bio"]["complete"] is False
    assert 4 <= _count(out / ".masktwins_work" / f"done_{stop_in}") < 16
    segment(path, out, resume=True, **kw)
    assert open_volume(out).attrs["masktwins_bio"]["complete"] is True
    np.testing.assert_array_equal(open_volume(out)[:], open_volume(reference)[:])


def test_label_components_in_memory_hooks():
    mask = random_mask((6, 16, 16), 3)
    calls = []
    labels = label_components(mask, block_shape=(2, 8, 8), callback=lambda *a: calls.append(a))
    assert same_partition(labels, cc3d.connected_components(mask)) and calls[-1] == ("segment: relabel", 1536, 1536)
    with pytest.raises(Cancelled):
        label_components(mask, block_shape=(2, 8, 8), should_stop=lambda: True)


def test_label_pyramid_written_with_the_blocks_equals_finalize(tmp_path):
    """The relabel pass writes level 1 with each block; it equals the nearest-neighbour pyramid built afterwards."""
    from masktwins_bio.io import create_ome_zarr

    prob = (random_mask((2, 1030, 600), 3, 0.3) * 255).astype(np.uint8)
    out = segment(prob_volume(tmp_path, prob, chunks=(2, 128, 128)), tmp_path / "l.zarr", block_shape=(2, 256, 256),
                  chunks=(2, 128, 128), progress=False)
    labels = open_volume(out)[:]
    ref = create_ome_zarr(tmp_path / "ref.zarr", labels.shape, labels.dtype, VOXEL, chunks=(2, 128, 128),
                          kind="labels")
    ref.write((0, 0, 0), labels)
    assert ref.finalize() == [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
    for level in ("1", "2"):
        np.testing.assert_array_equal(zarr.open_array(str(out / level))[:],
                                      zarr.open_array(str(tmp_path / "ref.zarr" / level))[:])


def _ome_zarr_warnings(path, caplog) -> list[str]:
    """What ome-zarr-py's reader (``ome_zarr info``) warns about when it reads ``path``."""
    import logging

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ome_zarr"):
        list(Reader(parse_url(str(path)))())
    return [r.getMessage() for r in caplog.records if "version mismatch" not in r.getMessage()]


@pytest.mark.parametrize("ome_version", ["0.4", "0.5"])
def test_labels_go_where_ome_zarr_viewers_find_their_image(tmp_path, caplog, ome_version):
    """Issue 15: standalone labels point at the probability map they came from; labels written to
    <image>.zarr/labels/<name> are listed in the image's labels group; ome-zarr-py warns about neither."""
    prob = (np.random.default_rng(0).random((4, 32, 32)) > 0.7).astype(np.uint8) * 255
    p = write_ome_zarr(tmp_path / "prob.zarr", prob, voxel_size=(40, 8, 8), ome_version=ome_version)
    raw = write_ome_zarr(tmp_path / "raw.zarr", prob, voxel_size=(40, 8, 8), ome_version=ome_version)
    alone = segment(str(p), tmp_path / "labels.zarr", ome_version=ome_version)
    label_attrs = open_volume(str(alone)).attrs
    image_label = label_attrs.get("image-label") or label_attrs.get("ome", {}).get("image-label")
    assert image_label["source"]["image"] == "../prob.zarr"
    assert _ome_zarr_warnings(alone, caplog) == []
    nested = segment(str(p), raw / "labels" / "mito")  # the parent's OME-Zarr version wins
    also = segment(str(p), p / "labels" / "mito")  # the input's own labels group is allowed
    for image in (raw, p):
        group = zarr.open_group(str(image / "labels"), mode="r")
        names = group.attrs["labels"] if ome_version == "0.4" else group.attrs["ome"]["labels"]
        assert names == ["mito"] and group.metadata.zarr_format == (2 if ome_version == "0.4" else 3)
        assert _ome_zarr_warnings(image, caplog) == []
    np.testing.assert_array_equal(open_volume(str(nested))[:], open_volume(str(alone))[:])
    np.testing.assert_array_equal(open_volume(str(also))[:], open_volume(str(alone))[:])
    segment(str(p), raw / "labels" / "mito", overwrite=True)  # replacing keeps one entry
    group = zarr.open_group(str(raw / "labels"), mode="r")
    assert (group.attrs["labels"] if ome_version == "0.4" else group.attrs["ome"]["labels"]) == ["mito"]
    with pytest.raises(InputError, match="inside the input"):
        segment(str(p), p / "other" / "mito")
