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


@pytest.mark.slow
def test_torchrun_auto_agreement_with_the_probe(tiny_config, tmp_path):
    """method.agreement=auto under DDP: every rank makes the probe's choice and trains the same candidate on."""
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 4, "agreement": "auto"},
                          train={"steps": 8, "val_every": 2, "checkpoint_every": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "masktwins_bio.cli", "train", str(path), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    choice = json.loads((tmp_path / "run" / "summary.json").read_text())["agreement_choice"]
    assert choice["probe_step"] == 6
    steps = {a: json.loads((tmp_path / "run" / f"agreement-{a}" / "summary.json").read_text())["steps"]
             for a in ("symmetric", "visible")}
    assert steps == {a: 8 if a == choice["chosen"] else 6 for a in steps}
