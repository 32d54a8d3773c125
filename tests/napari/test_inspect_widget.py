"""The Inspect widget: complementary-mask preview, instance table with click-to-jump, metrics (Qt, Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = pytest.mark.gui  # skipped without an X server (tests/napari/conftest.py)


@pytest.fixture
def widget(pair_viewer):
    from masktwins_bio.napari._widgets.inspect import InspectWidget

    w = InspectWidget(pair_viewer)
    pair_viewer.window.add_dock_widget(w)
    return w


def test_complementary_masks_on_current_patch(widget, pair_viewer, model_file):
    from masktwins_bio.napari._widgets.inspect import MASK_LAYER, VIEW_LAYERS

    target = pair_viewer.layers["target image"]
    assert widget.mask_image.value is target  # preselected by name
    widget.mask_image.value = None
    assert not widget.masks_button.enabled
    widget.mask_image.value = target
    widget.mask_model.value = model_file  # patch size from the model: 8 x 32 x 32
    assert widget.masks_button.enabled
    m, image = widget.show_masks()
    masks = pair_viewer.layers[MASK_LAYER]
    assert masks.data.shape == (8, 32, 32) and set(np.unique(masks.data)) == {1, 2}
    view_m, view_rest = (pair_viewer.layers[name].data for name in VIEW_LAYERS)
    np.testing.assert_array_equal(view_m[m], image[m])  # view M shows exactly the voxels of M ...
    np.testing.assert_array_equal(view_rest[~m], image[~m])  # ... and view 1-M the others
    assert 0.2 < m.mean() < 0.8
    # placed on the target: same scale, inside its extent
    np.testing.assert_allclose(masks.scale, target.scale)
    lo, hi = np.asarray(target.extent.world)
    mlo, mhi = np.asarray(masks.extent.world)
    assert (mlo >= lo - 1e-6).all() and (mhi <= hi + 1e-6).all()
    widget.seed.value = 1  # another draw replaces the layers
    m2, _ = widget.show_masks()
    assert (m2 != m).any() and len([layer for layer in pair_viewer.layers if layer.name == MASK_LAYER]) == 1
    assert "keep 0.3" in widget.status.value  # blank: MaskTwins' default for whole sections (40 x 8 x 8 nm voxels)
    widget.keep_ratio.value = "0.75"
    m3, _ = widget.show_masks()
    assert "keep 0.75" in widget.status.value and m3.mean() > 0.4
    widget.keep_ratio.value = "1.5"
    assert widget.show_masks() is None  # a one-line error, no layer changed


def test_instance_table_sort_jump_and_export(widget, pair_viewer, tiny_pair, wait_job, tmp_path):
    """The table is masktwins_bio.measure's (issue 14): sortable, click-to-jump by id, exported as CSV."""
    import csv

    from masktwins_bio.postprocess import measure

    gt = pair_viewer.layers["target ground truth"]
    widget.labels_layer.value = gt
    widget.measure()
    assert wait_job(widget).status == "ok"
    ids = np.unique(tiny_pair["target_labels"])
    ids = ids[ids > 0]
    table = widget.table.data.to_list()
    assert [row[0] for row in table] == ids.tolist()
    voxels = [(tiny_pair["target_labels"] == i).sum() for i in ids]
    assert [row[1] for row in table] == voxels
    assert float(table[0][2]) == pytest.approx(voxels[0] * 25 * 10 * 10 / 1e9, rel=1e-3)
    ref = measure(tiny_pair["target_labels"], voxel_size=(25.0, 10.0, 10.0)).columns
    assert [row[3] for row in table] == pytest.approx(ref["surface_um2"].tolist(), rel=1e-3)
    assert f"{len(ids)} instances" in widget.table_note.value
    # sort by voxels (descending), then click the first row: the largest instance
    from qtpy.QtCore import Qt

    widget.table.native.sortItems(1, Qt.SortOrder.DescendingOrder)
    assert [int(float(widget.table.native.item(r, 1).text())) for r in range(len(ids))] == sorted(voxels)[::-1]
    largest = int(ids[int(np.argmax(voxels))])
    world_point = widget.jump_to(0)
    assert gt.selected_label == largest
    index = int(np.flatnonzero(widget.rows["id"] == largest)[0])
    world = gt.data_to_world(widget.rows["centroid"][index])
    step = pair_viewer.dims.range[0].step
    assert abs(pair_viewer.dims.point[0] - world[0]) <= step
    np.testing.assert_allclose(np.asarray(pair_viewer.scene.camera.center)[-2:], world[-2:], atol=1e-6)
    np.testing.assert_allclose(world_point, world)
    widget.export_path.value = tmp_path / "mito.csv"
    out = widget.export_table()
    rows = list(csv.DictReader(out.open()))
    assert [int(r["label"]) for r in rows] == ids.tolist() and (tmp_path / "mito.csv.json").exists()


def test_filter_histogram_features_and_kept_export(widget, pair_viewer, tiny_pair, wait_job, tmp_path):
    """Issue 14 item 2: filter the table by a column's bounds and by border contact (Measurements.select), the
    histogram shows all instances and the kept ones, the layer gets the measurements as features, and the export
    can write the kept rows only."""
    import csv

    gt = pair_viewer.layers["target ground truth"]
    widget.labels_layer.value = gt
    widget.measure()
    assert wait_job(widget).status == "ok"
    table = widget.measurements
    voxels = table.columns["voxels"]
    assert list(gt.features["voxels"]) == list(voxels) and list(gt.features["index"]) == list(table.columns["label"])
    cut = float(np.median(voxels))
    widget.filter_column.value = "voxels"
    widget.filter_min.value = str(cut)
    expected = table.columns["label"][voxels >= cut]
    assert [row[0] for row in widget.table.data.to_list()] == expected.tolist()
    assert f"{len(expected)} of {len(table)} instances kept" in widget.table_note.value
    if widget.histogram is not None:
        assert widget.histogram.shown == {"title": "voxels", "n": len(table), "kept": len(expected),
                                          "bounds": (cut, None)}
    widget.hide_border.value = True
    inner = expected[~table.columns["touches_border"][voxels >= cut]]
    assert [row[0] for row in widget.table.data.to_list()] == inner.tolist()
    widget.filter_max.value = "many"
    assert "filter 'to' value 'many' is not a number" in widget.table_note.value
    widget.filter_max.value = ""
    widget.export_kept.value = True
    widget.export_path.value = tmp_path / "kept.csv"
    rows = list(csv.DictReader(widget.export_table().open()))
    assert [int(r["label"]) for r in rows] == inner.tolist()


def test_metrics_for_labels_and_probabilities(widget, pair_viewer, tiny_pair, wait_job):
    gt = pair_viewer.layers["target ground truth"]
    prob = (tiny_pair["target_labels"] > 0).astype(np.uint8) * 255
    pair_viewer.add_image(prob, name="perfect probabilities", scale=gt.scale, translate=gt.translate)
    widget.prediction.value = pair_viewer.layers["perfect probabilities"]
    assert not widget.run_button.enabled and widget.metrics.value == ""
    widget.ground_truth.value = gt  # choosing a ground truth evaluates right away
    result = wait_job(widget)
    assert result.status == "ok", result.error
    assert widget.summary["semantic"]["whole_volume"]["f1"] == pytest.approx(1.0)
    assert "masktwins-bio evaluate" in widget.metrics.value and "100.00" in widget.metrics.value
    widget.prediction.value = gt  # instance labels as the prediction: instance metrics too
    widget.run()
    assert wait_job(widget).status == "ok"
    assert widget.summary["instance"]["ap75"] == pytest.approx(1.0) and "AP@0.75" in widget.metrics.value


def test_evaluate_reports_progress_and_cancels(widget, pair_viewer, wait_job, monkeypatch):
    import threading

    import masktwins_bio.napari._widgets.inspect as module
    from masktwins_bio.errors import Cancelled

    real_evaluate = module.evaluate
    started, raised, reports = threading.Event(), [], []

    def gated_evaluate(*args, callback, **kwargs):
        def hold_after_first_block(desc, done, total):
            reports.append((desc, done, total))
            callback(desc, done, total)
            if done:
                started.set()
                widget.cancel_requested.wait(30)  # hold the job until the test presses Cancel

        try:
            return real_evaluate(*args, callback=hold_after_first_block, block_shape=(1, 51, 51), **kwargs)
        except Cancelled as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(module, "evaluate", gated_evaluate)
    gt = pair_viewer.layers["target ground truth"]
    widget.prediction.value = gt
    widget.ground_truth.value = gt  # starts evaluating
    assert started.wait(30)
    widget.cancel_button.clicked.emit()
    assert wait_job(widget).status == "cancelled" and raised
    assert reports[0] == ("evaluate", 0, gt.data.size) and reports[-1][1] < gt.data.size
    assert not hasattr(widget, "summary") and widget.status.value == "cancelled"
