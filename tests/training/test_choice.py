"""``method.agreement: auto``: one adaptation per agreement from one prefix, the better label-free score kept."""

from __future__ import annotations

import json
import os

import pytest
import torch

from masktwins_bio.config import load_config
from masktwins_bio.errors import ConfigError, UserError
from masktwins_bio.experiments import compare
from masktwins_bio.training import train
from masktwins_bio.training.choice import AGREEMENTS, candidate_dir, chooses_agreement


def _state(path):
    return torch.load(path, weights_only=True)


def test_auto_trains_both_agreements_from_one_prefix_and_keeps_the_better_score(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3, "agreement": "auto"})
    cfg = load_config(path)
    assert chooses_agreement(cfg)
    result = train(cfg, run_dir=tmp_path / "auto", progress=False)
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    choice = summary["agreement_choice"]
    scores = {a: json.loads((candidate_dir(tmp_path / "auto", a) / "summary.json").read_text())["selection_score"]
              for a in AGREEMENTS}
    assert choice["scores"] == scores
    best = max(AGREEMENTS, key=lambda a: (scores[a], -AGREEMENTS.index(a)))
    assert choice["chosen"] == best and result.summary["agreement_choice"]["chosen"] == best
    assert summary["config_hash"] == cfg.hash() and summary["steps"] == 6
    # the chosen candidate's model, byte for byte
    assert (tmp_path / "auto" / "model.pt").read_bytes() == (candidate_dir(tmp_path / "auto", best) /
                                                             "model.pt").read_bytes()
    # both adapted from the same source-only prefix: the second forked from the first one's snapshot
    sym, vis = (json.loads((candidate_dir(tmp_path / "auto", a) / "summary.json").read_text()) for a in AGREEMENTS)
    assert sym["history"][0] == vis["history"][0] and sym["history"][0]["step"] == 3
    assert (candidate_dir(tmp_path / "auto", "symmetric") / "step3.pt").exists()
    # each candidate trained its own agreement
    for a in AGREEMENTS:
        cand = load_config(candidate_dir(tmp_path / "auto", a) / "config.yaml")
        assert cand.method.agreement == a
    # a candidate is exactly the run of its agreement trained alone
    alone = train(load_config(path, ["method.agreement=visible"]), run_dir=tmp_path / "vis", progress=False)
    a, b = _state(candidate_dir(tmp_path / "auto", "visible") / "last.pt"), _state(alone.checkpoint_path)
    for name in a["student"]:
        torch.testing.assert_close(a["student"][name], b["student"][name], rtol=0, atol=0)


def test_auto_refuses_an_existing_folder_and_resumes_only_what_exists(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3, "agreement": "auto"})
    cfg = load_config(path)
    with pytest.raises(UserError, match="no checkpoint .* of either agreement"):
        train(cfg, run_dir=tmp_path / "auto", resume=True, progress=False)
    train(cfg, run_dir=tmp_path / "auto", progress=False)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        train(cfg, run_dir=tmp_path / "auto", progress=False)
    # a lost choice (interrupted after both candidates) is made again on --resume without retraining
    (tmp_path / "auto" / "summary.json").unlink()
    before = (candidate_dir(tmp_path / "auto", "visible") / "last.pt").stat().st_mtime_ns
    train(cfg, run_dir=tmp_path / "auto", resume=True, progress=False)
    assert (candidate_dir(tmp_path / "auto", "visible") / "last.pt").stat().st_mtime_ns == before
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["agreement_choice"]["chosen"] in AGREEMENTS


def test_auto_is_inert_for_methods_without_views_agreement(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "mean_teacher", "adapt_from_step": 3, "agreement": "auto"})
    cfg = load_config(path)
    assert not chooses_agreement(cfg)
    train(cfg, run_dir=tmp_path / "mt", progress=False)
    assert not candidate_dir(tmp_path / "mt", "symmetric").exists()
    assert "agreement_choice" not in json.loads((tmp_path / "mt" / "summary.json").read_text())


def test_a_bare_trainer_refuses_auto(tiny_config, tmp_path):
    from masktwins_bio.training import Trainer

    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 0, "agreement": "auto"})
    with pytest.raises(ConfigError, match="method.agreement=auto trains one run per agreement"):
        Trainer(load_config(path), run_dir=tmp_path / "bare", progress=False).run()


def test_compare_reports_each_candidate_of_the_choice(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3, "agreement": "auto"})
    result = compare(load_config(path), methods=["source_only", "masktwins"], out_dir=tmp_path / "cmp",
                     progress=False)
    run = next(r for r in result["runs"] if r["method"] == "masktwins")
    audit = run["agreement_choice"]
    assert set(audit["candidates"]) == set(AGREEMENTS) and audit["chosen"] in AGREEMENTS
    assert audit["candidates"][audit["chosen"]]["metrics"] == run["metrics"]
    assert all("IoU" in c["metrics"] for c in audit["candidates"].values())
    # both candidates forked from the ladder's shared prefix (no second prefix trained inside the auto run)
    assert not (candidate_dir(tmp_path / "cmp" / "masktwins" / "seed3", "symmetric") / "step3.pt").exists()


def test_the_live_view_shows_a_candidate_until_the_choice_is_made(tmp_path):
    from masktwins_bio.training.choice import model_so_far

    assert model_so_far(tmp_path) is None
    for i, a in enumerate(AGREEMENTS):
        candidate_dir(tmp_path, a).mkdir()
        (candidate_dir(tmp_path, a) / "model.pt").write_bytes(b"x")
        os.utime(candidate_dir(tmp_path, a) / "model.pt", ns=(10**18 + i, 10**18 + i))
    assert model_so_far(tmp_path) == candidate_dir(tmp_path, AGREEMENTS[-1]) / "model.pt"  # the newest
    (tmp_path / "model.pt").write_bytes(b"y")
    assert model_so_far(tmp_path) == tmp_path / "model.pt"


def test_the_comparison_table_says_which_agreement_was_chosen():
    from masktwins_bio.experiments import format_comparison

    result = {"columns": ["IoU"], "seeds": [0], "budget": {"steps": 6, "batch_source": 1, "batch_target": 1,
                                                          "patch_size": [4, 32, 32]},
              "table": [{"method": "masktwins", "seeds": 1, "IoU": (0.6, 0.0)}],
              "runs": [{"method": "masktwins", "seed": 0, "agreement_choice": {"chosen": "visible", "candidates": {
                  "symmetric": {"label_free_score": 0.91, "metrics": {"IoU": 0.55}},
                  "visible": {"label_free_score": 0.93, "metrics": {"IoU": 0.6}}}}}]}
    text = format_comparison(result)
    assert ("masktwins seed 0: visible (symmetric 0.9100 (IoU 55.0), visible 0.9300 (IoU 60.0))" in text), text


def test_a_failed_overwrite_brings_the_old_auto_run_back(tiny_config, tmp_path):
    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 3, "agreement": "auto"})
    train(load_config(path), run_dir=tmp_path / "auto", progress=False)
    before = (tmp_path / "auto" / "summary.json").read_text()
    bad = load_config(path, ["source.image=missing.zarr"])
    with pytest.raises(UserError, match="missing.zarr"):
        train(bad, run_dir=tmp_path / "auto", overwrite=True, progress=False)
    assert (tmp_path / "auto" / "summary.json").read_text() == before  # the old run, whole
    assert not list(tmp_path.glob(".auto.replaced-*"))


PROBED = ["train.steps=8", "train.val_every=2", "train.checkpoint_every=2"]  # adapt from 4, probe at 6


def test_the_probe_stops_the_lower_scoring_candidate_halfway(tiny_config, tmp_path):
    from masktwins_bio.training.choice import PROBE_FILE, probe_step

    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 4, "agreement": "auto"})
    cfg = load_config(path, PROBED)
    assert probe_step(cfg) == 6
    assert probe_step(load_config(path, PROBED + ["method.agreement_probe=1"])) is None  # both to the end
    assert probe_step(load_config(path, PROBED + ["method.agreement_probe=0.1"])) is None  # no validation between
    assert probe_step(load_config(path, PROBED + ["train.max_minutes=1"])) is None  # a wall-clock budget
    events = []
    train(cfg, run_dir=tmp_path / "auto", progress=False,
          callback=lambda step, logs: events.extend((step, k, logs[k]) for k in ("candidate", "choice") if k in logs))
    summaries = {a: json.loads((candidate_dir(tmp_path / "auto", a) / "summary.json").read_text()) for a in AGREEMENTS}
    choice = json.loads((tmp_path / "auto" / "summary.json").read_text())["agreement_choice"]
    chosen, other = choice["chosen"], next(a for a in AGREEMENTS if a != choice["chosen"])
    assert choice["probe_step"] == 6 and json.loads((tmp_path / "auto" / PROBE_FILE).read_text())["chosen"] == chosen
    assert summaries[other]["steps"] == 6 and summaries[chosen]["steps"] == 8  # the other stopped at the probe
    assert choice["scores"][other] == summaries[other]["selection_score"]
    assert choice["scores"][chosen] >= choice["scores"][other]
    assert choice["final_score"] == summaries[chosen]["selection_score"]
    # a live view hears of each candidate from the prefix step, then of the choice at the probe step
    assert [(step, kind) for step, kind, _ in events] == [(4, "candidate"), (4, "candidate"), (6, "choice")]
    assert events[-1][2] == {"agreement": chosen, "step": 6, "scores": choice["scores"]}
    # the chosen candidate is exactly its agreement trained alone to the end (stopped and resumed at the probe)
    alone = train(load_config(path, PROBED + [f"method.agreement={chosen}"]), run_dir=tmp_path / "alone",
                  progress=False)
    a, b = _state(candidate_dir(tmp_path / "auto", chosen) / "last.pt"), _state(alone.checkpoint_path)
    for name in a["student"]:
        torch.testing.assert_close(a["student"][name], b["student"][name], rtol=0, atol=0)


def test_a_run_interrupted_after_the_probe_resumes_the_chosen_candidate(tiny_config, tmp_path):
    from masktwins_bio.training.choice import PROBE_FILE

    path, _ = tiny_config(method={"name": "masktwins", "adapt_from_step": 4, "agreement": "auto"})
    cfg = load_config(path, PROBED)
    run = tmp_path / "auto"
    train(cfg, run_dir=run, progress=False, should_stop=lambda: (run / PROBE_FILE).exists())  # stopped at the probe
    chosen = json.loads((run / PROBE_FILE).read_text())["chosen"]
    other = next(a for a in AGREEMENTS if a != chosen)
    assert json.loads((candidate_dir(run, chosen) / "summary.json").read_text())["steps"] == 6
    before = (candidate_dir(run, other) / "last.pt").read_bytes()
    train(cfg, run_dir=run, resume=True, progress=False)
    assert (candidate_dir(run, other) / "last.pt").read_bytes() == before  # the other is not trained again
    assert json.loads((candidate_dir(run, chosen) / "summary.json").read_text())["steps"] == 8
    final = json.loads((run / "summary.json").read_text())
    assert final["agreement_choice"]["chosen"] == chosen and final["steps"] == 8
    uninterrupted = train(cfg, run_dir=tmp_path / "once", progress=False)
    a, b = _state(candidate_dir(run, chosen) / "last.pt"), _state(uninterrupted.checkpoint_path)
    for name in a["student"]:
        torch.testing.assert_close(a["student"][name], b["student"][name], rtol=0, atol=0)
