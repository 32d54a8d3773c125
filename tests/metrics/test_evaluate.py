"""evaluate(): Zarr inputs, streaming, ROI/resampling, binary masks as instances, summary.json, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cc3d
import numpy as np
import pytest

from masktwins_bio.cli import main
from masktwins_bio.errors import Cancelled, InputError
from masktwins_bio.io import write_ome_zarr
from masktwins_bio.metrics import contingency_table, evaluate, format_summary, instance_metrics, semantic_metrics


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(7)
    shape = (6, 20, 24)
    gt = np.zeros(shape, dtype=np.uint16)
    # a few box-shaped instances, some crossing block and chunk borders
    for i, (z, y, x) in enumerate([(0, 2, 2), (1, 10, 3), (3, 4, 14), (2, 13, 15), (4, 1, 8)], start=1):
        gt[z : z + 2, y : y + 5, x : x + 6] = i
    noise = rng.random(shape)
    prob = np.clip(0.7 * (gt > 0) + 0.45 * noise, 0, 1)
    prob_u8 = np.round(prob * 255).astype(np.uint8)
    labels = cc3d.connected_components(prob_u8 >= 128, connectivity=26).astype(np.uint32)
    return {"gt": gt, "prob": prob_u8, "labels": labels}


@pytest.fixture(scope="module")
def stores(arrays, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    chunks = (2, 8, 8)
    paths = {
        "gt": write_ome_zarr(d / "gt.zarr", arrays["gt"], voxel_size=(30, 8, 8), chunks=chunks, kind="labels"),
        "prob": write_ome_zarr(d / "prob.zarr", arrays["prob"], voxel_size=(30, 8, 8), chunks=chunks,
                               attrs={"complete": True}),
        "labels": write_ome_zarr(d / "labels.zarr", arrays["labels"], voxel_size=(30, 8, 8), chunks=chunks,
                                 kind="labels"),
    }
    return {k: str(v) for k, v in paths.items()}


def _assert_same_semantic(a: dict, b: dict):
    assert a["counts"] == b["counts"]
    for key, value in a["whole_volume"].items():
        assert value == pytest.approx(b["whole_volume"][key], nan_ok=True, rel=1e-12), key
    for key, value in a["per_section_mean"].items():
        assert value == pytest.approx(b["per_section_mean"][key], nan_ok=True, rel=1e-12), key


def test_zarr_probability_map(stores, arrays, tmp_path):
    out = tmp_path / "res"
    s = evaluate(stores["prob"], stores["gt"], out, block_shape=(2, 8, 16))
    assert s["inputs"]["prediction"]["kind"] == "probability"  # uint8 + masktwins-bio provenance
    assert s["settings"]["n_blocks"] == 3 * 3 * 2
    ref = semantic_metrics(arrays["prob"], arrays["gt"])
    _assert_same_semantic(s["semantic"], ref)
    assert "skipped" in s["instance"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["semantic"]["whole_volume"]["ap"] == pytest.approx(ref["whole_volume"]["ap"])
    assert set(on_disk["conventions"]) >= {"pixel_ap", "empty", "instance_ap", "per_section"}
    assert len(on_disk["semantic"]["per_section"]["f1"]) == arrays["gt"].shape[0]
    table = format_summary(s)
    assert "pixel AP" in table and "per-section" in table and "whole-volume" in table


@pytest.mark.parametrize("block_shape", [(1, 3, 5), (4, 7, 11), (6, 20, 24)])
def test_streamed_equals_whole_on_arrays(arrays, block_shape):
    whole = evaluate(arrays["labels"], arrays["gt"], block_shape=(6, 20, 24))
    streamed = evaluate(arrays["labels"], arrays["gt"], block_shape=block_shape)
    _assert_same_semantic(streamed["semantic"], whole["semantic"])
    ref = instance_metrics(contingency_table(arrays["labels"], arrays["gt"]))
    for key, value in ref.items():
        assert streamed["instance"][key] == (pytest.approx(value, nan_ok=True) if isinstance(value, float) else value)


def test_mask_saved_as_1_and_255_becomes_connected_components(arrays):
    """VNC III's masks are 1-bit PNGs in some sections and 8-bit (255) in others: read as instance ids, the two
    values made two section-spanning "instances" and every instance metric 0 (a silent wrong result)."""
    gt_mask = (arrays["gt"] > 0).astype(np.uint8)
    gt_mask[: gt_mask.shape[0] // 2] *= 255
    ref = instance_metrics(contingency_table(arrays["labels"], cc3d.connected_components(gt_mask > 0)))
    stray = ((arrays["gt"] > 0) * 255).astype(np.uint8)  # a drawn 0/255 mask ...
    fg = np.flatnonzero(stray)
    stray.flat[fg[0]] = 37  # ... with a stray anti-aliased edge value (VNC III has 119 of them, on < 0.1 %)
    assert fg.size >= 100
    for gt in (gt_mask, stray):
        s = evaluate(arrays["labels"], gt, block_shape=(2, 8, 8))
        assert s["instance"]["n_gt"] == ref["n_gt"] > 2
        assert s["instance"]["f1_50"] == pytest.approx(ref["f1_50"], nan_ok=True)
        assert "connected components" in s["instance"]["instances_from"]["ground_truth"]

def test_label_prediction_with_scores(stores, arrays):
    s = evaluate(stores["labels"], stores["gt"], prob=stores["prob"], block_shape=(2, 8, 8))
    inst = s["instance"]
    assert inst["score"] == "mean_prob"
    ref = instance_metrics(contingency_table(arrays["labels"], arrays["gt"], arrays["prob"] / 255.0))
    for key in ("ap50", "ap75", "f1_50", "voi", "arand", "false_merges", "false_splits"):
        assert inst[key] == pytest.approx(ref[key], nan_ok=True)


def test_binary_gt_becomes_connected_components(arrays):
    gt_mask = (arrays["gt"] > 0).astype(np.uint8) * 255  # an 8-bit mask
    s = evaluate(arrays["labels"], gt_mask, gt_threshold=128, block_shape=(2, 8, 8))
    ref = instance_metrics(contingency_table(arrays["labels"], cc3d.connected_components(gt_mask >= 128)))
    assert s["instance"]["n_gt"] == ref["n_gt"]
    assert s["instance"]["ap75"] == pytest.approx(ref["ap75"], nan_ok=True)
    assert "connected components" in s["instance"]["instances_from"]["ground_truth"]
    assert s["inputs"]["ground_truth"]["kind"] == "mask"
    # a binary-mask prediction: its connected components are the predicted instances
    mask_pred = (arrays["labels"] > 0).astype(np.uint8)
    s = evaluate(mask_pred, arrays["gt"], per_section=False)
    ref = instance_metrics(contingency_table(cc3d.connected_components(mask_pred), arrays["gt"]))
    assert s["instance"]["n_pred"] == ref["n_pred"] and s["instance"]["ap50"] == pytest.approx(ref["ap50"])
    assert "connected components" in s["instance"]["instances_from"]["prediction"]
    assert "per_section" not in s["semantic"] and "per-section" not in format_summary(s)
    # beyond max_label_voxels the mask is labelled on disk (a temporary Zarr store): the same instances
    s_mem = evaluate(arrays["labels"], gt_mask, gt_threshold=128, block_shape=(2, 8, 8))
    s_disk = evaluate(arrays["labels"], gt_mask, gt_threshold=128, block_shape=(2, 8, 8), max_label_voxels=100)
    for key in ("n_gt", "n_pred", "ap50", "ap75", "voi", "arand"):
        assert s_disk["instance"][key] == pytest.approx(s_mem["instance"][key], nan_ok=True)


@pytest.mark.parametrize("stop_in", ["evaluate", "instances"])
def test_callback_and_should_stop(arrays, tmp_path, stop_in):
    gt_mask = (arrays["gt"] > 0).astype(np.uint8)  # binary GT: passes evaluate, reading ... mask, instances
    calls = []
    evaluate(arrays["labels"], gt_mask, tmp_path / "ok", block_shape=(2, 8, 8), callback=lambda *a: calls.append(a))
    n = arrays["gt"].size
    passes = ("evaluate", "ground truth mask: label", "ground truth mask: merge", "ground truth mask: relabel",
              "instances")
    assert [c[0] for c in calls if c[1] == 0] == list(passes)
    assert all(c[2] == n for c in calls) and [c for c in calls if c[1] == n] == [(d, n, n) for d in passes]
    calls.clear()
    out = tmp_path / "stopped"
    with pytest.raises(Cancelled):
        evaluate(arrays["labels"], gt_mask, out, block_shape=(2, 8, 8), callback=lambda *a: calls.append(a),
                 should_stop=lambda: calls[-1][0] == stop_in and calls[-1][1] > 0)
    assert calls[-1][0] == stop_in and 0 < calls[-1][1] < n
    assert (tmp_path / "ok" / "summary.json").is_file() and not out.exists()


def test_roi_crops_both_or_gt_only(arrays):
    roi = "1:5, 4:20, 0:17"
    sl = (slice(1, 5), slice(4, 20), slice(0, 17))
    ref = evaluate(arrays["prob"].astype(np.float32)[sl] / 255, arrays["gt"][sl])
    both = evaluate(arrays["prob"].astype(np.float32) / 255, arrays["gt"], roi=roi, instance=False)
    _assert_same_semantic(both["semantic"], ref["semantic"])
    pred_of_roi = evaluate(arrays["prob"].astype(np.float32)[sl] / 255, arrays["gt"], roi=roi)
    _assert_same_semantic(pred_of_roi["semantic"], ref["semantic"])
    assert both["inputs"]["roi"] == "1:5, 4:20, 0:17"


def test_prediction_resampled_to_gt_voxel_size(tmp_path):
    gt = np.zeros((4, 8, 8), dtype=np.uint8)
    gt[1:3, 2:6, 2:8] = 1
    low = gt[:, ::2, ::2].astype(np.uint32)  # prediction at half the in-plane resolution
    p = write_ome_zarr(tmp_path / "low.zarr", low, voxel_size=(30, 16, 16), kind="labels", chunks=(2, 4, 4))
    g = write_ome_zarr(tmp_path / "gt.zarr", gt, voxel_size=(30, 8, 8), kind="labels", chunks=(2, 8, 8))
    s = evaluate(str(p), str(g))
    ref = semantic_metrics(np.repeat(np.repeat(low, 2, axis=1), 2, axis=2), gt, kind="binary")
    _assert_same_semantic(s["semantic"], ref)
    assert any("resampled" in n for n in s["notes"])


def test_empty_prediction_and_gt_are_reported_not_nan_surprises(tmp_path):
    empty = np.zeros((2, 6, 6), dtype=np.uint16)
    gt = empty.copy()
    gt[0, 1:4, 1:4] = 1
    s = evaluate(empty, gt, tmp_path / "s.json")
    assert s["semantic"]["whole_volume"]["f1"] == 0.0 and s["instance"]["ap50"] == 0.0
    s = evaluate(gt, empty)
    assert np.isnan(s["semantic"]["whole_volume"]["ap"]) and np.isnan(s["instance"]["ap50"])
    assert any("no foreground" in n for n in s["notes"])
    s = evaluate(empty, empty, tmp_path / "both.json")
    data = json.loads((tmp_path / "both.json").read_text())  # strict JSON: NaN written as null
    assert data["semantic"]["whole_volume"]["f1"] is None
    assert data["semantic"]["per_section_mean"]["f1"] is None
    assert data["semantic"]["whole_volume"]["accuracy"] == 1.0


# -- bad input ----------------------------------------------------------------------------------------------------


def _bad_cases(tmp_path: Path, arrays, stores):
    gt = arrays["gt"]
    prob = arrays["prob"].astype(np.float32) / 255
    over = prob.copy()
    over[3, 5, 7] = 1.5
    nan = prob.copy()
    nan[0, 0, 1] = np.nan
    neg_gt = gt.astype(np.int16)
    neg_gt[2, 2, 2] = -1
    incomplete = write_ome_zarr(tmp_path / "partial.zarr", arrays["prob"], voxel_size=(30, 8, 8),
                                attrs={"complete": False, "command": "predict"})
    (tmp_path / "exists.json").write_text("{}")
    return {
        "above one": (dict(pred=over, gt=gt), r"1\.5 at \(z, y, x\) = \(3, 5, 7\) is outside \[0, 1\]"),
        "nan": (dict(pred=nan, gt=gt), "outside"),
        "complex": (dict(pred=prob.astype(np.complex64), gt=gt), "complex64.*not supported"),
        "float as labels": (dict(pred=prob, gt=gt, pred_kind="labels"), "declared as labels"),
        "uint16 probability": (dict(pred=gt, gt=gt, pred_kind="probability"), "uint8"),
        "shape": (dict(pred=prob[:, :10], gt=gt), r"\(6, 10, 24\).*\(6, 20, 24\).*--roi"),
        "negative gt": (dict(pred=prob, gt=neg_gt), "negative"),
        "float gt": (dict(pred=prob, gt=prob), "ground truth has dtype float32"),
        "incomplete": (dict(pred=str(incomplete), gt=gt), "incomplete.*predict.*--resume"),
        "exists": (dict(pred=prob, gt=gt, output=tmp_path / "exists.json"), "already exists.*--overwrite"),
        "block shape": (dict(pred=stores["prob"], gt=stores["gt"], block_shape=(3, 8, 8)), "multiple of the chunks"),
        "instances of probabilities": (dict(pred=prob, gt=gt, instance=True), "segment it first"),
        "roi": (dict(pred=prob, gt=gt, roi="0:2, 5:5, :"), "empty"),
        "threshold": (dict(pred=prob, gt=gt, threshold=1.5), "threshold"),
    }


CASES = ["above one", "nan", "complex", "float as labels", "uint16 probability", "shape", "negative gt", "float gt",
         "incomplete", "exists", "block shape", "instances of probabilities", "roi", "threshold"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_raises_input_error(case, tmp_path, arrays, stores):
    kwargs, pattern = _bad_cases(tmp_path, arrays, stores)[case]
    kwargs = dict(kwargs)
    with pytest.raises(InputError, match=pattern) as info:
        evaluate(kwargs.pop("pred"), kwargs.pop("gt"), kwargs.pop("output", None), **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "summary.json").exists()


# -- CLI ------------------------------------------------------------------------------------------------------------


def test_cli_table_json_and_summary(stores, tmp_path, capsys):
    assert main(["evaluate", stores["labels"], stores["gt"], "--out", str(tmp_path), "--block-shape", "2,8,8"]) == 0
    out = capsys.readouterr().out
    assert "AP@0.75" in out and "pixel AP" in out
    assert (tmp_path / "summary.json").exists()
    assert main(["evaluate", stores["prob"], stores["gt"], "--json", "--roi", "0:4,:,:", "--threshold", "0.4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"]["evaluated_shape"] == [4, 20, 24] and data["settings"]["threshold"] == 0.4


def _write_npy_tif(path: Path, data: np.ndarray) -> str:
    import tifffile

    tifffile.imwrite(str(path), data)
    return str(path)


@pytest.mark.parametrize("case", ["shape", "above one", "incomplete", "float gt", "exists"])
def test_cli_bad_input_exits_2_with_one_line(case, tmp_path, arrays, capsys):
    gt = _write_npy_tif(tmp_path / "gt.tif", arrays["gt"])
    prob = arrays["prob"].astype(np.float32) / 255
    args = {  # built lazily: each case writes its own inputs
        "shape": lambda: [_write_npy_tif(tmp_path / "p.tif", prob[:, :10]), gt],
        "above one": lambda: [_write_npy_tif(tmp_path / "p.tif", prob * 2), gt],
        "incomplete": lambda: [str(write_ome_zarr(tmp_path / "p.zarr", arrays["prob"], attrs={"complete": False})), gt],
        "float gt": lambda: [_write_npy_tif(tmp_path / "p.tif", prob), _write_npy_tif(tmp_path / "g.tif", prob)],
        "exists": lambda: [_write_npy_tif(tmp_path / "p.tif", prob), gt, "--out", str(tmp_path)],
    }[case]()
    if case == "exists":
        (tmp_path / "summary.json").write_text("{}")
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("masktwins-bio evaluate: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.shared_data
def test_fafb_masks_as_ground_truth(shared_data, capsys):
    seg = shared_data / "fafb_mito_damitoseg" / "seg"
    if not seg.is_dir():
        pytest.skip("FAFB masks not in the shared data")
    assert main(["evaluate", str(seg), str(seg), "--gt-threshold", "128", "--no-instances", "--json",
                 "--roi", "0:2,:,:"]) == 0
    data = json.loads(capsys.readouterr().out)
    whole = data["semantic"]["whole_volume"]
    assert whole["recall"] == 1.0 and whole["precision"] > 0.99


def test_uint8_file_of_unknown_kind_must_be_named(tmp_path, arrays, capsys):
    """Issue 12: a uint8 0-255 probability TIFF predict did not write was read as instance ids (IoU 9.4 instead of
    29.2); it is ambiguous, so --pred-kind decides. A uint8 mask (two values) is still read as labels."""
    import tifffile

    from masktwins_bio.cli import main

    prob = (np.linspace(0, 255, arrays["gt"].size).reshape(arrays["gt"].shape)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    gt = write_ome_zarr(tmp_path / "gt.zarr", arrays["gt"], voxel_size=(30, 8, 8))
    assert main(["evaluate", str(tmp_path / "prob.tif"), str(gt), "--pred-voxel-size", "30,8,8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pred-kind probability or --pred-kind labels" in err, err
    assert main(["evaluate", str(tmp_path / "prob.tif"), str(gt), "--pred-voxel-size", "30,8,8",
                 "--pred-kind", "probability", "--no-instances"]) == 0
    tifffile.imwrite(tmp_path / "mask.tif", ((arrays["gt"] > 0) * 255).astype(np.uint8))
    assert main(["evaluate", str(tmp_path / "mask.tif"), str(gt), "--pred-voxel-size", "30,8,8"]) == 0


def test_a_probability_map_is_not_ground_truth(tmp_path, arrays, stores, capsys):
    """Issue 12: a predict output given as the GT was read as ids 0-255 (foreground p > 0), without a word."""
    prob = write_ome_zarr(tmp_path / "predicted.zarr", arrays["prob"], voxel_size=(30, 8, 8),
                          attrs={"task": "predict", "complete": True})
    assert main(["evaluate", stores["labels"], str(prob)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "probability map written by masktwins-bio predict" in err, err
    assert "--gt-threshold 128" in err
    summary = evaluate(stores["labels"], str(prob), gt_threshold=128)  # thresholded, it is a mask
    assert summary["inputs"]["ground_truth"]["kind"] == "mask"


def test_resampling_beyond_8x_is_refused_unless_allowed(tmp_path):
    gt = write_ome_zarr(tmp_path / "gt.zarr", np.ones((4, 80, 80), np.uint8), voxel_size=(40, 1, 1), kind="labels")
    pred = write_ome_zarr(tmp_path / "p.zarr", np.full((4, 8, 8), 255, np.uint8), voxel_size=(40, 10, 10),
                          attrs={"task": "predict", "complete": True})
    with pytest.raises(InputError, match="more than 8x along an axis"):
        evaluate(str(pred), str(gt))
    summary = evaluate(str(pred), str(gt), allow_resampling=True, instance=False)
    assert summary["semantic"]["whole_volume"]["iou"] == pytest.approx(1.0)


@pytest.mark.parametrize("gt_voxel_size, factor", [((40.0, 8.0, 8.0), 1), ((40.0, 4.0, 4.0), 2)])
def test_segment_and_evaluate_agree_on_what_an_instance_is(tmp_path, gt_voxel_size, factor):
    """Issue 15: segment reported 1 instance and evaluate counted 2 on the same output (a {0,1} label volume was
    re-labelled as a mask after resampling)."""
    from masktwins_bio.io import write_ome_zarr
    from masktwins_bio.postprocess import segment

    prob = np.zeros((8, 64, 64), np.uint8)
    prob[2:6, 10:30, 10:30] = 255
    prob[1:7, 40:52, 36:60] = 255
    prob[3, 2:6, 50:54] = 200
    write_ome_zarr(tmp_path / "prob.zarr", prob, voxel_size=(40, 8, 8))
    gt = (prob > 0).astype(np.uint8)
    gt = np.repeat(np.repeat(gt, factor, 1), factor, 2)
    write_ome_zarr(tmp_path / "gt.zarr", gt, voxel_size=gt_voxel_size, kind="labels")
    out = segment(tmp_path / "prob.zarr", tmp_path / "inst.zarr", min_size=1, progress=False)
    n = dict(__import__("zarr").open_group(str(out)).attrs)["masktwins_bio"]["n_instances"]
    summary = evaluate(out, tmp_path / "gt.zarr")
    assert n == 3 and summary["instance"]["n_pred"] == n and summary["instance"]["n_gt"] == 3
