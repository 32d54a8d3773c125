"""Fixtures for the napari plugin tests: the tiny synthetic pair, a tiny exported model, a viewer with the pair.

Qt tests (module marker ``gui``) need napari and an X server: pytest-xvfb starts Xvfb automatically when it is
installed and sets DISPLAY (Qt's offscreen platform has no OpenGL, which napari's canvas needs). Each Qt test module
skips itself when DISPLAY is unset, because Qt would abort the whole test process instead of failing one test.
"""

from __future__ import annotations

import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Skip ``gui`` tests without an X server (pytest-xvfb sets DISPLAY before collection when it starts Xvfb)."""
    if os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return
    skip = pytest.mark.skip(reason="needs an X server: install xvfb and pytest-xvfb (or set DISPLAY)")
    for item in items:
        if item.get_closest_marker("gui"):
            item.add_marker(skip)

VOXEL = (40.0, 8.0, 8.0)
PATCH = (8, 32, 32)


def make_model(path, voxel_size=VOXEL, patch=PATCH, seed=0):
    """Export a randomly initialised UNet(4, 8) model file (fast; predictions are meaningless but valid)."""
    from masktwins_bio.config import ModelConfig
    from masktwins_bio.models import build_network, export_model

    torch.manual_seed(seed)
    cfg = ModelConfig(channels=(4, 8), num_res_units=1)
    net = build_network(cfg, voxel_size, patch)
    return export_model(net, path, cfg, {"voxel_size": list(voxel_size), "patch_size": list(patch)})


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("napari_model") / "model.pt")


@pytest.fixture(scope="session")
def tiny_pair():
    from masktwins_bio.data.synthetic import make_domain_pair

    return make_domain_pair("tiny", seed=0)


@pytest.fixture
def pair_viewer(make_napari_viewer):
    """A (hidden) napari viewer holding the tiny synthetic pair (source, labels, target, target ground truth)."""
    from masktwins_bio.napari._sample_data import sample_layers

    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_layers("tiny"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


@pytest.fixture
def wait_job(qtbot):
    """``wait_job(widget)``: wait until the widget's job has finished and been handled; returns its JobResult."""

    def wait(widget, timeout_s: float = 120):
        qtbot.waitUntil(lambda: widget.worker is None and widget.last_result is not None,
                        timeout=int(timeout_s * 1000))
        return widget.last_result

    return wait


@pytest.fixture
def notes():
    """``notes()``: messages of the napari notifications emitted during this test."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    return lambda: [str(n.message) for n in notification_manager.records[start:]]


@pytest.fixture(autouse=True)
def remembered_settings(tmp_path, monkeypatch):
    """The widgets' remembered settings (project folder) in a per-test file, never the user's own."""
    from masktwins_bio.napari._project import SETTINGS_ENV

    path = tmp_path / "napari-settings.json"
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    return path
