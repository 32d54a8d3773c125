"""Opening, classifying and validating the inputs of :func:`~masktwins_bio.metrics.evaluate` and reading them block
by block.

A prediction is either a **probability** volume (uint8 ``p * 255`` as written by ``masktwins-bio predict``, or
float16/float32 in [0, 1]) or a **label** volume (integer or bool; foreground = id > 0). ``pred_kind="auto"``
decides from the dtype and metadata: floats are probabilities; uint8 is a probability map when the store carries
masktwins-bio provenance (attribute ``masktwins_bio``) and no OME ``image-label`` metadata, labels when it has OME
label metadata or at most two values (a mask), and otherwise ambiguous - refused, asking for ``pred_kind`` (files
only; an in-memory uint8 array is read as labels); every other integer type and bool are labels. ``pred_kind`` overrides this (e.g. a uint8 probability map from another
tool). The ground truth is a label volume or a mask (non-negative integers or bool).

Every problem a user can cause raises :class:`~masktwins_bio.errors.InputError` with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..io import Volume, as_volume
from ..io.attributes import ome_attributes, provenance
from ..io.volume import check_resampling
from ..regions import roi_slices
from .semantic import threshold_lut

__all__ = ["PredictionSource", "GroundTruthSource", "open_prediction", "open_ground_truth", "align_inputs",
           "as_volume", "PRED_KINDS"]

PRED_KINDS = ("auto", "probability", "labels")


def check_complete(vol: Volume, role: str, allow_incomplete: bool = False) -> None:
    """Refuse outputs that a resumable masktwins-bio job has not finished (``complete: false``)."""
    from ..io.guard import check_complete as check

    check(vol, role, allow_incomplete, then=", then evaluate")


def _refuse_ambiguous_uint8(vol: Volume, role: str) -> None:
    """A uint8 file without our provenance or OME label metadata is a mask (<= 2 values), or else ambiguous: a
    probability map read as instance ids gave IoU 9.4 instead of 29.2, without a word."""
    sl = tuple(slice(max(0, (n - m) // 2), max(0, (n - m) // 2) + m) for n, m in zip(vol.shape, (16, 256, 256)))
    values = np.unique(np.asarray(vol[sl]))
    if values.size > 2:
        raise InputError(f"{vol.path}: {role} is uint8 without masktwins-bio provenance or OME label metadata and "
                         f"holds {values.size}+ distinct values: a probability map (p * 255) or instance labels? "
                         "Say which with --pred-kind probability or --pred-kind labels")


def _is_label_store(vol: Volume) -> bool:
    return "image-label" in ome_attributes(vol.attrs) or provenance(vol.attrs).get("kind") == "labels"


@dataclass
class PredictionSource:
    """The prediction (or a probability volume used for instance scores), read block by block.

    Attributes:
        volume: The (aligned) volume.
        kind: ``probability`` or ``labels``.
        score_kind: Histogram binning for pixel AP (``uint8``, ``float`` or ``binary``).
        scale: Factor turning stored values into probabilities (1/255 for a uint8 map read as float after
            resampling, else 1).
        threshold: Foreground probability threshold.
    """

    volume: Volume
    kind: str
    score_kind: str
    threshold: float = 0.5
    scale: float = 1.0
    role: str = "prediction"
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self._lut = threshold_lut(self.threshold)

    def read(self, slices: Sequence[slice]):
        """Read a block and validate it.

        Returns:
            ``(scores, foreground, ids)``: scores for the AP histogram (uint8 / float probabilities / bool),
            the foreground mask at the threshold, and the instance ids (``None`` for probabilities).
        """
        data = self.volume[tuple(slices)]
        if self.kind == "labels":
            if np.issubdtype(data.dtype, np.signedinteger) and data.size and data.min() < 0:
                self._fail_negative(data, slices)
            fg = data != 0
            return fg, fg, data
        if self.score_kind == "uint8":
            return data, self._lut[data], None
        p = data.astype(np.float32, copy=False) if data.dtype != np.float16 else data
        if self.scale != 1.0:
            p = np.clip(p * np.float32(self.scale), 0.0, 1.0)
        if p.size:
            lo, hi = float(np.min(p)), float(np.max(p))
            if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
                self._fail_range(p, slices)
        # compare against a float64 scalar so the threshold is not rounded to the data's precision (NEP 50)
        return p, p >= np.float64(self.threshold), None

    def probabilities(self, slices: Sequence[slice]) -> np.ndarray:
        """A block as float32 probabilities in [0, 1] (for instance scores)."""
        scores, _, _ = self.read(slices)
        if self.score_kind == "uint8":
            return scores.astype(np.float32) / np.float32(255.0)
        return np.asarray(scores, dtype=np.float32)

    def _where(self, bad: np.ndarray, slices) -> tuple[int, ...]:
        idx = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
        return tuple(int(i) + s.start for i, s in zip(idx, slices))

    def _fail_range(self, p: np.ndarray, slices) -> None:
        bad = ~((p >= 0) & (p <= 1))
        pos = self._where(bad, slices)
        value = p[tuple(i - s.start for i, s in zip(pos, slices))]
        raise InputError(
            f"{self.volume.path}: {self.role} value {float(value):g} at (z, y, x) = {pos} is outside [0, 1]; a "
            "probability map must hold p in [0, 1] (float) or p * 255 (uint8); a label volume must be stored as "
            "integers"
        )

    def _fail_negative(self, data: np.ndarray, slices) -> None:
        pos = self._where(data < 0, slices)
        raise InputError(
            f"{self.volume.path}: {self.role} label volume holds a negative id at (z, y, x) = {pos}; instance ids must "
            "be >= 0 (0 = background)"
        )


@dataclass
class GroundTruthSource:
    """The ground truth read block by block: foreground mask and instance ids.

    Attributes:
        gt_threshold: When given, foreground is ``value >= gt_threshold`` and the GT is a binary mask (its ids are
            the mask); otherwise foreground is ``value > 0`` and values are instance ids.
    """

    volume: Volume
    gt_threshold: Optional[float] = None
    info: dict = field(default_factory=dict)

    def read(self, slices: Sequence[slice]):
        """``(foreground, ids)`` of a block."""
        data = self.volume[tuple(slices)]
        if np.issubdtype(data.dtype, np.signedinteger) and data.size and data.min() < 0:
            idx = np.unravel_index(int(np.flatnonzero(data < 0)[0]), data.shape)
            pos = tuple(int(i) + s.start for i, s in zip(idx, slices))
            raise InputError(
                f"{self.volume.path}: ground truth holds a negative value at (z, y, x) = {pos}; GT must be "
                "non-negative integer labels (0 = background) or a mask"
            )
        if self.gt_threshold is not None:
            fg = data >= self.gt_threshold
            return fg, fg.view(np.uint8)
        return data != 0, data


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not (0.0 < t <= 1.0):
        raise InputError(f"threshold {threshold!r} must be in (0, 1] (a foreground probability, e.g. 0.5)")
    return t


def open_prediction(pred, voxel_size=None, pred_kind: str = "auto", threshold: float = 0.5,
                    role: str = "prediction", allow_incomplete: bool = False) -> PredictionSource:
    """Open and classify a prediction (see the module docstring)."""
    if pred_kind not in PRED_KINDS:
        raise InputError(f"prediction kind {pred_kind!r} is not one of {', '.join(PRED_KINDS)}")
    threshold = _check_threshold(threshold)
    vol = as_volume(pred, voxel_size, kind="image", role=role)
    check_complete(vol, role, allow_incomplete)
    dt = vol.dtype
    if dt.kind == "c" or not (dt.kind in "biuf"):
        raise InputError(
            f"{vol.path}: {role} has dtype {dt}, which is not supported; use a probability map (uint8 p*255, "
            "float16/float32 in [0, 1]) or an integer/bool label volume"
        )
    kind = pred_kind
    if kind == "auto":
        if dt.kind == "f":
            kind = "probability"
        elif dt == np.uint8 and provenance(vol.attrs) and not _is_label_store(vol):
            kind = "probability"
        elif dt == np.uint8 and not _is_label_store(vol) and not isinstance(pred, (np.ndarray, Volume)):
            _refuse_ambiguous_uint8(vol, role)
            kind = "labels"
        else:
            kind = "labels"
    if kind == "labels":
        if dt.kind == "f":
            raise InputError(
                f"{vol.path}: {role} declared as labels has dtype {dt}; label volumes must be integers or bool "
                "(use --pred-kind probability for a probability map, or cast the labels to integers)"
            )
        if vol.kind != "labels" and not isinstance(pred, (np.ndarray, Volume)) and "slices" in vol.format:
            vol = as_volume(pred, voxel_size, kind="labels", role=role)  # RGB label slices keep channel 0
        vol.kind = "labels"
        score_kind = "binary"
    else:
        if dt.kind in "iub" and dt != np.uint8:
            raise InputError(
                f"{vol.path}: {role} probability map has dtype {dt}; probabilities must be uint8 (p * 255) or "
                "float16/float32 in [0, 1] (or pass --pred-kind labels if it is a label volume)"
            )
        score_kind = "uint8" if dt == np.uint8 else "float"
    info = {"path": vol.path, "format": vol.format, "kind": kind, "dtype": str(dt), "shape": list(vol.shape),
            "voxel_size_nm": list(vol.voxel_size) if vol.voxel_size else None}
    prov = provenance(vol.attrs)
    if prov:
        info["provenance"] = {k: prov[k] for k in ("version", "command", "model_hash", "config_hash", "tta", "complete")
                              if k in prov}
    return PredictionSource(vol, kind, score_kind, threshold, role=role, info=info)


def open_ground_truth(gt, voxel_size=None, gt_threshold: Optional[float] = None,
                      allow_incomplete: bool = False) -> GroundTruthSource:
    """Open and validate a ground-truth volume (non-negative integers or bool)."""
    if gt_threshold is not None and not float(gt_threshold) > 0:
        raise InputError(f"gt threshold {gt_threshold!r} must be > 0 (foreground = value >= threshold)")
    try:
        vol = as_volume(gt, voxel_size, kind="labels", role="ground truth")
    except InputError:
        # open_volume refuses non-integer labels; say so in terms of this command
        probe = as_volume(gt, voxel_size, kind="image", role="ground truth")
        if probe.dtype.kind in "fc":
            _float_gt(probe)
        raise
    if vol.dtype.kind in "fc":  # arrays and Volumes bypass open_volume's check
        _float_gt(vol)
    if vol.dtype.kind not in "biu":
        raise InputError(f"{vol.path}: ground truth has dtype {vol.dtype}; GT must be integer labels or a mask")
    vol.kind = "labels"
    check_complete(vol, "ground truth", allow_incomplete)
    prov = provenance(vol.attrs)
    if gt_threshold is None and prov.get("task") == "predict":  # read as ids, p > 0 was the "foreground"
        raise InputError(f"{vol.path}: ground truth is a probability map written by masktwins-bio predict, not labels "
                         "or a mask; give the real labels, or pass --gt-threshold 128 to use p >= 0.5 as the mask")
    info = {"path": vol.path, "format": vol.format, "kind": "labels" if gt_threshold is None else "mask",
            "dtype": str(vol.dtype), "shape": list(vol.shape),
            "voxel_size_nm": list(vol.voxel_size) if vol.voxel_size else None, "gt_threshold": gt_threshold}
    return GroundTruthSource(vol, None if gt_threshold is None else float(gt_threshold), info)


def _float_gt(vol: Volume):
    raise InputError(
        f"{vol.path}: ground truth has dtype {vol.dtype}; GT must be non-negative integer labels (0 = background) or "
        "a mask; cast it to integers first (e.g. uint8 for a 0/1 mask, uint32 for instance ids)"
    )


def _fmt_vs(vs) -> str:
    return "unknown" if not vs else "x".join(f"{v:g}" for v in vs)


def align_inputs(pred: PredictionSource, gt: GroundTruthSource, roi=None,
                 prob: Optional[PredictionSource] = None, allow_resampling: bool = False
                 ) -> tuple[Optional[tuple[slice, ...]], list[str]]:
    """Bring prediction (and scores volume) onto the GT grid and apply the ROI, in place.

    * Same shape: compared voxel by voxel (differing voxel-size metadata only adds a note).
    * Different shapes and both voxel sizes known and different: the prediction is resampled lazily onto the GT
      voxel size (:meth:`Volume.resampled`: nearest neighbour for labels, linear for probabilities), onto exactly
      the GT's shape when the two extents agree to within one prediction voxel per axis (a 165-section stack of 5 nm
      predicted on a 50 nm grid has 16 sections, 800 nm against 825 nm, and comes back as 165 sections).
    * ``roi`` (GT voxels, ``"z0:z1,y0:y1,x0:x1"`` or slices) crops the GT; it crops the prediction too when the
      prediction covers the whole GT, or leaves it as is when the prediction already has the ROI's shape (a
      prediction made with ``predict --roi``).

    Returns:
        The ROI slices (or None) and notes for the summary.
    """
    notes: list[str] = []
    pvol, gvol = pred.volume, gt.volume
    roi_sl = None if roi is None else roi_slices(roi, gvol.shape, "--roi (ground truth voxels)")
    target_shape = tuple(s.stop - s.start for s in roi_sl) if roi_sl else gvol.shape
    pvs, gvs = pvol.voxel_size, gvol.voxel_size
    differ = pvs is not None and gvs is not None and not np.allclose(pvs, gvs, rtol=1e-3)
    ops = []
    if pvol.shape not in (gvol.shape, target_shape) and differ:
        check_resampling(pvol.path, pvs, gvs, "prediction", allow_resampling)
        order = 0 if pred.kind == "labels" else 1
        ops.append(("resample", tuple(gvs), order, _grid_covered(pvol, gvs, gvol.shape, target_shape)))
        notes.append(f"prediction resampled lazily from {_fmt_vs(pvs)} nm to the GT voxel size {_fmt_vs(gvs)} nm "
                     f"({'nearest' if order == 0 else 'linear'})")
        pred.info["resampled_to_nm"] = list(gvs)
    elif differ:
        notes.append(f"prediction voxel size {_fmt_vs(pvs)} nm differs from the GT's {_fmt_vs(gvs)} nm but the shapes "
                     "match; compared voxel by voxel")
    shape_after = _shape_after(pvol, ops)
    if roi_sl is not None:
        gt.volume = gvol.crop(roi_sl)
        if shape_after == gvol.shape:
            ops.append(("crop", roi_sl))
        elif shape_after != target_shape:
            _mismatch(pvol, gvol, shape_after, roi_sl)
    elif shape_after != gvol.shape:
        _mismatch(pvol, gvol, shape_after, None)
    pred.volume = _apply(pvol, ops, pred)
    if prob is not None:
        if prob.volume.shape != pvol.shape:
            raise InputError(
                f"{prob.volume.path}: probability volume has shape {prob.volume.shape} but the prediction "
                f"{pvol.path} has shape {pvol.shape}; give the probability map the instances were segmented from"
            )
        prob.volume = _apply(prob.volume, [o if o[0] != "resample" else ("resample", o[1], 1, o[3]) for o in ops], prob)
    return roi_sl, notes


def _grid_covered(pvol: Volume, gvs, *shapes) -> Optional[tuple[int, ...]]:
    """The first GT grid (``shapes``: the whole GT, its ROI) whose extent in nm the prediction covers to within one
    prediction voxel per axis - prediction grids are rounded to whole voxels - or ``None`` (resample to the rounded
    default shape, which then has to match)."""
    pvs = np.asarray(pvol.voxel_size, dtype=float)
    extent = np.asarray(pvol.shape) * pvs
    for shape in shapes:
        if np.all(np.abs(extent - np.asarray(shape) * np.asarray(gvs, dtype=float)) <= pvs * (1 + 1e-6)):
            return tuple(int(n) for n in shape)
    return None


def _shape_after(vol: Volume, ops) -> tuple[int, ...]:
    shape = vol.shape
    for op in ops:
        if op[0] == "resample":
            shape = vol.resampled(op[1], order=op[2], shape=op[3]).shape
    return shape


def _apply(vol: Volume, ops, src: PredictionSource) -> Volume:
    for op in ops:
        if op[0] == "resample":
            if src.kind == "probability" and op[2] == 1:
                if src.score_kind == "uint8":
                    src.scale = 1.0 / 255.0  # linear resampling of uint8 yields float32 in [0, 255]
                src.score_kind = "float"
            vol = vol.resampled(op[1], order=op[2], shape=op[3])
        else:
            vol = vol.crop(op[1])
    return vol


def _mismatch(pvol: Volume, gvol: Volume, pshape, roi_sl) -> None:
    roi_text = f" (GT roi {', '.join(f'{s.start}:{s.stop}' for s in roi_sl)} has shape " \
               f"{tuple(s.stop - s.start for s in roi_sl)})" if roi_sl else ""
    resampled = f" ({tuple(pshape)} after resampling to the GT voxel size)" if tuple(pshape) != pvol.shape else ""
    raise InputError(
        f"prediction {pvol.path} has shape {pvol.shape}{resampled} but ground truth {gvol.path} has shape {gvol.shape}"
        f"{roi_text}; if the prediction covers only part of the GT pass --roi z0:z1,y0:y1,x0:x1 (GT voxels); "
        f"if the voxel sizes differ (prediction {_fmt_vs(pvol.voxel_size)} nm, GT {_fmt_vs(gvol.voxel_size)} nm) give "
        "them with --pred-voxel-size/--gt-voxel-size so the prediction is resampled"
    )
