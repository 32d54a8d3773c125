"""Smoke test of the inference benchmark at a tiny size: the script a GPU session runs once must not break.

Numbers are not checked (performance claims live in BENCHMARKS.md); only that every row is printed, that our output
equals MONAI's, and that the RSS children report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


def test_inference_benchmark_runs_and_matches_monai():
    out = subprocess.run(
        [sys.executable, str(BENCH), "--size", "8,40,40", "--window", "4,16,16", "--channels", "4,8",
         "--rss-size", "4,16,16", "--rss-block", "4,16,16", "--rounds", "1", "--repeats", "1"],
        capture_output=True, text=True, timeout=600, check=True).stdout
    for row in ("raw forward, resident windows", "ours: streaming Zarr->Zarr", "MONAI sliding window",
                "ratio ours / (raw forward / redundancy)", "ratio ours / MONAI CPU-stitched", "RSS 16x / 1x"):
        assert row in out, out
    diff = re.search(r"max \|difference\| (\d+)", out)
    assert diff is not None and int(diff.group(1)) <= 1, out  # equal up to float rounding of the window batches


def test_train_step_benchmark_prints_fp32_and_auto_side_by_side():
    bench = BENCH.parent / "train_step.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--size", "tiny", "--patch", "4,32,32", "--channels", "4,8,16",
         "--reps", "1", "--block", "1"], capture_output=True, text=True, timeout=600, check=True).stdout
    assert re.search(r"amp none .*fp32.*source-only step", out), out
    assert re.search(r"amp auto .*MaskTwins step .*x vs none", out), out
    assert "rate ratio Zarr/in-memory" in out and "mask/step" in out
