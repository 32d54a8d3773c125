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
from typing import Optional

import numpy as np
import torch

from ..methods.masks import complementary_masks, default_mask_block
from ..methods.losses import foreground_probability

__all__ = ["LabelFreeMonitor", "TargetEvaluator", "label_free_score", "dice"]


def dice(a: torch.Tensor, b: torch.Tensor, empty: float = 1.0) -> float:
    inter = (a & b).sum().item()
    total = a.sum().item() + b.sum().item()
    return empty if total == 0 else 2.0 * inter / total


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
        inter_v = tot_v = inter_ts = tot_ts = 0.0
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
            tot_v += a.sum().item() + b.sum().item()
            t, s = p_t >= 0.5, p_s >= 0.5
            inter_ts += (t & s).sum().item()
            tot_ts += t.sum().item() + s.sum().item()
        student.train(was_training)
        fg = sums["fg"] / max(1, sums["voxels"])
        out = {
            "confident_fraction": sums["confident"] / max(1, sums["voxels"]),
            "foreground_fraction": fg,
            "view_consistency": 2 * inter_v / tot_v if tot_v else 0.0,
            "teacher_student_agreement": 2 * inter_ts / tot_ts if tot_ts else 1.0,
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
        tp = (pred & gt).sum(dim=(1, 2)).double()
        fp = (pred & ~gt).sum(dim=(1, 2)).double()
        fn = (~pred & gt).sum(dim=(1, 2)).double()
        iou_s = torch.where(tp + fp + fn > 0, tp / (tp + fp + fn).clamp_min(1), torch.ones_like(tp))
        f1_s = torch.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), torch.ones_like(tp))
        TP, FP, FN = tp.sum().item(), fp.sum().item(), fn.sum().item()
        return {
            "iou": TP / (TP + FP + FN) if TP + FP + FN else 1.0,
            "f1": 2 * TP / (2 * TP + FP + FN) if TP + FP + FN else 1.0,
            "iou_per_section": iou_s.mean().item(),
            "f1_per_section": f1_s.mean().item(),
        }
