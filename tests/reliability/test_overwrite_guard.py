"""Output guards: --overwrite deletes only what the same command wrote, and never an input (issue 12, item 1).

Each CLI case was a data loss before: the command exited 0 after deleting an input or an unrelated folder.
"""

from __future__ import annotations

import re


import numpy as np
import pytest
import tifffile

from masktwins_bio.cli import main
from masktwins_bio.errors import InputError
from masktwins_bio.io import write_ome_zarr
from masktwins_bio.io.guard import MARKER, check_not_an_input, check_replaceable, made_by_masktwins, write_marker


@pytest.fixture
def prob(tmp_path):
    data = (np.random.default_rng(0).random((4, 16, 16)) * 255).astype(np.uint8)
    return write_ome_zarr(tmp_path / "p.zarr", data, voxel_size=(40, 8, 8))


# --- the guard itself: a case table -------------------------------------------------------------------------------

def _folder(tmp_path, kind):
    p = tmp_path / "out"
    if kind == "missing":
        return p
    p.mkdir()
    if kind == "foreign":
        (p / "notes.txt").write_text("keep me")
    elif kind == "train":
        write_marker(p, "train")
        (p / "log.csv").write_text("step\n")
    elif kind == "legacy run":
        (p / "config.yaml").write_text("name: x\n")
        (p / "config_hash").write_text("abc\n")
    return p


@pytest.mark.parametrize("kind, command, ok", [
    ("missing", "train", True),          # nothing to delete
    ("empty", "predict", True),          # nothing to lose
    ("foreign", None, False),            # somebody's folder
    ("foreign", "train", False),
    ("train", "train", True),            # our own run folder
    ("train", None, True),
    ("train", "predict", False),         # ours, but another command's output
    ("legacy run", "train", True),       # a run folder from before the marker
    ("legacy run", "sample-data", False),
])
def test_check_replaceable_cases(tmp_path, kind, command, ok):
    path = _folder(tmp_path, kind)
    if ok:
        check_replaceable(path, (), "output", command)
    else:
        with pytest.raises(InputError, match="--overwrite only replaces what this command wrote"):
            check_replaceable(path, (), "output", command)


def test_stores_carry_their_command(tmp_path, prob):
    assert made_by_masktwins(prob) and not made_by_masktwins(prob, "segment")  # ours, but not a segment output
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "p.zarr")
    assert not made_by_masktwins(link)  # a symlink is never replaced (its target might be anything)
    assert not made_by_masktwins(tmp_path / "p.zarr" / "zarr.json")  # nor a file


@pytest.mark.parametrize("output, spec, message", [
    ("in.zarr", "in.zarr", "is (or contains) the input"),
    (".", "in.zarr", "is (or contains) the input"),
    ("in.zarr/pred.zarr", "in.zarr", "lies inside the input"),
    ("proj", "proj/data/v.h5:/raw", "is (or contains) the input"),
    ("in.zarr", "in.zarr[0:2, 0:8, 0:8]@40x8x8nm", "is (or contains) the input"),  # a cropped, resampled Volume path
])
def test_an_output_may_not_touch_an_input(tmp_path, monkeypatch, output, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.zarr").mkdir()
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "v.h5").write_bytes(b"")
    with pytest.raises(InputError, match=re.escape(message)):
        check_not_an_input(output, [spec])
    check_not_an_input("elsewhere.zarr", [spec, None, "<array>", "does-not-exist.zarr"])


# --- through the CLI: each of these exited 0 and destroyed data before ---------------------------------------------

def test_segment_onto_its_input_is_refused(prob, digest, refusal):
    before = digest(prob)
    assert main(["segment", str(prob), str(prob), "--overwrite", "--no-progress"]) == 2
    refusal(str(prob), "is (or contains) the input")
    assert digest(prob) == before


def test_segment_overwrite_keeps_another_commands_output(tmp_path, prob, digest, refusal):
    other = write_ome_zarr(tmp_path / "other.zarr", np.zeros((4, 16, 16), np.uint8), voxel_size=(40, 8, 8))
    before = digest(other)
    assert main(["segment", str(prob), str(other), "--overwrite", "--no-progress"]) == 2
    refusal("--overwrite only replaces what this command wrote")
    assert digest(other) == before
    out = tmp_path / "labels.zarr"
    assert main(["segment", str(prob), str(out), "--no-progress"]) == 0
    assert main(["segment", str(prob), str(out), "--overwrite", "--no-progress"]) == 0  # its own output: replaced


def test_segment_into_a_folder_holding_its_input_is_refused(tmp_path, prob, digest, refusal):
    before = digest(tmp_path)
    assert main(["segment", str(prob), str(tmp_path), "--overwrite", "--no-progress"]) == 2
    refusal("is (or contains) the input")
    assert digest(tmp_path) == before


def test_sample_data_overwrite_keeps_a_foreign_folder(tmp_path, refusal):
    out = tmp_path / "proj"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["sample-data", str(out), "--size", "tiny", "--overwrite"]) == 2
    refusal(str(out), "not a masktwins-bio sample-data folder")
    assert (out / "thesis.tex").read_text() == "years of work"
    fresh = tmp_path / "fresh"
    assert main(["sample-data", str(fresh), "--size", "tiny"]) == 0
    assert (fresh / MARKER).is_file()
    assert main(["sample-data", str(fresh), "--size", "tiny", "--overwrite"]) == 0


def test_convert_onto_its_input_is_refused(tmp_path, digest, refusal):
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((2, 8, 8), np.uint8))
    assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "v.zarr"), "--voxel-size", "40,8,8"]) == 0
    before = digest(tmp_path / "v.zarr")
    assert main(["convert", str(tmp_path / "v.zarr"), str(tmp_path / "v.zarr"), "--overwrite"]) == 2
    refusal("is (or contains) the input")
    assert digest(tmp_path / "v.zarr") == before



# --- completeness: an interrupted job's store is refused by every reader (issue 12, item 3) -------------------------

@pytest.fixture
def partial(tmp_path):
    """A probability store as an interrupted predict leaves it (complete: false)."""
    data = (np.random.default_rng(1).random((4, 16, 16)) * 255).astype(np.uint8)
    return write_ome_zarr(tmp_path / "partial.zarr", data, voxel_size=(40, 8, 8),
                          attrs={"task": "predict", "complete": False})


@pytest.mark.parametrize("argv", [
    ["segment", "{p}", "{d}/labels.zarr", "--no-progress"],
    ["convert", "{p}", "{d}/copy.zarr"],
    ["evaluate", "{p}", "{p}", "--no-instances", "--gt-threshold", "128"],
])
def test_incomplete_stores_are_refused_unless_allowed(tmp_path, partial, refusal, argv):
    args = [a.format(p=partial, d=tmp_path) for a in argv]
    assert main(args) == 2
    refusal("is incomplete", "rerun 'masktwins-bio predict' with --resume", "--allow-incomplete")
    assert not (tmp_path / "labels.zarr").exists() and not (tmp_path / "copy.zarr").exists()
    assert main([*args, "--allow-incomplete"]) == 0
