"""The Adapt widget: adapt a segmentation model to a new microscope without target labels (MaskTwins).

Reads its fields, builds the same configuration the CLI's ``masktwins-bio train`` takes
(:func:`masktwins_bio.config.config_from_dict`) and calls :func:`masktwins_bio.training.train` in a background worker
with the layers (or paths) as :class:`~masktwins_bio.training.TrainingVolumes`, so nothing is written to disk except
the project folder. The trainer's ``callback`` feeds a live log and loss plot (training losses at every log step,
label-free monitors at every validation); at every validation the selected model so far (``run_dir/model.pt``) is
applied to a slab of the target around the current slice with :func:`masktwins_bio.inference.predict` and shown as
the ``adapt preview`` layer. Stop ends training after the current step through the trainer's ``should_stop``; the
model is then exported as usual (``model.pt`` in the run folder; *Save model as…* copies it) and offered to the
viewer's Predict and Inspect widgets.

Every run gets its own folder in the user's project folder (remembered between sessions, see
:mod:`masktwins_bio.napari._project`) with a ``config.yaml`` that names files only - each layer's own file, or a
snapshot of it in the project - and the voxel sizes used, so ``masktwins-bio train <run>/config.yaml`` repeats the
run; *Resume* continues a stopped run of the project from its last checkpoint.

Source labels are required by every method (the trainer always has a source loss); "Start from model" fine-tunes an
existing model (``train.init``) instead of starting from random weights, using that model's architecture and voxel
size.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, LineEdit, PushButton, SpinBox, TextEdit

from ...config import config_from_dict, load_config
from ...devices import resolve_device
from ...errors import InputError
from ...experiments.harness import PRESETS, preset_recipe
from ...inference import predict
from ...io import open_volume
from ...models import load_model
from ...registry import METHODS as REGISTERED_METHODS
from ...training import TrainingVolumes, open_training_volumes, train
from ...training.choice import model_so_far
from .._jobs import temporary_folder
from .._plots import LossPlot, make_plot
from .._project import layer_spec, new_run_folder, project_runs, remember, remembered
from .._layers import (NM_UNITS, layer_problem, layer_units, layer_volume, layer_voxel_size, output_placement,
                       parse_overrides, parse_triple, path_text, spec_exists, viewer_camera, voxel_size_hint)
from ._base import (JobPanel, add_tabs, layer_or_path, layer_picker, model_problem, notify_error, notify_info,
                    offer_model)

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["AdaptWidget"]

log = logging.getLogger("masktwins_bio.napari")

#: how the method menu shows the built-in names; a method registered later is shown by its name. The random pair is
#: an ablation of MaskTwins (for the study), not a choice a user needs.
METHOD_TITLES = {"masktwins": "MaskTwins (complementary masks)", "source_only": "source only (no adaptation)",
                 "mean_teacher": "mean teacher", "mic": "MIC (one random mask)"}
HIDDEN_METHODS = {"masktwins_random_pair"}


def method_choices() -> list[tuple[str, str]]:
    """(title, name) for every registered method but the ablations, MaskTwins first."""
    names = sorted((n for n in REGISTERED_METHODS if n not in HIDDEN_METHODS), key=lambda n: n != "masktwins")
    return [(METHOD_TITLES.get(n, n), n) for n in names]


METHODS = method_choices()  # the built-in menu (kept for compatibility)
PREVIEW_MAX_YX = 512
PREVIEW_LAYER = "adapt preview"


def _fmt(values: dict, keys) -> str:
    return "  ".join(f"{label} {values[k]:.3f}" for k, label in keys if k in values and values[k] is not None
                     and math.isfinite(float(values[k])))


class AdaptWidget(JobPanel):
    """Adapt (fine-tune) a model to an unlabelled target with MaskTwins, live.

    Args:
        viewer: The napari viewer (injected by napari).
    """

    run_text = "Adapt"
    cancel_text = "Stop"
    progress_unit = "step"

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer by this annotation
        super().__init__(viewer, labels=True)
        self.source_image = layer_picker(viewer, ["image"], "Source image", "labelled source image layer",
                                         prefer=("source",))
        self.source_image_path = FileEdit(label="…or path", mode="r", nullable=True)
        self.source_labels = layer_picker(viewer, ["labels"], "Source labels", "mitochondria labels of the source",
                                          prefer=("source",))
        self.source_labels_path = FileEdit(label="…or path", mode="r", nullable=True)
        self.init_model = FileEdit(label="Start from model", mode="r", filter="*.pt *.zip", nullable=True,
                                   tooltip="optional model.pt or bioimage.io package (.zip) to adapt (e.g. "
                                           "trained on the source): adaptation "
                                           "starts at once; blank: the first half of the steps trains on the "
                                           "source only, the second half adapts (two-stage)")
        self.target_image = layer_picker(viewer, ["image"], "Target image", "unlabelled image of the new microscope",
                                         prefer=("target",))
        self.target_path = FileEdit(label="…or path", mode="r", nullable=True)
        for picker, path in ((self.source_image, self.source_image_path), (self.source_labels, self.source_labels_path),
                             (self.target_image, self.target_path)):
            layer_or_path(picker, path)
        self.source_voxel_size = LineEdit(label="Source voxel size", value="",
                                          tooltip="z,y,x in nm; blank: from the layer scale or the file's metadata "
                                                  "(needed for unscaled layers, TIFF and PNG folders)")
        self.target_voxel_size = LineEdit(label="Target voxel size", value="",
                                          tooltip="z,y,x in nm; blank: from the layer scale or the file's metadata")
        self.target_gt = layer_picker(viewer, ["labels"], "Target GT (eval)",
                                      "optional target labels, used only to report metrics, never for training")
        self.method = ComboBox(label="Method", choices=method_choices(), value="masktwins")
        cpu = preset_recipe("cpu")
        self.steps = SpinBox(label="Steps", value=cpu["train"]["steps"], min=1, max=10**7,
                             tooltip="optimiser steps in all (default: the CPU preset of masktwins-bio benchmark); "
                                     "without a start model the first half trains on the source only "
                                     "(method.adapt_from_step: auto)")
        self.val_every = SpinBox(label="Validate every", value=cpu["train"]["val_every"], min=1, max=10**7,
                                 tooltip="steps between label-free validations (and previews)")
        self.patch_size = LineEdit(label="Patch size", value="",
                                   tooltip="z,y,x voxels; blank: the start model's, else the preset's ("
                                           + "; ".join(f"{','.join(map(str, p['patch']))} on a {k.upper()}"
                                                       for k, p in PRESETS.items()) + ")")
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda"], value="auto")
        self.extra = LineEdit(label="Extra settings", value="",
                              tooltip="config overrides as in 'masktwins-bio train --set', separated by ';', "
                                      "e.g. train.lr=5e-4; model.channels=[8,16,32]; method.keep_ratio=0.5; "
                                      "method.lambda_cm=0.01 (more recall where the source model misses "
                                      "mitochondria instead of over-segmenting the target, README)")
        self.project = FileEdit(label="Project folder", mode="d", nullable=True,
                                value=remembered("project") or None,
                                tooltip="every run is saved in <project>/runs/<time>-<method> with a config.yaml "
                                        "that 'masktwins-bio train' repeats (remembered); blank: a temporary "
                                        "folder, deleted when napari exits")
        self.resume_run = ComboBox(label="Stopped run", choices=self._resumable_runs, nullable=True,
                                   tooltip="a run of the project folder that stopped before its last step")
        self.resume_button = PushButton(text="Resume", enabled=False,
                                        tooltip="continue the stopped run from its last checkpoint, with its own "
                                                "config.yaml (the fields above are not used)")
        self.resume_button.changed.connect(self.resume)
        self.preview = CheckBox(label="Preview on current slice", value=True)
        self.save_as = FileEdit(label="Save model as", mode="w", filter="*.pt", nullable=True,
                                tooltip="copy the adapted model.pt here when training ends (or press Save)")
        self.save_button = PushButton(text="Save model as…", enabled=False)
        self.save_button.changed.connect(self.save_model)
        self.log = TextEdit(label="Log", value="")
        self.log.native.setReadOnly(True)
        self.log.native.setMinimumHeight(110)
        buttons = Container(widgets=[self.run_button, self.cancel_button, self.save_button], layout="horizontal",
                            labels=False)
        self.plot = make_plot(LossPlot, viewer)  # None without napari-matplotlib: the text log is enough
        # four pages so that the widget fits a 1000 x 800 screen: what to adapt, how, where to, and the run's log
        self.tabs = add_tabs(self, {
            "Data": [self.source_image, self.source_image_path, self.source_labels, self.source_labels_path,
                     self.source_voxel_size, self.target_image, self.target_path, self.target_voxel_size,
                     self.target_gt],
            "Method": [self.init_model, self.method, self.steps, self.val_every, self.patch_size, self.device,
                       self.extra],
            "Output": [self.project, self.preview, self.save_as, self.resume_run, self.resume_button],
            "Progress": [self.log],
        })
        if self.plot is not None:
            self.tabs.widget(3).layout().addWidget(self.plot.widget)
        self.extend([buttons, self.reason, self.status])
        self.watch(self.source_image, self.source_image_path, self.source_labels, self.source_labels_path,
                   self.init_model, self.target_image, self.target_path, self.target_gt, self.patch_size, self.extra,
                   self.project, self.source_voxel_size, self.target_voxel_size)
        for widgets in ((self.source_image, self.source_image_path, self.source_voxel_size),
                        (self.target_image, self.target_path, self.target_voxel_size)):
            hint = (lambda *_a, w=widgets: voxel_size_hint(w[2], w[0].value,
                                                           None if w[0].value is not None else path_text(w[1].value)))
            widgets[0].changed.connect(hint)
            widgets[1].changed.connect(hint)
            hint()
        self.project.changed.connect(self._project_changed)
        self.resume_run.changed.connect(self.refresh)
        self.model_path: Optional[Path] = None
        self._temporary_run = False
        self.result = None
        self.preview_layer = None
        self._preview_at: tuple[int, int, int] = (0, 0, 0)
        self._preview_lock = threading.Lock()
        self._target_info: Optional[dict] = None
        viewer.dims.events.point.connect(self._update_preview_location)
        viewer_camera(viewer).events.center.connect(self._update_preview_location)
        self.refresh()

    # -- validation -------------------------------------------------------------------------------------------
    def _voxel_field(self, what: str):
        """The voxel-size field that supplies ``what``'s voxel size (labels share the source image's)."""
        return self.target_voxel_size if what.startswith("target") else self.source_voxel_size

    def _pick(self, layer_widget, path_widget, what: str, kind: str = "image") -> Optional[str]:
        layer = layer_widget.value
        path = path_text(path_widget.value)
        field = self._voxel_field(what)
        parse_triple(field.value, field.label.lower())  # a malformed field: named, before anything else
        if layer is not None:
            problem = layer_problem(layer, kind)
            if problem:
                return problem
            if layer_voxel_size(layer) is None and not field.value.strip():
                return (f"{what} layer '{layer.name}' has no voxel size; enter it in {field.label} (z,y,x nm) or "
                        "set the layer's scale")
            return None
        if path is None:
            return f"choose the {what} (a layer or a path)"
        if not spec_exists(path):
            return f"{what} path {path} does not exist; check the path"
        return None

    def problem(self) -> Optional[str]:
        for widgets, what, kind in (((self.source_image, self.source_image_path), "source image", "image"),
                                    ((self.source_labels, self.source_labels_path), "source labels", "labels"),
                                    ((self.target_image, self.target_path), "target image", "image")):
            problem = self._pick(*widgets, what, kind)
            if problem:
                return problem
        gt = self.target_gt.value
        if gt is not None:
            problem = layer_problem(gt, "labels")
            if problem:
                return problem
            if self.target_image.value is None:
                return "target GT is a layer: choose the target image as a layer too (or clear Target GT)"
            if tuple(gt.data.shape)[-3:] != tuple(self.target_image.value.data.shape)[-3:]:
                return (f"target GT '{gt.name}' has shape {tuple(gt.data.shape)}, the target image "
                        f"{tuple(self.target_image.value.data.shape)}; they must match")
        init = path_text(self.init_model.value)
        if init is not None and not Path(init).exists():
            return f"start model {init} not found; choose a model.pt or clear the field"
        if init is not None and model_problem(init):
            return f"start model: {model_problem(init)}"
        parse_triple(self.patch_size.value, "patch size", integer=True)
        parse_overrides(self.extra.value)
        project = path_text(self.project.value)
        if project is not None and not Path(project).parent.exists():
            return f"project folder {project}: its parent folder does not exist; choose another Project folder"
        if project is not None and Path(project).exists() and not Path(project).is_dir():
            return f"project folder {project} is a file; choose a folder as Project folder"
        return None

    def refresh(self, *_args) -> None:
        super().refresh()
        self.resume_button.enabled = self.worker is None and self.resume_run.value is not None

    # -- the project folder -----------------------------------------------------------------------------------
    def _project_folder(self) -> Optional[Path]:
        text = path_text(self.project.value)
        return Path(text).expanduser().resolve() if text else None

    def _resumable_runs(self, _widget=None) -> list[tuple[str, Path]]:
        project = self._project_folder() if hasattr(self, "project") else None
        return [(run.name, run) for run in project_runs(project, "resumable")]

    def _project_changed(self, *_args) -> None:
        project = self._project_folder()
        if project is not None and project.parent.exists():
            remember("project", str(project))
        self.resume_run.reset_choices()
        self.refresh()

    # -- preview location (main thread) -----------------------------------------------------------------------
    def _update_preview_location(self, *_args) -> None:
        info = self._target_info
        if info is None:
            return
        shape = info["shape"]
        layer = info.get("layer")
        point = np.asarray(self.viewer.dims.point, dtype=float)
        center = np.asarray(viewer_camera(self.viewer).center, dtype=float)
        if point.size >= 3:
            point = point.copy()
            point[-2:] = center[-2:]
        try:
            if layer is not None:
                coords = np.asarray(layer.world_to_data(point), dtype=float)[-3:]
            else:
                coords = point[-3:] / np.asarray(info["voxel_size"], dtype=float)
        except Exception:
            coords = np.asarray(shape, dtype=float) / 2
        loc = tuple(int(min(max(round(c), 0), n - 1)) for c, n in zip(coords, shape))
        with self._preview_lock:
            self._preview_at = loc

    # -- running ----------------------------------------------------------------------------------------------
    def _volume(self, layer_widget, path_widget, kind: str, field=None):
        """The volume of a layer or path; ``field`` (a voxel-size LineEdit) overrides its voxel size when filled."""
        given = parse_triple(field.value, field.label.lower()) if field is not None else None
        layer = layer_widget.value
        if layer is not None:
            return layer_volume(layer, kind, voxel_size=given), layer
        return open_volume(path_text(path_widget.value), voxel_size=given, kind=kind), None

    def run(self):
        """Start adaptation in a background worker; returns the worker or ``None`` when the inputs are invalid."""
        if not self.check_ready():
            return None
        try:
            src_img, _ = self._volume(self.source_image, self.source_image_path, "image", self.source_voxel_size)
            src_lab, _ = self._volume(self.source_labels, self.source_labels_path, "labels", self.source_voxel_size)
            tgt, tgt_layer = self._volume(self.target_image, self.target_path, "image", self.target_voxel_size)
            gt = layer_volume(self.target_gt.value, "labels") if self.target_gt.value is not None else None
            patch = parse_triple(self.patch_size.value, "patch size", integer=True)
            overrides = parse_overrides(self.extra.value)
        except InputError as exc:
            notify_error(str(exc))
            return None
        for vol, field in ((src_img, self.source_voxel_size), (tgt, self.target_voxel_size)):
            if vol.voxel_size is None:
                notify_error(f"{vol.path}: voxel size unknown (none in its metadata); enter it in {field.label} "
                             "(z,y,x nm)")
                return None
        src_lab = src_lab.with_voxel_size(src_lab.voxel_size or src_img.voxel_size)  # as the CLI does
        layers = {"source image": self.source_image.value, "source labels": self.source_labels.value,
                  "target image": self.target_image.value, "target ground truth": self.target_gt.value}
        init = path_text(self.init_model.value)
        method = self.method.value
        steps, val_every, device = int(self.steps.value), int(self.val_every.value), self.device.value
        project = self._project_folder()
        self._temporary_run = project is None
        if project is None:
            project = temporary_folder("masktwins-adapt-")
        else:
            remember("project", str(project))
        run_dir = new_run_folder(project, method)
        preview = bool(self.preview.value)
        self.tabs.setCurrentIndex(3)  # show the run's log and plot
        self._target_info = {"shape": tgt.shape, "layer": tgt_layer, "voxel_size": tgt.voxel_size}
        self._update_preview_location()
        placement = ((tuple(tgt_layer.scale[-3:]), tuple(tgt_layer.translate[-3:]), layer_units(tgt_layer))
                     if tgt_layer is not None else (tuple(tgt.voxel_size), (0.0, 0.0, 0.0), NM_UNITS))
        cancel = self.cancel_requested
        preview_store = temporary_folder("masktwins-preview-") / "preview.zarr"

        def job(emit):
            try:
                emit("progress", (f"adapt ({method}): reading the inputs", 0, 0))
                volumes = TrainingVolumes(src_img, src_lab, tgt, tgt if gt is not None else None, gt)
                config = self._config(emit, volumes, layers, project, run_dir.name, init, method, steps, val_every,
                                      device, patch, overrides)
                return self._train(emit, config, volumes, run_dir, False, preview, preview_store, placement, cancel)
            finally:
                shutil.rmtree(preview_store.parent, ignore_errors=True)

        self._prepare_run(f"{method}: {steps} steps, run folder {run_dir}")
        return self.start_job(job, desc=f"adapt ({method})", total=steps)

    def resume(self, *_args):
        """Continue the chosen stopped run of the project from its checkpoint, with its own config.yaml; returns the
        worker or ``None``."""
        run_dir = self.resume_run.value
        if run_dir is None or self.worker is not None:
            return None
        try:
            config = load_config(Path(run_dir) / "config.yaml")
            volumes = open_training_volumes(config)
        except InputError as exc:  # ConfigError and missing files included: one line, named
            notify_error(str(exc))
            return None
        tgt = volumes.target_image
        preview = bool(self.preview.value)
        self._temporary_run = False
        self.tabs.setCurrentIndex(3)
        self._target_info = {"shape": tgt.shape, "layer": None, "voxel_size": tgt.voxel_size}
        self._update_preview_location()
        placement = (tuple(tgt.voxel_size), (0.0, 0.0, 0.0), NM_UNITS)
        cancel = self.cancel_requested
        preview_store = temporary_folder("masktwins-preview-") / "preview.zarr"

        def job(emit):
            try:
                return self._train(emit, config, volumes, Path(run_dir), True, preview, preview_store, placement,
                                   cancel)
            finally:
                shutil.rmtree(preview_store.parent, ignore_errors=True)

        self._prepare_run(f"resuming {Path(run_dir).name}: {config.method.name}, {config.train.steps} steps")
        return self.start_job(job, desc=f"adapt ({config.method.name})", total=config.train.steps)

    def _prepare_run(self, line: str) -> None:
        self.model_path = None
        self.result = None
        self.save_button.enabled = False
        self.log.value = line
        if self.plot is not None:
            self.plot.clear()

    def _config(self, emit, volumes: TrainingVolumes, layers: dict, project: Path, name: str, init, method: str,
                steps: int, val_every: int, device: str, patch, overrides):
        """The run's configuration (worker thread): every input named by a file, with the voxel sizes used, and the
        Extra settings applied (so that config.yaml records them)."""
        def spec(vol, role: str, kind: str) -> str:
            layer = layers.get(role)
            if layer is None:
                return vol.path if ":/" in str(vol.path) else str(Path(vol.path).resolve())
            return layer_spec(layer, kind, vol.voxel_size, project, log=lambda line: emit("log", line))

        v = volumes
        # the recipe of masktwins-bio benchmark's preset for this device and budget (network, batches, warm-up,
        # teacher decay); the training grid, masks and augmentation are the schema's defaults, as there
        recipe = preset_recipe("gpu" if resolve_device(device).type == "cuda" else "cpu", steps)
        data: dict = {"patch_size": list(patch or recipe["data"]["patch_size"])}
        cfg: dict = {
            "name": name,
            "source": {"image": spec(v.source_image, "source image", "image"),
                       "labels": spec(v.source_labels, "source labels", "labels"),
                       "voxel_size": list(v.source_image.voxel_size)},
            "target": {"image": spec(v.target_image, "target image", "image"),
                       "voxel_size": list(v.target_image.voxel_size)},
            "data": data,
            "model": recipe["model"],
            "method": {**recipe["method"], "name": method},
            # checkpoints at every validation, so a stopped (or crashed) run can be resumed close to where it was
            "train": {"batch_source": recipe["train"]["batch_source"], "batch_target": recipe["train"]["batch_target"],
                      "warmup_steps": recipe["train"]["warmup_steps"], "steps": steps,
                      "val_every": min(val_every, steps), "log_every": max(1, min(10, val_every)),
                      "checkpoint_every": min(val_every, steps), "device": device},
        }
        if init is not None:
            start = load_model(init)
            cfg["model"] = start.model_cfg.model_dump(mode="json")
            cfg["train"]["init"] = str(Path(init).resolve())
            data["voxel_size"] = list(start.voxel_size)
            if patch is None:
                data["patch_size"] = list(start.patch_size)
        if v.eval_labels is not None:
            cfg["target"]["eval"] = {"image": cfg["target"]["image"],
                                     "labels": spec(v.eval_labels, "target ground truth", "labels"),
                                     "voxel_size": list(v.target_image.voxel_size)}
        if overrides:
            from ...config import apply_overrides

            cfg = apply_overrides(cfg, overrides, "Extra settings")
        return config_from_dict(cfg, "Adapt widget settings")

    def _train(self, emit, config, volumes: TrainingVolumes, run_dir: Path, resume: bool, preview: bool,
               preview_store: Path, placement, cancel):
        """The job (worker thread): training with live callbacks and previews."""
        method, steps, device = config.method.name, config.train.steps, config.train.device
        tgt = volumes.target_image

        shown_at = [0.0]

        def callback(step: int, logs: dict) -> None:
            if "candidate" in logs:  # method.agreement=auto: one adaptation per agreement, then the choice
                c = logs["candidate"]
                emit("log", f"adapting with the {c['agreement']} agreement ({c['index'] + 1} of {c['of']}; the "
                            "higher label-free score is kept)")
            if "choice" in logs:  # ... compared halfway (method.agreement_probe): only the better one trains on
                c = logs["choice"]
                shown = ", ".join(f"{a} {v:.4f}" for a, v in c["scores"].items())
                emit("log", f"kept the {c['agreement']} agreement at step {c['step']} (label-free scores {shown}); "
                            f"training it on to step {steps}")
            if "progress" in logs:  # every step; shown at most ten times a second, and the last step always
                now = time.perf_counter()
                if now - shown_at[0] >= 0.1 or step == steps:
                    shown_at[0] = now
                    emit("progress", (f"adapt ({method})", step, steps))
            if "train" in logs:
                emit("train", (step, logs["train"]))
            if "val" in logs:
                emit("val", (step, logs["val"]))
                model = model_so_far(run_dir)  # a candidate's while method.agreement=auto has not chosen yet
                if preview and model is not None and not cancel.is_set():
                    self._preview(emit, model, tgt, placement, preview_store, device, step)

        return train(config, run_dir=run_dir, resume=resume, progress=False, volumes=volumes, callback=callback,
                     should_stop=cancel.is_set)

    def _preview(self, emit, model: Path, tgt, placement, store: Path, device: str, step: int) -> None:
        """Predict a slab of the target around the current slice with the model selected so far (worker thread)."""
        try:
            loaded = load_model(model)
            with self._preview_lock:
                z, y, x = self._preview_at
            depth = max(1, math.ceil(loaded.patch_size[0] * loaded.voxel_size[0] / tgt.voxel_size[0]))
            starts = []
            for c, n, size in zip((z, y, x), tgt.shape, (depth, PREVIEW_MAX_YX, PREVIEW_MAX_YX)):
                size = min(n, size)
                starts.append((min(max(0, c - size // 2), n - size), size))
            roi = tuple(slice(a, a + s) for a, s in starts)
            out = predict(loaded, tgt.crop(roi), store, overwrite=True, progress=False, device=device)
            prob = open_volume(out)[:]
            scale, translate = output_placement(placement[0], placement[1], tgt.voxel_size, loaded.voxel_size,
                                                [a for a, _ in starts])
            emit("preview", {"data": prob, "scale": scale, "translate": translate, "units": placement[2],
                             "step": step})
        except Exception as exc:  # a failed preview must not stop training
            log.warning("masktwins-bio: preview failed: %s", exc)
            emit("log", f"preview failed: {exc}")

    # -- events (main thread) -----------------------------------------------------------------------------------
    def _append_log(self, line: str) -> None:
        self.log.native.append(line)  # QTextEdit.append: no full re-render of a long log
        bar = self.log.native.verticalScrollBar()
        bar.setValue(bar.maximum())

    def on_event(self, kind: str, payload) -> None:
        if kind == "train":
            step, values = payload
            self._append_log(f"step {step}: " + _fmt(values, [("loss", "loss"), ("loss_source", "source"),
                                                               ("loss_pseudo", "pseudo"),
                                                               ("loss_consistency", "consistency")]))
            if self.plot is not None and "loss" in values:
                self.plot.add("train", step, float(values["loss"]))
        elif kind == "val":
            step, values = payload
            self._append_log(f"validation @ {step}: " + _fmt(values, [
                ("label_free_score", "label-free score"), ("view_consistency", "view consistency"),
                ("teacher_student_agreement", "teacher-student"), ("foreground_fraction", "foreground"),
                ("target_iou", "target IoU"), ("target_dice", "target Dice")]))
            if self.plot is not None and "label_free_score" in values:
                self.plot.add("val", step, float(values["label_free_score"]))
        elif kind == "preview":
            self._show_preview(payload)
        elif kind == "log":
            self._append_log(str(payload))

    def _show_preview(self, payload: dict) -> None:
        layer = self.preview_layer
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_image(payload["data"], name=PREVIEW_LAYER, scale=payload["scale"],
                                          translate=payload["translate"], units=payload["units"], colormap="magma",
                                          blending="additive", contrast_limits=(0, 255), opacity=0.7)
            self.preview_layer = layer
        else:
            layer.data = payload["data"]
            layer.scale = payload["scale"]
            layer.translate = payload["translate"]
        layer.metadata["masktwins_bio"] = {"preview_step": payload["step"]}

    def on_result(self, result) -> None:
        self.result = result
        self.model_path = Path(result.model_path)
        self.save_button.enabled = True
        stopped = result.steps < int(self.steps.value)
        line = (f"{'stopped at' if stopped else 'finished'} step {result.steps}; selected step {result.selected_step}; "
                f"model: {self.model_path}")
        self._append_log(line)
        self.status.value = f"adapted model: {self.model_path}"
        taken = offer_model(self.viewer, self.model_path)
        if taken:
            self._append_log("model offered to " + ", ".join(sorted({type(p).__name__.replace("Widget", "")
                                                                      for p in taken})))
        self.resume_run.reset_choices()
        if path_text(self.save_as.value):
            self.save_model()
        elif self._temporary_run:
            self._append_log("the run folder is temporary (deleted when napari exits): use 'Save model as…' to keep "
                             "the model")
        notify_info(f"adaptation {'stopped' if stopped else 'finished'}; model: {self.model_path}")

    def on_cancelled(self) -> None:
        notify_info("adaptation stopped")

    def save_model(self, *_args) -> Optional[Path]:
        """Copy the adapted model to the *Save model as* path (asks for one with a dialog when blank)."""
        if self.model_path is None or not self.model_path.exists():
            notify_error("no adapted model yet; run Adapt first")
            return None
        target = path_text(self.save_as.value)
        if target is None:
            self.save_as._on_choose_clicked()  # the file dialog of the FileEdit
            target = path_text(self.save_as.value)
            if target is None:
                return None
        dest = Path(target)
        if dest.suffix != ".pt":
            dest = dest.with_name(dest.name + ".pt")
        if not dest.parent.exists():
            notify_error(f"{dest}: folder {dest.parent} does not exist")
            return None
        shutil.copy2(self.model_path, dest)
        self._append_log(f"model saved as {dest}")
        notify_info(f"model saved as {dest}")
        return dest
