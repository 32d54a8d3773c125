"""Issue 14's acceptance script: under Xvfb, adapt -> predict -> merge, split, delete -> measure -> export CSV, each
widget fully inside a 1000 x 800 window, saved labels and CSV as expected (scripts/napari_tour.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("napari")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (a 1000 x 800 screen of its own)")
def test_the_tour_passes_its_checks(tmp_path):
    proc = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, str(REPO / "scripts" / "napari_tour.py"),
         "--steps", "6", "--out-dir", str(tmp_path / "work"), "--images", str(tmp_path / "images")],
        capture_output=True, text=True, timeout=900)
    out = proc.stdout
    summary = json.loads(out[out.index("{"):out.rindex("}") + 1])
    assert proc.returncode == 0, json.dumps(summary["widgets"])
    assert all(summary["checks"].values())
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "tour_adapt.png", "tour_inspect.png", "tour_inspect_histogram.png", "tour_predict.png", "tour_proofread.png"]
