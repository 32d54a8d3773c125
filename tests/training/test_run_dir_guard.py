"""train --overwrite never deletes the run's own data (issue 12, item 1): the run folder may not hold an input, and a
failed replacement leaves the old run whole."""

from __future__ import annotations

import yaml

from masktwins_bio.cli import main
from masktwins_bio.io.guard import MARKER


def test_train_run_dir_holding_its_data_is_refused(tiny_pair, tmp_path, digest, refusal):
    cfg = {"name": "t", "data_root": str(tiny_pair),
           "source": {"image": "source.zarr", "labels": "source_labels.zarr"}, "target": {"image": "target.zarr"},
           "data": {"patch_size": [4, 32, 32]}, "model": {"channels": [4, 8], "num_res_units": 1},
           "train": {"steps": 1, "batch_source": 1, "batch_target": 1, "val_every": 1, "device": "cpu"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = digest(tiny_pair)
    assert main(["train", str(path), "--run-dir", str(tiny_pair), "--overwrite", "--no-progress"]) == 2
    refusal("is (or contains) the input")
    assert digest(tiny_pair) == before
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    assert (run / MARKER).is_file()


def test_train_refuses_a_run_folder_another_process_writes(tiny_config, refusal):
    from pathlib import Path

    from masktwins_bio.io.lock import output_lock

    path, cfg = tiny_config(train={"steps": 1, "val_every": 1})
    with output_lock(Path(cfg["run_dir"]), "train"):
        assert main(["train", str(path), "--no-progress", "--overwrite"]) == 2
        refusal("masktwins-bio train (PID", "is writing this output")
    assert main(["train", str(path), "--no-progress"]) == 0


def test_train_overwrite_failing_before_a_checkpoint_keeps_the_old_run(tiny_config, digest, monkeypatch):
    from pathlib import Path

    from masktwins_bio.training import trainer

    path, cfg = tiny_config(train={"steps": 2, "val_every": 1})
    run = Path(cfg["run_dir"])
    assert main(["train", str(path), "--no-progress"]) == 0
    before = digest(run)

    def fails(self):
        raise OSError(28, "No space left on device", str(run / "last.pt"))

    monkeypatch.setattr(trainer.Trainer, "build_optimizer", fails)
    assert main(["train", str(path), "--no-progress", "--overwrite"]) == 2
    assert digest(run) == before and not list(run.parent.glob(f".{run.name}.replaced-*"))
