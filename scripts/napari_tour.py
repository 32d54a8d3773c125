"""A user's tour of the napari plugin on a 1000 x 800 screen, checked: adapt, predict, proofread, measure, export.

Opens napari with the plugin's synthetic sample data, then drives every widget as a user would:

1. **Adapt** the shipped starter model to the target (a few CPU steps; ``--steps``), saved in a project folder,
2. **Predict** the target with the adapted model (handed to Predict by Adapt; probabilities and instances, written
   to Zarr),
3. **Proofread** the instances: merge the two largest, split the next one at two seed voxels, delete the smallest,
   save into the instance store,
4. **Inspect**: measure the proofread instances, export the CSV, and keep those above the median volume (the
   filter and its histogram),

taking a screenshot of the whole window with each widget docked (``docs/images/tour_<widget>.png``) and checking
that every widget lies fully inside the 1000 x 800 window, that the saved labels equal the same edits made with
:class:`masktwins_bio.postprocess.Proofreader` on the predicted instances, and that the CSV equals
:func:`masktwins_bio.measure` of the saved labels. Prints a JSON summary; exits 1 when a check fails.

A screenshot needs a shown window; without a display run it under Xvfb::

    xvfb-run -a -s "-screen 0 1000x800x24" python scripts/napari_tour.py
    xvfb-run -a python scripts/napari_tour.py --steps 4 --out-dir /tmp/tour   # quick (the test runs this)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCREEN = (1000, 800)
#: a CPU-sized batch for the tour (Adapt's "Extra settings"); the network is the starter model's, adapted from it
TINY = "train.batch_source=1; train.batch_target=1; train.val_patches=2; train.warmup_steps=0; train.log_every=1"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="adaptation steps (CPU)")
    p.add_argument("--size", default="small", choices=("small", "demo"), help="synthetic sample size")
    p.add_argument("--images", default=str(REPO / "docs" / "images"), help="where the screenshots go")
    p.add_argument("--out-dir", help="work folder (default: temporary, removed unless --keep)")
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


def _settle(app, seconds: float = 0.5) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds:
        app.processEvents()
        time.sleep(0.02)


def _wait(app, widget, timeout_s: float = 900) -> None:
    t0 = time.time()
    while widget.worker is not None or widget.last_result is None:
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"{type(widget).__name__} did not finish")
    if widget.last_result.status != "ok":
        raise RuntimeError(f"{type(widget).__name__}: {widget.last_result.status} {widget.last_result.error}")


def _dock(viewer, widget, name: str):
    for dock in list(viewer.window._dock_widgets.values()):  # one widget at a time, as on a small screen
        viewer.window.remove_dock_widget(dock)
    viewer.window.add_dock_widget(widget, name=name, area="right")


def _fits(viewer, widget) -> dict:
    """Where the widget lies in the window, and whether all of it is inside the screen-sized window."""
    from qtpy.QtCore import QPoint, QRect

    window = viewer.window._qt_window
    top_left = widget.native.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, widget.native.size())
    hint = widget.native.sizeHint()
    inside = QRect(0, 0, window.width(), window.height()).contains(rect)
    return {"x": rect.x(), "y": rect.y(), "width": rect.width(), "height": rect.height(),
            "window": [window.width(), window.height()], "inside_window": bool(inside),
            "not_squeezed": rect.height() >= min(hint.height(), window.height())}


def _shot(viewer, app, images: Path, name: str) -> str:
    _settle(app, 0.6)
    path = images / f"tour_{name}.png"
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    return str(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    import masktwins_bio as mtb
    from masktwins_bio.napari._sample_data import sample_layers
    from masktwins_bio.napari._widgets.adapt import AdaptWidget
    from masktwins_bio.napari._widgets.inspect import InspectWidget
    from masktwins_bio.napari._widgets.predict import PredictWidget
    from masktwins_bio.napari._widgets.proofread import ProofreadWidget

    work = Path(args.out_dir or tempfile.mkdtemp(prefix="masktwins-tour-"))
    work.mkdir(parents=True, exist_ok=True)
    images = Path(args.images)
    images.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari - masktwins-bio", show=True)
    viewer.window._qt_window.setMinimumSize(1, 1)
    viewer.window.resize(*SCREEN)
    app = QApplication.instance()
    for data, kwargs, kind in sample_layers(args.size):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    layers = {layer.name: layer for layer in viewer.layers}
    summary: dict = {"screen": list(SCREEN), "widgets": {}, "checks": {}}

    # 1. adapt
    adapt = AdaptWidget(viewer)
    _dock(viewer, adapt, "Adapt (masktwins-bio)")
    adapt.source_image.value, adapt.source_labels.value = layers["source image"], layers["source labels"]
    adapt.target_image.value = layers["target image"]
    from masktwins_bio.models import starter_model_path

    adapt.init_model.value = starter_model_path()
    adapt.patch_size.value, adapt.device.value, adapt.extra.value = "", "cpu", TINY
    adapt.steps.value, adapt.val_every.value = args.steps, max(1, args.steps // 2)
    adapt.project.value = work / "project"
    adapt.run()
    _wait(app, adapt)
    model = Path(adapt.last_result.value.model_path)
    summary["widgets"]["adapt"] = {"screenshot": _shot(viewer, app, images, "adapt"), **_fits(viewer, adapt)}

    # 2. predict with the adapted model
    predict = PredictWidget(viewer)
    _dock(viewer, predict, "Predict (masktwins-bio)")
    predict.input_layer.value = layers["target image"]
    summary["checks"]["adapted_model_offered_to_predict"] = Path(str(predict.model.value)) == model
    predict.output.value = work / "predictions"
    predict.run()
    _wait(app, predict)
    instances_layer = viewer.layers["target image instances"]
    store = Path(instances_layer.metadata["masktwins_bio"]["path"])
    original = work / "instances_as_predicted.zarr"
    shutil.copytree(store, original)
    summary["widgets"]["predict"] = {"screenshot": _shot(viewer, app, images, "predict"), **_fits(viewer, predict)}

    # 3. proofread: merge the two largest, split the next at two far-apart voxels, delete the smallest; save
    proof = ProofreadWidget(viewer)
    _dock(viewer, proof, "Proofread (masktwins-bio)")
    proof.layer.value = instances_layer
    pr = proof.start()
    ids = sorted(pr.ids().tolist(), key=pr.voxels, reverse=True)
    if len(ids) < 4:
        raise RuntimeError(f"the prediction has {len(ids)} instances; the tour needs 4 (train longer: --steps)")
    merge, split, delete = ids[:2], ids[2], ids[-1]
    vox = np.argwhere(pr[:] == split)
    axis = int(np.argmax(vox.max(0) - vox.min(0)))
    seeds = [vox[np.argmin(vox[:, axis])], vox[np.argmax(vox[:, axis])]]
    proof.ids.value = ", ".join(map(str, merge))
    proof.merge_button.clicked.emit()
    viewer.layers["split seeds"].data = np.array(seeds, dtype=float)
    proof.ids.value = str(split)
    proof.split_button.clicked.emit()
    proof.ids.value = str(delete)
    proof.delete_button.clicked.emit()
    summary["widgets"]["proofread"] = {"screenshot": _shot(viewer, app, images, "proofread"),
                                       **_fits(viewer, proof)}
    proof.save()
    ref = mtb.Proofreader(str(original))
    ref.merge(merge)
    ref.split(split, seeds)
    ref.delete([delete])
    saved = mtb.open_volume(str(store))[:]
    summary["checks"]["labels_equal_the_library_edits"] = bool(np.array_equal(saved, ref[:]))
    summary["checks"]["edits_recorded"] = [e["op"] for e in
                                           mtb.open_volume(str(store)).attrs["masktwins_bio"]["proofreading"][-1]
                                           ["result"]] == ["merge", "split", "delete"]

    # 4. inspect: measure the proofread instances, export the CSV
    inspect = InspectWidget(viewer)
    _dock(viewer, inspect, "Inspect (masktwins-bio)")
    inspect.tabs.setCurrentIndex(1)
    inspect.labels_layer.value = proof.edited
    inspect.measure()
    _wait(app, inspect)
    table = work / "mito.csv"
    inspect.export_path.value = table
    inspect.export_table()
    with open(table) as f:
        rows = {int(r["label"]): int(r["voxels"]) for r in csv.DictReader(f)}
    expected = mtb.measure(str(store)).to_pandas()
    summary["checks"]["csv_equals_measure"] = rows == dict(zip(expected["label"].astype(int),
                                                               expected["voxels"].astype(int)))
    summary["widgets"]["inspect"] = {"screenshot": _shot(viewer, app, images, "inspect"), **_fits(viewer, inspect)}
    # ... and its histogram, with the instances above the median volume kept
    median = float(np.median(expected["volume_um3"]))
    inspect.filter_min.value = f"{median:.6g}"
    inspect.tabs.setCurrentIndex(2)
    summary["checks"]["filter_keeps_the_selected_rows"] = (
        inspect.kept.columns["label"].tolist() == mtb.measure(str(store)).select(
            volume_um3=(float(f"{median:.6g}"), None)).columns["label"].tolist())
    summary["widgets"]["inspect_histogram"] = {"screenshot": _shot(viewer, app, images, "inspect_histogram"),
                                               **_fits(viewer, inspect)}
    summary["checks"]["every_widget_inside_the_window"] = all(w["inside_window"] and w["not_squeezed"]
                                                              for w in summary["widgets"].values())
    summary["checks"]["window_is_the_screen"] = all(w["window"] == list(SCREEN) for w in summary["widgets"].values())
    summary["instances"] = {"predicted": len(ids), "after": len(np.unique(saved)) - 1}
    print(json.dumps(summary, indent=2))
    viewer.close()
    if not args.keep and not args.out_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
