"""The Predict widget: mitochondria probabilities and instances for an image layer or a volume on disk.

Reads its fields and calls :func:`masktwins_bio.inference.predict` (blockwise sliding window, optional flip TTA)
and :func:`masktwins_bio.postprocess.segment` (connected components or watershed, size filter) in a background worker,
exactly like ``masktwins-bio predict`` and ``masktwins-bio segment``. Both write OME-Zarr stores (in the chosen output
folder, or a fresh temporary folder), which are then shown lazily from disk with this plugin's reader, placed over the
input (the output lies on the model's voxel grid). An input given as a path is never loaded into memory, so volumes
larger than RAM work. Cancel stops between blocks; stores written to an output folder stay marked incomplete and can be
finished with the CLI's ``--resume``; temporary outputs are deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, SpinBox

from ...errors import InputError
from ...inference import predict
from ...io import open_volume, split_h5_spec
from ...postprocess import segment
from .. import _reader
from .._jobs import library_hooks, temporary_folder
from .._layers import (layer_problem, layer_units, layer_volume, layer_voxel_size, output_placement, parse_triple,
                       path_text, spec_exists, voxel_size_hint)
from ._base import JobPanel, layer_or_path, layer_picker, model_problem, notify_info

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["PredictWidget"]

_INSTANCE_CHOICES = [("no instances", "none"), ("connected components", "cc"), ("watershed (split touching)",
                                                                               "watershed")]


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "volume"


class PredictWidget(JobPanel):
    """Probability and instance layers from a trained (or adapted) model.

    Args:
        viewer: The napari viewer (injected by napari).
    """

    run_text = "Predict"
    cancel_text = "Cancel"

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer by this annotation
        super().__init__(viewer, labels=True)
        self.input_layer = layer_picker(viewer, ["image"], "Image layer",
                                        "3D greyscale image layer to segment (or leave empty and give a path)",
                                        prefer=("target", ""))
        self.input_path = FileEdit(label="…or input path", mode="r", nullable=True,
                                   tooltip="A volume on disk, read block by block (out of core): .zarr store, "
                                           "file.h5:/dataset, multi-page .tif, or a folder of slices (type it)")
        layer_or_path(self.input_layer, self.input_path)
        self.model = FileEdit(label="Model", mode="r", filter="*.pt *.zip", nullable=True,
                              tooltip="model.pt written by 'masktwins-bio train' or the Adapt widget, or a "
                                      "bioimage.io package (.zip) written by 'masktwins-bio export-bioimageio'")
        self.tta = ComboBox(label="Test-time aug.", choices=[("none", "none"), ("8 flips (slower)", "flips")],
                            value="none")
        self.voxel_size = LineEdit(label="Voxel size (nm)", value="",
                                   tooltip="z,y,x in nm; blank: from the layer scale or the file's metadata")
        self.threshold = FloatSpinBox(label="Threshold", value=0.5, min=0.01, max=0.99, step=0.05,
                                      tooltip="foreground is probability >= threshold")
        self.instances = ComboBox(label="Instances", choices=_INSTANCE_CHOICES, value="cc")
        self.min_size = SpinBox(label="Min size (voxels)", value=64, min=0, max=10**9,
                                tooltip="instances with fewer voxels are removed")
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda"], value="auto")
        self.output = FileEdit(label="Output folder", mode="d", nullable=True,
                               tooltip="where the probability and label stores are written; blank: a temporary "
                                       "folder, deleted when napari exits")
        self.overwrite = CheckBox(label="Overwrite outputs", value=False)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        self.extend([self.input_layer, self.input_path, self.model, self.tta, self.voxel_size, self.threshold,
                     self.instances, self.min_size, self.device, self.output, self.overwrite, buttons, self.reason,
                     self.status])
        self.watch(self.input_layer, self.input_path, self.model, self.voxel_size, self.output, self.instances)
        self.instances.changed.connect(self._toggle_instance_fields)

        def hint(*_args):
            layer = self.input_layer.value
            voxel_size_hint(self.voxel_size, layer, None if layer is not None else path_text(self.input_path.value))

        self.input_layer.changed.connect(hint)
        self.input_path.changed.connect(hint)
        hint()
        self.result_layers: list = []
        self._outputs: Optional[Path] = None
        self._toggle_instance_fields()
        self.take_offered_model()
        self.refresh()

    # -- validation -------------------------------------------------------------------------------------------
    def _toggle_instance_fields(self, *_args) -> None:
        on = self.instances.value != "none"
        self.min_size.enabled = on

    def accept_model(self, path: Path) -> bool:
        """A model the Adapt widget trained goes into the Model field unless the user chose another."""
        return self.offer_into(self.model, path)

    def problem(self) -> Optional[str]:
        layer = self.input_layer.value
        path = path_text(self.input_path.value)
        if layer is None and path is None:
            return "choose an image layer or an input path"
        override = parse_triple(self.voxel_size.value, "voxel size")
        if layer is not None:
            problem = layer_problem(layer, "image")
            if problem:
                return problem
            if override is None and layer_voxel_size(layer) is None:
                return f"layer '{layer.name}' has no voxel size (scale); enter it as z,y,x nm in Voxel size"
        elif not spec_exists(path):
            return f"input path {path} does not exist; check the path"
        model = path_text(self.model.value)
        if model is None:
            return "choose a model file (.pt)"
        if not Path(model).exists():
            return f"model file {model} not found; choose a model.pt (train one with the Adapt widget or the CLI)"
        problem = model_problem(model)
        if problem:
            return problem
        out = path_text(self.output.value)
        if out is not None and not Path(out).parent.exists():
            return f"output folder {out}: its parent folder does not exist; create it or choose another"
        return None

    # -- running ----------------------------------------------------------------------------------------------
    def run(self):
        """Start prediction (and instance segmentation) in a background worker; returns the worker or ``None``."""
        if not self.check_ready():
            return None
        layer = self.input_layer.value
        path = path_text(self.input_path.value)
        override = parse_triple(self.voxel_size.value, "voxel size")
        model = path_text(self.model.value)
        method = self.instances.value
        settings = dict(tta=self.tta.value, device=self.device.value, overwrite=bool(self.overwrite.value))
        seg_settings = dict(threshold=float(self.threshold.value), method=method, min_size=int(self.min_size.value))
        name = layer.name if layer is not None else Path(split_h5_spec(path)[0]).stem
        out_text = path_text(self.output.value)
        temporary = out_text is None
        out_dir = temporary_folder("masktwins-predict-") if temporary else Path(out_text)
        stem = _safe_name(name)
        prob_path = out_dir / f"{stem}_probabilities.zarr"
        labels_path = out_dir / f"{stem}_instances.zarr"
        if layer is not None:
            vol = layer_volume(layer, "image", override)
            placement = (tuple(layer.scale[-3:]), tuple(layer.translate[-3:]), vol.voxel_size, layer_units(layer))
        else:
            vol = None
            placement = None
        cancel = self.cancel_requested

        def job(emit):
            hooks = library_hooks(emit, cancel)
            try:
                source = vol if vol is not None else open_volume(path)
                if source.with_voxel_size(override).voxel_size is None:
                    raise InputError(f"{source.path}: voxel size unknown; enter it as z,y,x nm in Voxel size")
                if not temporary:
                    out_dir.mkdir(exist_ok=True)
                prob = predict(model, source, prob_path, progress=False, voxel_size=override, **settings, **hooks)
                labels = None
                if method != "none":
                    labels = segment(prob, labels_path, progress=False, overwrite=settings["overwrite"],
                                     **seg_settings, **hooks)
                in_vs = source.with_voxel_size(override).voxel_size
                return {"probabilities": prob, "instances": labels, "name": name, "input_voxel_size": in_vs,
                        "placement": placement, "temporary": temporary, "folder": out_dir}
            except BaseException:
                if temporary:
                    shutil.rmtree(out_dir, ignore_errors=True)
                raise

        self.result_layers = []
        self._outputs = None if temporary else out_dir
        return self.start_job(job, desc=f"predict {name}")

    def on_result(self, value: dict) -> None:
        added = []
        paths = [("probabilities", value["probabilities"]), ("instances", value["instances"])]
        for role, store in paths:
            if store is None:
                continue
            for data, kwargs, kind in _reader.read_layers(_reader.find_layers(store)):
                kwargs = dict(kwargs)
                kwargs["name"] = f"{value['name']} {role}"
                out_vs = kwargs.get("scale")
                if value["placement"] is not None and out_vs is not None:
                    in_scale, in_translate, in_vs, units = value["placement"]
                    kwargs["scale"], kwargs["translate"] = output_placement(in_scale, in_translate, in_vs, out_vs)
                    kwargs["units"] = units  # the input layer's world units (nm for layers from this plugin)
                elif out_vs is not None and value["input_voxel_size"] is not None:
                    _, kwargs["translate"] = output_placement(value["input_voxel_size"], (0, 0, 0),
                                                              value["input_voxel_size"], out_vs)
                if role == "probabilities":
                    kwargs.update(colormap="magma", blending="additive", opacity=0.7)
                    if kwargs.get("contrast_limits") is None:
                        kwargs["contrast_limits"] = (0, 255)
                else:
                    kwargs["opacity"] = 0.6
                existing = [layer for layer in self.viewer.layers if layer.name == kwargs["name"]]
                for layer in existing:  # re-running replaces the previous result
                    self.viewer.layers.remove(layer)
                add = self.viewer.add_labels if kind == "labels" else self.viewer.add_image
                added.append(add(data, **kwargs))
        self.result_layers = added
        where = "a temporary folder" if value["temporary"] else "the output folder"
        self.status.value = f"done: {len(added)} layer(s), stores in {value['folder']}"
        notify_info(f"prediction of '{value['name']}' done; stores written to {where} {value['folder']}")

    def on_cancelled(self) -> None:
        if self._outputs is None:
            notify_info("prediction cancelled; temporary outputs removed")
        else:  # interrupted stores say complete: false; the CLI's --resume finishes them
            notify_info(f"prediction cancelled; the stores in {self._outputs} are incomplete: tick 'Overwrite "
                        "outputs' to redo them, or finish them with 'masktwins-bio predict ... --resume'")

