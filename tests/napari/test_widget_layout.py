"""Issue 14: every widget fits a 1000 x 800 screen at the default font (docking Predict and Inspect once grew the
window to 1466 px): size hints within MAX_WIDGET_SIZE, measured from the widgets' geometry."""

from __future__ import annotations

import numpy as np
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


def test_pickers_preselect_layers_by_name_and_a_typed_path_wins(make_napari_viewer, tmp_path):
    """Issue 14 item 3: pickers started empty after Open Sample. They fill from the layers' names when layers arrive
    (never over a choice), and a layer picker and its '…or path' field exclude each other."""
    from masktwins_bio.napari._sample_data import sample_layers
    from masktwins_bio.napari._widgets.adapt import AdaptWidget
    from masktwins_bio.napari._widgets.inspect import InspectWidget
    from masktwins_bio.napari._widgets.predict import PredictWidget

    viewer = make_napari_viewer()
    adapt, predict, inspect = AdaptWidget(viewer), PredictWidget(viewer), InspectWidget(viewer)
    assert adapt.source_image.value is None  # nothing to pick yet
    for data, kwargs, kind in sample_layers("tiny"):  # Open Sample after the widgets were docked
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    layers = viewer.layers
    assert (adapt.source_image.value, adapt.source_labels.value, adapt.target_image.value) == (
        layers["source image"], layers["source labels"], layers["target image"])
    assert adapt.target_gt.value is None and inspect.ground_truth.value is None  # evaluation stays a choice
    assert predict.input_layer.value is layers["target image"] and inspect.mask_image.value is layers["target image"]
    predict.input_layer.value = layers["source image"]
    viewer.add_image(np.zeros((4, 8, 8)), name="target image 2")
    assert predict.input_layer.value is layers["source image"]  # the user's choice stays
    predict.input_path.value = tmp_path / "raw.zarr"
    assert predict.input_layer.value is None  # the path typed last is the input
    viewer.add_image(np.zeros((4, 8, 8)), name="target image 3")
    assert predict.input_layer.value is None  # not refilled while a path is given
    predict.input_layer.value = layers["target image"]
    assert predict.input_path.value is None or str(predict.input_path.value) in ("", ".")
