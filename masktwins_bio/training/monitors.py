"""Validation during training: label-free monitors (always) and target metrics (only with target labels).

A real user has no target labels, so checkpoint selection must not need them. On a fixed set of target patches we
measure, with the EMA teacher (the model that is exported):

* ``confident_fraction`` - voxels whose max class probability is >= the pseudo-label threshold;
* ``foreground_fraction`` - predicted mitochondria fraction (a collapse to all-background shows here first);
* ``view_consistency`` - foreground Dice between predictions on the complementary views M and 1 - M of the patch
  (how well the model infers hidden structure from context: the MaskTwins premise);
* ``teacher_student_agreement`` - foreground Dice between teacher and student on the clean patch.

The label-free selection score (:func:`label_free_score`) is the confident fraction, guarded by a weak prior on the
predicted foreground fraction relative to the source's. On our synthetic runs the confident fraction tracked target
IoU across checkpoints (BENCHMARKS.md), whereas ``view_consistency`` *fell* as models sharpened (blurry early models
agree with themselves most) and is logged as a monitor only. The prior is what rejects the degenerate solutions
self-training drifts into (all-background or all-foreground, both very "confident"). The score is used for the
adaptation methods; a source-only run never sees the target and keeps its last checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..methods.losses import foreground_probability
from ..methods.masks import complementary_masks, default_mask_block
from ..metrics.semantic import confusion_metrics

__all__ = ["LabelFreeMonitor", "TargetEvaluator", "label_free_score", "dice"]


def _overlap(tp: float, fp: float, fn: float, metric: str = "f1", empty: float = 1.0) -> float:
    """``metric`` of :func:`~masktwins_bio.metrics.semantic.confusion_metrics` (the evaluation's definitions), with
    ``empty`` where both masks are empty (undefined there; a monitor needs a number)."""
    value = float(confusion_metrics(tp, fp, fn, 0)[metric])
    return empty if math.isnan(value) else value


def dice(a: torch.Tensor, b: torch.Tensor, empty: float = 1.0) -> float:
    """Dice of two boolean masks (``empty`` when both are empty); the F1 of the metrics module."""
    inter = (a & b).sum().item()
    return _overlap(inter, a.sum().item() - inter, b.sum().item() - inter, "f1", empty)


def label_free_score(confident_fraction: float, foreground_fraction: float, source_foreground: float,
                     tolerance: float = 3.0) -> float:
    """The label-free selection score: ``confident_fraction`` times a weak foreground prior.

    The prior is 1 while the predicted target foreground fraction is within ``tolerance``-fold of the source's
    (tissues differ in mitochondria density: FAFB has about twice VNC III's) and decays as ``exp(-excess
    log-ratio)`` outside it, so a model that collapses to predicting (almost) nothing or everything - the usual
    failure of self-training on a minority class - cannot win on confidence alone.
    """
    if foreground_fraction <= 0 or source_foreground <= 0:
        return 0.0
    excess = max(0.0, abs(math.log(foreground_fraction / source_foreground)) - math.log(tolerance))
    return confident_fraction * math.exp(-excess)


class LabelFreeMonitor:
    """Label-free monitors on a fixed set of target patches.

    Args:
        patches: ``(N, 1, Z, Y, X)`` normalised target patches (CPU tensor).
        head: ``softmax`` or ``sigmoid``.
        threshold: Confidence threshold (as for pseudo-labels).
        mask_block: Block size of the complementary views.
        source_foreground: Foreground fraction of the source labels (for the prior in the score).
        batch_size: Patches per forward pass.
        seed: Seed of the fixed masks.
    """

    def __init__(self, patches: torch.Tensor, head: str, threshold: float, mask_block, source_foreground: float,
                 batch_size: int = 2, seed: int = 0):
        self.patches = patches
        self.head = head
        self.threshold = threshold
        self.mask_block = tuple(mask_block) if mask_block else default_mask_block(patches.shape[2:])
        self.source_foreground = source_foreground
        self.batch_size = batch_size
        gen = torch.Generator().manual_seed(seed)
        self.masks = complementary_masks(patches.shape, self.mask_block, 0.5, gen)

    @torch.no_grad()
    def __call__(self, teacher, student, device, autocast) -> dict:
        was_training = student.training
        student.eval()
        sums = {"confident": 0.0, "fg": 0.0, "voxels": 0}
        inter_v = sum_a = sum_b = inter_ts = sum_t = sum_s = 0.0
        for i in range(0, len(self.patches), self.batch_size):
            x = self.patches[i : i + self.batch_size].to(device)
            m1 = self.masks[0][i : i + self.batch_size].to(device)
            m2 = self.masks[1][i : i + self.batch_size].to(device)
            with autocast():
                p_t = foreground_probability(teacher(x), self.head)
                p_s = foreground_probability(student(x), self.head)
                views = foreground_probability(teacher(torch.cat([x * m1, x * m2])), self.head)
            p_a, p_b = views.split(x.shape[0])
            conf = torch.maximum(p_t, 1 - p_t) >= self.threshold
            sums["confident"] += conf.sum().item()
            sums["fg"] += (p_t >= 0.5).sum().item()
            sums["voxels"] += p_t.numel()
            a, b = p_a >= 0.5, p_b >= 0.5
            inter_v += (a & b).sum().item()
            sum_a, sum_b = sum_a + a.sum().item(), sum_b + b.sum().item()
            t, s = p_t >= 0.5, p_s >= 0.5
            inter_ts += (t & s).sum().item()
            sum_t, sum_s = sum_t + t.sum().item(), sum_s + s.sum().item()
        student.train(was_training)
        fg = sums["fg"] / max(1, sums["voxels"])
        out = {
            "confident_fraction": sums["confident"] / max(1, sums["voxels"]),
            "foreground_fraction": fg,
            # Dice of the two masked views' foreground (0 when both are empty: no evidence of agreement), and of
            # teacher vs student (1 when both are empty: they agree)
            "view_consistency": _overlap(inter_v, sum_a - inter_v, sum_b - inter_v, "f1", empty=0.0),
            "teacher_student_agreement": _overlap(inter_ts, sum_t - inter_ts, sum_s - inter_ts, "f1", empty=1.0),
        }
        out["label_free_score"] = label_free_score(out["confident_fraction"], fg, self.source_foreground)
        return out


class TargetEvaluator:
    """Target metrics during training, for experiments that have target labels (never used by a real user).

    The evaluation volume (at the training voxel size) is held in memory, capped to ``max_voxels`` by a central
    crop, and predicted with MONAI's sliding window. Reports whole-volume foreground IoU/F1 and their per-section
    means (DA-ISC style). The final, complete evaluation is done by ``masktwins-bio evaluate`` on the full volume.
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, window, head: str, overlap: float = 0.25,
                 sw_batch_size: int = 2):
        self.image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        self.labels = torch.from_numpy(np.ascontiguousarray(labels > 0))
        self.window = tuple(int(w) for w in window)
        self.head = head
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size

    @staticmethod
    def crop_slices(shape, max_voxels: int):
        """A central crop of at most ``max_voxels``, shrinking y/x first (thin stacks keep all their sections)."""
        shape = np.asarray(shape)
        size = shape.copy()
        if np.prod(size) > max_voxels:
            f = min(1.0, np.sqrt(max_voxels / np.prod(shape)))
            size[1:] = np.maximum(64, np.floor(shape[1:] * f)).astype(int)
            size = np.minimum(size, shape)
            if np.prod(size) > max_voxels:
                size[0] = max(1, int(max_voxels // np.prod(size[1:])))
        start = (shape - size) // 2
        return tuple(slice(int(a), int(a + s)) for a, s in zip(start, size))

    @torch.no_grad()
    def __call__(self, network, device, autocast) -> dict:
        from monai.inferers import sliding_window_inference

        # a volume thinner than the window is padded by MONAI (a shrunken window may not fit the network's strides)
        with autocast():
            logits = sliding_window_inference(self.image, self.window, self.sw_batch_size, network, overlap=self.overlap,
                                              mode="gaussian", sw_device=device, device="cpu")
        pred = foreground_probability(logits, self.head)[0, 0] >= 0.5
        gt = self.labels
        tp, fp, fn = ((x.sum(dim=(1, 2)).double().numpy()) for x in (pred & gt, pred & ~gt, ~pred & gt))
        # the evaluation's conventions (metrics.semantic): sections empty in both are left out of the means
        sections = confusion_metrics(tp, fp, fn, 0)
        whole = [tp.sum(), fp.sum(), fn.sum()]
        return {
            "iou": _overlap(*whole, "iou"),
            "f1": _overlap(*whole, "f1"),
            "iou_per_section": _section_mean(sections["iou"]),
            "f1_per_section": _section_mean(sections["f1"]),
        }


def _section_mean(values: np.ndarray) -> float:
    """Mean over the sections where it is defined; 1 when no section has foreground in prediction or labels."""
    return float(np.nanmean(values)) if not np.isnan(values).all() else 1.0
