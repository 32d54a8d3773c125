"""3D block masks, generated on the batch's own device.

A block mask tiles the patch into blocks of ``block`` voxels (z, y, x) and keeps each block with probability
``keep_ratio`` (one Bernoulli draw per block and sample, as in the reference implementation), then expands it to
voxels. MaskTwins uses the *complementary* pair (M, 1 - M): every voxel is visible in exactly one of the two views.
MIC uses one mask with keep ratio 0.3 (its mask ratio 0.7), and the random-pair ablation two independent masks.

Masks are float tensors of the input's dtype and device, shaped ``(B, 1, Z, Y, X)``, so applying one is a single
multiplication of the normalised image (masked voxels take the normalised mean, 0; ``method.mask_fill: noise`` fills
them with noise of the sample's own mean and spread instead). Generation is a ``torch.rand``
on the coarse block grid plus a nearest-neighbour expansion: no CPU round trip, no NumPy.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

__all__ = ["block_mask", "complementary_masks", "partition_masks", "random_pair_masks", "default_mask_block",
           "default_keep_ratio", "apply_mask"]

#: MaskTwins' keep ratio with whole-section masks: uneven complementary views, one seeing 30 % of the sections and
#: the other the remaining 70 % (BENCHMARKS.md, "Uneven complementary views"); with any other block, the paper's 0.5
SECTION_KEEP_RATIO = 0.3
BLOCK_KEEP_RATIO = 0.5


def default_mask_block(patch_size: Sequence[int], voxel_size: Optional[Sequence[float]] = None,
                       fraction: float = 1 / 8, section_anisotropy: float = 2.0) -> tuple[int, int, int]:
    """The default mask block (voxels, z, y, x) for a training patch.

    * **Anisotropic voxels** (sections at least ``section_anisotropy`` times thicker than the in-plane pixel, as in
      serial-section EM): whole sections, ``(1, Y, X)``. Each complementary view then sees a random half of the
      patch's sections and must infer the other half from the sections above and below them (the inter-section
      consistency of DA-ISC, as a MaskTwins mask). On both real directions of the adaptation study this beat
      in-plane blocks (BENCHMARKS.md, "Whole-section masks").
    * Otherwise a block about ``fraction`` of the in-plane patch side, with the same physical size in z where the
      voxel size is known (``by * vy / vz`` sections, at least 1), else the same fraction of the z side.
    """
    by = max(1, round(patch_size[1] * fraction))
    bx = max(1, round(patch_size[2] * fraction))
    if voxel_size is None:
        bz = max(1, round(patch_size[0] * fraction))
    elif voxel_size[0] >= section_anisotropy * min(voxel_size[1], voxel_size[2]):
        return (1, int(patch_size[1]), int(patch_size[2]))
    else:
        bz = max(1, round(by * voxel_size[1] / voxel_size[0]))
    return (min(bz, patch_size[0]), min(by, patch_size[1]), min(bx, patch_size[2]))


def default_keep_ratio(block: Sequence[int], patch_size: Sequence[int]) -> float:
    """MaskTwins' keep ratio of the first view when ``method.keep_ratio`` is not set: :data:`SECTION_KEEP_RATIO`
    (0.3) for whole-section blocks ``(1, Y, X)``, else :data:`BLOCK_KEEP_RATIO` (0.5, the paper's).

    With whole sections every view must infer its hidden sections from the ones it sees, and the agreement of the
    two views suppresses what cannot be inferred - most of a source model's false positives on a new target. The
    sparser first view strengthens that: on the two real pairs it took the smaller gain over source-only from +2.8
    to +6.2 IoU (3 seeds), at a cost of 2.5 where the source model under-segments (BENCHMARKS.md).
    """
    whole_sections = int(block[0]) == 1 and tuple(map(int, block[1:])) == tuple(map(int, patch_size[1:]))
    return SECTION_KEEP_RATIO if whole_sections else BLOCK_KEEP_RATIO


def block_mask(shape: Sequence[int], block: Sequence[int], keep_ratio: float = 0.5,
               generator: Optional[torch.Generator] = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """A random block mask.

    Args:
        shape: ``(B, Z, Y, X)`` or ``(B, C, Z, Y, X)`` of the batch to mask (channels are ignored).
        block: Block size in voxels (z, y, x).
        keep_ratio: Probability that a block is kept (value 1).
        generator: Optional ``torch.Generator`` on ``device`` (seeded determinism).
        device: Device of the mask (default: the generator's, else CPU).
        dtype: Floating dtype of the mask.

    Returns:
        ``(B, 1, Z, Y, X)`` tensor of 0/1, constant within each block of the grid anchored at voxel (0, 0, 0).
    """
    if not 0.0 < keep_ratio < 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1), got {keep_ratio}")
    b = int(shape[0])
    spatial = [int(s) for s in shape[-3:]]
    block = [int(v) for v in block]
    if any(v <= 0 for v in block):
        raise ValueError(f"mask block {block} must be positive")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    grid = [-(-s // bs) for s, bs in zip(spatial, block)]
    coarse = (torch.rand((b, 1, *grid), generator=generator, device=device) < keep_ratio).to(dtype)
    mask = coarse
    for axis, bs in zip((2, 3, 4), block):
        mask = mask.repeat_interleave(bs, dim=axis)
    return mask[:, :, : spatial[0], : spatial[1], : spatial[2]].contiguous()


def complementary_masks(shape: Sequence[int], block: Sequence[int], keep_ratio: float = 0.5,
                        generator: Optional[torch.Generator] = None, device=None, dtype=torch.float32
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The MaskTwins pair ``(M, 1 - M)``: disjoint views that together cover every voxel exactly once."""
    m = block_mask(shape, block, keep_ratio, generator, device, dtype)
    return m, 1.0 - m


def partition_masks(shape: Sequence[int], block: Sequence[int], n_views: int,
                    generator: Optional[torch.Generator] = None, device=None, dtype=torch.float32
                    ) -> tuple[torch.Tensor, ...]:
    """``n_views`` complementary masks (the paper's K-view extension): every block is visible in exactly one view,
    drawn uniformly, so the masks sum to 1 everywhere. Two views are :func:`complementary_masks` at keep ratio 0.5 (even
    views)."""
    if n_views < 2:
        raise ValueError(f"n_views must be >= 2, got {n_views}")
    if n_views == 2:
        return complementary_masks(shape, block, 0.5, generator, device, dtype)
    b = int(shape[0])
    spatial = [int(s) for s in shape[-3:]]
    block = [int(v) for v in block]
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    grid = [-(-s // bs) for s, bs in zip(spatial, block)]
    owner = torch.randint(0, n_views, (b, 1, *grid), generator=generator, device=device)
    for axis, bs in zip((2, 3, 4), block):
        owner = owner.repeat_interleave(bs, dim=axis)
    owner = owner[:, :, : spatial[0], : spatial[1], : spatial[2]]
    return tuple((owner == k).to(dtype).contiguous() for k in range(n_views))


def random_pair_masks(shape: Sequence[int], block: Sequence[int], keep_ratio: float = 0.5,
                      generator: Optional[torch.Generator] = None, device=None, dtype=torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The random-pair ablation: two *independent* masks with keep ratios ``r`` and ``1 - r``."""
    return (block_mask(shape, block, keep_ratio, generator, device, dtype),
            block_mask(shape, block, 1.0 - keep_ratio, generator, device, dtype))


def apply_mask(x: torch.Tensor, mask: torch.Tensor, fill: str = "zero",
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Masked view of a normalised batch.

    Args:
        x: ``(B, C, Z, Y, X)`` normalised images.
        mask: ``(B, 1, Z, Y, X)`` 0/1 mask (1 = visible).
        fill: What hidden voxels become: ``zero`` (the normalised mean, as in the paper) or ``noise`` (Gaussian
            noise with each sample's own mean and standard deviation, so that the view keeps the image's first two
            moments: instance normalisation then rescales the visible voxels of a sparse view as it rescales the
            clean patch, instead of by about ``1 / sqrt(keep ratio)``).
        generator: Random generator on ``x``'s device for ``noise``.
    """
    m = mask.to(x.dtype)
    if fill == "zero":
        return x * m
    if fill != "noise":
        raise ValueError(f"mask fill must be 'zero' or 'noise', got {fill!r}")
    dims = tuple(range(1, x.dim()))
    mean = x.float().mean(dim=dims, keepdim=True)
    std = x.float().std(dim=dims, keepdim=True)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32) * std + mean
    return x * m + noise.to(x.dtype) * (1 - m)
