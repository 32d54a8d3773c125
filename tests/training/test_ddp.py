"""Multi-process training with torchrun (DDP, gloo backend on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from masktwins_bio.models import load_model


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tiny_config, tmp_path):
    path, _ = tiny_config(train={"steps": 4, "val_every": 2, "checkpoint_every": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "masktwins_bio.cli", "train", str(path), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    model = load_model(run / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.network.parameters())
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 4
