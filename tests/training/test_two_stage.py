"""Two-stage adaptation (``method.adapt_from_step``): a source-only prefix, then the target terms, in one run.

The prefix is the source-only run step for step, so ``compare`` trains it once per seed and every method forks from
its snapshot; a forked run must equal the same run trained from scratch, bit for bit.
"""

from __future__ import annotations

import json

import pytest
import torch

from masktwins_bio.config import load_config
from masktwins_bio.errors import UserError
from masktwins_bio.experiments import compare
from masktwins_bio.training import train
from masktwins_bio.training.runlog import RunLogger


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)


def _assert_same_state(a, b):
    for key in ("student", "teacher"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0)


def test_prefix_equals_source_only_and_fork_equals_fresh_run(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3})
    cfg = load_config(path)
    so = load_config(path, ["method.name=source_only"])
    train(so, run_dir=tmp_path / "so", progress=False, snapshot_steps=(3,))
    fresh = train(cfg, run_dir=tmp_path / "fresh", progress=False)
    forked = train(cfg, run_dir=tmp_path / "fork", progress=False, fork_from=tmp_path / "so" / "step3.pt")
    _assert_same_state(_weights(tmp_path / "fresh"), _weights(tmp_path / "fork"))
    assert fresh.selected_step == forked.selected_step > 3  # selection considers only the models adaptation made
    # the prefix trained on the source only: same losses as the source-only run, no target terms before step 3
    loss = lambda rd, tag: [(s, v) for s, t, v in RunLogger.read(rd, tag)]  # noqa: E731
    assert loss(tmp_path / "so", "train/loss")[:3] == loss(tmp_path / "fresh", "train/loss")[:3]
    assert [s for s, _ in loss(tmp_path / "fresh", "train/loss_pseudo")] == [4, 5, 6]
    # both validated the shared source-trained model at the fork step (logged; not a selection candidate)
    hist = json.loads((tmp_path / "fork" / "summary.json").read_text())["history"]
    assert [h["step"] for h in hist] == [3, 6]
    assert json.loads((tmp_path / "fresh" / "summary.json").read_text())["adapt_from_step"] == 3


def test_fork_refuses_another_config_or_a_checkpoint_past_the_prefix(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3})
    train(load_config(path, ["method.name=source_only"]), run_dir=tmp_path / "so", progress=False,
          snapshot_steps=(3,))
    with pytest.raises(UserError, match="more than the adaptation method.*train.lr"):
        train(load_config(path, ["train.lr=0.01"]), run_dir=tmp_path / "a", progress=False,
              fork_from=tmp_path / "so" / "step3.pt")
    with pytest.raises(UserError, match="past this run's method.adapt_from_step=2"):
        train(load_config(path, ["method.adapt_from_step=2"]), run_dir=tmp_path / "b", progress=False,
              fork_from=tmp_path / "so" / "last.pt")


def test_adapt_lr_scale_multiplies_the_adaptations_learning_rate_only(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3})
    lrs = {}
    for scale in (1.0, 2.5):
        run_dir = tmp_path / f"lr{scale}"
        train(load_config(path, [f"method.adapt_lr_scale={scale}", "train.log_every=1"]), run_dir=run_dir,
              progress=False)
        lrs[scale] = dict((s, v) for s, _, v in RunLogger.read(run_dir, "train/lr"))
    assert sorted(lrs[1.0]) == sorted(lrs[2.5]) and len(lrs[1.0]) == 6
    for step, lr in lrs[1.0].items():  # logged after s optimiser steps: the learning rate of (0-based) step s
        assert lrs[2.5][step] == pytest.approx(lr * (2.5 if step >= 3 else 1.0), rel=1e-5), step
    with pytest.raises(UserError, match="adapt_lr_scale"):
        load_config(path, ["method.adapt_lr_scale=0"])
    # a fork from the source-only prefix (whose optimiser holds the unscaled rate) equals the fresh run
    train(load_config(path, ["method.name=source_only"]), run_dir=tmp_path / "so", progress=False,
          snapshot_steps=(3,))
    train(load_config(path, ["method.adapt_lr_scale=2.5", "train.log_every=1"]), run_dir=tmp_path / "fork",
          progress=False, fork_from=tmp_path / "so" / "step3.pt")
    _assert_same_state(_weights(tmp_path / "lr2.5"), _weights(tmp_path / "fork"))


def test_adapt_from_step_must_leave_adaptation_steps(tiny_config):
    path, _ = tiny_config(method={"adapt_from_step": 6})
    with pytest.raises(UserError, match="must be smaller than train.steps"):
        load_config(path)


def test_compare_trains_the_prefix_once_and_forks_every_method(tiny_config, tmp_path):
    path, _ = tiny_config(method={"adapt_from_step": 3})
    out = tmp_path / "cmp"
    result = compare(load_config(path), ["mean_teacher", "source_only", "masktwins"], seeds=[0], out_dir=out,
                     progress=False)
    assert [r["method"] for r in result["runs"]] == ["mean_teacher", "source_only", "masktwins"]
    assert (out / "source_only" / "seed0" / "step3.pt").exists()
    for m in ("mean_teacher", "masktwins"):
        assert json.loads((out / m / "seed0" / "summary.json").read_text())["history"][0]["step"] == 3
    # without a source_only row the prefix is trained alone (stopped at the fork step), never reported as a row
    only = compare(load_config(path), ["masktwins"], seeds=[1], out_dir=tmp_path / "cmp2", progress=False)
    assert [r["method"] for r in only["runs"]] == ["masktwins"]
    prefix = json.loads((tmp_path / "cmp2" / "source_only" / "seed1" / "summary.json").read_text())
    assert prefix["steps"] == 3


def test_auto_start_is_half_the_steps_or_half_the_wall_clock_budget(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins"})  # adapt_from_step: auto
    assert load_config(path).adapt_start_step() == 3  # half of train.steps = 6
    assert load_config(path, ["train.init=model.pt"]).adapt_start_step() == 0  # a trained model: adapt at once
    timed = load_config(path, ["train.steps=100000", "train.max_minutes=0.03", "train.val_every=100000"])
    assert timed.adapt_start_step() is None  # decided while training: once half of the 1.8 s are spent
    result = train(timed, run_dir=tmp_path / "timed", progress=False)
    start = json.loads((tmp_path / "timed" / "summary.json").read_text())["adapt_from_step"]
    assert 0 < start < result.steps
    assert result.selected_step > start


def test_an_ablation_forks_from_an_earlier_comparisons_prefix(tiny_config, tmp_path):
    from masktwins_bio.errors import ConfigError

    path, _ = tiny_config(method={"adapt_from_step": 3})
    compare(load_config(path), ["source_only"], seeds=[0], out_dir=tmp_path / "base", progress=False)
    abl = compare(load_config(path, ["method.lambda_cm=1.0"]), ["masktwins"], seeds=[0], out_dir=tmp_path / "abl",
                  progress=False, prefix_from=tmp_path / "base")
    assert not (tmp_path / "abl" / "source_only").exists()  # nothing retrained: the base prefix was reused
    assert abl["runs"][0]["forked_at"] == 3
    with pytest.raises(ConfigError, match="no source-only prefix snapshot"):
        compare(load_config(path), ["masktwins"], seeds=[5], out_dir=tmp_path / "abl2", progress=False,
                prefix_from=tmp_path / "base")
    with pytest.raises(UserError, match="more than the adaptation method"):  # the prefix is another experiment's
        compare(load_config(path, ["train.lr=0.01"]), ["masktwins"], seeds=[0], out_dir=tmp_path / "abl3",
                progress=False, prefix_from=tmp_path / "base")


def test_runs_written_before_the_volume_cache_resume_and_fork():
    from masktwins_bio.training.checkpoint import FORKABLE_CHANGES, config_differences

    old = {"data": {"patch_size": [8, 96, 96], "num_workers": 0}, "method": {"name": "source_only"}}
    new = {"data": {"patch_size": [8, 96, 96], "num_workers": 0, "cache_mb": 1024.0},
           "method": {"name": "masktwins"}}
    assert config_differences(old, new, FORKABLE_CHANGES) == []
    assert config_differences(old, {**new, "data": {**new["data"], "patch_size": [8, 64, 64]}}, FORKABLE_CHANGES)
