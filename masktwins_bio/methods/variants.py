"""The method ladder: source-only -> mean teacher -> MIC -> MaskTwins (random pair) -> MaskTwins.

Same data, seeds, network, teacher and budget for all, so differences come from the target views alone.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import UDAMethod, register
from .losses import consistency_mse, directed_consistency_mse
from .masks import (block_mask, complementary_masks, default_keep_ratio, partition_masks,
                    random_pair_masks)

__all__ = ["SourceOnly", "MeanTeacher", "MIC", "MaskTwinsRandomPair", "MaskTwins"]


@register
class SourceOnly(UDAMethod):
    """Supervised training on the source only (the no-adaptation baseline)."""

    name = "source_only"
    uses_target = False


@register
class MeanTeacher(UDAMethod):
    """Pseudo-label loss on the augmented, unmasked target (self-training with an EMA teacher)."""

    name = "mean_teacher"

    def make_views(self, target, generator):
        return [target]

    def target_terms(self, view_logits, labels, weight):
        return {"pseudo": self.cfg.lambda_target * self.pseudo_loss(view_logits[0], labels, weight)}


@register
class MIC(UDAMethod):
    """Masked image consistency (Hoyer et al., CVPR 2023): one random block mask, keep ratio 0.3."""

    name = "mic"
    default_keep_ratio = 0.3

    def make_views(self, target, generator):
        m = block_mask(target.shape, self.mask_block, self.keep_ratio, generator, target.device, target.dtype)
        return [self.hide(target, m, generator)]

    def target_terms(self, view_logits, labels, weight):
        return {"pseudo": self.cfg.lambda_target * self.pseudo_loss(view_logits[0], labels, weight)}


@register
class MaskTwins(UDAMethod):
    """MaskTwins (ICML 2025): complementary views M and 1 - M of the same augmented target patch.

    M keeps each mask block with probability ``keep_ratio``: 0.5 as in the paper, 0.3 by default with whole-section
    blocks (the default for serial-section EM), where the first view sees about 30 % of the sections and the second
    the other 70 %.

    Half of the source patches of an adapting step are seen through such a mask too, supervised with their full
    labels (``method.source_mask_prob``), so that inferring hidden sections is also learnt from real labels.

    Loss: ``0.5 CE_w(view M) + 0.5 CE_w(view 1-M)`` against the teacher's pseudo-label, plus
    ``lambda_cm * MSE(logits_M, logits_1-M)`` with gradients into both views (``method.agreement: visible``: into
    the view that hides each voxel only). With ``method.num_views`` K > 2 the blocks are partitioned among K views:
    the mean pseudo-label loss over views plus the mean MSE over view pairs.
    """

    name = "masktwins"
    has_agreement = True
    #: source patches of adapting steps seen through the masks half of the time (``method.source_mask_prob``)
    default_source_mask_prob = 0.5

    def default_keep(self, patch_size):
        """0.3 with whole-section masks (uneven views), else the paper's 0.5 (:func:`~.masks.default_keep_ratio`)."""
        return default_keep_ratio(self.mask_block, patch_size)

    def masks(self, target: torch.Tensor, generator) -> tuple[torch.Tensor, ...]:
        if self.cfg.num_views > 2:
            return partition_masks(target.shape, self.mask_block, self.cfg.num_views, generator, target.device,
                                   target.dtype)
        return complementary_masks(target.shape, self.mask_block, self.keep_ratio, generator, target.device,
                                   target.dtype)

    def make_views(self, target, generator):
        # kept for target_terms, which scores the same batch's views (the directed agreement needs them)
        self.view_masks = self.masks(target, generator)
        return [self.hide(target, m, generator) for m in self.view_masks]

    def agreement(self, view_logits: list[torch.Tensor], i: int, j: int) -> torch.Tensor:
        """The MSE between views ``i`` and ``j`` (``method.agreement``)."""
        if self.cfg.agreement == "auto":  # resolved by training.train into one run per agreement
            raise ConfigError("method.agreement=auto trains one run per agreement: train through "
                              "masktwins_bio.training.train (or the CLI), not a bare Trainer")
        if self.cfg.agreement == "visible":
            return directed_consistency_mse(view_logits[i], view_logits[j], self.view_masks[i], self.view_masks[j])
        return consistency_mse(view_logits[i], view_logits[j])

    def target_terms(self, view_logits, labels, weight):
        k = len(view_logits)
        if self.cfg.pseudo_voxels == "hidden":  # each view learns the pseudo-label only where it must infer it
            pseudo = sum(self.pseudo_loss(v, labels, weight, region=1 - m[:, 0])
                         for v, m in zip(view_logits, self.view_masks)) / k
        else:
            pseudo = sum(self.pseudo_loss(v, labels, weight) for v in view_logits) / k
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        cm = sum(self.agreement(view_logits, i, j) for i, j in pairs) / len(pairs)
        return {"pseudo": self.cfg.lambda_target * pseudo, "consistency": self.cfg.lambda_cm * cm}


@register
class MaskTwinsRandomPair(MaskTwins):
    """Ablation: the MaskTwins losses on two *independent* random masks instead of a complementary pair."""

    name = "masktwins_random_pair"

    def masks(self, target, generator):
        return random_pair_masks(target.shape, self.mask_block, self.keep_ratio, generator, target.device,
                                 target.dtype)
