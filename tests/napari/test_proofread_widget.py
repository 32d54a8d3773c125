"""The Proofread widget: the library's Proofreader behind buttons, on array and Zarr-backed labels layers (Qt)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = pytest.mark.gui  # skipped without an X server (tests/napari/conftest.py)


def _labels():
    lab = np.zeros((6, 40, 48), np.uint32)
    lab[1:5, 5:15, 5:15] = 1
    lab[1:5, 5:15, 15:25] = 2
    lab[1:5, 25:35, 5:40] = 3
    lab[0:2, 0:3, 0:3] = 4
    return lab


@pytest.fixture
def widget(make_napari_viewer):
    from masktwins_bio.napari._widgets.proofread import ProofreadWidget

    viewer = make_napari_viewer()
    w = ProofreadWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


def test_opens_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(_labels(), name="mito", scale=(40, 8, 8))
    _, w = viewer.window.add_plugin_dock_widget("masktwins-bio", "Proofread")
    assert type(w).__name__ == "ProofreadWidget" and "mito" in [getattr(c, "name", None) for c in w.layer.choices]


def test_edit_undo_split_filter_and_save_as(widget, tmp_path, notes):
    from masktwins_bio.io import open_volume
    from masktwins_bio.napari._widgets.proofread import SEEDS_LAYER

    viewer = widget.viewer
    lab = _labels()
    viewer.add_labels(lab, name="mito", scale=(40, 8, 8))
    widget.layer.value = viewer.layers["mito"]
    assert not widget.merge_button.enabled
    pr = widget.start()
    assert pr is not None and widget.merge_button.enabled and "4 instances" in widget.status.value
    edited = viewer.layers["mito (proofreading)"]
    widget.ids.value = "1, 2"
    widget.merge_button.clicked.emit()
    assert 2 not in np.unique(np.asarray(edited.data[:])) and widget.ids.value == ""
    widget.undo_button.clicked.emit()
    assert 2 in pr.ids()
    widget.redo_button.clicked.emit()
    edited.selected_label = 4
    widget.add_picked.clicked.emit()
    assert widget.ids.value == "4"
    widget.delete_button.clicked.emit()
    assert 4 not in pr.ids()
    # split 3 at two seed points
    viewer.layers[SEEDS_LAYER].data = np.array([[3, 30, 7], [3, 30, 38]])
    widget.ids.value = "3"
    widget.split_button.clicked.emit()
    assert len(pr.ids()) == 3 and len(viewer.layers[SEEDS_LAYER].data) == 0
    widget.min_voxels.value = 10**6
    widget.filter_button.clicked.emit()
    assert len(pr.ids()) == 0
    widget.undo_button.clicked.emit()
    # a bad id: a notification, nothing changes
    widget.ids.value = "99"
    widget.delete_button.clicked.emit()
    assert any("no instance with id 99" in n for n in notes()) and len(pr.ids()) == 3
    widget.save_as.value = tmp_path / "proofread.zarr"
    widget.save()
    saved = open_volume(str(tmp_path / "proofread.zarr"))
    np.testing.assert_array_equal(saved[:], np.asarray(edited.data[:]))
    assert saved.voxel_size == (40.0, 8.0, 8.0)
    assert "merge" in [e["op"] for e in saved.attrs["masktwins_bio"]["proofreading"][0]["result"]]


def test_a_zarr_backed_layer_is_edited_and_saved_in_place(widget, tmp_path):
    from masktwins_bio.io import open_volume, write_ome_zarr

    lab = _labels()
    path = write_ome_zarr(tmp_path / "labels.zarr", lab, voxel_size=(40, 8, 8), kind="labels", chunks=(2, 16, 16))
    widget.viewer.open(str(path), plugin="masktwins-bio")
    widget.layer.value = widget.viewer.layers[0]
    pr = widget.start()
    assert pr.path == path  # the store itself, not a copy in memory
    widget.ids.value = "3"
    widget.delete_button.clicked.emit()
    np.testing.assert_array_equal(open_volume(str(path))[:], lab)  # nothing on disk before Save
    widget.save()
    ref = lab.copy()
    ref[ref == 3] = 0
    np.testing.assert_array_equal(open_volume(str(path))[:], ref)
