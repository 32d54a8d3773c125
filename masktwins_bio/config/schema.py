"""The configuration schema: one pydantic section per concern, defaults in code (see :mod:`masktwins_bio.config`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..regions import parse_roi
from ..registry import METHODS, NETWORKS, Registry

__all__ = ["Config", "DomainConfig", "TargetConfig", "DataConfig", "AugmentConfig", "ModelConfig", "MethodConfig",
           "TrainConfig", "InferenceConfig", "SegmentConfig", "config_hash", "METHOD_NAMES", "MODEL_NAMES"]

#: the built-in names at import time (kept for compatibility; :data:`masktwins_bio.registry.METHODS` and
#: ``NETWORKS`` are the lists, and also hold names registered later)
METHOD_NAMES = METHODS.names()
MODEL_NAMES = NETWORKS.names()


def _registered(registry: Registry):
    """A ``str`` field validated against ``registry`` when the config is read (names registered later count)."""
    return Annotated[str, AfterValidator(registry.check), registry]

Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]


class _Section(BaseModel):
    """Base of every config section: unknown keys forbidden, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _positive_triple(value, name: str):
    if value is None:
        return value
    if any(v <= 0 for v in value):
        raise ValueError(f"all three {name} values must be > 0 (z, y, x), got {list(value)}")
    return value


class _VolumeSection(_Section):
    """Fields every volume section has: a path spec, a voxel-size override and a region of interest."""

    image: str
    voxel_size: Optional[Triple] = None
    roi: Optional[str] = None

    _check_vs = field_validator("voxel_size")(lambda v: _positive_triple(v, "voxel_size"))

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, v):
        if v is not None:
            parse_roi(v)
        return v


class DomainConfig(_VolumeSection):
    """One labelled or unlabelled EM volume.

    Attributes:
        image: Path spec of the image volume: a Zarr/OME-Zarr store (``vol.zarr`` or ``vol.zarr/path/to/array``),
            ``file.h5:/dataset``, a multi-page TIFF, or a folder of per-slice PNG/TIFF files.
        labels: Path spec of the label volume (same shape as the image); needed for a training source or for
            evaluation. Any integer volume; foreground is ``labels >= label_threshold``.
        voxel_size: Voxel size in nm (z, y, x). Overrides what the file's metadata says; required when the file has
            none.
        label_threshold: Voxels with ``labels >= label_threshold`` are foreground (1 for 0/1, 0/255 or instance-id
            labels; 128 for 8-bit masks with stray grey values).
        roi: Optional sub-region in voxels of the file, e.g. ``"0:4, :, :"`` (numpy slice syntax per axis, z, y, x).
    """

    labels: Optional[str] = None
    label_threshold: float = Field(1.0, gt=0)


class TargetConfig(_VolumeSection):
    """The unlabelled target domain used for adaptation, plus an optional labelled evaluation set.

    Attributes:
        image: Path spec of the unlabelled target volume used for adaptation (see :class:`DomainConfig`).
        voxel_size: Voxel size in nm (z, y, x), overriding the metadata.
        roi: Optional sub-region (voxels) of ``image`` used for adaptation.
        eval: Optional labelled target volume used only to report metrics, never for training or model selection.
    """

    eval: Optional[DomainConfig] = None


class AugmentConfig(_Section):
    """Data augmentation applied by the patch loader (MONAI dictionary transforms plus EM-specific ones).

    Geometric transforms are applied to source and target patches; intensity transforms to source patches (target
    patches get their strong intensity augmentation inside the method, identically for both masked views). Ranges
    apply to normalised intensities.

    Attributes:
        flip: Random flips along z, y and x.
        rot90: Random in-plane 90-degree rotations (square patches only).
        transpose_z: Swap z with y/x: ``auto`` only for near-isotropic voxels and cubic patches.
        intensity_prob: Probability of each intensity transform (gamma, scale, shift, noise).
        contrast: Range of the multiplicative contrast factor.
        brightness: Maximum additive brightness shift.
        gamma: Range of the gamma exponent (applied with mean and std retained).
        noise_std: Maximum standard deviation of additive Gaussian noise.
        blur_prob: Probability of an in-plane Gaussian blur.
        blur_sigma: Range of the blur sigma in voxels.
        missing_section_prob: Probability that one section of a source patch is blanked (lost section).
        section_blur_prob: Probability that one section is blurred (out-of-focus section).
        misalign_prob: Probability that the sections above a random z are shifted in-plane (misalignment).
        histogram_shift_prob: Probability of a random monotonic remapping of a source patch's intensities (MONAI
            ``RandHistogramShift``: a piecewise-linear curve through ``histogram_points`` control points): the
            relative darkness of membranes, cytoplasm and organelles varies between labs and stains, so the model
            learns mitochondria from their texture and shape rather than from a grey level (0.5 by default: it
            lifted MaskTwins on both real directions, BENCHMARKS.md).
        histogram_points: Range of the number of control points of that curve.
        affine_prob: Probability of a random in-plane affine transform of a source patch (image and labels): a
            rotation by any angle up to ``rotate`` degrees and an in-plane zoom by up to ``zoom`` (fraction), for
            organelles seen at other orientations and, across species and microscopes, other sizes.
        rotate: Maximum in-plane rotation (degrees) of the affine transform.
        zoom: Maximum in-plane zoom of the affine transform (0.2 = 0.8x to 1.2x, per axis).
    """

    flip: bool = True
    rot90: bool = True
    transpose_z: Literal["auto", "never", "always"] = "auto"
    intensity_prob: float = Field(0.8, ge=0, le=1)
    contrast: tuple[float, float] = (0.7, 1.4)
    brightness: float = Field(0.15, ge=0)
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = Field(0.1, ge=0)
    blur_prob: float = Field(0.2, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    missing_section_prob: float = Field(0.1, ge=0, le=1)
    section_blur_prob: float = Field(0.1, ge=0, le=1)
    misalign_prob: float = Field(0.05, ge=0, le=1)
    histogram_shift_prob: float = Field(0.5, ge=0, le=1)
    histogram_points: tuple[int, int] = (5, 10)
    affine_prob: float = Field(0.0, ge=0, le=1)
    rotate: float = Field(180.0, ge=0, le=180)
    zoom: float = Field(0.2, ge=0, lt=1)

    @field_validator("histogram_points")
    @classmethod
    def _check_points(cls, v):
        if not 3 <= v[0] <= v[1]:
            raise ValueError(f"needs 3 <= min <= max control points (the curve's two ends are fixed), got {list(v)}")
        return v


class DataConfig(_Section):
    """Patch sampling and normalisation.

    Attributes:
        voxel_size: Training voxel size in nm (z, y, x). Volumes with another voxel size are resampled lazily, patch
            by patch. ``None``: a fine-tuned model's own grid (``train.init``), else the coarser of the two domains'
            in-plane pixels, coarsened (by at most 1.5x) until a patch spans 1152 nm (12 nm for 96-pixel patches
            on 8 nm data: enough tissue to tell mitochondria from other dark profiles), and the thinner of their
            section thicknesses - the thicker where one is more than 1.5x the other (ssTEM against FIB-SEM) - no
            finer than that pixel (:func:`masktwins_bio.data.grid.training_voxel_size`).
        patch_size: Training patch size in voxels (z, y, x).
        foreground_fraction: Probability that a source patch is centred on a foreground voxel (sparse mitochondria).
        normalization: ``zscore`` (mean/std), ``percentile`` (1st/99th percentile to [-1, 1]) or ``histogram``
            (each volume's quantiles matched to the source's, then the source's z-score; the reference is stored in
            the model file); statistics are estimated per volume from a strided sample, so each domain is
            normalised by its own statistics.
        num_workers: DataLoader worker processes (0 loads in the main process).
        cache_mb: Hold a training volume (image and labels, at the training voxel size and their stored data type)
            in memory when it takes at most this many MiB, so that patches are sliced from memory instead of read
            and resampled from storage at every step (the same values); ``0`` always reads lazily. Each domain
            is checked on its own; larger volumes (a terabyte target) stay lazy.
        augment: Augmentation settings.
    """

    voxel_size: Optional[Triple] = None
    patch_size: IntTriple = (16, 96, 96)
    foreground_fraction: float = Field(0.5, ge=0, le=1)
    normalization: Literal["zscore", "percentile", "histogram"] = "zscore"
    num_workers: int = Field(0, ge=0)
    cache_mb: float = Field(1024, ge=0)
    augment: AugmentConfig = AugmentConfig()

    _check_vs = field_validator("voxel_size")(lambda v: _positive_triple(v, "voxel_size"))
    _check_ps = field_validator("patch_size")(lambda v: _positive_triple(v, "patch_size"))


class ModelConfig(_Section):
    """Network architecture (all from MONAI).

    Attributes:
        name: A network of :data:`masktwins_bio.registry.NETWORKS`: ``unet`` (MONAI UNet), ``basic_unet``,
            ``dynunet`` (anisotropic kernels) or ``segresnet``, or one registered later.
        channels: Feature channels per resolution level.
        strides: Down-sampling strides per level, each (z, y, x); ``None`` chooses anisotropy-aware strides from the
            training voxel size (no z down-sampling while z is coarser than y/x).
        num_res_units: Residual units per level (UNet).
        norm: Normalisation layer (``instance`` recommended: batch statistics differ between domains).
        dropout: Dropout probability.
        head: ``softmax`` (two logits, background/foreground) or ``sigmoid`` (one foreground logit).
    """

    name: _registered(NETWORKS) = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: Optional[tuple[IntTriple, ...]] = None
    num_res_units: int = Field(2, ge=0)
    norm: Literal["instance", "batch", "group"] = "instance"
    dropout: float = Field(0.0, ge=0, lt=1)
    head: Literal["softmax", "sigmoid"] = "softmax"

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, v):
        if len(v) < 2 or any(c <= 0 for c in v):
            raise ValueError("needs at least two positive channel counts, e.g. [16, 32, 64, 128]")
        return v


class MethodConfig(_Section):
    """Domain-adaptation method and its hyper-parameters.

    Attributes:
        name: A method of :data:`masktwins_bio.registry.METHODS`: the ladder (``source_only``, ``mean_teacher``,
            ``mic``, ``masktwins_random_pair``, ``masktwins``) or a variant registered later.
        mask_block: Mask block size in voxels (z, y, x). ``None``: whole sections (``1 x patch_y x patch_x``) when
            sections are at least twice as thick as the in-plane pixel (serial-section EM; each view infers the
            hidden sections from their neighbours), else about 1/8 of the patch side in-plane (the paper's 2D
            optimum is 1/16 of a 1024 crop; our patches are smaller) and the same physical size in z.
        keep_ratio: Fraction of blocks kept visible in the (first) masked view; ``None`` uses the method's default:
            for the MaskTwins variants 0.3 with whole-section blocks (uneven complementary views of about 30 % and
            70 % of the sections: on the real pairs they remove more of a source model's false positives, at a cost
            where it under-segments; BENCHMARKS.md) and the paper's 0.5 with any other block; 0.3 for MIC (its mask
            ratio 0.7).
        ema_alpha: EMA teacher decay; the warm-up is ``min(1 - 1/(t+1), ema_alpha)``.
        confidence_threshold: Teacher confidence counted as "confident" for the pseudo-label weight.
        weight_mode: ``scalar`` (fraction of confident voxels, one number per batch, as in the paper), ``voxel``
            (each voxel weighted by whether it is confident) or ``class_balanced`` (per class, the ``class_keep``
            most confident of the voxels the teacher assigns to it; thresholds follow the teacher's confidence on
            the target, so mitochondria keep pseudo-labels when a domain shift makes the teacher unsure of them).
        class_keep: Fraction of each class's voxels kept by ``weight_mode: class_balanced``.
        foreground_cap: Optional guard against self-training on the source model's false positives: at most this
            multiple of the source's foreground fraction of the target voxels get a foreground pseudo-label (the
            most confident); further foreground predictions are ignored. Needs a per-voxel ``weight_mode``.
        mix: Cross-domain mixing branch (the reference code keeps DACS): ``box`` pastes a random in-plane box of
            the source patch onto the target, ``objects`` its mitochondria with a ring of context; pasted voxels
            carry the source label with weight 1. ``none`` disables it. One more student view per target patch.
        lambda_mix: Weight of the mixed view's loss.
        num_views: Complementary views of MaskTwins (2 in the paper; more partitions the blocks among K views).
        pseudo_loss: Loss of the student views against the pseudo-labels: ``dice_ce`` (default: the paper's
            confidence-weighted cross-entropy plus a weighted soft Dice term, the same loss family as the source
            loss; it keeps sparse mitochondria from being self-trained away onto the background class) or ``ce``
            (the paper's loss exactly). See BENCHMARKS.md for the runs behind the default.
        lambda_target: Weight of the pseudo-label losses on the target.
        lambda_cm: Weight of the MSE between the two masked views' logits (MaskTwins variants).
        target_rampup_steps: Linear ramp of the target losses from 0 to full weight over this many steps (0 = none),
            counted from ``adapt_from_step``.
        cm_rampup_steps: Linear ramp of the views' agreement term (``lambda_cm``) alone from 0 to full weight over this
            many adapting steps (0 = none), counted from ``adapt_from_step``: the agreement pulls each view towards
            the one that must infer the hidden sections, so objects the student cannot yet infer lose probability
            (BENCHMARKS.md); ramping it lets the pseudo-labels teach the inference first.
        agreement: How the views' agreement (``lambda_cm``) trains: ``symmetric`` (the paper: the MSE between the
            views' logits with gradients into both) or ``visible`` (at each voxel the view that sees it is the
            reference and only the view that hides it learns to match: the agreement teaches inferring hidden
            sections without pulling what a view sees towards what the other infers). That pull is what removes a
            source model's false positives: ``visible`` raises recall and lowers precision on both real pairs
            (seed 0: +3.2 IoU where the source model under-segments, -8.0 where it over-segments; BENCHMARKS.md).
            ``auto``: adapt once with each from the same source-only prefix and keep the model with the higher
            label-free score (:mod:`masktwins_bio.training.choice`).
        agreement_probe: With ``agreement: auto``, the share of the adaptation steps both candidates train; then
            only the one with the higher label-free score trains on to the end (the other is kept as it was). Default
            (None) 0.5: half an adaptation more than a single agreement instead of a whole one - on both real pairs
            the halfway score chose as the final scores did in 6 of 6 paired runs (BENCHMARKS.md); 1 = both train to
            the end. A wall-clock budget (``train.max_minutes``) trains both to the end.
        mask_fill: What the masked views' hidden voxels become: ``zero`` (the normalised mean, as in the paper) or
            ``noise`` (Gaussian noise with the patch's own mean and spread, so a sparse view keeps the clean patch's
            intensity statistics under instance normalisation).
        source_mask_prob: Probability that a source patch of an adapting step is seen through one of the method's
            masks (the first view's or its complement, at random) and still supervised with its full labels, so the
            student learns from real labels to infer hidden sections - the inference the masked target views and
            their agreement demand. No extra forward pass. ``None`` uses the method's default: 0.5 for the MaskTwins
            variants (on the real pairs +1.1 IoU where the source model under-segments, level where it
            over-segments, 3 seeds; BENCHMARKS.md), 0 (clean source patches) for the others.
        strong_augment: Apply strong intensity augmentation to the student's target input (shared by both views).
        teacher_tta: ``none``: the pseudo-labels are the teacher's prediction on the clean target patch (the
            paper); ``flips``: the mean of its predictions on the patch and its three in-plane flips (four teacher
            passes, about a third more time per adapting step on a CPU).
        adapt_from_step: Two-stage training within one run: steps before this one train on the source only (as
            ``source_only`` does, step for step), so adaptation starts from a source-trained student and its EMA
            teacher instead of from scratch; the total budget stays ``train.steps``. Checkpoint selection considers
            the models adaptation produced (after this step). ``compare`` trains
            this shared prefix once per seed and branches every method from it. ``auto`` (default): half of
            ``train.steps`` (half of ``train.max_minutes`` under a wall-clock budget), or 0 when ``train.init``
            starts from a model that is already trained; 0 = adapt from the first step.
        pseudo_voxels: Where a masked view learns the teacher's pseudo-labels (MaskTwins variants): ``all`` voxels
            (the paper) or only those its mask ``hidden`` (the cross-entropy averaged over them), so the target is
            learnt only by inferring hidden sections and never by self-training on what a view sees - the
            mean teacher's self-training reinforces a source model's false positives on FAFB -> VNC III. Screened
            there (seed 0): ahead during the adaptation, then -0.5 IoU at the end (more precision, less recall).
        adapt_lr_scale: Factor on the learning rate from ``adapt_from_step`` on (the schedule's own shape kept). The
            poly decay leaves a two-stage run's adaptation about half the source stage's mean learning rate, and
            on FAFB -> VNC III the target IoU is still rising at the last step; 1 = unchanged. Screened there (seed
            0): 2 left the curve and the result where they were (+0.1 IoU; BENCHMARKS.md, session 13).
    """

    name: _registered(METHODS) = "masktwins"
    mask_block: Optional[IntTriple] = None
    keep_ratio: Optional[float] = Field(None, gt=0, lt=1)
    ema_alpha: float = Field(0.999, ge=0, lt=1)
    confidence_threshold: float = Field(0.968, ge=0.5, le=1)
    weight_mode: Literal["scalar", "voxel", "class_balanced"] = "scalar"
    class_keep: float = Field(0.8, gt=0, le=1)
    foreground_cap: Optional[float] = Field(None, gt=0)
    mix: Literal["none", "box", "objects"] = "none"
    lambda_mix: float = Field(1.0, ge=0)
    num_views: int = Field(2, ge=2, le=8)
    pseudo_loss: Literal["ce", "dice_ce"] = "dice_ce"
    lambda_target: float = Field(1.0, ge=0)
    lambda_cm: float = Field(0.1, ge=0)
    target_rampup_steps: int = Field(0, ge=0)
    cm_rampup_steps: int = Field(0, ge=0)
    agreement: Literal["symmetric", "visible", "auto"] = "symmetric"
    agreement_probe: Optional[float] = Field(None, gt=0, le=1)
    mask_fill: Literal["zero", "noise"] = "zero"
    source_mask_prob: Optional[float] = Field(None, ge=0, le=1)
    strong_augment: bool = True
    teacher_tta: Literal["none", "flips"] = "none"
    adapt_from_step: Union[Literal["auto"], Annotated[int, Field(ge=0)]] = "auto"
    adapt_lr_scale: float = Field(1.0, gt=0, le=10)
    pseudo_voxels: Literal["all", "hidden"] = "all"

    _check_mb = field_validator("mask_block")(lambda v: _positive_triple(v, "mask_block"))


class TrainConfig(_Section):
    """Optimisation and logging.

    Attributes:
        steps: Optimiser steps.
        batch_source: Source patches per step.
        batch_target: Target patches per step (ignored by ``source_only``).
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear learning-rate warm-up; then polynomial decay to 0.
        poly_power: Power of the polynomial decay.
        grad_clip: Gradient-norm clipping (0 disables).
        amp: ``auto`` (bf16 on CUDA and on CPUs with native bf16 arithmetic, e.g. AVX512-BF16; else fp32),
            ``bf16``, ``fp16`` (CUDA only) or ``none`` (fp32).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        source_loss: ``dice_ce`` (MONAI DiceCELoss) or ``ce``.
        val_every: Steps between validations (label-free monitors always, target metrics if ``target.eval`` is set).
        val_patches: Target patches used by the label-free monitors.
        checkpoint_every: Steps between checkpoints.
        log_every: Steps between log lines (TensorBoard, CSV, progress bar).
        selection: Checkpoint selection: ``label_free`` (best label-free score), ``last`` or ``target_eval`` (only
            for experiments with target labels; a real user has none).
        init: Optional model file or checkpoint to start from (fine-tuning a source-trained model).
        max_minutes: Optional wall-clock budget. Training stops when it is spent, and the learning-rate schedule
            follows elapsed time instead of steps (``steps`` becomes an upper bound); not exactly resumable.
    """

    steps: int = Field(2000, gt=0)
    batch_source: int = Field(2, gt=0)
    batch_target: int = Field(2, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    poly_power: float = Field(0.9, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"
    device: str = "auto"
    source_loss: Literal["dice_ce", "ce"] = "dice_ce"
    val_every: int = Field(250, gt=0)
    val_patches: int = Field(8, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    log_every: int = Field(10, gt=0)
    selection: Literal["label_free", "last", "target_eval"] = "label_free"
    init: Optional[str] = None
    max_minutes: Optional[float] = Field(None, gt=0)

    @field_validator("device")
    @classmethod
    def _check_device(cls, v):
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {v!r}")
        return v


class InferenceConfig(_Section):
    """Sliding-window inference over large volumes.

    Attributes:
        overlap: Window overlap fraction per axis.
        sw_batch_size: Windows per forward pass.
        tta: ``none`` or ``flips`` (in-plane flips always; z flip too; no axis swaps involving z).
        block_shape: Output block per task in voxels (z, y, x), a multiple of the output chunks; ``None`` chooses one.
        chunks: Output chunk shape in voxels; ``None`` chooses one from the window size.
        output_dtype: ``uint8`` (probability x 255) or ``float16``.
        window: Window (ROI) size in voxels; ``None`` uses the model's training patch size.
    """

    overlap: float = Field(0.25, ge=0, lt=1)
    sw_batch_size: int = Field(2, gt=0)
    tta: Literal["none", "flips"] = "none"
    block_shape: Optional[IntTriple] = None
    chunks: Optional[IntTriple] = None
    output_dtype: Literal["uint8", "float16"] = "uint8"
    window: Optional[IntTriple] = None


class SegmentConfig(_Section):
    """Probabilities to mitochondria instances.

    Attributes:
        threshold: Foreground threshold on the probability.
        method: ``cc`` (connected components) or ``watershed`` (seeded watershed that splits touching objects).
        min_size: Objects smaller than this many voxels are removed.
        seed_distance: Watershed seeds: maxima of the distance transform at least this far (nm) inside objects.
        connectivity: 6, 18 or 26 (cc3d).
    """

    threshold: float = Field(0.5, gt=0, lt=1)
    method: Literal["cc", "watershed"] = "cc"
    min_size: int = Field(64, ge=0)
    seed_distance: float = Field(40.0, gt=0)
    connectivity: Literal[6, 18, 26] = 26


class Config(_Section):
    """A complete masktwins-bio experiment.

    Attributes:
        name: Run name (used for the run directory).
        seed: Global random seed.
        data_root: Directory relative volume paths are resolved against; supports ``${VAR:-default}``.
        run_dir: Output directory of the run; ``None`` uses ``runs/<name>``.
        source: The labelled source volume.
        target: The unlabelled target volume (and optional labelled evaluation volume).
    """

    name: str = "experiment"
    seed: int = 0
    data_root: str = "."
    run_dir: Optional[str] = None
    source: DomainConfig
    target: TargetConfig
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = MethodConfig()
    train: TrainConfig = TrainConfig()
    inference: InferenceConfig = InferenceConfig()
    segment: SegmentConfig = SegmentConfig()

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.method.foreground_cap is not None and self.method.weight_mode == "scalar":
            raise ValueError("method.foreground_cap needs a per-voxel method.weight_mode (voxel or class_balanced)")
        a = self.method.adapt_from_step
        if a != "auto" and a and a >= self.train.steps:
            raise ValueError(f"method.adapt_from_step {a} must be smaller than train.steps {self.train.steps} "
                             "(adaptation would never start); lower it, raise train.steps or use auto")
        if self.method.mask_block is not None:
            for axis, b, p in zip("zyx", self.method.mask_block, self.data.patch_size):
                if b > p:
                    raise ValueError(
                        f"method.mask_block {list(self.method.mask_block)} is larger than data.patch_size "
                        f"{list(self.data.patch_size)} along {axis}; use a block no larger than the patch"
                    )
        return self

    # -- derived values -------------------------------------------------------------------------------------
    def adapt_start_step(self) -> Optional[int]:
        """The step adaptation starts at (``method.adapt_from_step`` with ``auto`` resolved); ``None`` for ``auto``
        under a wall-clock budget (``train.max_minutes``), where adaptation starts once half the time is spent."""
        a = self.method.adapt_from_step
        if a == "auto":
            if self.train.init:
                return 0
            return None if self.train.max_minutes is not None else self.train.steps // 2
        return int(a)

    def resolve_path(self, path: Optional[str]) -> Optional[str]:
        """Resolve a volume path spec against ``data_root`` (keeps an ``:/h5-key`` suffix intact)."""
        if path is None:
            return None
        if os.path.isabs(_path_part(path)):
            return path
        root = Path(self.data_root).expanduser()
        return str(root / path)

    def resolved(self) -> dict:
        """The resolved configuration as a plain JSON-compatible dict (all defaults filled in)."""
        return self.model_dump(mode="json")

    def hash(self) -> str:
        """A short, stable hash of the resolved configuration."""
        return config_hash(self.resolved())

    def get_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False)


def config_hash(resolved: dict) -> str:
    blob = json.dumps(resolved, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _path_part(spec: str) -> str:
    """The filesystem part of a path spec (drops an HDF5 ``:/key`` suffix)."""
    m = re.match(r"^(.*\.(?:h5|hdf5|hdf|n5))(?::(.*))?$", spec)
    return m.group(1) if m else spec
