""":func:`evaluate`: streamed semantic and instance metrics of a prediction against ground truth, with summary.json.

One pass over chunk-aligned blocks (:class:`~masktwins_bio.blockwise.BlockGrid`) reads prediction and ground truth
block by block and feeds a :class:`~masktwins_bio.metrics.semantic.SemanticAccumulator` (confusion counts and score
histograms per section) and, for label predictions, a
:class:`~masktwins_bio.metrics.instance.ContingencyAccumulator` (sparse overlap table). Memory is bounded by a block
plus the per-section counters and the overlap table, whatever the volume size.

Binary masks as instances: when the ground truth (or the prediction) turns out to hold a single foreground value -
a 0/1 or 0/255 mask, or any GT given ``gt_threshold`` - its instances are its connected components, labelled by the
blockwise labeller (:func:`masktwins_bio.postprocess.label_components`, exact across blocks): in memory up to
``max_label_voxels`` voxels, beyond that into a temporary Zarr store under ``$TMPDIR``, deleted afterwards. The
overlap table is then rebuilt in a last pass.

The passes, each a function here: :func:`_semantic_pass` (the first read; also the overlap table of label volumes),
:func:`_instance_pass` (relabel binary masks, second overlap table, instance metrics) and :func:`_summary`.
"""

from __future__ import annotations

import datetime
import logging
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .._version import __version__
from ..blockwise import BlockGrid, Execution, ProgressCallback, StopCheck, track_blocks
from ..errors import InputError
from ..io import Volume, as_volume
from ..io.outputs import default_block
from .inputs import align_inputs, open_ground_truth, open_prediction
from .instance import ContingencyAccumulator, instance_metrics
from .semantic import SemanticAccumulator
from .summary import CONVENTIONS, resolve_output, write_summary

__all__ = ["evaluate", "default_block_shape", "MAX_LABEL_VOXELS"]

log = logging.getLogger(__name__)

#: largest binary mask labelled in memory (voxels; ~8 bytes per voxel at peak: provisional and final uint32 ids);
#: larger masks are labelled into a temporary Zarr store
MAX_LABEL_VOXELS = 512 * 2**20

#: evaluation blocks: whole chunks, about 4 Mi voxels (the same rounding to chunks as predict's and segment's outputs)
_DEFAULT_BLOCK = (8, 512, 1024)


def _mask_ids(ids: np.ndarray, sizes: np.ndarray, stray_values: bool = True) -> bool:
    """Whether label values are a binary mask rather than instance ids: a single foreground value; the values 1 and
    255 only (a mask saved partly as 1-bit, partly as 8-bit images); or one value holding >= 99 % of the foreground
    voxels (a drawn mask with a few stray anti-aliasing values, as VNC III's are: 1.13 M voxels of 255 and 119 other
    values on 1-11 voxels each). Instance ids are counted upwards and share the foreground between them.
    ``stray_values=False`` (predictions) skips the last rule: a segmentation whose one object fills the foreground
    is still a segmentation, and relabelling it would merge what it split."""
    if ids.size == 1 or (ids.size == 2 and set(ids.tolist()) == {1, 255}):
        return True
    return stray_values and ids.size > 0 and sizes.max() >= 0.99 * sizes.sum()


def default_block_shape(shape: Sequence[int], chunks: Optional[Sequence[int]] = None,
                        target: Sequence[int] = _DEFAULT_BLOCK) -> tuple[int, int, int]:
    """Evaluation blocks: ``target`` (z, y, x voxels; 8 x 512 x 1024 = 4 Mi by default) rounded up to whole chunks and
    clipped to the volume (:func:`masktwins_bio.io.outputs.default_block`, the rule of predict's and segment's
    outputs). Without chunks the blocks are ``target`` itself."""
    shape = tuple(int(s) for s in shape)
    return default_block(shape, tuple(chunks) if chunks else (1, 1, 1), target)


class _Foreground:
    """The foreground of a prediction or ground truth on the evaluated grid (after ROI and resampling), read block by
    block: the array :func:`~masktwins_bio.postprocess.label_components` labels."""

    dtype = np.dtype(bool)
    ndim = 3

    def __init__(self, read: Callable[[tuple], np.ndarray], shape: Sequence[int]):
        self._read = read
        self.shape = tuple(shape)

    def __getitem__(self, key) -> np.ndarray:
        return self._read(key)


def _components(read_fg, shape, what: str, max_voxels: int, connectivity: int, run: Execution,
                work: Path) -> np.ndarray | Volume:
    """Connected components of a binary mask, blockwise: in memory up to ``max_voxels``, else into ``work``."""
    from ..postprocess import label_components

    mask = Volume(array=_Foreground(read_fg, shape), voxel_size=None, path=f"<{what} mask>")
    desc = f"{what} mask"
    if mask.size <= max_voxels:
        return label_components(mask, connectivity=connectivity, execution=run, desc=desc)
    out = label_components(mask, work / f"{what.replace(' ', '_')}.zarr", connectivity=connectivity, execution=run,
                           desc=desc)
    return as_volume(str(out), role=f"{what} components")


def _semantic_pass(grid: BlockGrid, p_src, g_src, s_src, per_section: bool, instances: bool, blocks):
    """First read of both volumes: per-section confusion counts and score histograms, and the overlap table of the
    label values as they are (rebuilt by :func:`_instance_pass` when either side is a binary mask)."""
    sem = SemanticAccumulator(grid.shape, p_src.score_kind, per_section)
    cont = ContingencyAccumulator() if instances else None
    for block in blocks("evaluate"):
        sl = block.write_slices
        scores, pred_fg, pred_ids = p_src.read(sl)
        gt_fg, gt_ids = g_src.read(sl)
        sem.add(block.write_start[0], scores, pred_fg, gt_fg)
        if cont is not None:
            cont.add(pred_ids, gt_ids, None if s_src is None else s_src.probabilities(sl))
    return sem.result(), cont


def _instance_pass(table, grid: BlockGrid, p_src, g_src, s_src, connectivity: int, max_voxels: int,
                   run: Execution, blocks) -> dict:
    """Instance metrics; a binary-mask side is first split into its connected components and the table rebuilt."""
    sources = {"prediction": "labels", "ground_truth": "labels"}
    relabel_pred = _mask_ids(*table.sizes("pred"), stray_values=False)
    relabel_gt = _mask_ids(*table.sizes("gt"))
    if relabel_pred or relabel_gt:
        cc_text = f"connected components of the binary mask (cc3d, connectivity {connectivity}, blockwise)"
        with tempfile.TemporaryDirectory(prefix="masktwins-evaluate-") as tmp:
            pred_lab = gt_lab = None
            if relabel_pred:
                pred_lab = _components(lambda s: p_src.read(s)[1], grid.shape, "prediction", max_voxels,
                                       connectivity, run, Path(tmp))
                sources["prediction"] = cc_text
            if relabel_gt:
                gt_lab = _components(lambda s: g_src.read(s)[0], grid.shape, "ground truth", max_voxels,
                                     connectivity, run, Path(tmp))
                sources["ground_truth"] = cc_text
            cont = ContingencyAccumulator()
            for block in blocks("instances"):
                sl = block.write_slices
                pi = pred_lab[sl] if pred_lab is not None else p_src.read(sl)[2]
                gi = gt_lab[sl] if gt_lab is not None else g_src.read(sl)[1]
                cont.add(pi, gi, None if s_src is None else s_src.probabilities(sl))
            table = cont.result()
            del pred_lab, gt_lab
    inst = instance_metrics(table)
    inst["instances_from"] = sources
    return inst


def _summary(*, started, p_src, g_src, s_src, roi_sl, shape, grid: BlockGrid, per_section: bool, instance,
             connectivity: int, max_voxels: int, semantic: dict, inst: dict, notes: list) -> dict:
    if "n_gt" in inst and inst["n_gt"] == 0:
        notes.append("the ground truth has no instances: instance AP, recall and ARAND are undefined (null)")
    if semantic["counts"]["tp"] + semantic["counts"]["fn"] == 0:
        notes.append("the ground truth has no foreground: pixel AP is undefined (null)")
    inputs = {"prediction": p_src.info, "ground_truth": g_src.info,
              "roi": None if roi_sl is None else ", ".join(f"{s.start}:{s.stop}" for s in roi_sl),
              "evaluated_shape": list(shape)}
    if s_src is not None:
        inputs["probability"] = s_src.info
    return {
        "tool": "masktwins-bio evaluate",
        "version": __version__,
        "date": started.isoformat(timespec="seconds"),
        "inputs": inputs,
        "settings": {"threshold": p_src.threshold, "gt_threshold": g_src.gt_threshold, "per_section": per_section,
                     "instance": instance, "score_binning": p_src.score_kind, "block_shape": list(grid.block_shape),
                     "n_blocks": len(grid), "connectivity": connectivity, "max_label_voxels": max_voxels},
        "semantic": semantic,
        "instance": inst,
        "conventions": CONVENTIONS,
        "notes": notes,
    }


def evaluate(
    pred,
    gt,
    output=None,
    *,
    threshold: float = 0.5,
    gt_threshold: Optional[float] = None,
    per_section: bool = True,
    instance: Union[bool, str] = "auto",
    prob=None,
    pred_kind: str = "auto",
    roi=None,
    block_shape: Optional[Sequence[int]] = None,
    pred_voxel_size: Optional[Sequence[float]] = None,
    gt_voxel_size: Optional[Sequence[float]] = None,
    connectivity: int = 26,
    max_label_voxels: int = MAX_LABEL_VOXELS,
    overwrite: bool = False,
    progress: bool = False,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
    allow_incomplete: bool = False,
    allow_resampling: bool = False,
    execution: Optional[Execution] = None,
) -> dict:
    """Evaluate a prediction against ground truth, streamed block by block.

    Args:
        pred: Prediction: path spec (``.zarr``, ``file.h5:/key``, ``.tif``, slice folder), :class:`Volume` or
            (z, y, x) array. A probability map (uint8 ``p * 255`` from ``masktwins-bio predict``, or float in
            [0, 1]) or a label volume (integer/bool, foreground = id > 0); see ``pred_kind``.
        gt: Ground truth: non-negative integer labels or a mask (foreground > 0, or >= ``gt_threshold``).
        output: Where to write summary.json: a ``.json`` path, or a folder (-> ``folder/summary.json``). None: no file.
        threshold: Foreground probability threshold for F1/MCC/IoU/... (``p >= threshold``; DA-ISC uses 0.5).
        gt_threshold: GT foreground is ``value >= gt_threshold`` (e.g. 128 for 8-bit masks); makes the GT a mask.
        per_section: Also compute per-z-section metrics and their means (the DA-ISC default).
        instance: ``"auto"`` (instance metrics when the prediction is a label volume), True (required) or False.
        prob: Optional probability volume (same shape as ``pred``) whose mean over each predicted instance is the
            instance's score for AP; default score is the instance size.
        pred_kind: ``auto``, ``probability`` or ``labels`` (see :mod:`masktwins_bio.metrics.inputs`).
        roi: Region of the GT to evaluate, ``"z0:z1,y0:y1,x0:x1"`` or three slices (GT voxels).
        block_shape: Block shape (z, y, x) in voxels; must be whole chunks of the prediction. Default:
            :func:`default_block_shape` (whole chunks, about 4 Mi voxels).
        pred_voxel_size, gt_voxel_size: Voxel sizes in nm overriding the metadata. When they differ and the shapes do
            too, the prediction is resampled lazily onto the GT grid.
        connectivity: cc3d connectivity (6, 18 or 26) for instances of binary masks.
        max_label_voxels: Largest binary mask labelled in memory; larger ones are labelled blockwise into a temporary
            Zarr store under ``$TMPDIR`` (about 4-5 bytes per voxel of disk, compressed much less).
        overwrite: Replace an existing summary.json.
        progress: Show progress bars.
        callback: ``callback(desc, done, total)`` in voxels, per pass (``evaluate``; for binary masks the labeller's
            ``ground truth mask: label`` / ``: merge`` / ``: relabel`` (``prediction mask: ...``), then
            ``instances``), at the start of each pass and after every block.
        should_stop: Polled between blocks; True stops with :class:`~masktwins_bio.errors.Cancelled` and writes
            nothing.
        allow_incomplete: Evaluate stores an interrupted masktwins-bio job left unfinished (refused by default).
        allow_resampling: Accept a prediction more than 8x finer or coarser than the GT along an axis (refused by
            default: a wrong voxel size is the usual cause).
        execution: ``progress``, ``callback`` and ``should_stop`` as one :class:`~masktwins_bio.blockwise.Execution`
            (give either it or those arguments; evaluation runs in this process).

    Returns:
        The summary dict (also written to ``output``): ``semantic`` (``per_section_mean``, ``whole_volume``,
        ``per_section`` arrays, ``counts``, ``sections``), ``instance`` (AP@0.5/0.75, P/R/F1@0.5, VOI, ARAND, ...
        or ``skipped``), ``inputs``, ``settings``, ``conventions``, ``notes``, ``version`` and ``date``.
        Undefined values are NaN here and null in the file.

    Raises:
        InputError: unreadable/incomplete inputs, unsupported dtypes, probabilities outside [0, 1], negative or float
            GT, shape mismatch, bad ROI/block shape, existing output.
        Cancelled: ``should_stop()`` returned True (no summary.json is written).
    """
    if instance not in ("auto", True, False):
        raise InputError(f"instance={instance!r}: use 'auto', True or False")
    if connectivity not in (6, 18, 26):
        raise InputError(f"connectivity {connectivity!r} must be 6, 18 or 26")
    if int(max_label_voxels) < 0:
        raise InputError(f"max_label_voxels {max_label_voxels!r} must be >= 0 (0: always label on disk)")
    run = Execution.merge(execution, Execution(progress=False), progress=progress, callback=callback,
                          should_stop=should_stop)
    run = run.replace(executor="serial", address=None, num_workers=None)  # the passes stream in this process
    out_path = resolve_output(output, overwrite)
    started = datetime.datetime.now(datetime.timezone.utc)

    p_src = open_prediction(pred, pred_voxel_size, pred_kind, threshold, allow_incomplete=allow_incomplete)
    g_src = open_ground_truth(gt, gt_voxel_size, gt_threshold, allow_incomplete)
    s_src = None
    if prob is not None:
        s_src = open_prediction(prob, pred_voxel_size, "probability", threshold, role="probability volume",
                                allow_incomplete=allow_incomplete)
    roi_sl, notes = align_inputs(p_src, g_src, roi, s_src, allow_resampling)

    skip_reason = None
    if instance is False:
        skip_reason = "disabled (instance=False / --no-instances)"
    elif p_src.kind != "labels":
        if instance is True:
            raise InputError(
                f"{p_src.volume.path}: instance metrics need a label volume as the prediction, this is a probability "
                "map; segment it first (masktwins-bio segment PROB LABELS) and evaluate the labels"
            )
        skip_reason = ("the prediction is a probability map; segment it (masktwins-bio segment) and evaluate the "
                       "label volume for instance metrics")

    shape = g_src.volume.shape
    chunks = p_src.volume.chunks
    if block_shape is None:
        grid = BlockGrid(shape, default_block_shape(shape, chunks or g_src.volume.chunks))
    else:
        grid = BlockGrid(shape, block_shape, chunks=chunks)

    def blocks(desc: str):
        return track_blocks(grid, desc, execution=run)

    semantic, cont = _semantic_pass(grid, p_src, g_src, s_src, per_section, skip_reason is None, blocks)
    if cont is None:
        inst: dict = {"skipped": skip_reason}
    else:
        inst = _instance_pass(cont.result(), grid, p_src, g_src, s_src, connectivity, int(max_label_voxels), run,
                              blocks)
    summary = _summary(started=started, p_src=p_src, g_src=g_src, s_src=s_src, roi_sl=roi_sl, shape=shape,
                       grid=grid, per_section=per_section, instance=instance, connectivity=connectivity,
                       max_voxels=int(max_label_voxels), semantic=semantic, inst=inst, notes=notes)
    if out_path is not None:
        summary["output"] = str(out_path)
        write_summary(summary, out_path)
        log.debug("wrote %s", out_path)
    return summary
