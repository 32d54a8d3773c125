"""Filesystem faults and signals through the CLI (issue 12, item 6): one line, exit status, nothing half-written."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from masktwins_bio.cli import main


@pytest.fixture
def tif(tmp_path):
    tifffile.imwrite(tmp_path / "v.tif", np.random.default_rng(0).integers(0, 255, (12, 64, 64), dtype=np.uint8))
    return tmp_path / "v.tif"


@pytest.mark.parametrize("code, hint", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "permission denied")])
def test_filesystem_errors_are_one_line_and_leave_nothing(tmp_path, tif, monkeypatch, refusal, code, hint):
    from masktwins_bio.io import ome_zarr

    def fail(self, offset, data):
        raise OSError(code, "simulated", str(self.path / "0"))

    monkeypatch.setattr(ome_zarr.OmeZarrWriter, "write", fail)
    assert main(["convert", str(tif), str(tmp_path / "o.zarr"), "--voxel-size", "40,8,8"]) == 2
    refusal(hint, "(simulated)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]  # no output, no hidden partial store


SLOW_CONVERT = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background parent (nohup, CI) may have ignored it
from masktwins_bio.io import ome_zarr
write = ome_zarr.OmeZarrWriter.write
def slow(self, *a, **k):
    time.sleep(0.3)
    return write(self, *a, **k)
ome_zarr.OmeZarrWriter.write = slow
from masktwins_bio.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_convert_leaves_nothing(tmp_path, tif, sig, rc):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, "convert", str(tif), str(tmp_path / "o.zarr"),
                             "--voxel-size", "40,8,8", "--chunks", "1,64,64"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not any(".partial" in p.name for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == rc, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]
