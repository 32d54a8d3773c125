import pytest

from masktwins_bio.config import load_config
from masktwins_bio.training import train
from masktwins_bio.training.schedule import warmup_poly


@pytest.mark.parametrize("step, expected", [(0, 0.01), (49, 0.5), (99, 1.0), (550, 0.5 ** 0.9), (1000, 0.0)])
def test_warmup_poly_by_steps(step, expected):
    assert warmup_poly(step, 100, 1000) == pytest.approx(expected, rel=1e-6)


def test_a_time_budget_without_warmup_trains(tiny_config, tmp_path):
    # LambdaLR asks for the factor of step 0 when it is built; with no warm-up that reads the clock of the budget
    path, _ = tiny_config()
    cfg = load_config(path, ["train.warmup_steps=0", "train.max_minutes=0.5", "train.steps=2"])
    assert train(cfg, run_dir=tmp_path / "timed", progress=False).steps == 2
