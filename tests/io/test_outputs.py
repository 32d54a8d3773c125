"""The resumable output (io/outputs.py): one lifecycle for predict, segment and label, and a replacement that never
loses the old output to a failed --overwrite (issue 12, item 1; issue 13, item 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from masktwins_bio.errors import Cancelled, InputError
from masktwins_bio.io.outputs import WORK_FOLDER, ResumableOutput
from masktwins_bio.io import open_volume

SETTINGS = {"threshold": 0.5, "shape": [2, 8, 8]}


def _write(path: Path, value: int, *, exc=None, progress: bool = True, overwrite: bool = False):
    """One run of a tiny 'segment' output filled with ``value``; ``exc`` raised before it finishes."""
    with ResumableOutput(path, task="segment", settings=SETTINGS, overwrite=overwrite) as out:
        w = out.writer or out.create((2, 8, 8), np.uint32, (40, 8, 8), kind="labels", name="instances")
        w.level0[:] = value
        if progress:
            out.done("label").mark(0)
        if exc is not None:
            raise exc
        out.finish(n_instances=value)


def _value(path: Path) -> int:
    import zarr

    return int(np.unique(zarr.open_array(str(path / "0"), mode="r")[:])[0])


def _asides(path: Path) -> list:
    return list(path.parent.glob(f".{path.name}.replaced-*"))


@pytest.mark.parametrize("exc, progress, kept", [
    (None, True, "new"),                       # finished: the old output goes
    (InputError("bad block"), True, "old"),    # a bad input found mid-way: the old output comes back
    (OSError(28, "No space left"), True, "old"),
    (KeyboardInterrupt(), False, "old"),       # Ctrl-C before any block: nothing worth keeping
    (KeyboardInterrupt(), True, "new"),        # Ctrl-C after blocks: resumable, it replaced the old one
    (Cancelled(), True, "new"),
    (Cancelled(), False, "old"),
])
def test_a_replacement_keeps_one_whole_output(tmp_path, exc, progress, kept):
    path = tmp_path / "labels.zarr"
    _write(path, 1)
    try:
        _write(path, 2, exc=exc, progress=progress, overwrite=True)
    except BaseException as e:
        assert e is exc
    assert not _asides(path)  # never two outputs left behind
    if kept == "old":
        assert _value(path) == 1
        assert open_volume(path).attrs["masktwins_bio"]["complete"] is True
    else:
        assert _value(path) == 2
        done = open_volume(path).attrs["masktwins_bio"]["complete"]
        assert done is (exc is None)


def test_a_fresh_output_goes_on_a_bad_input_and_stays_resumable_on_interrupt(tmp_path):
    bad, cut = tmp_path / "bad.zarr", tmp_path / "cut.zarr"
    with pytest.raises(InputError):
        _write(bad, 1, exc=InputError("bad block"))
    assert not bad.exists()  # nothing that could be mistaken for an output
    with pytest.raises(KeyboardInterrupt):
        _write(cut, 1, exc=KeyboardInterrupt())
    resumed = ResumableOutput(cut, task="segment", settings=SETTINGS, resume=True)
    assert resumed.resuming and not resumed.complete
    with resumed as out:
        assert out.writer is not None and 0 in out.done("label")
        out.finish()
    assert not (cut / WORK_FOLDER).exists()
    assert ResumableOutput(cut, task="segment", settings=SETTINGS, resume=True).complete


def test_the_constructor_checks_and_changes_nothing(tmp_path):
    path = tmp_path / "labels.zarr"
    _write(path, 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        ResumableOutput(path, task="segment", settings=SETTINGS)
    with pytest.raises(InputError, match="not of predict"):
        ResumableOutput(path, task="predict", settings=SETTINGS, overwrite=True)
    with pytest.raises(InputError, match="cannot resume, it was made with threshold=0.5"):
        ResumableOutput(path, task="segment", settings={**SETTINGS, "threshold": 0.7}, resume=True)
    with pytest.raises(InputError, match="exclude each other"):
        ResumableOutput(path, task="segment", settings=SETTINGS, resume=True, overwrite=True)
    ResumableOutput(path, task="segment", settings=SETTINGS, overwrite=True)  # checked, not entered
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert _value(path) == 1


def test_a_killed_replacement_leaves_the_old_output_whole_until_a_run_finishes(tmp_path):
    """kill -9 allows no cleanup: the old output stays hidden beside the unfinished new one, then goes."""
    from masktwins_bio.io.guard import set_aside

    path = tmp_path / "labels.zarr"
    _write(path, 1)
    aside = set_aside(path)  # what --overwrite did before the kill
    assert _value(aside) == 1
    _write(path, 2)
    assert not _asides(path) and _value(path) == 2


def test_segment_overwrite_failing_mid_way_keeps_the_old_labels(tmp_path, monkeypatch, digest):
    import masktwins_bio as mtb
    from masktwins_bio.io import write_ome_zarr
    from masktwins_bio.postprocess import instances

    prob = np.zeros((4, 32, 32), np.uint8)
    prob[1:3, 4:12, 4:12] = 255
    src = write_ome_zarr(tmp_path / "p.zarr", prob, voxel_size=(40, 8, 8))
    out = mtb.segment(src, tmp_path / "l.zarr", progress=False)
    before = digest(out)

    def fails(*a, **k):
        raise InputError("a corrupt block")

    monkeypatch.setattr(instances, "_label_blockwise", fails)
    with pytest.raises(InputError, match="a corrupt block"):
        mtb.segment(src, out, overwrite=True, progress=False)
    assert digest(out) == before and not _asides(out)
