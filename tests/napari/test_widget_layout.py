"""Issue 14: every widget fits a 1000 x 800 screen at the default font (docking Predict and Inspect once grew the
window to 1466 px): size hints within MAX_WIDGET_SIZE, measured from the widgets' geometry."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = pytest.mark.gui  # skipped without an X server (tests/napari/conftest.py)


@pytest.mark.parametrize("name", ["predict:PredictWidget", "adapt:AdaptWidget", "inspect:InspectWidget",
                                  "proofread:ProofreadWidget"])
def test_widget_fits_the_screen(pair_viewer, name):
    import importlib

    from masktwins_bio.napari._widgets._base import MAX_WIDGET_SIZE

    module, cls = name.split(":")
    widget = getattr(importlib.import_module(f"masktwins_bio.napari._widgets.{module}"), cls)(pair_viewer)
    pair_viewer.window.add_dock_widget(widget)
    hint = widget.native.sizeHint()
    assert hint.width() <= MAX_WIDGET_SIZE[0] and hint.height() <= MAX_WIDGET_SIZE[1], (hint.width(), hint.height())
