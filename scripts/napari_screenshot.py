"""Regenerate the README screenshot docs/images/napari_predict.png: napari with the masktwins-bio Predict widget docked
and a prediction on the synthetic sample data.

The script opens the plugin's sample data (synthetic source/target pair, ``demo`` size), gets a model (``--model``, or
trains a small one on the CPU from the labelled source: ``--method source_only``, 150 steps, about 3-6 minutes on 2
cores; ``--method masktwins`` adapts to the target too and takes about twice as long), docks the Predict widget, runs
it on the target image exactly as a user would (probabilities + instances) and saves a screenshot of the whole window.
A screenshot needs a shown window; on a machine without a display run it under Xvfb::

    xvfb-run -a python scripts/napari_screenshot.py
    xvfb-run -a python scripts/napari_screenshot.py --model runs/demo/model.pt --out /tmp/shot.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model.pt to predict with (default: train a small one first)")
    p.add_argument("--out", default=str(REPO / "docs" / "images" / "napari_predict.png"), help="output PNG")
    p.add_argument("--size", default="demo", choices=("tiny", "small", "demo"), help="synthetic sample size")
    p.add_argument("--steps", type=int, default=150, help="training steps when no --model is given")
    p.add_argument("--method", default="source_only", choices=("source_only", "masktwins"),
                   help="training method when no --model is given")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (trained model, predictions)")
    p.add_argument("--width", type=int, default=1500)
    p.add_argument("--height", type=int, default=950)
    return p.parse_args(argv)


def train_small_model(layers: dict, steps: int, method: str, run_dir: Path) -> Path:
    """A small UNet trained on the CPU from the labelled source (and the target for MaskTwins); returns model.pt."""
    from masktwins_bio.config import config_from_dict
    from masktwins_bio.napari._layers import layer_volume
    from masktwins_bio.training import TrainingVolumes, train

    volumes = TrainingVolumes(layer_volume(layers["source image"]), layer_volume(layers["source labels"], "labels"),
                              layer_volume(layers["target image"]))
    config = config_from_dict({
        "name": "napari-screenshot",
        "source": {"image": "<source image>", "labels": "<source labels>"},
        "target": {"image": "<target image>"},
        "data": {"patch_size": [16, 64, 64]},
        "model": {"channels": [8, 16, 32], "num_res_units": 1},
        "method": {"name": method},
        "train": {"steps": steps, "device": "cpu", "lr": 3e-3, "warmup_steps": 20, "val_every": steps,
                  "val_patches": 2, "log_every": 25, "selection": "last"},
    })
    t0 = time.time()
    result = train(config, run_dir=run_dir, overwrite=True, progress=True, volumes=volumes)
    print(f"trained {result.steps} steps in {time.time() - t0:.0f} s -> {result.model_path}", flush=True)
    return Path(result.model_path)


def _close_notifications(viewer) -> None:
    """Close the toast notifications (e.g. "prediction done") that would cover part of the canvas."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:  # private napari API: the screenshot is still fine with a toast
        pass


def wait(app, widget, timeout_s: float = 600) -> None:
    t0 = time.time()
    while widget.worker is not None or widget.last_result is None:
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout_s:
            raise TimeoutError("prediction did not finish")


def main(argv=None) -> int:
    args = parse_args(argv)
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from masktwins_bio.napari._layers import viewer_camera
    from masktwins_bio.napari._sample_data import sample_layers
    from masktwins_bio.napari._widgets.predict import PredictWidget

    viewer = napari.Viewer(title="napari - masktwins-bio", show=True)
    viewer.window.resize(args.width, args.height)
    for data, kwargs, kind in sample_layers(args.size):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    layers = {layer.name: layer for layer in viewer.layers}
    app = QApplication.instance()
    work = Path(tempfile.mkdtemp(prefix="masktwins-screenshot-"))
    model = Path(args.model) if args.model else train_small_model(layers, args.steps, args.method, work / "run")

    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict (masktwins-bio)", area="right")
    target = layers["target image"]
    widget.input_layer.value = target
    widget.model.value = model
    widget.instances.value = "cc"
    widget.min_size.value = 200
    widget.output.value = work / "predictions"
    widget.run()
    wait(app, widget)
    if widget.last_result.status != "ok":
        print(f"prediction failed: {widget.last_result.error}", file=sys.stderr)
        return 1

    # show the target with its probabilities (magma overlay) and instance outlines
    for name in ("source image", "source labels", "target ground truth"):
        layers[name].visible = False
    instances = viewer.layers["target image instances"]
    instances.contour = 2
    instances.opacity = 0.9
    viewer.layers.selection.active = instances
    lo, hi = np.asarray(target.extent.world)
    centre = (lo + hi) / 2
    viewer.dims.set_point(0, float(centre[0]))
    camera = viewer_camera(viewer)
    camera.center = tuple(centre)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    canvas_h, canvas_w = viewer.window._qt_viewer.canvas.size  # (height, width) in screen pixels
    camera.zoom = 0.92 * min(canvas_h / (hi[1] - lo[1]), canvas_w / (hi[2] - lo[2]))
    _close_notifications(viewer)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}")
    viewer.close()
    if args.keep:
        print(f"model and predictions kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
