"""The interface every adaptation method implements, and the registry that picks one by ``method.name``.

A method turns one batch into a loss. It never touches the data loader or the optimiser, and the trainer never knows
which method runs. All methods share the same step:

1. the EMA teacher predicts the *clean* target patch -> pseudo-labels + confidence weight;
2. the target patch gets one strong intensity augmentation (on device);
3. the method builds its student *views* of that patch (none, the patch itself, one masked view, two masked views),
   plus, with ``method.mix``, a view with source voxels pasted in (source label, weight 1);
   with ``method.source_mask_prob``, some source patches are seen through a mask of the same geometry (full labels);
4. source patches and all views go through the student in **one batched forward** (one DDP forward per backward;
   instance normalisation keeps samples independent);
5. supervised source loss + the method's target terms (ramped up over ``method.target_rampup_steps``).

Before ``method.adapt_from_step`` a step is exactly the source-only step (two-stage training).

Variants are small subclasses overriding :meth:`UDAMethod.make_views` and :meth:`UDAMethod.target_terms`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..config import AugmentConfig, MethodConfig
from ..data.transforms import strong_intensity_augment
from ..errors import ConfigError
from ..registry import METHODS
from .masks import apply_mask, block_mask, default_mask_block
from .losses import build_source_loss, pseudo_label_loss, pseudo_labels
from .mixing import mix_source_into_target

__all__ = ["UDAMethod", "register", "build_method", "METHODS"]

_FROM_CONFIG = object()  # UDAMethod's adapt_start default: read method.adapt_from_step


def register(cls: type["UDAMethod"]) -> type["UDAMethod"]:
    """Class decorator: add a variant to :data:`masktwins_bio.registry.METHODS` under ``cls.name`` (the config then
    accepts ``method.name: <cls.name>``)."""
    return METHODS.register(cls)


class UDAMethod:
    """Base class: supervised source loss only; subclasses add target views and terms.

    Args:
        cfg: The ``method`` config section.
        head: ``softmax`` or ``sigmoid``.
        augment: Augmentation ranges (used for the strong target augmentation).
        patch_size: Training patch size (voxels), for the default mask block.
        voxel_size: Training voxel size (nm), for anisotropic default mask blocks.
        source_loss: ``dice_ce`` or ``ce``.
        source_foreground: Foreground fraction of the source labels (for ``method.foreground_cap``).
        adapt_start: First step with target terms (:meth:`Config.adapt_start_step`); ``None``: not known yet (the
            trainer sets it when half of a wall-clock budget is spent); default: ``method.adapt_from_step`` with
            ``auto`` as 0.
    """

    name = "base"
    uses_target = True
    #: whether ``method.agreement`` acts (views whose logits must agree); ``auto`` is then resolved by training
    has_agreement = False
    default_keep_ratio = 0.5
    default_source_mask_prob = 0.0

    def __init__(self, cfg: MethodConfig, head: str, augment: AugmentConfig, patch_size: Sequence[int],
                 voxel_size: Optional[Sequence[float]] = None, source_loss: str = "dice_ce",
                 source_foreground: Optional[float] = None, adapt_start=_FROM_CONFIG):
        self.cfg = cfg
        if adapt_start is _FROM_CONFIG:  # without a Config to resolve ``auto`` against: adapt from the start
            adapt_start = 0 if cfg.adapt_from_step == "auto" else int(cfg.adapt_from_step)
        self.adapt_start: Optional[int] = adapt_start
        if cfg.foreground_cap is not None and not source_foreground:
            raise ConfigError("method.foreground_cap needs the source's foreground fraction (source labels)")
        self.foreground_cap = None if cfg.foreground_cap is None else cfg.foreground_cap * source_foreground
        self.head = head
        self.augment = augment
        self.mask_block = tuple(cfg.mask_block) if cfg.mask_block else default_mask_block(patch_size, voxel_size)
        self.keep_ratio = cfg.keep_ratio if cfg.keep_ratio is not None else self.default_keep(patch_size)
        self.source_mask_prob = (cfg.source_mask_prob if cfg.source_mask_prob is not None
                                 else self.default_source_mask_prob)
        self.source_loss = build_source_loss(source_loss, head)

    # -- what subclasses change ------------------------------------------------------------------------------
    def default_keep(self, patch_size: Sequence[int]) -> float:
        """The keep ratio when ``method.keep_ratio`` is not set (``default_keep_ratio``)."""
        return self.default_keep_ratio

    def make_views(self, target: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Student inputs built from the (augmented) target batch."""
        return []

    def target_terms(self, view_logits: list[torch.Tensor], labels: torch.Tensor, weight: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """Weighted target loss terms (already multiplied by their lambdas)."""
        return {}

    def pseudo_loss(self, logits: torch.Tensor, labels: torch.Tensor, weight,
                    region: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Loss of one student view against the pseudo-labels (``method.pseudo_loss``), over ``region``'s voxels
        when given (:func:`~.losses.pseudo_label_loss`)."""
        return pseudo_label_loss(logits, labels, weight, self.head, self.cfg.pseudo_loss, region)

    @torch.no_grad()
    def teacher_logits(self, teacher, target: torch.Tensor) -> torch.Tensor:
        """The teacher's logits on the clean target (``method.teacher_tta: flips``: log of its mean probabilities
        over the patch and its in-plane flips, which are valid logits for either head)."""
        if self.cfg.teacher_tta == "none":
            return teacher(target)
        flips = [(), (-1,), (-2,), (-2, -1)]
        probs = []
        for dims in flips:
            x = target.flip(dims) if dims else target
            out = teacher(x).float()
            out = torch.sigmoid(out) if self.head == "sigmoid" else torch.softmax(out, dim=1)
            probs.append(out.flip(dims) if dims else out)
        p = torch.stack(probs).mean(0).clamp(1e-6, 1 - 1e-6)
        return torch.logit(p) if self.head == "sigmoid" else p.log()

    def mask_source(self, xs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The source batch with each patch, with probability ``method.source_mask_prob``, seen through a block mask
        of the method's geometry: the first view's keep ratio or its complement's, at random (labels unchanged)."""
        p = self.source_mask_prob
        if p <= 0:
            return xs
        b = xs.shape[0]
        m = block_mask(xs.shape, self.mask_block, self.keep_ratio, generator, xs.device, xs.dtype)
        coins = torch.rand((2, b, 1, 1, 1, 1), generator=generator, device=xs.device)
        m = torch.where(coins[0] < 0.5, m, 1.0 - m)  # as often the sparse view as the dense one
        m = torch.where(coins[1] < p, m, torch.ones_like(m))
        return self.hide(xs, m, generator)

    def hide(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` seen through ``mask`` (1 = visible), hidden voxels filled as ``method.mask_fill`` says."""
        return apply_mask(x, mask, self.cfg.mask_fill, generator)

    # -- the shared step --------------------------------------------------------------------------------------
    def adapts_at(self, step: int) -> bool:
        """Whether the target terms are on at ``step`` (off for ``source_only`` and before ``adapt_from_step``)."""
        return self.uses_target and self.adapt_start is not None and step >= self.adapt_start

    def ramp(self, step: int, steps: Optional[int] = None) -> float:
        """Weight in [0, 1] of a term ramped linearly over ``steps`` adapting steps (default
        ``method.target_rampup_steps``; 0 = full weight at once)."""
        n = self.cfg.target_rampup_steps if steps is None else steps
        return 1.0 if n == 0 else min(1.0, (step - self.adapt_start + 1) / n)

    def losses(self, student, teacher, batch: dict, step: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss of one batch and the scalars worth logging.

        Args:
            student: The trained network (possibly DDP-wrapped).
            teacher: Callable EMA teacher (no grad).
            batch: ``source_image (B, 1, Z, Y, X)``, ``source_label (B, 1, Z, Y, X)`` and, for adaptation methods,
                ``target_image (B', 1, Z, Y, X)``; all on the training device, normalised.
            step: Optimiser step (0-based).
            generator: Device generator for masks and augmentation (seeded per step by the trainer).
        """
        xs, ys = batch["source_image"], batch["source_label"]
        if not self.adapts_at(step):  # exactly the source-only step (a shared two-stage prefix is bit-identical)
            loss = self.source_loss(student(xs), ys)
            return loss, {"loss": loss.detach(), "loss_source": loss.detach()}
        xt = batch["target_image"]
        c = self.cfg
        with torch.no_grad():
            labels, weight, confident = pseudo_labels(self.teacher_logits(teacher, xt), self.head,
                                                      c.confidence_threshold, c.weight_mode, c.class_keep,
                                                      self.foreground_cap)
        xt_aug = strong_intensity_augment(xt, self.augment, generator) if c.strong_augment else xt
        views = self.make_views(xt_aug, generator)
        extra = []
        if c.mix != "none":
            mixed, mix_labels, mix_weight = mix_source_into_target(xs, ys, xt_aug, labels, weight, c.mix, generator)
            extra = [mixed]
        logits = student(torch.cat([self.mask_source(xs, generator), *views, *extra]))
        src_logits, *view_logits = logits.split([xs.shape[0]] + [v.shape[0] for v in views + extra])
        loss_src = self.source_loss(src_logits, ys)
        mix_logits = view_logits.pop() if extra else None
        terms = self.target_terms(view_logits, labels, weight)
        if "consistency" in terms and c.cm_rampup_steps:
            terms["consistency"] = self.ramp(step, c.cm_rampup_steps) * terms["consistency"]
        if mix_logits is not None:
            terms["mix"] = c.lambda_mix * self.pseudo_loss(mix_logits, mix_labels, mix_weight)
        ramp = self.ramp(step)
        loss = loss_src + ramp * sum(terms.values())
        logs = {"loss": loss.detach(), "loss_source": loss_src.detach(),
                **{f"loss_{k}": v.detach() for k, v in terms.items()},
                "confident_fraction": confident, "pseudo_foreground": labels.float().mean()}
        if isinstance(weight, torch.Tensor) and weight.dim() > 0:
            logs["pseudo_weight"] = weight.mean()
        if len(view_logits) >= 2:  # foreground decisions of the first two views (a comparison: no argmax)
            a, b = ((v[:, 1] > v[:, 0]) if v.shape[1] > 1 else (v[:, 0] > 0) for v in view_logits[:2])
            logs["view_agreement"] = (a == b).float().mean()
        return loss, logs


def build_method(cfg: MethodConfig, head: str, augment: AugmentConfig, patch_size, voxel_size=None,
                 source_loss: str = "dice_ce", source_foreground: Optional[float] = None,
                 adapt_start=_FROM_CONFIG) -> UDAMethod:
    """Instantiate the method named ``cfg.name`` (``adapt_start``: see :class:`UDAMethod`)."""
    return METHODS[cfg.name](cfg, head, augment, patch_size, voxel_size, source_loss, source_foreground, adapt_start)
