"""The protocol harness (``masktwins-bio benchmark``) and the method ladder (``masktwins-bio compare``)."""

from __future__ import annotations

import json

import numpy as np

import pytest

from masktwins_bio.cli import main
from masktwins_bio.errors import InputError
from masktwins_bio.experiments.harness import build_experiment


def test_build_experiment_fits_patch_and_reads_voxel_sizes(tiny_pair, tmp_path):
    cfg = build_experiment(tiny_pair / "source.zarr", tiny_pair / "source_labels.zarr", tiny_pair / "target.zarr",
                           tiny_pair / "target.zarr", tiny_pair / "target_labels.zarr", steps=7, device="cpu",
                           out_dir=tmp_path / "bench")
    # the OME-Zarr metadata (40 x 8 x 8 nm both) and the grid rule: 96-pixel CPU patches at 12 nm
    assert cfg.data.voxel_size == pytest.approx((40, 12, 12))
    assert cfg.data.patch_size[0] <= 12 and cfg.data.patch_size[1] <= 64 * 8 / 12  # shrunk to the smallest volume
    given = build_experiment(tiny_pair / "source.zarr", tiny_pair / "source_labels.zarr", tiny_pair / "target.zarr",
                             tiny_pair / "target.zarr", tiny_pair / "target_labels.zarr", voxel_size=(40, 8, 8),
                             out_dir=tmp_path / "given")
    assert given.data.voxel_size == pytest.approx((40, 8, 8))  # --voxel-size wins
    assert cfg.train.steps == 7 and cfg.train.device == "cpu"
    assert cfg.target.eval.labels.endswith("target_labels.zarr")


def test_build_experiment_refuses_unknown_preset(tiny_pair, tmp_path):
    with pytest.raises(InputError, match="cpu, gpu"):
        build_experiment(tiny_pair / "source.zarr", tiny_pair / "source_labels.zarr", tiny_pair / "target.zarr",
                         tiny_pair / "target.zarr", tiny_pair / "target_labels.zarr", preset="tpu",
                         out_dir=tmp_path / "bench")


def test_teacher_decay_follows_the_budget(tiny_pair, tmp_path):
    def alpha(steps):
        return build_experiment(tiny_pair / "source.zarr", tiny_pair / "source_labels.zarr",
                                tiny_pair / "target.zarr", tiny_pair / "target.zarr",
                                tiny_pair / "target_labels.zarr", steps=steps, out_dir=tmp_path).method.ema_alpha

    assert alpha(300) == pytest.approx(0.99) and alpha(40_000) == pytest.approx(0.999)
    assert 0.99 < alpha(5000) < 0.999


def _run_benchmark(args, out, capsys):
    rc = main(["benchmark", *args, "--steps", "4", "--device", "cpu", "--no-progress", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    table = json.loads((out / "comparison.json").read_text())
    assert (out / "comparison.md").exists()
    return text, table


def test_benchmark_cli_on_synthetic_pair(tiny_pair, tmp_path, capsys):
    out = tmp_path / "bench"
    text, table = _run_benchmark(["--source-image", str(tiny_pair / "source.zarr"),
                                  "--source-labels", str(tiny_pair / "source_labels.zarr"),
                                  "--target-image", str(tiny_pair / "target.zarr"),
                                  "--test-labels", str(tiny_pair / "target_labels.zarr"),
                                  "--methods", "source_only,masktwins"], out, capsys)
    assert "source_only" in text and "masktwins" in text
    # the DA-ISC metrics, per section and whole volume, and the instance metrics are all reported
    assert {"AP", "F1", "MCC", "IoU", "AP (vol)", "IoU (vol)"} <= set(table["columns"])
    assert any("inst" in c for c in table["columns"])


@pytest.mark.shared_data
def test_benchmark_vnc3_to_fafb_small_budget(shared_data, tmp_path, capsys):
    """The harness end to end on the real VNC III -> FAFB pair with a tiny CPU budget (skipped without the data).

    The full VNC III slices are the source; the FAFB target is a 8 x 512 x 512 crop written to OME-Zarr (as a user
    would prepare a test region) so that predicting it twice stays cheap on CPU.
    """
    from masktwins_bio.io import open_volume, write_ome_zarr

    vnc, fafb = shared_data / "vnc3_drosophila_mito", shared_data / "fafb_mito_damitoseg"
    crop = (slice(None), slice(512, 1024), slice(512, 1024))
    write_ome_zarr(tmp_path / "fafb_im.zarr", open_volume(fafb / "im")[crop], voxel_size=(40, 8, 8))
    write_ome_zarr(tmp_path / "fafb_seg.zarr", open_volume(fafb / "seg")[crop], voxel_size=(40, 8, 8), kind="labels")
    out = tmp_path / "vnc2fafb"
    text, table = _run_benchmark(["--source-image", str(vnc / "raw"), "--source-labels", str(vnc / "mitochondria"),
                                  "--source-voxel-size", "50,4.6,4.6", "--target-image", str(tmp_path / "fafb_im.zarr"),
                                  "--test-labels", str(tmp_path / "fafb_seg.zarr"), "--test-label-threshold", "128",
                                  "--voxel-size", "40,8,8", "--methods", "source_only,masktwins", "--no-instances"],
                                 out, capsys)
    assert "vnc3_drosophila_mito" in text and "masktwins" in text
    assert {r["method"] for r in table["runs"]} == {"source_only", "masktwins"}


def _regridded_test_set(tiny_pair, tmp_path, voxel_size, shape, metadata=True):
    """The tiny target and its labels re-gridded to ``voxel_size`` with exactly ``shape`` (an extent that is not a
    whole number of training voxels), written to Zarr with or without voxel-size metadata."""
    import zarr

    from masktwins_bio.io import open_volume, write_ome_zarr

    paths = []
    for name, kind in (("target", "image"), ("target_labels", "labels")):
        vol = open_volume(tiny_pair / f"{name}.zarr", kind=kind).resampled(voxel_size, shape=shape)
        data = vol[:].astype(np.uint8)
        path = tmp_path / f"test_{name}.zarr"
        if metadata:
            write_ome_zarr(path, data, voxel_size=voxel_size, kind=kind)
        else:
            zarr.create_array(str(path), data=data)
        paths.append(path)
    return paths


@pytest.mark.parametrize("voxel_size, shape", [
    ((10.0, 6.0, 6.0), (47, 86, 85)),   # finer in every axis, extents not divisible by the factors (4, 4/3, 4/3)
    ((40.0, 10.0, 7.0), (11, 51, 73)),  # another anisotropy: y coarser, x finer than the 40 x 8 x 8 nm grid
])
def test_benchmark_evaluates_on_the_test_volume_own_grid(tiny_pair, tmp_path, capsys, voxel_size, shape):
    image, labels = _regridded_test_set(tiny_pair, tmp_path, voxel_size, shape)
    out = tmp_path / "bench"
    _, table = _run_benchmark(["--source-image", str(tiny_pair / "source.zarr"),
                               "--source-labels", str(tiny_pair / "source_labels.zarr"),
                               "--target-image", str(tiny_pair / "target.zarr"),
                               "--test-image", str(image), "--test-labels", str(labels),
                               "--methods", "source_only", "--no-instances"], out, capsys)
    summary = json.loads((out / "source_only" / "seed0" / "target_eval" / "summary.json").read_text())
    assert summary["semantic"]["per_section_mean"]["iou"] is not None
    assert summary["inputs"]["evaluated_shape"] == list(shape)  # every GT voxel, on the GT's own grid
    assert any("resampled" in n for n in summary.get("notes", []))


def test_benchmark_test_voxel_size_defaults_to_the_targets(tiny_pair, tmp_path, capsys):
    # a test stack without voxel-size metadata, imaged like the target: --test-voxel-size defaults to the target's
    image, labels = _regridded_test_set(tiny_pair, tmp_path, (40.0, 8.0, 8.0), (12, 64, 64), metadata=False)
    _, table = _run_benchmark(["--source-image", str(tiny_pair / "source.zarr"),
                               "--source-labels", str(tiny_pair / "source_labels.zarr"),
                               "--target-image", str(tiny_pair / "target.zarr"), "--target-voxel-size", "40,8,8",
                               "--test-image", str(image), "--test-labels", str(labels),
                               "--methods", "source_only", "--no-instances"], tmp_path / "bench", capsys)
    assert table["runs"][0]["metrics"]["IoU"] is not None
