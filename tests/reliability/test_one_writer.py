"""One writer per output (issue 12, item 2): a second writer is refused with the holder named; locks of dead
processes are no obstacle."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile

from masktwins_bio.cli import main
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume
from masktwins_bio.io.lock import lock_path, output_lock

fcntl = pytest.importorskip("fcntl")


def test_second_writer_refused_then_free(tmp_path):
    out = tmp_path / "o.zarr"
    with output_lock(out, "predict"):
        with pytest.raises(InputError, match=rf"masktwins-bio predict \(PID {os.getpid()} on .*\) is writing"):
            with output_lock(out, "segment"):
                pass
    assert not lock_path(out).exists()  # released and removed
    with output_lock(out, "segment"):
        pass


def test_a_lock_file_left_by_a_killed_run_is_not_stale(tmp_path):
    out = tmp_path / "o.zarr"
    lock_path(out).write_text(json.dumps({"command": "predict", "pid": 999999, "host": "gone"}))  # nobody holds it
    with output_lock(out, "predict"):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()


def test_convert_while_another_writer_holds_the_output(tmp_path, refusal):
    tifffile.imwrite(tmp_path / "v.tif", np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8))
    out = tmp_path / "v.zarr"
    with output_lock(out, "convert"):
        assert main(["convert", str(tmp_path / "v.tif"), str(out), "--voxel-size", "40,8,8"]) == 2
        refusal("is writing this output", f"PID {os.getpid()}")
        assert not out.exists()
    assert main(["convert", str(tmp_path / "v.tif"), str(out), "--voxel-size", "40,8,8"]) == 0
    assert open_volume(out).shape == (2, 8, 8)
