"""The Predict widget end to end on the tiny synthetic pair: layers out, path input, Cancel, errors (Qt, Xvfb)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = pytest.mark.gui  # skipped without an X server (tests/napari/conftest.py)


@pytest.fixture
def widget(pair_viewer):
    from masktwins_bio.napari._widgets.predict import PredictWidget

    w = PredictWidget(pair_viewer)
    pair_viewer.window.add_dock_widget(w)
    return w


def test_predict_layer_to_probabilities_and_instances(widget, pair_viewer, model_file, tmp_path, wait_job):
    target = pair_viewer.layers["target image"]
    widget.input_layer.value = target
    assert not widget.run_button.enabled and "model" in widget.reason.value
    widget.model.value = model_file
    widget.output.value = tmp_path / "out"
    widget.min_size.value = 0
    assert widget.run_button.enabled and widget.reason.value == ""
    widget.run()
    result = wait_job(widget)
    assert result.status == "ok", result.error
    prob = pair_viewer.layers["target image probabilities"]
    inst = pair_viewer.layers["target image instances"]
    assert type(inst).__name__ == "Labels" and prob.data.dtype == np.uint8
    # output on the model grid (40 x 8 x 8 nm), overlaid on the 25 x 10 x 10 nm target
    np.testing.assert_allclose(prob.scale, (40, 8, 8))
    in_extent = np.asarray(target.extent.world)
    out_extent = np.asarray(prob.extent.world)
    np.testing.assert_allclose(out_extent, in_extent, atol=40)
    assert (tmp_path / "out" / "target_image_probabilities.zarr").is_dir()
    assert (tmp_path / "out" / "target_image_instances.zarr").is_dir()
    # running again replaces the result layers (overwrite the stores)
    widget.overwrite.value = True
    n_layers = len(pair_viewer.layers)
    widget.run()
    assert wait_job(widget).status == "ok"
    assert len(pair_viewer.layers) == n_layers


def test_predict_path_input_is_lazy(widget, pair_viewer, model_file, tiny_pair, tmp_path, wait_job):
    import dask.array as da

    from masktwins_bio.io import write_ome_zarr

    store = write_ome_zarr(tmp_path / "target.zarr", tiny_pair["target_image"],
                           voxel_size=tiny_pair["target_voxel_size"])
    widget.input_path.value = store
    widget.model.value = model_file
    widget.output.value = tmp_path / "out"
    widget.instances.value = "none"
    widget.tta.value = "flips"
    assert widget.run_button.enabled, widget.reason.value
    widget.run()
    assert wait_job(widget).status == "ok"
    layer = pair_viewer.layers["target probabilities"]
    data = layer.data[0] if layer.multiscale else layer.data
    assert isinstance(data, da.Array)  # shown lazily from the store
    assert "target instances" not in pair_viewer.layers


def test_cancel_stops_between_blocks(widget, pair_viewer, model_file, monkeypatch, wait_job, notes, tmp_path):
    import masktwins_bio.napari._widgets.predict as module
    from masktwins_bio.errors import Cancelled
    from masktwins_bio.io import open_volume

    real_predict = module.predict
    started = threading.Event()
    raised = []

    def gated_predict(*args, callback, **kwargs):
        def hold_after_first_block(desc, done, total):
            callback(desc, done, total)
            if done:
                started.set()
                widget.cancel_requested.wait(30)  # hold the job until the test presses Cancel

        try:  # 4 blocks, so that the library itself stops between blocks
            return real_predict(*args, callback=hold_after_first_block, block_shape=(8, 32, 32), chunks=(8, 32, 32),
                                **kwargs)
        except Cancelled as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(module, "predict", gated_predict)
    widget.input_layer.value = pair_viewer.layers["target image"]
    widget.model.value = model_file
    widget.output.value = tmp_path / "out"
    n_layers = len(pair_viewer.layers)
    widget.run()
    assert started.wait(30)
    assert widget.cancel_button.enabled and not widget.run_button.enabled
    widget.cancel_button.clicked.emit()  # the Cancel button
    result = wait_job(widget)
    assert result.status == "cancelled" and raised  # predict's should_stop hook ended the run
    assert widget.status.value == "cancelled"
    assert len(pair_viewer.layers) == n_layers
    assert any("cancelled" in n and "incomplete" in n for n in notes())
    store = tmp_path / "out" / "target_image_probabilities.zarr"
    assert open_volume(store).attrs["masktwins_bio"]["complete"] is False  # resumable, like after an interrupt
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_invalid_inputs_disable_run_with_a_reason(widget, pair_viewer, tmp_path, notes, qtbot):
    pair_viewer.add_image(np.zeros((32, 32), np.uint8), name="section")
    widget.input_layer.value = pair_viewer.layers["section"]
    assert not widget.run_button.enabled
    assert "2D" in widget.reason.value and "2D" in widget.run_button.tooltip
    qtbot.waitUntil(lambda: any("2D" in n for n in notes()), timeout=5000)  # a notification once inputs settle
    pair_viewer.add_image(np.zeros((4, 32, 32), bool), name="mask")
    widget.input_layer.value = pair_viewer.layers["mask"]
    assert "dtype bool" in widget.reason.value
    widget.input_layer.value = pair_viewer.layers["target image"]
    widget.model.value = tmp_path / "missing.pt"
    assert not widget.run_button.enabled and "not found" in widget.reason.value
    qtbot.waitUntil(lambda: any("not found" in n for n in notes()), timeout=5000)
    widget.voxel_size.value = "3"  # typing: the reason updates at once, no notification per keystroke
    assert "voxel size '3'" in widget.reason.value
    widget.voxel_size.value = ""
    assert widget.run() is None  # calling run anyway: an error notification, no job
    assert widget.worker is None
    pair_viewer.add_image(np.zeros((4, 32, 32), np.uint8), name="no scale")
    widget.input_layer.value = pair_viewer.layers["no scale"]
    assert "voxel size" in widget.reason.value
    widget.voxel_size.value = "30,8,8"
    assert "voxel size" not in widget.reason.value
    # a .pt that is not a model: refused before Run, never with torch's "weights_only=False" advice
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    widget.model.value = tmp_path / "other.pt"
    assert not widget.run_button.enabled and "not a masktwins-bio model" in widget.reason.value
    (tmp_path / "notes.pt").write_text("text")
    widget.model.value = tmp_path / "notes.pt"
    assert not widget.run_button.enabled and "weights_only" not in widget.reason.value


@pytest.mark.parametrize("error", ["user", "bug"])
def test_worker_errors_become_notifications(widget, pair_viewer, model_file, monkeypatch, wait_job, notes, error):
    import masktwins_bio.napari._widgets.predict as module
    from masktwins_bio.errors import InputError

    def broken(*args, **kwargs):
        raise InputError("model.pt: weights do not match") if error == "user" else ZeroDivisionError("boom")

    monkeypatch.setattr(module, "predict", broken)
    widget.input_layer.value = pair_viewer.layers["target image"]
    widget.model.value = model_file
    widget.run()
    result = wait_job(widget)
    assert result.status == "error"
    expected = "weights do not match" if error == "user" else "unexpected ZeroDivisionError: boom"
    assert any(expected in n for n in notes())
    assert expected in widget.status.value
    assert widget.run_button.enabled  # the viewer and the widget live on


def test_widgets_open_from_the_plugin_menu(pair_viewer):
    # napari instantiates the widget classes itself, passing its (proxied) viewer by the parameter annotation
    for name, cls, picker in (("Predict", "PredictWidget", "input_layer"), ("Adapt (MaskTwins)", "AdaptWidget",
                                                                            "target_image"),
                              ("Inspect", "InspectWidget", "mask_image")):
        _, widget = pair_viewer.window.add_plugin_dock_widget("masktwins-bio", name)
        assert type(widget).__name__ == cls
        listed = [getattr(layer, "name", None) for layer in getattr(widget, picker).choices]
        assert "target image" in listed and "source labels" not in listed


def test_cancel_responds_within_two_seconds_with_slow_windows(widget, pair_viewer, model_file, monkeypatch, wait_job,
                                                             tmp_path):
    """Issue 14: Cancel took ~9.6 s. With 0.3 s per batch of windows, inside one big block, the job ends within 2 s."""
    import time

    from masktwins_bio.inference.predict import PredictTask

    real = PredictTask._predictor
    ran = threading.Event()

    def slow(self, model):
        fast = real(self, model)

        def predictor(windows):
            time.sleep(0.3)
            ran.set()
            return fast(windows)
        return predictor

    monkeypatch.setattr(PredictTask, "_predictor", slow)
    widget.input_layer.value = pair_viewer.layers["target image"]
    widget.model.value = model_file
    widget.output.value = tmp_path / "out"
    widget.run()
    assert ran.wait(60)
    clicked = time.perf_counter()
    widget.cancel_button.clicked.emit()
    result = wait_job(widget)
    latency = time.perf_counter() - clicked
    assert result.status == "cancelled"
    assert latency <= 2.0, f"Cancel took {latency:.1f} s"
