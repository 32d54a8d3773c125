"""The Inspect widget: MaskTwins' complementary masks on the current patch, a per-instance table and metrics.

* **Masks:** the pair (M, 1 - M) of :func:`masktwins_bio.methods.masks.complementary_masks` on the patch of the chosen
  image around the current view (the block size of :func:`masktwins_bio.methods.masks.default_mask_block` unless
  given), shown as a label layer (1 = seen by view M, 2 = seen by view 1 - M) and the two masked views as (hidden)
  image layers, with masked voxels at the patch mean (what the network sees: 0 after normalisation).
* **Instances:** :func:`masktwins_bio.measure` of an instance layer (voxel size from the layer): volume, surface,
  elongation, sphericity, border contact per instance, in a sortable table; clicking a row moves the viewer to the
  instance (dims point and camera centre) and selects its label. A filter (one column between bounds, border
  instances hidden) is :meth:`masktwins_bio.postprocess.Measurements.select`; the histogram of that column shows all
  instances and the kept ones. *Export CSV* writes the table (all rows, or only the kept ones) with its column sidecar
  (the same files as ``masktwins-bio measure``). The measurements also become the layer's ``features`` (napari's
  status bar shows them under the cursor; napari-matplotlib's feature plots read them). Measured in a worker, block
  by block.
* **Metrics:** :func:`masktwins_bio.metrics.evaluate` of a prediction layer (probabilities or instance labels) against
  a ground-truth label layer, shown with :func:`masktwins_bio.metrics.format_summary`; runs when a ground truth is
  chosen or on *Evaluate*.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, PushButton,
                              SpinBox, Table, TextEdit)

from ...errors import InputError, UserError
from ...methods.masks import complementary_masks, default_keep_ratio, default_mask_block
from ...metrics import evaluate, format_summary
from .._jobs import library_hooks
from .._plots import HistogramPlot, make_plot
from .._layers import layer_problem, layer_units, layer_volume, parse_triple, path_text, viewer_camera
from ...postprocess import Measurements, measure
from ._base import JobPanel, add_tabs, layer_picker, notify_error, notify_info, wrapping

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["InspectWidget"]

log = logging.getLogger("masktwins_bio.napari")

DEFAULT_PATCH = (16, 96, 96)
#: measure's columns shown in the table (all of them go to the exported CSV)
TABLE_COLUMNS = {"label": "id", "voxels": "voxels", "volume_um3": "µm³", "surface_um2": "surface µm²",
                 "elongation": "elongation", "sphericity": "sphericity", "touches_border": "border"}


def _numeric_item(text: str):
    """A table item that sorts numbers by value (text that is not a number sorts after them, by text)."""
    from qtpy.QtWidgets import QTableWidgetItem

    class NumericItem(QTableWidgetItem):
        def __lt__(self, other):
            a, b = _number(self.text()), _number(other.text())
            return (a is None, a if a is not None else self.text()) < (b is None, b if b is not None else other.text())

    item = NumericItem(text)
    item.setFlags(item.flags() & ~_editable())
    return item


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _editable():
    from qtpy.QtCore import Qt

    return Qt.ItemFlag.ItemIsEditable


def _cell(value):
    """Table cell: ints as ints (sortable), floats to 4 significant digits, NaN as n/a."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(f"{value:.4g}") if np.isfinite(value) else "n/a"
#: the columns a filter and the histogram can use (measure's numeric ones; the centroid and box are positions)
FILTER_COLUMNS = {"voxels": "voxels", "volume_um3": "volume (µm³)", "surface_um2": "surface (µm²)",
                  "elongation": "elongation", "sphericity": "sphericity", "axis_major_nm": "major axis (nm)",
                  "axis_minor_nm": "minor axis (nm)", "mean_intensity": "mean intensity"}
MAX_ROWS = 2000
MASK_LAYER = "MaskTwins masks (1 = M, 2 = 1-M)"
VIEW_LAYERS = ("view M", "view 1-M")


def _font(widget, monospace: bool = True) -> None:
    from qtpy.QtGui import QFontDatabase

    if monospace:
        widget.native.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))


class InspectWidget(JobPanel):
    """Complementary-mask preview, instance table with click-to-jump, and evaluation metrics.

    Args:
        viewer: The napari viewer (injected by napari).
    """

    run_text = "Evaluate"
    cancel_text = "Cancel"

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer by this annotation
        super().__init__(viewer, labels=True)
        # masks
        self.mask_image = layer_picker(viewer, ["image"], "Image", "image whose current patch is masked",
                                       prefer=("target", ""))
        self.mask_model = FileEdit(label="Model (optional)", mode="r", filter="*.pt", nullable=True,
                                   tooltip="take the patch size from this model")
        self.patch_size = LineEdit(label="Patch size", value="", tooltip="z,y,x voxels; blank: the model's or "
                                                                          "16,96,96")
        self.mask_block = LineEdit(label="Mask block", value="", tooltip="z,y,x voxels; blank: the default block "
                                                                          "for the patch and voxel size")
        self.keep_ratio = LineEdit(label="Keep ratio", value="", tooltip="fraction of the blocks M shows; blank: "
                                                                          "MaskTwins' default for the block (0.3 for "
                                                                          "whole sections, else 0.5)")
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.masks_button = PushButton(text="Show masks")
        self.masks_button.changed.connect(self.show_masks)
        # instances
        self.labels_layer = layer_picker(viewer, ["labels"], "Instances", "instance label layer to measure",
                                         prefer=("proofreading", "instances"))
        self.measure_button = PushButton(text="Measure instances")
        self.measure_button.changed.connect(self.measure)
        self.table = Table(value={c: [] for c in TABLE_COLUMNS.values()})
        self.table.native.setMinimumHeight(150)
        self.table.native.setEditTriggers(self.table.native.EditTrigger.NoEditTriggers)
        self.table.native.setSelectionBehavior(self.table.native.SelectionBehavior.SelectRows)
        self.table.native.cellClicked.connect(lambda row, _col: self.jump_to(row))
        self.table.native.setSortingEnabled(True)  # click a header to sort; rows are found again by their id
        self.table_note = wrapping(Label(value=""))
        self.filter_column = ComboBox(label="Filter / plot", choices=[(t, k) for k, t in FILTER_COLUMNS.items()],
                                      value="volume_um3", tooltip="the column the bounds apply to and the "
                                                                  "histogram shows")
        self.filter_min = LineEdit(label="from", value="", tooltip="lowest value kept (blank: no lower bound)")
        self.filter_max = LineEdit(label="to", value="", tooltip="highest value kept (blank: no upper bound)")
        self.hide_border = CheckBox(label="hide border instances", value=False,
                                    tooltip="hide instances that reach a face of the volume (cut, so their "
                                            "measurements are partial)")
        for w in (self.filter_column, self.filter_min, self.filter_max, self.hide_border):
            w.changed.connect(self.apply_filter)
        self.histogram = make_plot(HistogramPlot, viewer)
        self.export_kept = CheckBox(label="kept rows only", value=False, tooltip="export only the instances the "
                                                                                 "filter keeps")
        self.export_path = FileEdit(label="Table file", mode="w", filter="*.csv", value="instances.csv")
        self.export_button = PushButton(text="Export CSV")
        self.export_button.changed.connect(self.export_table)
        # metrics
        self.prediction = layer_picker(viewer, ["image", "labels"], "Prediction",
                                       "probability (image) or instance (labels) layer")
        self.ground_truth = layer_picker(viewer, ["labels"], "Ground truth", "ground-truth label layer")
        self.threshold = FloatSpinBox(label="Threshold", value=0.5, min=0.01, max=0.99, step=0.05)
        self.metrics = TextEdit(label="Metrics", value="")
        self.metrics.native.setReadOnly(True)
        self.metrics.native.setMinimumHeight(160)
        _font(self.metrics)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        # one page per tool, so that the widget fits a 1000 x 800 screen
        self.tabs = add_tabs(self, {
            "Masks": [self.mask_image, self.mask_model, self.patch_size, self.mask_block, self.keep_ratio, self.seed,
                      self.masks_button],
            "Instances": [self.labels_layer, self.measure_button, self.filter_column,
                          Container(widgets=[self.filter_min, self.filter_max], layout="horizontal"),
                          self.hide_border, self.table, self.table_note,
                          Container(widgets=[self.export_path, self.export_button], layout="horizontal",
                                    labels=False), self.export_kept],
            "Histogram": [],
            "Metrics": [self.prediction, self.ground_truth, self.threshold, buttons, self.metrics],
        })
        if self.histogram is not None:  # its own page: beside the table, the Instances page would not fit
            self.tabs.widget(2).layout().addWidget(self.histogram.widget)
            self.tabs.widget(2).layout().addStretch()  # the plot at the top of its page
        self.extend([self.reason, self.status])
        self.rows: dict[str, np.ndarray] = {}
        self.measurements: Optional[Measurements] = None  # all instances
        self.kept: Optional[Measurements] = None  # those the filter keeps (the table's rows)
        self._rows_layer = None
        self.mask_layers: list = []
        self.watch(self.mask_image, self.mask_model, self.patch_size, self.mask_block, self.labels_layer,
                   self.prediction, self.ground_truth)
        self.ground_truth.changed.connect(self._auto_evaluate)
        self.take_offered_model()
        self.refresh()

    # -- validation -------------------------------------------------------------------------------------------
    def _masks_problem(self) -> Optional[str]:
        layer = self.mask_image.value
        if layer is None:
            return "choose an image for the mask preview"
        problem = layer_problem(layer, "image")
        if problem:
            return problem
        model = path_text(self.mask_model.value)
        if model is not None and not Path(model).exists():
            return f"model file {model} not found"
        parse_triple(self.patch_size.value, "patch size", integer=True)
        parse_triple(self.mask_block.value, "mask block", integer=True)
        return None

    def _measure_problem(self) -> Optional[str]:
        layer = self.labels_layer.value
        if layer is None:
            return "choose an instance label layer to measure"
        return layer_problem(layer, "labels")

    def accept_model(self, path: Path) -> bool:
        """A model the Adapt widget trained goes into the masks' Model field (its patch size)
        unless the user chose another."""
        return self.offer_into(self.mask_model, path)

    def problem(self) -> Optional[str]:
        pred, gt = self.prediction.value, self.ground_truth.value
        if pred is None or gt is None:
            return "choose a prediction and a ground-truth layer to evaluate"
        return layer_problem(pred, "image") or layer_problem(gt, "labels")

    def refresh(self, *_args) -> None:
        super().refresh()
        for button, check in ((self.masks_button, self._masks_problem), (self.measure_button, self._measure_problem)):
            try:
                problem = check()
            except UserError as exc:
                problem = str(exc)
            button.enabled = problem is None and (button is self.masks_button or self.worker is None)
            button.tooltip = problem or ""

    # -- masks (main thread: one patch) -----------------------------------------------------------------------
    def _current_voxel(self, layer) -> np.ndarray:
        point = np.asarray(self.viewer.dims.point, dtype=float).copy()
        center = np.asarray(viewer_camera(self.viewer).center, dtype=float)
        point[-2:] = center[-2:]
        return np.asarray(layer.world_to_data(point), dtype=float)[-3:]

    def show_masks(self, *_args) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Add/update the mask layers for the patch around the current view; returns (M, image patch)."""
        import torch

        try:
            problem = self._masks_problem()
            if problem:
                raise InputError(problem)
            layer = self.mask_image.value
            vol = layer_volume(layer, "image")
            patch = parse_triple(self.patch_size.value, "patch size", integer=True)
            model = path_text(self.mask_model.value)
            if patch is None and model is not None:
                from ...models import load_model

                patch = load_model(model).patch_size
            patch = tuple(min(p, n) for p, n in zip(patch or DEFAULT_PATCH, vol.shape))
            block = parse_triple(self.mask_block.value, "mask block", integer=True)
            block = tuple(block) if block else default_mask_block(patch, vol.voxel_size)
            centre = self._current_voxel(layer)
            start = [int(min(max(round(c - p / 2), 0), n - p)) for c, p, n in zip(centre, patch, vol.shape)]
            region = tuple(slice(a, a + p) for a, p in zip(start, patch))
            image = vol[region]
            keep = self._keep_ratio(block, patch)
            generator = torch.Generator().manual_seed(int(self.seed.value))
            m, _ = complementary_masks((1, 1, *patch), block, keep, generator=generator)
            m = m[0, 0].numpy() > 0.5
        except UserError as exc:
            notify_error(str(exc))
            return None
        scale = tuple(layer.scale[-3:])
        translate = tuple(np.asarray(layer.translate[-3:], dtype=float) + np.asarray(start) * np.asarray(scale))
        fill = image.mean().astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else image.mean()
        views = (np.where(m, image, fill).astype(image.dtype), np.where(m, fill, image).astype(image.dtype))
        masks = np.where(m, 1, 2).astype(np.uint8)
        common = {"scale": scale, "translate": translate, "units": layer_units(layer)}
        self.mask_layers = [self._upsert("labels", MASK_LAYER, masks, opacity=0.35, **common)]
        limits = tuple(layer.contrast_limits)
        for name, data in zip(VIEW_LAYERS, views):
            self.mask_layers.append(self._upsert("image", name, data, visible=False, contrast_limits=limits, **common))
        self.status.value = (f"masks: patch {patch} at voxel {tuple(start)}, block {tuple(block)}, keep "
                             f"{keep:g}; M keeps {m.mean():.0%} of the voxels")
        return m, image

    def _keep_ratio(self, block, patch) -> float:
        text = self.keep_ratio.value.strip()
        if not text:
            return default_keep_ratio(block, patch)
        try:
            keep = float(text)
        except ValueError:
            keep = -1.0
        if not 0 < keep < 1:
            raise InputError(f"keep ratio {text!r}: expected a number between 0 and 1 (e.g. 0.3), or blank for "
                             "MaskTwins' default")
        return keep

    def _upsert(self, kind: str, name: str, data, **kwargs):
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            for key in ("scale", "translate", "units"):
                if kwargs.get(key) is not None:
                    setattr(layer, key, kwargs[key])
            return layer
        return (self.viewer.add_labels if kind == "labels" else self.viewer.add_image)(data, name=name, **kwargs)

    # -- instances (worker) -----------------------------------------------------------------------------------
    def measure(self, *_args):
        """Measure the chosen label layer's instances in a worker and fill the table; returns the worker."""
        if self.worker is not None:
            notify_info("a job is running; wait for it")
            return None
        problem = self._measure_problem()
        if problem:
            notify_error(problem)
            return None
        layer = self.labels_layer.value
        vol = layer_volume(layer, "labels")
        self._rows_layer = layer
        cancel = self.cancel_requested

        unscaled = vol.voxel_size is None  # measured in voxels (nm columns then count voxels): said in the note

        def job(emit):
            table = measure(vol, voxel_size=(1.0, 1.0, 1.0) if unscaled else None, **library_hooks(emit, cancel))
            return "measure", (table, unscaled)

        return self.start_job(job, desc=f"measure {layer.name}")

    def _measured(self, table: Measurements, unscaled: bool = False) -> None:
        self.measurements = table
        self._unscaled = unscaled
        layer = self._rows_layer
        if layer is not None and len(table):
            try:  # napari shows a label's features under the cursor; feature plots read them
                layer.features = table.to_pandas().assign(index=table.columns["label"].astype(np.int64))
            except Exception as exc:  # an old napari without Labels features: the table is enough
                log.info("masktwins-bio: no layer features (%s)", exc)
        self.apply_filter()

    def filter_bounds(self) -> tuple[Optional[float], Optional[float]]:
        """The filter's (from, to) bounds; raises InputError naming the field for text that is not a number."""
        bounds = []
        for field in (self.filter_min, self.filter_max):
            text = field.value.strip()
            if not text:
                bounds.append(None)
                continue
            try:
                bounds.append(float(text))
            except ValueError:
                raise InputError(f"filter '{field.label}' value {text!r} is not a number; type a number or clear "
                                 "it") from None
        return bounds[0], bounds[1]

    def apply_filter(self, *_args) -> Optional[Measurements]:
        """Keep the instances within the filter (:meth:`Measurements.select`), show them and the histogram."""
        table = self.measurements
        if table is None:
            return None
        try:
            low, high = self.filter_bounds()
        except InputError as exc:
            self.table_note.value = f"⚠ {exc}"
            return None
        column = self.filter_column.value
        kept = table.select(touches_border=False if self.hide_border.value else None, **{column: (low, high)})
        self._fill_table(kept, total=len(table))
        if self.histogram is not None:
            mask = np.isin(table.columns["label"], kept.columns["label"])
            self.histogram.show(FILTER_COLUMNS[column], table.columns[column], mask, (low, high))
        return kept

    def _fill_table(self, table: Measurements, total: Optional[int] = None) -> None:
        self.kept = table
        unscaled = getattr(self, "_unscaled", False)
        cols = table.columns
        vs = np.asarray(table.voxel_size)
        self.rows = {"id": cols["label"], "voxels": cols["voxels"],
                     "centroid": np.stack([cols[f"centroid_{a}_nm"] for a in "zyx"], axis=1) / vs
                     if len(table) else np.zeros((0, 3))}
        n = len(table)
        shown = min(n, MAX_ROWS)
        native = self.table.native
        native.setSortingEnabled(False)  # filling a sorted table scrambles the rows
        cells = {title: [_cell(cols[key][i]) for i in range(shown)] for key, title in TABLE_COLUMNS.items()}
        self.table.value = cells
        for c in range(len(cells)):  # items that sort by number (magicgui's sort by text: "922" > "2391")
            for r in range(shown):
                native.setItem(r, c, _numeric_item(native.item(r, c).text()))
        native.setSortingEnabled(True)
        total = n if total is None else total
        note = (f"{n} instances" if n == total else f"{n} of {total} instances kept by the filter")
        note += (f" (first {shown} shown)" if shown < n else "") + "; click a row to go there"
        if unscaled:
            note += "; the layer has no voxel size (nm), so sizes are in voxels"
        self.table_note.value = note

    def _row_index(self, row: int) -> Optional[int]:
        """The instance shown in visual table row ``row`` (the table may be sorted)."""
        item = self.table.native.item(row, 0)
        if item is None or not len(self.rows.get("id", ())):
            return None
        hits = np.flatnonzero(self.rows["id"] == int(float(item.text())))
        return int(hits[0]) if hits.size else None

    def jump_to(self, row: int) -> Optional[np.ndarray]:
        """Centre the viewer on the instance in table row ``row`` and select its label; returns its world position."""
        layer = self._rows_layer
        if layer is None or not self.rows or not 0 <= row < min(len(self.rows["id"]), MAX_ROWS):
            return None
        index = self._row_index(row)
        if index is None:
            return None
        centroid = self.rows["centroid"][index]
        data_point = np.zeros(layer.ndim)
        data_point[-3:] = centroid
        world = np.asarray(layer.data_to_world(data_point), dtype=float)
        dims = self.viewer.dims
        for axis in range(dims.ndim - 3, dims.ndim):
            dims.set_point(axis, float(world[axis - dims.ndim + len(world)]))
        viewer_camera(self.viewer).center = tuple(world[-3:])
        layer.selected_label = int(self.rows["id"][index])
        self.table.native.selectRow(row)
        self.status.value = (f"instance {int(self.rows['id'][index])}: {int(self.rows['voxels'][index])} voxels, "
                             f"centre at voxel {tuple(round(float(c), 1) for c in centroid)}")
        return world

    def export_table(self, *_args) -> Optional[Path]:
        """Write the measured table (all rows) and its column sidecar to the chosen file."""
        if self.measurements is None:
            notify_error("measure the instances first")
            return None
        path = path_text(self.export_path.value)
        table = self.kept if self.export_kept.value and self.kept is not None else self.measurements
        try:
            out = table.save(path, overwrite=True)
        except UserError as exc:
            notify_error(str(exc))
            return None
        self.status.value = f"wrote {out} ({len(table)} instances) and {out.name}.json"
        return out

    # -- metrics (worker) -------------------------------------------------------------------------------------
    def _auto_evaluate(self, *_args) -> None:
        if self.ground_truth.value is not None and self.problem() is None and self.worker is None:
            self.run()

    def run(self):
        """Evaluate the prediction layer against the ground-truth layer in a worker; returns the worker."""
        if not self.check_ready():
            return None
        pred, gt = self.prediction.value, self.ground_truth.value
        import napari.layers

        kind = "labels" if isinstance(pred, napari.layers.Labels) else "probability"
        pred_vol = layer_volume(pred, "labels" if kind == "labels" else "image")
        gt_vol = layer_volume(gt, "labels")
        threshold = float(self.threshold.value)
        cancel = self.cancel_requested

        def job(emit):
            summary = evaluate(pred_vol, gt_vol, threshold=threshold, pred_kind=kind, **library_hooks(emit, cancel))
            return "metrics", summary

        self.metrics.value = f"evaluating {pred.name} against {gt.name}…"
        return self.start_job(job, desc="evaluate")

    def on_result(self, value) -> None:
        kind, payload = value
        if kind == "measure":
            self._measured(*payload)
            self.status.value = self.table_note.value
        else:
            self.summary = payload
            self.metrics.value = format_summary(payload)
            self.status.value = "metrics updated"

    def on_cancelled(self) -> None:
        notify_info("cancelled")

