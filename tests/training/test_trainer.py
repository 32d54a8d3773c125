"""Trainer: every method runs, outputs are complete, resume is exact, bad input fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from masktwins_bio.cli import main
from masktwins_bio.config import load_config
from masktwins_bio.registry import METHODS
from masktwins_bio.errors import UserError
from masktwins_bio.models import load_model
from masktwins_bio.precision import autocast_dtype
from masktwins_bio.training import train
from masktwins_bio.training.runlog import RunLogger


@pytest.mark.parametrize("method", METHODS.names())
def test_each_method_trains_and_exports(tiny_config, method):
    path, _ = tiny_config(method={"name": method}, train={"steps": 3, "val_every": 3})
    result = train(load_config(path), progress=False)
    rd = result.run_dir
    assert {"config.yaml", "config_hash", "log.csv", "last.pt", "model.pt", "summary.json"} <= {
        p.name for p in rd.iterdir()}
    model = load_model(result.model_path)
    assert model.metadata["training"]["method"] == method
    assert model.voxel_size == (40, 8, 8) and model.patch_size == (4, 32, 32)
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["steps"] == 3 and "label_free_score" in summary["history"][-1]
    # the arithmetic the run used is recorded: the same config trains in bf16 or fp32 depending on the CPU
    amp = autocast_dtype(torch.device("cpu"), load_config(path).train.amp)
    assert summary["precision"] == ("bf16" if amp == torch.bfloat16 else "fp32") and summary["cpu_capability"]
    assert "target_iou" in summary["history"][-1]  # target labels given: reported, not used for selection
    if method != "source_only":
        assert any(t == "train/confident_fraction" for _, t, _ in RunLogger.read(rd))


def test_resume_is_exact(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins"})
    full = train(load_config(path), run_dir=tmp_path / "full", progress=False)
    stops = iter([False, False, True])  # interrupted after step 3
    train(load_config(path), run_dir=tmp_path / "part", progress=False, should_stop=lambda: next(stops))
    resumed = train(load_config(path), run_dir=tmp_path / "part", resume=True, progress=False)
    assert resumed.steps == full.steps == 6
    losses = lambda rd: [(s, v) for s, t, v in RunLogger.read(rd, "train/loss")]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "part")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for key in ("student", "teacher"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0)


def test_a_run_resumes_with_the_keep_ratio_it_started_with(tiny_config, tmp_path, caplog):
    """The default keep ratio of whole-section masks changed (0.5 -> 0.3): a run whose checkpoint predates the
    stored, resolved value resumes with the old default instead of silently switching mid-run."""
    path, _ = tiny_config(method={"name": "masktwins"})
    stops = iter([False, False, True])
    train(load_config(path), run_dir=tmp_path / "part", progress=False, should_stop=lambda: next(stops))
    last = tmp_path / "part" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["keep_ratio"] == 0.3  # tiny_config: 40 x 8 x 8 nm voxels, whole-section masks
    del state["keep_ratio"]  # as written before the key existed
    torch.save(state, last)
    with caplog.at_level("WARNING", logger="masktwins_bio.train"):
        train(load_config(path), run_dir=tmp_path / "part", resume=True, progress=False)
    assert "resuming with method.keep_ratio 0.5" in caplog.text
    assert torch.load(last, weights_only=True)["keep_ratio"] == 0.5


def test_a_keep_ratio_given_in_the_config_is_not_replaced_on_resume(tiny_config, tmp_path, caplog):
    """Only a ratio left to the method's default resumes with the old default: one the config sets is what ran."""
    path, _ = tiny_config(method={"name": "masktwins", "keep_ratio": 0.4})
    stops = iter([False, False, True])
    train(load_config(path), run_dir=tmp_path / "part", progress=False, should_stop=lambda: next(stops))
    last = tmp_path / "part" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["keep_ratio"]
    torch.save(state, last)
    with caplog.at_level("WARNING", logger="masktwins_bio.train"):
        train(load_config(path), run_dir=tmp_path / "part", resume=True, progress=False)
    assert "resuming with method.keep_ratio" not in caplog.text
    assert torch.load(last, weights_only=True)["keep_ratio"] == 0.4


def test_a_run_written_before_newer_options_resumes_as_it_ran(tiny_config, tmp_path, caplog):
    """A checkpoint from before ``method.source_mask_prob`` / ``mask_fill`` / ``cm_rampup_steps`` existed resumes
    (the options' absence means their old behaviour), with clean source patches - not today's MaskTwins default."""
    path, _ = tiny_config(method={"name": "masktwins"})
    stops = iter([False, False, True])
    train(load_config(path), run_dir=tmp_path / "part", progress=False, should_stop=lambda: next(stops))
    last = tmp_path / "part" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["source_mask_prob"] == 0.5
    del state["source_mask_prob"]
    for key in ("source_mask_prob", "mask_fill", "cm_rampup_steps", "agreement", "adapt_lr_scale"):
        del state["config"]["method"][key]
    torch.save(state, last)
    with caplog.at_level("WARNING", logger="masktwins_bio.train"):
        train(load_config(path), run_dir=tmp_path / "part", resume=True, progress=False)
    assert "resuming with method.source_mask_prob 0" in caplog.text
    assert torch.load(last, weights_only=True)["source_mask_prob"] == 0.0
    state = torch.load(last, weights_only=True)
    state["config"]["method"]["mask_fill"] = "noise"  # a real difference still refuses to resume
    torch.save(state, last)
    with pytest.raises(UserError, match="method.mask_fill: 'noise' -> 'zero'"):
        train(load_config(path), run_dir=tmp_path / "part", resume=True, progress=False)


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.name=nope", "method.name: expected"),
        ("method.mask_block=[8,8,8]", "larger than data.patch_size"),
        ("method.keep_ratio=1.5", "method.keep_ratio: expected less than 1"),
        ("source.labels=null", "source.labels is missing"),
        ("data.patch_size=[4,31,32]", r"must be a multiple of \[1, 2, 2\]"),
        ("data.patch_size=[64,32,32]", "larger than the source volume"),
        ("source.labels=float_labels.zarr", "labels must be integers"),
        ("source.labels=short_labels.zarr", r"label shape \(12, 64, 60\) differs from image shape \(12, 64, 64\)"),
    ],
)
def test_bad_input_exit_2(tiny_config, capsys, override, message):
    path, _ = tiny_config()
    assert main(["train", str(path), "--set", override, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err


def test_resume_with_other_config_refused(tiny_config, capsys):
    path, cfg = tiny_config(train={"steps": 2, "val_every": 2})
    assert main(["train", str(path), "--no-progress"]) == 0
    run = Path(cfg["run_dir"])
    record = {name: (run / name).read_bytes() for name in ("config.yaml", "config_hash", "summary.json")}
    assert main(["train", str(path), "--resume", "--set", "method.name=mic", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "different config (method.name: 'masktwins' -> 'mic')" in err
    # issue 12: the refused resume used to rewrite config.yaml / config_hash with the refused settings
    assert {name: (run / name).read_bytes() for name in record} == record
    assert main(["train", str(path), "--no-progress"]) == 2  # exists: --resume or --overwrite needed
    assert "already exists" in capsys.readouterr().err


def test_stop_early_still_writes_model(tiny_config):
    path, _ = tiny_config()
    result = train(load_config(path), progress=False, should_stop=lambda: True)
    assert result.steps == 1 and result.model_path.exists()


def test_init_from_model_and_callback(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "source_only"}, train={"steps": 2, "val_every": 2})
    first = train(load_config(path), progress=False)
    seen = []
    path2, _ = tiny_config(train={"steps": 2, "val_every": 2, "init": str(first.model_path)},
                           run_dir=str(tmp_path / "adapted"))
    train(load_config(path2), progress=False, callback=lambda step, logs: seen.append((step, sorted(logs))))
    assert (2, ["val"]) in seen and any(k == ["train"] for _, k in seen)


def test_user_error_is_one_line(tiny_config):
    path, _ = tiny_config()
    with pytest.raises(UserError) as e:
        train(load_config(path, ["target.image=missing.zarr"]), progress=False)
    assert "missing.zarr: no such file" in str(e.value)


def test_resume_messages_do_not_send_the_user_in_a_circle(tiny_config, capsys):
    """Issue 12: `--resume` without last.pt said "run without --resume", which then said "use --resume"."""
    path, cfg = tiny_config()
    run = Path(cfg["run_dir"])
    assert main(["train", str(path), "--resume", "--no-progress"]) == 2  # never ran
    assert "run without --resume" in capsys.readouterr().err
    run.mkdir()
    (run / "config.yaml").write_text("name: tiny\n")  # a run killed before its first checkpoint
    (run / "config_hash").write_text("x\n")
    assert main(["train", str(path), "--resume", "--no-progress"]) == 2
    assert "start it again with --overwrite" in capsys.readouterr().err
    assert main(["train", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite to replace it" in err and "--resume" not in err


def test_nan_loss_is_one_line_and_keeps_the_checkpoint(tiny_config, capsys):
    """Issue 12: a huge train.lr ended in a RuntimeError traceback; now one line naming the causes, exit 2."""
    path, cfg = tiny_config(train={"steps": 6, "checkpoint_every": 2, "grad_clip": 0.0})
    run = Path(cfg["run_dir"])
    assert main(["train", str(path), "--no-progress", "--set", "train.lr=1e30", "--set", "train.warmup_steps=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "training loss became" in err, err
    assert "train.lr too high" in err
    if "last good checkpoint" in err:  # diverged after a checkpoint: it is still loadable
        assert (run / "last.pt").exists()


def test_the_default_training_grid_and_a_fine_tuned_models_own(tiny_config, tmp_path):
    """``data.voxel_size: null``: the grid rule (8 nm data, 32-pixel patches -> 1.5x coarser, the cap); with
    ``train.init`` the start model's grid, whatever the rule would say; an explicit grid is kept."""
    path, _ = tiny_config(data={"voxel_size": None}, train={"steps": 2, "val_every": 2})
    assert load_model(train(load_config(path), progress=False).model_path).voxel_size == (40, 12, 12)
    path, _ = tiny_config(train={"steps": 2, "val_every": 2})
    explicit = train(load_config(path), run_dir=tmp_path / "explicit", progress=False)
    assert load_model(explicit.model_path).voxel_size == (40, 8, 8)
    path, _ = tiny_config(data={"voxel_size": None},
                          train={"steps": 2, "val_every": 2, "init": str(explicit.model_path)})
    tuned = train(load_config(path), run_dir=tmp_path / "tuned", progress=False)
    assert load_model(tuned.model_path).voxel_size == (40, 8, 8)
