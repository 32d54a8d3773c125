"""Losses of the method ladder.

Heads: ``softmax`` networks output two logits (background, foreground) per voxel, ``sigmoid`` networks one
foreground logit. Every function here takes logits shaped ``(B, C, Z, Y, X)`` and works for both.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["pseudo_labels", "PSEUDO_WEIGHT_MODES", "weighted_ce", "weighted_dice", "pseudo_label_loss", "consistency_mse",
           "directed_consistency_mse", "build_source_loss", "foreground_probability"]


def foreground_probability(logits: torch.Tensor, head: str) -> torch.Tensor:
    """``(B, 1, ...)`` foreground probability from logits."""
    if head == "sigmoid":
        return torch.sigmoid(logits.float())
    return torch.softmax(logits.float(), dim=1)[:, 1:2]


PSEUDO_WEIGHT_MODES = ("scalar", "voxel", "class_balanced")


@torch.no_grad()
def pseudo_labels(teacher_logits: torch.Tensor, head: str, threshold: float = 0.968, mode: str = "scalar",
                  class_keep: float = 0.8, foreground_cap: Optional[float] = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher argmax pseudo-labels and their confidence weight.

    Args:
        teacher_logits: ``(B, C, Z, Y, X)`` teacher logits on the clean target.
        head: ``softmax`` or ``sigmoid``.
        threshold: Confidence (max class probability) counted as confident.
        mode: ``scalar``: one weight per batch, the fraction of confident voxels (the paper's DACS-style weight);
            ``voxel``: weight 1 on confident voxels, 0 elsewhere; ``class_balanced``: per class, the
            ``class_keep`` most confident of the voxels the teacher assigns to it get weight 1, the others 0
            (thresholds from quantiles of the teacher's confidence, as in class-balanced self-training: the
            minority class keeps its share of pseudo-labels even when a domain shift makes the teacher less sure
            of it than of the background).
        class_keep: Fraction of each class kept by ``class_balanced``.
        foreground_cap: Optional guard against self-training on the source model's false positives: at most this
            fraction of the batch's voxels get a foreground pseudo-label (the most confident ones); the foreground
            predictions beyond it get weight 0 (ignored, not turned into background). Needs a per-voxel mode.

    Returns:
        ``(labels, weight, confident_fraction)``: labels ``(B, Z, Y, X)`` int64 in {0, 1}; weight broadcastable to
        the labels (a 0-dim tensor for ``scalar``, ``(B, Z, Y, X)`` otherwise); the fraction of voxels with
        confidence >= ``threshold`` (0-dim).
    """
    if mode not in PSEUDO_WEIGHT_MODES:
        raise ValueError(f"mode must be one of {PSEUDO_WEIGHT_MODES}, got {mode!r}")
    p_fg = foreground_probability(teacher_logits, head)[:, 0]
    labels = (p_fg >= 0.5).long()
    confidence = torch.maximum(p_fg, 1 - p_fg)
    confident = (confidence >= threshold).float()
    fraction = confident.mean()
    if mode == "scalar":
        if foreground_cap is not None:
            raise ValueError("foreground_cap needs a per-voxel weight mode (voxel or class_balanced)")
        return labels, fraction, fraction
    if mode == "voxel":
        weight = confident
    else:
        weight = torch.zeros_like(p_fg)
        for cls in (0, 1):
            member = labels == cls
            if bool(member.any()):
                cut = _quantile(confidence[member], 1.0 - class_keep)
                weight[member & (confidence >= cut)] = 1.0
    if foreground_cap is not None:
        n_max = int(foreground_cap * p_fg.numel())
        fg = labels == 1
        if int(fg.sum()) > n_max:
            cut = _quantile(p_fg[fg], 1.0 - n_max / max(1, int(fg.sum()))) if n_max > 0 else float("inf")
            weight = torch.where(fg & (p_fg < cut), torch.zeros_like(weight), weight)
    return labels, weight, fraction


def _quantile(values: torch.Tensor, q: float) -> float:
    """The ``q`` quantile of a 1D tensor (exact, by sorting: torch.quantile refuses more than 16 M values)."""
    q = min(1.0, max(0.0, q))
    v = values.float().flatten().sort().values
    return float(v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))])


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | float, head: str) -> torch.Tensor:
    """Mean over voxels of ``weight * CE(logits, labels)`` (BCE-with-logits for a sigmoid head).

    Args:
        logits: ``(B, C, Z, Y, X)``.
        labels: ``(B, Z, Y, X)`` int64 in {0, 1}.
        weight: Scalar or ``(B, Z, Y, X)``.
    """
    if head == "sigmoid":
        ce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), labels.float(), reduction="none")
    else:
        ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * weight).mean()


def weighted_dice(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | float, head: str,
                  smooth: float = 1.0) -> torch.Tensor:
    """Soft foreground Dice loss against pseudo-labels, pooled over the batch.

    A scalar ``weight`` scales the loss; a voxel weight masks the voxels entering the Dice sums. Pooling over the
    whole batch keeps patches without foreground from dominating.
    """
    p = foreground_probability(logits, head)[:, 0]
    y = labels.float()
    if isinstance(weight, torch.Tensor) and weight.dim() > 0:
        p, y, scale = p * weight, y * weight, 1.0
    else:
        scale = weight
    dice = (2 * (p * y).sum() + smooth) / (p.sum() + y.sum() + smooth)
    return scale * (1 - dice)


def pseudo_label_loss(logits: torch.Tensor, labels: torch.Tensor, weight, head: str, kind: str = "ce",
                      region: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The loss of a student view against the teacher's pseudo-labels.

    ``ce``: the paper's confidence-weighted cross-entropy. ``dice_ce``: plus a weighted soft Dice term, which keeps
    the minority class (mitochondria, a few percent of voxels) from being self-trained away.

    Args:
        region: Optional ``(B, Z, Y, X)`` 0/1 mask of the voxels the loss covers (``method.pseudo_voxels: hidden``):
            the cross-entropy is the mean over the region, the Dice term pools the region only, and a scalar
            ``weight`` scales both as without a region.
    """
    if region is None:
        loss = weighted_ce(logits, labels, weight, head)
        if kind == "dice_ce":
            loss = loss + weighted_dice(logits, labels, weight, head)
        return loss
    scalar = not (isinstance(weight, torch.Tensor) and weight.dim() > 0)
    voxel_weight = region if scalar else weight * region
    loss = weighted_ce(logits, labels, voxel_weight, head) / region.float().mean().clamp_min(1e-6)
    if kind == "dice_ce":
        loss = loss + weighted_dice(logits, labels, voxel_weight, head)
    return weight * loss if scalar else loss


def consistency_mse(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two views' raw logits; gradients flow into both views (no stop-gradient)."""
    return F.mse_loss(logits_a.float(), logits_b.float())


def build_source_loss(kind: str, head: str):
    """The supervised source loss: MONAI ``DiceCELoss`` (default) or plain cross-entropy.

    Returns:
        ``loss(logits (B, C, ...), label (B, 1, ...) float 0/1) -> scalar``.
    """
    if kind == "dice_ce":
        from monai.losses import DiceCELoss

        if head == "sigmoid":
            fn = DiceCELoss(sigmoid=True)
            return lambda logits, label: fn(logits.float(), label.float())
        fn = DiceCELoss(softmax=True, to_onehot_y=True)
        return lambda logits, label: fn(logits.float(), label.long())
    if head == "sigmoid":
        return lambda logits, label: F.binary_cross_entropy_with_logits(logits.float(), label.float())
    return lambda logits, label: F.cross_entropy(logits.float(), label[:, 0].long())


def directed_consistency_mse(logits_a: torch.Tensor, logits_b: torch.Tensor, mask_a: torch.Tensor,
                             mask_b: torch.Tensor) -> torch.Tensor:
    """The views' agreement with the view that sees a voxel as the reference (``method.agreement: visible``).

    Where one view sees a voxel and the other hides it, the hiding view's logits learn to match the seeing view's
    (no gradient into the seeing view), so the agreement teaches the inference of hidden voxels without pulling what
    a view sees towards what the other can only infer. Where both views see a voxel, or both hide it (possible with
    non-complementary masks), both learn, as in :func:`consistency_mse`. The mean over all voxels and channels.

    Args:
        logits_a, logits_b: ``(B, C, Z, Y, X)`` logits of the two views.
        mask_a, mask_b: ``(B, 1, Z, Y, X)`` visibility masks of the views (1 = visible).
    """
    a, b = logits_a.float(), logits_b.float()
    a_only, b_only = mask_a * (1 - mask_b), mask_b * (1 - mask_a)
    both_or_neither = 1 - a_only - b_only
    sq = (a_only * (a.detach() - b) ** 2 + b_only * (b.detach() - a) ** 2 + both_or_neither * (a - b) ** 2)
    return sq.mean()
