"""Proofreading: each operation against a numpy reference, chunk-local edits, undo/redo, saving in place (with the
pyramid and provenance) or to a copy, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from masktwins_bio.cli import main
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume, write_ome_zarr
from masktwins_bio.postprocess import Proofreader


@pytest.fixture
def labels(tmp_path):
    lab = np.zeros((6, 40, 48), np.uint32)
    lab[1:5, 5:15, 5:15] = 1
    lab[1:5, 5:15, 15:25] = 2  # touches 1: a false split
    lab[1:5, 25:35, 5:40] = 3  # a long one, to be split
    lab[0:2, 0:3, 0:3] = 4  # small and on the border
    lab[2:4, 18:21, 40:43] = 7  # small, inside
    path = write_ome_zarr(tmp_path / "labels.zarr", lab, voxel_size=(40, 8, 8), kind="labels", chunks=(2, 16, 16))
    return path, lab


@pytest.mark.parametrize("source", ["store", "array"])
def test_operations_equal_the_numpy_reference(labels, source):
    path, lab = labels
    pr = Proofreader(str(path) if source == "store" else lab.copy(), voxel_size=(40, 8, 8), chunks=(2, 16, 16))
    assert pr.ids().tolist() == [1, 2, 3, 4, 7] and pr.voxels(3) == lab[lab == 3].size
    assert pr.touches_border(4) and not pr.touches_border(7)
    ref = lab.copy()
    pr.merge([2, 1])
    ref[ref == 2] = 1
    np.testing.assert_array_equal(pr[:], ref)
    pr.delete([7])
    ref[ref == 7] = 0
    np.testing.assert_array_equal(pr[:], ref)
    edit = pr.filter(touching_border=True)
    assert edit.args["ids"] == [4]
    ref[ref == 4] = 0
    np.testing.assert_array_equal(pr[:], ref)
    # split the long instance at two seeds near its ends: two parts of about half its size, cut in the middle
    edit = pr.split(3, [(3, 30, 7), (3, 30, 38)])
    (new,) = edit.args["new_ids"]
    out = pr[:]
    part_a, part_b = (out == 3), (out == new)
    assert part_a.sum() + part_b.sum() == (ref == 3).sum() and abs(int(part_a.sum()) - int(part_b.sum())) < 0.3 * (
        ref == 3).sum()
    assert np.nonzero(part_a)[2].max() < np.nonzero(part_b)[2].min()  # the cut is across the tube
    np.testing.assert_array_equal(out[(ref != 3)], ref[(ref != 3)])  # nothing else changed
    assert len(edit.after) < len(list(pr._chunk_ids()))  # only the instance's chunks were rewritten


def test_undo_redo_and_history(labels):
    path, lab = labels
    pr = Proofreader(str(path))
    pr.merge([1, 2])
    pr.delete([3])
    assert [h["op"] for h in pr.history] == ["merge", "delete"]
    pr.undo()
    assert 3 in pr.ids() and [h["op"] for h in pr.history] == ["merge"]
    pr.undo()
    np.testing.assert_array_equal(pr[:], lab)
    assert pr.undo() is None
    pr.redo()
    assert 2 not in pr.ids()
    pr.delete([4])  # a new edit clears what could be redone
    assert pr.redo() is None
    np.testing.assert_array_equal(open_volume(str(path))[:], lab)  # nothing on disk until save


def test_save_in_place_rebuilds_the_pyramid_and_records_the_edits(labels):
    path, lab = labels
    pr = Proofreader(str(path))
    pr.merge([1, 2])
    pr.filter(min_voxels=20)
    assert pr.save() == path
    ref = lab.copy()
    ref[ref == 2] = 1
    ref[np.isin(ref, [4, 7])] = 0
    vol = open_volume(str(path))
    np.testing.assert_array_equal(vol[:], ref)
    group = zarr.open_group(str(path), mode="r")
    for level in list(group.array_keys())[1:]:  # every pyramid level shows the edit (no stale id 2)
        assert 2 not in np.unique(group[level][:])
    prov = vol.attrs["masktwins_bio"]
    assert prov["complete"] is True and [e["op"] for e in prov["proofreading"][0]["edits"]] == ["merge", "filter"]
    assert not pr.modified
    # a second session appends to the record
    pr2 = Proofreader(str(path))
    pr2.delete([3])
    pr2.save()
    assert len(open_volume(str(path)).attrs["masktwins_bio"]["proofreading"]) == 2


def test_save_to_a_copy_leaves_the_original(labels, tmp_path):
    path, lab = labels
    pr = Proofreader(str(path))
    pr.delete([3])
    out = pr.save(tmp_path / "copy.zarr")
    ref = lab.copy()
    ref[ref == 3] = 0
    np.testing.assert_array_equal(open_volume(str(out))[:], ref)
    np.testing.assert_array_equal(open_volume(str(path))[:], lab)
    assert open_volume(str(out)).voxel_size == (40.0, 8.0, 8.0)


@pytest.mark.parametrize("call, match", [
    (lambda pr: pr.merge([1]), "at least two"),
    (lambda pr: pr.merge([1, 99]), "no instance with id 99"),
    (lambda pr: pr.delete([0]), "background"),
    (lambda pr: pr.split(3, [(3, 30, 7)]), "at least two seed"),
    (lambda pr: pr.split(3, [(3, 30, 7), (0, 0, 40)]), "not on instance 3"),
])
def test_bad_edits_are_refused_and_change_nothing(labels, call, match):
    path, lab = labels
    pr = Proofreader(str(path))
    with pytest.raises(InputError, match=match):
        call(pr)
    np.testing.assert_array_equal(pr[:], lab)
    assert pr.history == []


def test_cli_proofread(labels, tmp_path, capsys):
    path, lab = labels
    out = tmp_path / "fixed.zarr"
    assert main(["proofread", str(path), "--merge", "1,2", "--split", "3@3,30,7;3,30,38", "--min-voxels", "20",
                 "--out", str(out), "-q"]) == 0
    fixed = open_volume(str(out))[:]
    assert 2 not in fixed and 4 not in fixed and len(np.unique(fixed)) == 4  # 0, 1 and the two halves of 3
    np.testing.assert_array_equal(open_volume(str(path))[:], lab)
    assert main(["proofread", str(path), "--delete", "3", "--dry-run"]) == 0
    assert "nothing written" in capsys.readouterr().out
    np.testing.assert_array_equal(open_volume(str(path))[:], lab)
    for args in (["--merge", "1,x"], ["--split", "3@1,2"]):  # argparse's usage errors exit 2 too
        with pytest.raises(SystemExit) as exc:
            main(["proofread", str(path), *args, "-q"])
        assert exc.value.code == 2
    assert main(["proofread", str(path), "-q"]) == 2  # nothing to do
    assert main(["proofread", str(path), "--delete", "99", "-q"]) == 2
    assert main(["proofread", str(path), "--delete", "3", "--out", str(out), "-q"]) == 2  # exists
