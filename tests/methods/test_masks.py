"""Block masks: complementarity, blocks, keep ratio, determinism, device/dtype."""

from __future__ import annotations

import pytest
import torch

from masktwins_bio.methods.masks import (apply_mask, block_mask, complementary_masks, default_mask_block,
                                   random_pair_masks)

SHAPES = [(2, 1, 16, 64, 64), (3, 17, 50, 45), (1, 1, 5, 7, 9)]
BLOCKS = [(4, 8, 8), (2, 16, 4), (1, 1, 1), (5, 7, 9)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block", BLOCKS)
def test_complementary_pair_covers_every_voxel_once(shape, block):
    m1, m2 = complementary_masks(shape, block, 0.5, torch.Generator().manual_seed(0))
    assert m1.shape == (shape[0], 1, *shape[-3:])
    assert torch.equal(m1 + m2, torch.ones_like(m1))
    assert set(m1.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("block", BLOCKS[:2])
def test_constant_within_blocks(block):
    m = block_mask((2, 1, 16, 64, 64), block, 0.5, torch.Generator().manual_seed(1))
    bz, by, bx = block
    grid = m[:, :, : 16 // bz * bz, : 64 // by * by, : 64 // bx * bx]
    b = grid.reshape(2, 1, 16 // bz, bz, 64 // by, by, 64 // bx, bx)
    assert torch.equal(b.amax(dim=(3, 5, 7)), b.amin(dim=(3, 5, 7)))


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_keep_ratio_within_tolerance(ratio):
    m = block_mask((64, 1, 16, 64, 64), (2, 8, 8), ratio, torch.Generator().manual_seed(2))
    assert abs(m.mean().item() - ratio) < 0.01  # 64 * 512 blocks: std ~ 0.003


def test_seeded_determinism():
    a = block_mask((2, 1, 8, 32, 32), (2, 4, 4), 0.5, torch.Generator().manual_seed(7))
    b = block_mask((2, 1, 8, 32, 32), (2, 4, 4), 0.5, torch.Generator().manual_seed(7))
    c = block_mask((2, 1, 8, 32, 32), (2, 4, 4), 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_device_and_dtype(dtype):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        x = torch.randn(2, 1, 8, 16, 16, device=dev, dtype=dtype)
        m1, m2 = complementary_masks(x.shape, (2, 4, 4), 0.5, torch.Generator(dev).manual_seed(0), x.device, x.dtype)
        assert m1.device == x.device and m1.dtype == dtype
        v = apply_mask(x, m1) + apply_mask(x, m2)
        assert torch.equal(v, x)


def test_random_pair_is_independent():
    m1, m2 = random_pair_masks((32, 1, 8, 32, 32), (2, 4, 4), 0.5, torch.Generator().manual_seed(0))
    overlap = (m1 * m2).mean().item()
    assert 0.2 < overlap < 0.3  # independent: P(both kept) = 0.25, unlike the complementary pair (0)


@pytest.mark.parametrize("patch, voxel_size, block", [
    ((8, 96, 96), (40, 8, 8), (1, 96, 96)),        # serial-section EM: whole sections
    ((16, 256, 256), (30, 8, 8), (1, 256, 256)),   # MitoEM-like, GPU patch
    ((16, 128, 128), (16, 8, 8), (1, 128, 128)),   # exactly 2x: still sections
    ((16, 128, 128), (12, 8, 8), (11, 16, 16)),    # mildly anisotropic: blocks of ~ the in-plane size in nm
    ((32, 64, 64), (8, 8, 8), (8, 8, 8)),          # isotropic (FIB-SEM, Lucchi)
    ((32, 64, 64), None, (4, 8, 8)),               # unknown voxel size: 1/8 of each side
])
def test_default_block_follows_the_anisotropy(patch, voxel_size, block):
    assert default_mask_block(patch, voxel_size) == block


def test_bad_arguments():
    with pytest.raises(ValueError, match="keep_ratio"):
        block_mask((1, 4, 4, 4), (2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="positive"):
        block_mask((1, 4, 4, 4), (0, 2, 2), 0.5)


def test_the_old_module_path_still_works_and_warns():
    import importlib
    import sys
    import warnings

    sys.modules.pop("masktwins_bio.masking", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("masktwins_bio.masking")
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    from masktwins_bio.methods import masks

    assert old.complementary_masks is masks.complementary_masks


def test_noise_fill_keeps_visible_voxels_and_each_samples_moments():
    """``method.mask_fill: noise``: hidden voxels get noise of the sample's own mean and spread, visible ones stay."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(1, 1, 8, 32, 32, generator=g) * 3 + 5, torch.randn(1, 1, 8, 32, 32, generator=g)])
    m, _ = complementary_masks(x.shape, (1, 32, 32), 0.3, g)
    m[:, :, 0], m[:, :, 1] = 0, 1  # at least one hidden and one visible section per sample
    out = apply_mask(x, m, "noise", torch.Generator().manual_seed(1))
    visible = m.expand_as(x).bool()
    assert torch.equal(out[visible], x[visible])
    for b, (mean, std) in enumerate([(5.0, 3.0), (0.0, 1.0)]):
        hidden = out[b][~visible[b]]
        assert hidden.mean().item() == pytest.approx(mean, abs=0.15 * std)
        assert hidden.std().item() == pytest.approx(std, rel=0.1)
    assert torch.equal(apply_mask(x, m), x * m)  # the default: zeros (the paper)
    with pytest.raises(ValueError, match="zero' or 'noise"):
        apply_mask(x, m, "mean")
