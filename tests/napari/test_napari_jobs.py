"""Plugin helpers without Qt: background jobs (progress, cancel), layer <-> volume conversion, measurements."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")

from masktwins_bio.errors import InputError  # noqa: E402
from masktwins_bio.io import Volume  # noqa: E402
from masktwins_bio.napari._jobs import Cancelled, library_hooks, run_job  # noqa: E402
from masktwins_bio.napari._layers import (layer_problem, layer_volume, layer_voxel_size, output_placement,  # noqa: E402
                                          parse_overrides, parse_triple)


def drain(gen):
    """Run a job generator to the end: (events, JobResult)."""
    events = []
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return events, stop.value
        if item is not None:
            events.append(item)


def test_run_job_outcomes():
    def ok(emit):
        emit("step", 1)
        return 42

    events, result = drain(run_job(ok))
    assert events == [("step", 1)] and result.status == "ok" and result.value == 42

    def fails(emit):
        raise InputError("bad.zarr: broken; fix it")

    _, result = drain(run_job(fails))
    assert result.status == "error" and str(result.error) == "bad.zarr: broken; fix it" and result.traceback

    def cancelled(emit):
        raise Cancelled()

    assert drain(run_job(cancelled))[1].status == "cancelled"


def test_library_hooks_report_progress_and_cancel(tmp_path, model_file):
    from masktwins_bio.inference import predict
    from masktwins_bio.io import open_volume

    data = np.random.default_rng(0).integers(0, 255, (8, 64, 64), dtype=np.uint8)
    vol = Volume(data, (40.0, 8.0, 8.0))
    kw = {"progress": False, "block_shape": (8, 32, 32), "chunks": (8, 32, 32)}  # 4 blocks
    cancel = threading.Event()
    events, result = drain(run_job(lambda emit: predict(model_file, vol, tmp_path / "p.zarr", **kw,
                                                        **library_hooks(emit, cancel))))
    assert result.status == "ok" and {kind for kind, _ in events} == {"progress"}
    assert [payload for _, payload in events] == [("predict", n, data.size) for n in range(0, data.size + 1, 8192)]

    def job(emit):
        def emit_and_press_cancel(kind, payload):
            emit(kind, payload)
            if payload[1] > 0:
                cancel.set()  # press Cancel after the first block

        return predict(model_file, vol, tmp_path / "c.zarr", **kw, **library_hooks(emit_and_press_cancel, cancel))

    events, result = drain(run_job(job))
    assert result.status == "cancelled" and max(n for _, (_, n, _) in events) < data.size
    assert open_volume(tmp_path / "c.zarr").attrs["masktwins_bio"]["complete"] is False  # resumable, not complete


def test_layer_helpers():
    from napari.components import ViewerModel

    viewer = ViewerModel()
    nm = viewer.add_image(np.zeros((4, 8, 8), np.uint8), scale=(30, 8, 8), units=("nm",) * 3)
    um = viewer.add_image(np.zeros((4, 8, 8), np.uint8), scale=(0.03, 0.008, 0.008), units=("um",) * 3)
    px = viewer.add_image(np.zeros((4, 8, 8), np.uint8))
    flat = viewer.add_image(np.zeros((8, 8), np.uint8), name="flat")
    mask = viewer.add_image(np.zeros((4, 8, 8), bool), name="mask")
    assert layer_voxel_size(nm) == (30, 8, 8)
    np.testing.assert_allclose(layer_voxel_size(um), (30, 8, 8))
    assert layer_voxel_size(px) is None
    assert "2D" in layer_problem(flat) and "dtype bool" in layer_problem(mask) and layer_problem(nm) is None
    vol = layer_volume(nm)
    assert vol.voxel_size == (30, 8, 8) and vol.shape == (4, 8, 8) and "napari layer" in vol.path
    with pytest.raises(InputError, match="2D"):
        layer_volume(flat)
    # an output on a 2x coarser grid: voxel centres line up
    scale, translate = output_placement((30, 8, 8), (0, 0, 100), (30, 8, 8), (30, 16, 16), (2, 0, 0))
    assert scale == (30, 16, 16) and translate == (60, 4, 104)
    assert parse_triple("30, 8,8", "voxel size") == (30, 8, 8) and parse_triple(" ", "v") is None
    assert parse_triple("16x96x96", "patch", integer=True) == (16, 96, 96)
    for bad in ("1,2", "a,b,c", "0,1,1"):
        with pytest.raises(InputError):
            parse_triple(bad, "voxel size")
    assert parse_overrides("train.lr=1e-3; model.channels=[4,8]\n") == ["train.lr=1e-3", "model.channels=[4,8]"]
    with pytest.raises(InputError, match="key=value"):
        parse_overrides("train.lr")


@pytest.mark.parametrize("n, total, unit, elapsed, start, expected", [
    (0, 30, "step", 0.0, 0, "adapt: 0/30 steps (0 %)"),
    (12, 30, "step", 6.0, 0, "adapt: 12/30 steps (40 %), 2 steps/s, 9 s left"),
    (60, 100, "step", 10.0, 50, "adapt: 60/100 steps (60 %), 1 steps/s, 40 s left"),  # resumed at step 50
    (5e8, 2e9, "voxel", 100.0, 0, "adapt: 500 M/2 G voxels (25 %), 5 M voxels/s, 5 min left"),
    (3, 0, "voxel", 1.0, 0, "adapt…"),
])
def test_progress_lines_count_real_units_with_rate_and_time_left(n, total, unit, elapsed, start, expected):
    from masktwins_bio.napari._widgets._base import progress_line

    assert progress_line("adapt", n, total, unit, elapsed, start) == expected
