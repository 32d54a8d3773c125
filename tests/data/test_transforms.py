"""Augmentation: EM artefacts, geometry keeps image/label aligned, strong on-device augmentation."""

from __future__ import annotations

import pytest
import torch

from masktwins_bio.config import AugmentConfig
from masktwins_bio.data.transforms import (RandMisalignd, RandMissingSectiond, RandSectionBlurd, build_transforms,
                                           geometric_transforms, reseed, source_intensity_transforms,
                                           strong_intensity_augment)


def item():
    img = torch.randn(1, 6, 16, 16)
    return {"image": img, "label": (img > 0.5).float()}


def test_missing_section_sets_one_section_to_zero():
    out = RandMissingSectiond(["image"], prob=1.0)(item())
    zeros = [(out["image"][0, z] == 0).all().item() for z in range(6)]
    assert sum(zeros) == 1


def test_section_blur_changes_one_section():
    d = item()
    out = RandSectionBlurd(["image"], prob=1.0)(d)
    changed = [not torch.equal(out["image"][0, z], d["image"][0, z]) for z in range(6)]
    assert sum(changed) == 1


def test_misalign_shifts_image_and_label_together():
    d = item()
    out = RandMisalignd(["image", "label"], prob=1.0, max_shift=3)(d)
    assert torch.equal(out["label"], (out["image"] > 0.5).float())


def test_geometry_keeps_label_aligned():
    tf = build_transforms(AugmentConfig(), (40, 8, 8), (6, 16, 16), intensity=False)
    for i in range(10):
        reseed(tf, 0, i)
        out = tf(item())
        # only geometric transforms: the label is still the thresholded image
        assert torch.equal(out["label"], (out["image"] > 0.5).float())


def test_transpose_z_only_for_isotropic_cubic():
    names = lambda ts: [type(t).__name__ for t in ts]  # noqa: E731
    assert "RandTransposeZd" not in names(geometric_transforms(AugmentConfig(), (40, 8, 8), (16, 64, 64)))
    assert "RandTransposeZd" in names(geometric_transforms(AugmentConfig(), (8, 8, 8), (32, 32, 32)))


def test_histogram_shift_remaps_source_intensities_monotonically_and_only_when_asked():
    names = lambda cfg: [type(t).__name__ for t in source_intensity_transforms(cfg)]  # noqa: E731
    assert "RandHistogramShiftd" in names(AugmentConfig())  # on by default (p = 0.5)
    assert "RandHistogramShiftd" not in names(AugmentConfig(histogram_shift_prob=0))  # off: the old draws exactly
    only_shift = AugmentConfig(histogram_shift_prob=1.0, intensity_prob=0, blur_prob=0, missing_section_prob=0,
                               section_blur_prob=0, misalign_prob=0)
    assert names(only_shift)[0] == "RandHistogramShiftd"
    tf = build_transforms(only_shift.model_copy(update={"flip": False, "rot90": False}), (40, 8, 8), (6, 16, 16),
                          intensity=True)
    d = item()
    changed = 0
    for i in range(5):
        reseed(tf, 0, i)
        out = tf(dict(d))
        order = d["image"].flatten().argsort()
        assert (out["image"].flatten()[order].diff() >= -1e-5).all()  # darker stays darker
        assert torch.equal(out["label"], d["label"])  # labels untouched
        changed += not torch.allclose(out["image"], d["image"])
    assert changed == 5
    with pytest.raises(ValueError, match="control points"):
        AugmentConfig(histogram_points=(2, 4))


def test_reseed_makes_augmentation_reproducible():
    tf = build_transforms(AugmentConfig(), (40, 8, 8), (6, 16, 16), intensity=True)
    d = item()
    reseed(tf, 1, 7)
    a = tf(dict(d))["image"]
    reseed(tf, 1, 7)
    b = tf(dict(d))["image"]
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strong_augment_shape_device_and_seed(dtype):
    x = torch.randn(3, 1, 4, 16, 16).to(dtype)
    cfg = AugmentConfig(blur_prob=1.0)
    a = strong_intensity_augment(x, cfg, torch.Generator().manual_seed(0))
    b = strong_intensity_augment(x, cfg, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.device == x.device and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], x[0].float())


def test_inplane_affine_rotates_image_and_labels_together_and_keeps_labels_binary():
    import torch

    from masktwins_bio.config import AugmentConfig
    from masktwins_bio.data.transforms import random_inplane_affine

    x = torch.rand(64, 1, 1, 16, 16).expand(64, 1, 2, 16, 16).contiguous()  # two identical sections
    lab = (x > 0.5).float()
    cfg = AugmentConfig(affine_prob=1.0, rotate=90, zoom=0.0)
    img, out = random_inplane_affine(x, lab, cfg, torch.Generator().manual_seed(0))
    u = torch.rand((64, 4), generator=torch.Generator().manual_seed(0))  # the draws the transform made
    i = int(torch.argmax(u[:, 1]))  # the sample turned closest to +90 degrees
    assert abs(float((2 * u[i, 1] - 1) * 90) - 90) < 2
    torch.testing.assert_close(out[i], torch.rot90(lab[i], 1, dims=(-2, -1)), rtol=0, atol=0)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(img[:, :, 0], img[:, :, 1])  # every section of a sample gets the same transform
    same = random_inplane_affine(x, lab, AugmentConfig(affine_prob=0.0), torch.Generator().manual_seed(0))
    assert same[0] is x and same[1] is lab  # switched off: untouched
