""":func:`evaluate`: streamed semantic and instance metrics of a prediction against ground truth, with summary.json.

One pass over chunk-aligned blocks (:class:`~masktwins_bio.blockwise.BlockGrid`) reads prediction and ground truth
block by block and feeds a :class:`~masktwins_bio.metrics.semantic.SemanticAccumulator` (confusion counts and score
histograms per section) and, for label predictions, a
:class:`~masktwins_bio.metrics.instance.ContingencyAccumulator` (sparse overlap table). Memory is bounded by a block
plus the per-section counters and the overlap table, whatever the volume size.

Binary masks as instances: when the ground truth (or the prediction) turns out to hold a single foreground value -
a 0/1 or 0/255 mask, or any GT given ``gt_threshold`` - its instances are its connected components. Those are
labelled with cc3d on the whole mask **in memory** for now (at most ``max_label_voxels`` voxels, default
:data:`MAX_LABEL_VOXELS`) and the overlap table is rebuilt in a second pass. A blockwise labeller
(``masktwins_bio.postprocess``) can replace this later; until then, label large masks first with
``masktwins-bio segment``.
"""

from __future__ import annotations

import datetime
import logging
from typing import Optional, Sequence, Union

import numpy as np

from .._version import __version__
from ..blockwise import BlockGrid, Execution, ProgressCallback, StopCheck, track_blocks
from ..errors import InputError
from .inputs import align_inputs, open_ground_truth, open_prediction
from .instance import ContingencyAccumulator, instance_metrics
from .semantic import SemanticAccumulator
from .summary import CONVENTIONS, resolve_output, write_summary

__all__ = ["evaluate", "default_block_shape", "MAX_LABEL_VOXELS"]

log = logging.getLogger(__name__)

#: largest binary mask labelled in memory (voxels): ~5 bytes per voxel at peak (mask + uint32 labels)
MAX_LABEL_VOXELS = 512 * 2**20



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
                        target_voxels: int = 2**22) -> tuple[int, int, int]:
    """Blocks of whole chunks, grown in-plane (y, then x) up to about ``target_voxels`` (4 Mi voxels by default).

    Without chunks the base is (8, 256, 256) clipped to the volume.
    """
    shape = tuple(int(s) for s in shape)
    base = tuple(int(c) for c in chunks) if chunks else (8, 256, 256)
    base = tuple(max(1, min(b, s)) for b, s in zip(base, shape))
    block = list(base)
    while True:
        grown = False
        for axis in (1, 2):  # doubling keeps whole chunks; clipping to the volume is allowed by BlockGrid
            if block[axis] < shape[axis] and 2 * int(np.prod(block)) <= target_voxels:
                block[axis] = min(2 * block[axis], shape[axis])
                grown = True
        if not grown:
            break
    return tuple(block)  # type: ignore[return-value]


def _label_mask(read_fg, grid: BlockGrid, what: str, path: str, connectivity: int, max_voxels: int,
                blocks) -> np.ndarray:
    """Connected components of a binary mask held in memory (see the module docstring for the limit)."""
    import cc3d

    n = int(np.prod(grid.shape))
    if n > max_voxels:
        raise InputError(
            f"{path}: the {what} is a binary mask of {n} voxels; its instances (connected components) are labelled in "
            f"memory, limited to {max_voxels} voxels - label it first (masktwins-bio segment), evaluate a --roi, or "
            "pass --no-instances"
        )
    mask = np.zeros(grid.shape, dtype=bool)
    for block in blocks(f"reading {what} mask"):
        mask[block.write_slices] = read_fg(block.write_slices)
    return cc3d.connected_components(mask, connectivity=connectivity)


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
        block_shape: Block shape (z, y, x) in voxels; must be whole chunks of the prediction. Default: chunk-aligned,
            about 4 Mi voxels.
        pred_voxel_size, gt_voxel_size: Voxel sizes in nm overriding the metadata. When they differ and the shapes do
            too, the prediction is resampled lazily onto the GT grid.
        connectivity: cc3d connectivity (6, 18 or 26) for instances of binary masks.
        max_label_voxels: Largest binary mask labelled in memory.
        overwrite: Replace an existing summary.json.
        progress: Show progress bars.
        callback: ``callback(desc, done, total)`` in voxels, per pass (``evaluate``, then for binary masks
            ``reading ... mask`` and ``instances``), at the start of each pass and after every block.
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
    run = Execution.merge(execution, Execution(progress=False), progress=progress, callback=callback,
                          should_stop=should_stop)
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
    do_instances = skip_reason is None

    shape = g_src.volume.shape
    chunks = p_src.volume.chunks
    if block_shape is None:
        block_shape = default_block_shape(shape, chunks or g_src.volume.chunks)
        grid = BlockGrid(shape, block_shape)
    else:
        grid = BlockGrid(shape, block_shape, chunks=chunks)

    def blocks(desc: str):
        return track_blocks(grid, desc, execution=run)

    sem = SemanticAccumulator(shape, p_src.score_kind, per_section)
    cont = ContingencyAccumulator() if do_instances else None
    for block in blocks("evaluate"):
        sl = block.write_slices
        scores, pred_fg, pred_ids = p_src.read(sl)
        gt_fg, gt_ids = g_src.read(sl)
        sem.add(block.write_start[0], scores, pred_fg, gt_fg)
        if cont is not None:
            cont.add(pred_ids, gt_ids, None if s_src is None else s_src.probabilities(sl))
    semantic = sem.result()

    inst: dict
    if do_instances:
        table = cont.result()
        sources = {"prediction": "labels", "ground_truth": "labels"}
        relabel_pred = _mask_ids(*table.sizes("pred"), stray_values=False)
        relabel_gt = _mask_ids(*table.sizes("gt"))
        if relabel_pred or relabel_gt:
            cc_text = f"connected components of the binary mask (cc3d, connectivity {connectivity}, in memory)"
            pred_lab = gt_lab = None
            if relabel_pred:
                pred_lab = _label_mask(lambda s: p_src.read(s)[1], grid, "prediction", p_src.volume.path,
                                       connectivity, max_label_voxels, blocks)
                sources["prediction"] = cc_text
            if relabel_gt:
                gt_lab = _label_mask(lambda s: g_src.read(s)[0], grid, "ground truth", g_src.volume.path,
                                     connectivity, max_label_voxels, blocks)
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
        if inst["n_gt"] == 0:
            notes.append("the ground truth has no instances: instance AP, recall and ARAND are undefined (null)")
    else:
        inst = {"skipped": skip_reason}
    if semantic["counts"]["tp"] + semantic["counts"]["fn"] == 0:
        notes.append("the ground truth has no foreground: pixel AP is undefined (null)")

    inputs = {"prediction": p_src.info, "ground_truth": g_src.info,
              "roi": None if roi_sl is None else ", ".join(f"{s.start}:{s.stop}" for s in roi_sl),
              "evaluated_shape": list(shape)}
    if s_src is not None:
        inputs["probability"] = s_src.info
    summary = {
        "tool": "masktwins-bio evaluate",
        "version": __version__,
        "date": started.isoformat(timespec="seconds"),
        "inputs": inputs,
        "settings": {"threshold": p_src.threshold, "gt_threshold": g_src.gt_threshold, "per_section": per_section,
                     "instance": instance, "score_binning": p_src.score_kind, "block_shape": list(grid.block_shape),
                     "n_blocks": len(grid), "connectivity": connectivity, "max_label_voxels": max_label_voxels},
        "semantic": semantic,
        "instance": inst,
        "conventions": CONVENTIONS,
        "notes": notes,
    }
    if out_path is not None:
        summary["output"] = str(out_path)
        write_summary(summary, out_path)
        log.debug("wrote %s", out_path)
    return summary

