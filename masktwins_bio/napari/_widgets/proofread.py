"""The Proofread widget: merge, split, delete and filter mitochondria on a labels layer, with undo, saved to OME-Zarr.

Every button calls :class:`masktwins_bio.postprocess.Proofreader` (the library's proofreading; the GUI adds nothing
it cannot do): *Start* opens the chosen labels layer - its OME-Zarr store when the layer was read from one (edits then
touch only the chunks of the instances concerned, so volumes larger than memory work), else the layer's array - and
shows the edited labels as a layer of its own, plus a points layer for split seeds. Ids are typed ("3, 8") or taken
from the label picked in the layer (*Add picked*). *Save* writes into the store (pyramid rebuilt, edits recorded in
its provenance) or, with *Save as*, into a new OME-Zarr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox

from ...errors import UserError
from ...io import Volume
from ...postprocess import Proofreader
from .._layers import META_KEY, layer_voxel_size, path_text
from ._base import layer_picker, notify_error, notify_info, wrapping

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["ProofreadWidget", "SEEDS_LAYER"]

SEEDS_LAYER = "split seeds"


class ProofreadWidget(Container):
    """Proofreading of one labels layer (see the module docstring)."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer by this annotation
        super().__init__(labels=True)
        self.viewer = viewer
        self.pr: Optional[Proofreader] = None
        self.edited = None  # the layer showing the edited labels
        self.layer = layer_picker(viewer, ["labels"], "Labels layer", "instances to proofread (e.g. from Predict)",
                                  prefer=("instances",))
        self.start_button = PushButton(text="Start")
        self.ids = LineEdit(label="Ids", value="", tooltip="instance ids, e.g. 3, 8 (or pick one and Add picked)")
        self.add_picked = PushButton(text="Add picked")
        self.merge_button = PushButton(text="Merge")
        self.delete_button = PushButton(text="Delete")
        self.split_button = PushButton(text="Split at seeds")
        self.min_voxels = SpinBox(label="Min voxels", value=0, min=0, max=10**9)
        self.drop_border = CheckBox(label="Drop border-touching", value=False)
        self.filter_button = PushButton(text="Filter")
        self.undo_button = PushButton(text="Undo")
        self.redo_button = PushButton(text="Redo")
        self.save_as = FileEdit(label="Save as", mode="w", filter="*.zarr", nullable=True,
                                tooltip="blank: save into the layer's own store (OME-Zarr)")
        self.save_button = PushButton(text="Save")
        self.status = wrapping(Label(value="choose a labels layer and press Start"))
        edits = Container(layout="horizontal", labels=False,
                          widgets=[self.merge_button, self.delete_button, self.split_button])
        history = Container(layout="horizontal", labels=False, widgets=[self.undo_button, self.redo_button])
        self.extend([self.layer, self.start_button, self.ids, self.add_picked, edits, self.min_voxels,
                     self.drop_border, self.filter_button, history, self.save_as, self.save_button, self.status])
        self.start_button.changed.connect(self.start)
        self.add_picked.changed.connect(self._add_picked)
        self.merge_button.changed.connect(lambda: self._edit(lambda pr: pr.merge(self._ids())))
        self.delete_button.changed.connect(lambda: self._edit(lambda pr: pr.delete(self._ids())))
        self.split_button.changed.connect(lambda: self._edit(self._split))
        self.filter_button.changed.connect(lambda: self._edit(lambda pr: pr.filter(
            min_voxels=self.min_voxels.value or None, touching_border=self.drop_border.value)))
        self.undo_button.changed.connect(lambda: self._edit(lambda pr: pr.undo(), clear_ids=False))
        self.redo_button.changed.connect(lambda: self._edit(lambda pr: pr.redo(), clear_ids=False))
        self.save_button.changed.connect(self.save)
        self._enable(False)

    def _enable(self, on: bool) -> None:
        for w in (self.ids, self.add_picked, self.merge_button, self.delete_button, self.split_button,
                  self.min_voxels, self.drop_border, self.filter_button, self.undo_button, self.redo_button,
                  self.save_button):
            w.enabled = on

    # -- session ------------------------------------------------------------------------------------------------
    def start(self) -> Optional[Proofreader]:
        layer = self.layer.value
        if layer is None:
            notify_error("choose a labels layer to proofread")
            return None
        path = (layer.metadata.get(META_KEY) or {}).get("path")
        voxel_size = layer_voxel_size(layer)
        try:
            if path and str(path).rstrip("/").endswith(".zarr"):
                self.pr = Proofreader(path, voxel_size=voxel_size)
            else:
                data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
                self.pr = Proofreader(np.asarray(data), voxel_size=voxel_size)
        except UserError as exc:
            notify_error(str(exc))
            return None
        name = f"{layer.name} (proofreading)"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.edited = self.viewer.add_labels(Volume(array=self.pr.as_array(), voxel_size=voxel_size, kind="labels"),
                                             name=name, scale=layer.scale[-3:], translate=layer.translate[-3:],
                                             units=getattr(layer, "units", None))
        layer.visible = False
        if SEEDS_LAYER not in self.viewer.layers:
            self.viewer.add_points(np.zeros((0, 3)), name=SEEDS_LAYER, ndim=3, scale=layer.scale[-3:],
                                   translate=layer.translate[-3:], size=3)
        self.viewer.layers.selection.active = self.edited
        self._enable(True)
        self._report()
        return self.pr

    def _ids(self) -> list[int]:
        text = self.ids.value.replace(";", ",")
        try:
            return [int(t) for t in text.replace(" ", "").split(",") if t]
        except ValueError:
            raise UserError(f"ids {self.ids.value!r}: type instance ids separated by commas, e.g. 3, 8") from None

    def _add_picked(self) -> None:
        if self.edited is None:
            return
        picked = int(self.edited.selected_label)
        ids = [i for i in self._ids() if i != picked] + [picked]
        self.ids.value = ", ".join(str(i) for i in ids)

    def _split(self, pr: Proofreader):
        seeds_layer = self.viewer.layers[SEEDS_LAYER] if SEEDS_LAYER in self.viewer.layers else None
        # the seeds layer shares the labels' scale and translation: its data coordinates are voxel indices
        points = [] if seeds_layer is None else [tuple(p[-3:]) for p in seeds_layer.data]
        ids = self._ids()
        if len(ids) != 1:
            raise UserError("split: type (or pick) the one id to split, and add a seed point inside each part")
        edit = pr.split(ids[0], points)
        seeds_layer.data = np.zeros((0, 3))  # consumed
        return edit

    def _edit(self, action, clear_ids: bool = True) -> None:
        if self.pr is None:
            return
        try:
            edit = action(self.pr)
        except UserError as exc:
            notify_error(str(exc))
            return
        if edit is not None and clear_ids:
            self.ids.value = ""
        self.edited.refresh()
        self._report()

    def _report(self) -> None:
        pr = self.pr
        last = pr.history[-1]["op"] if pr.history else "none"
        self.status.value = (f"{len(pr.ids())} instances, {len(pr.history)} edits (last: {last})"
                             + (", unsaved" if pr.modified else ""))

    def save(self) -> None:
        if self.pr is None:
            return
        out = path_text(self.save_as.value)
        try:
            path = self.pr.save(out, overwrite=False)
        except UserError as exc:
            notify_error(str(exc))
            return
        notify_info(f"saved {path}")
        self._report()
