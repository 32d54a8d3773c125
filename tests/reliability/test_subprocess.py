"""The reliability cases as a user meets them: the installed console script in a fresh process (issue 12, item 7).

The in-process case tables (test_overwrite_guard, test_odd_inputs, test_numeric_options, ...) cover every case;
this runs one of each class through a real process, checking what only a process shows: the exit status, that
stderr is one line without a traceback, and that inputs are byte-identical afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from masktwins_bio.io import write_ome_zarr

SCRIPT = shutil.which("masktwins-bio", path=os.path.dirname(sys.executable)) or shutil.which("masktwins-bio")


@pytest.fixture
def stores(tmp_path):
    data = (np.random.default_rng(0).random((4, 32, 32)) * 255).astype(np.uint8)
    write_ome_zarr(tmp_path / "p.zarr", data, voxel_size=(40, 8, 8), chunks=(2, 32, 32),
                   attrs={"task": "predict", "complete": True})
    bad = write_ome_zarr(tmp_path / "bad.zarr", data, voxel_size=(40, 8, 8), chunks=(2, 32, 32),
                         attrs={"task": "predict", "complete": True})
    (bad / "0" / "c" / "0" / "0" / "0").write_bytes(b"not a chunk")  # a chunk of the Zarr v3 default
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("keep me")
    return tmp_path


@pytest.mark.skipif(SCRIPT is None, reason="the masktwins-bio console script is not installed")
@pytest.mark.parametrize("argv, needle", [
    (["segment", "p.zarr", "p.zarr", "--overwrite"], "is (or contains) the input"),      # data loss before
    (["segment", "p.zarr", "notes", "--overwrite"], "--overwrite only replaces"),         # somebody's folder
    (["segment", "bad.zarr", "l.zarr", "--no-progress"], "cannot read voxels"),                           # a damaged chunk
    (["segment", "p.zarr", "l.zarr", "--threshold", "2"], "--threshold"),                # out of range
    (["predict", "m.pt", "p.zarr", "o.zarr", "--voxel-size", "-1,1,1"], "--voxel-size"),  # a negative number
    (["evaluate", "p.zarr", "p.zarr"], "probability map written by masktwins-bio predict"),
])
def test_refusals_through_the_console_script(stores, digest, argv, needle):
    before = digest(stores)
    proc = subprocess.run([SCRIPT, *argv], cwd=stores, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert digest(stores) == before


@pytest.mark.skipif(SCRIPT is None, reason="the masktwins-bio console script is not installed")
@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_output_folder_is_one_line(stores):
    ro = stores / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = subprocess.run([SCRIPT, "segment", "p.zarr", "ro/l.zarr"], cwd=stores, capture_output=True,
                              text=True, timeout=120)
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "ro" in proc.stderr and not any(ro.iterdir())
