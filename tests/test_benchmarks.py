"""Smoke test of the inference benchmark at a tiny size: the script a GPU session runs once must not break.

Numbers are not checked (performance claims live in BENCHMARKS.md); only that every row is printed, that our output
equals MONAI's, and that the RSS children report.
"""

from __future__ import annotations

import json
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
    assert re.search(r"amp none\+native .*fp32.*source-only step", out), out  # the old code, first
    assert re.search(r"amp none +\(fp32.*source-only step", out), out
    assert re.search(r"amp auto .*MaskTwins step .*x vs none\+native", out), out
    assert "rate ratio Zarr/in-memory" in out and "mask/step" in out


def test_train_step_benchmark_ladder_throughput_old_vs_new():
    bench = BENCH.parent / "train_step.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--size", "tiny", "--patch", "4,32,32", "--channels", "4,8", "--reps", "1",
         "--block", "1", "--concurrent", "2"], capture_output=True, text=True, timeout=600, check=True).stdout
    assert "old = 1 process" in out and "new = 2 processes" in out, out
    assert re.search(r"MaskTwins +step: old .* steps/s, new .* steps/s, speed-up [0-9.]+x", out), out


def test_adaptation_study_dry_run_and_report(tmp_path):
    """The study prints one benchmark command per row and direction (a --methods subset replacing the row's own, a
    forking row pointing at its base row's prefix) and reports the comparisons it finds."""
    study = BENCH.parent / "adaptation_study.py"
    out = subprocess.run(
        [sys.executable, str(study), "--rows", "base,cm_1", "--methods", "source_only,masktwins", "--jobs", "2",
         "--out", str(tmp_path), "--dry-run"], capture_output=True, text=True, timeout=60, check=True).stdout
    cmds = out.strip().splitlines()
    assert len(cmds) == 4 and all(c.startswith("masktwins-bio benchmark ") for c in cmds), out
    assert all("--methods source_only,masktwins" in c for c in cmds), out
    assert "--prefix-from" not in cmds[0] and f"--prefix-from {tmp_path / 'vnc2fafb' / 'base'}" in cmds[2], out
    assert "--voxel-size" not in cmds[0]  # the harness's grid rule unless given
    out = subprocess.run(
        [sys.executable, str(study), "--rows", "cm_1", "--out", str(tmp_path), "--voxel-size", "40,8,8",
         "--fork-from", "elsewhere/{direction}/grid", "--dry-run"], capture_output=True, text=True, timeout=60,
        check=True).stdout
    assert all("--voxel-size 40,8,8" in c and "--prefix-from elsewhere/" in c for c in out.strip().splitlines())
    assert "--prefix-from elsewhere/fafb2vnc/grid" in out, out
    row = tmp_path / "fafb2vnc" / "base"
    row.mkdir(parents=True)
    (row / "comparison.json").write_text(
        '{"table": [{"method": "masktwins", "seeds": 3, "IoU": [0.601, 0.012], "train_seconds": 600}]}')
    report = subprocess.run([sys.executable, str(study), "--report", "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=60, check=True).stdout
    assert "| fafb2vnc | base | masktwins | 3 | 60.1 +- 1.2 |" in report and "| 10.0 |" in report, report
    # --report-runs: from each evaluated seed's own summary (seed 1 was never evaluated: left out, and said)
    for seed, iou in ((0, 0.5), (2, 0.6)):
        (row / "source_only" / f"seed{seed}" / "target_eval").mkdir(parents=True)
        (row / "source_only" / f"seed{seed}" / "target_eval" / "summary.json").write_text(
            json.dumps({"semantic": {"per_section_mean": {"iou": iou}, "whole_volume": {"iou": iou}}}))
    (row / "source_only" / "seed1").mkdir()
    runs = subprocess.run([sys.executable, str(study), "--report-runs", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "| fafb2vnc | base | source_only | 0,2 | ? | 55.0 +- 5.0 |" in runs, runs  # ?: arithmetic not recorded
    # --also pools the seeds of another folder (seed 2 there is a duplicate: counted once, from --out)
    other = tmp_path.parent / (tmp_path.name + "-more") / "fafb2vnc" / "base" / "source_only"
    for seed, iou in ((1, 0.7), (2, 0.9)):
        (other / f"seed{seed}" / "target_eval").mkdir(parents=True)
        (other / f"seed{seed}" / "target_eval" / "summary.json").write_text(json.dumps(
            {"semantic": {"per_section_mean": {"iou": iou, "precision": 0.8, "recall": 0.6}}}))
        (other / f"seed{seed}" / "summary.json").write_text(json.dumps({"precision": "fp32"}))
    (row / "source_only" / "seed0" / "summary.json").write_text(json.dumps({"precision": "bf16"}))
    runs = subprocess.run([sys.executable, str(study), "--report-runs", "--out", str(tmp_path), "--also",
                           str(other.parents[2])], capture_output=True, text=True, timeout=60, check=True).stdout
    # seeds trained in different arithmetic (a CPU with and one without native bf16) are marked as pooled
    assert "| fafb2vnc | base | source_only | 0,1,2 | ?+bf16+fp32 | 60.0 +- 8.2 |" in runs, runs
    assert runs.strip().endswith("| 80.0 / 60.0 |"), runs  # precision / recall where the summaries have them


def test_adaptation_study_reports_the_agreement_choice(tmp_path):
    """--report-choice: per seed, the run the label-free score keeps (ties: symmetric) and whether it was right."""
    study = BENCH.parent / "adaptation_study.py"
    runs = {("symmetric", 0): (0.93, 0.65), ("visible", 0): (0.94, 0.68),   # the directed run scores and is better
            ("symmetric", 1): (0.95, 0.67), ("visible", 1): (0.94, 0.59),   # the symmetric one
            ("symmetric", 2): (0.90, 0.70), ("visible", 2): (0.90, 0.60),   # a tie keeps symmetric
            ("symmetric", 3): (0.91, 0.70)}                                 # one candidate only: left out
    for (agreement, seed), (score, iou) in runs.items():
        row = "src_mask_0.5" if agreement == "symmetric" else "agree_visible"
        run = tmp_path / "fafb2vnc" / row / "masktwins" / f"seed{seed}"
        (run / "target_eval").mkdir(parents=True)
        summary = {"selection_score": score}
        if seed == 0:  # validations every 250 steps, adapting from 2000 of 4000: the probe sees steps 2250-3000
            late = {"symmetric": 0.92, "visible": 0.91}[agreement]  # halfway the symmetric run scored higher
            summary.update(adapt_from_step=2000, steps=4000, history=[
                {"step": 2000, "label_free_score": 0.99}, {"step": 2250, "label_free_score": 0.9},
                {"step": 3000, "label_free_score": late}, {"step": 3250, "label_free_score": 0.99}])
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "target_eval" / "summary.json").write_text(json.dumps({"semantic": {"per_section_mean": {"iou": iou}}}))
    out = subprocess.run([sys.executable, str(study), "--report-choice", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    # seed 0: the probe (the default) keeps the symmetric run, which scored higher halfway - the wrong one here; the
    # final scores would have kept the directed one. The fork step (2000) and validations after the probe do not count
    assert ("| fafb2vnc | 0 | 0.93000 | 0.94000 | 65.0 | 68.0 | 3000: 0.92000 / 0.91000 | symmetric | no | visible |"
            in out), out
    assert "| fafb2vnc | 1 | 0.95000 | 0.94000 | 67.0 | 59.0 | - | symmetric | yes | symmetric |" in out, out
    assert "| fafb2vnc | 2 | 0.90000 | 0.90000 | 70.0 | 60.0 | - | symmetric | yes | symmetric |" in out, out
    assert "| fafb2vnc | 3 |" not in out
    assert "chosen 67.3 +- 2.1 (IoU x100 over 3 seeds; the choice right in 2 of the 3 seeds" in out, out
    assert "| fafb2vnc | auto (chosen) | masktwins | 0,1,2 | ? | 67.3 +- 2.1 |" in out, out  # the chosen runs' line


def test_adaptation_study_reports_an_auto_runs_choice_at_the_probe(tmp_path):
    """--report-choice --choice-method: an ``auto`` run of another variant whose probe stopped one candidate (its IoU
    at the probe, marked; "right" unknown), beside a seed composed from two separate runs of a 4000-step budget."""
    study = BENCH.parent / "adaptation_study.py"
    method = "masktwins_random_pair"
    auto = tmp_path / "vnc2fafb" / "agree_auto" / method / "seed0"
    for agreement, score, iou in (("symmetric", 0.91, 0.60), ("visible", 0.95, 0.66)):
        cand = auto / f"agreement-{agreement}"
        (cand / "target_eval").mkdir(parents=True)
        (cand / "summary.json").write_text(json.dumps({"selection_score": score}))
        (cand / "target_eval" / "summary.json").write_text(json.dumps({"semantic": {"per_section_mean": {"iou": iou}}}))
    (auto / "target_eval").mkdir()
    (auto / "summary.json").write_text(json.dumps({"agreement_choice": {
        "chosen": "visible", "probe_step": 3000, "scores": {"symmetric": 0.90, "visible": 0.92},
        "runs": {a: str(auto / f"agreement-{a}") for a in ("symmetric", "visible")}}}))
    (auto / "target_eval" / "summary.json").write_text(json.dumps({"semantic": {"per_section_mean": {"iou": 0.67}}}))
    for agreement, row, late, iou in (("symmetric", "agree_symmetric", 0.93, 0.64),
                                      ("visible", "agree_visible", 0.92, 0.69)):
        run = tmp_path / "vnc2fafb" / row / method / "seed1"
        (run / "target_eval").mkdir(parents=True)
        # a summary whose "steps" is not the budget: the budget is read from config.yaml
        (run / "config.yaml").write_text("train:\n  steps: 4000\n")
        (run / "summary.json").write_text(json.dumps({"selection_score": late + 0.01, "adapt_from_step": 2000,
                                                      "steps": 3000, "history": [
                                                          {"step": 2500, "label_free_score": late},
                                                          {"step": 3250, "label_free_score": 0.99}]}))
        (run / "target_eval" / "summary.json").write_text(json.dumps({"semantic": {"per_section_mean": {"iou": iou}}}))
    # seed 2: the symmetric run stopped by hand after its probe validation (as auto stops the lower-scoring
    # candidate): its probe score from log.csv (the budget and fork step from its config), no summary, no IoU
    stopped = tmp_path / "vnc2fafb" / "agree_symmetric" / method / "seed2"
    stopped.mkdir(parents=True)
    (stopped / "config.yaml").write_text(json.dumps({  # JSON is YAML
        "source": {"image": "s.zarr", "labels": "l.zarr"}, "target": {"image": "t.zarr"},
        "train": {"steps": 4000, "val_every": 250}, "method": {"name": method, "agreement": "symmetric"}}))
    (stopped / "log.csv").write_text("step,tag,value\n2000,val/label_free_score,0.99\n2250,train/loss,0.5\n"
                                     "2250,val/label_free_score,0.91\n3000,val/label_free_score,0.90\n")
    directed = tmp_path / "vnc2fafb" / "agree_visible" / method / "seed2"
    (directed / "target_eval").mkdir(parents=True)
    (directed / "summary.json").write_text(json.dumps({"selection_score": 0.95, "adapt_from_step": 2000,
                                                       "steps": 4000, "history": [
                                                           {"step": 3000, "label_free_score": 0.92}]}))
    (directed / "target_eval" / "summary.json").write_text(json.dumps({"semantic": {"per_section_mean": {"iou": 0.7}}}))
    out = subprocess.run([sys.executable, str(study), "--report-choice", "--choice-method", method, "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "| vnc2fafb | 0 | - | 0.95000 | 60.0 @3000 | 67.0 | 3000: 0.90000 / 0.92000 | visible | ? | - |" in out, out
    assert "| vnc2fafb | 1 | 0.94000 | 0.93000 | 64.0 | 69.0 | 2500: 0.93000 / 0.92000 | symmetric | no | symmetric |" \
        in out, out
    assert "| vnc2fafb | 2 | - | 0.95000 | - | 70.0 | 3000: 0.91000 / 0.92000 | visible | ? | - |" in out, out
    assert "chosen 67.0 +- 2.4 (IoU x100 over 3 seeds; the choice right in 0 of the 1 seeds" in out, out
    assert f"| vnc2fafb | auto (chosen) | {method} | 0,1,2 | ? | 67.0 +- 2.4 |" in out, out


def test_measure_memory_benchmark_runs_and_reports(tmp_path):
    import json

    out = subprocess.run([sys.executable, str(BENCH.parent / "measure_memory.py"), "--size", "16,128,128",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600, check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert row["rows"] > 0 and row["peak_rss_gib"] > 0 and row["shape"] == [16, 128, 128]


def test_volume_cache_benchmark_runs_the_same_command_lazy_and_in_memory(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH.parent / "volume_cache.py"), "--steps", "100", "--out", str(tmp_path),
         "--dry-run"], capture_output=True, text=True, timeout=60, check=True).stdout
    lazy, mem = out.strip().splitlines()  # one direction by default
    assert "--set data.cache_mb=0" in lazy and "cache_mb" not in mem, out
    assert lazy.replace(" --set data.cache_mb=0", "").replace("lazy", "in_memory") == mem, out
    assert "--steps 100" in mem and "--methods source_only,masktwins" in mem, out


def test_false_positive_objects_are_told_from_true_ones_by_their_overlap():
    sys.path.insert(0, str(BENCH.parent))
    try:
        from false_positives import object_table
    finally:
        sys.path.remove(str(BENCH.parent))
    import numpy as np

    prob = np.zeros((4, 20, 20), np.float32)
    truth = np.zeros(prob.shape, bool)
    prob[1:3, 2:6, 2:6] = 0.9  # a true object, half of it in the ground truth
    truth[1:3, 2:6, 2:4] = True
    prob[1:3, 12:15, 12:15] = 0.7  # a false one
    t = object_table(prob, truth, overlap=0.3)
    order = np.argsort(t["size"])
    np.testing.assert_array_equal(t["size"][order], [18, 32])
    np.testing.assert_array_equal(t["tp"][order], [False, True])
    np.testing.assert_allclose(t["mean"][order], [0.7, 0.9], rtol=1e-6)


def test_hidden_section_probability_never_sees_the_section_it_predicts(tmp_path):
    """``false_positives.py --hidden-sections``: a voxel's probability comes from the view that hid its section, so
    reshuffling one section's pixels (same volume statistics, so the same normalisation) leaves that section's
    hidden-section probability bit for bit as it was, while the sections that saw it change."""
    import numpy as np
    import tifffile
    import torch

    from masktwins_bio.config import ModelConfig
    from masktwins_bio.models import build_network, export_model

    sys.path.insert(0, str(BENCH.parent))
    try:
        from false_positives import hidden_section_probability
    finally:
        sys.path.remove(str(BENCH.parent))
    torch.manual_seed(0)
    cfg = ModelConfig(name="unet", channels=(4, 8), num_res_units=1)
    net = build_network(cfg, (40, 8, 8), (4, 16, 16))
    export_model(net, tmp_path / "model.pt", cfg, {"voxel_size": [40, 8, 8], "patch_size": [4, 16, 16]})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (8, 32, 32), dtype=np.uint8)
    shuffled = image.copy()
    shuffled[3] = rng.permutation(image[3].ravel()).reshape(32, 32)
    maps = []
    for i, data in enumerate((image, shuffled)):
        tifffile.imwrite(tmp_path / f"im{i}.tif", data)
        maps.append(hidden_section_probability(tmp_path, str(tmp_path / f"im{i}.tif"), (40, 8, 8), (40, 8, 8),
                                               (8, 32, 32)))
    assert maps[0].shape == (8, 32, 32) and 0 <= maps[0].min() and maps[0].max() <= 1
    np.testing.assert_array_equal(maps[1][3], maps[0][3])
    assert not np.array_equal(maps[1], maps[0])
