"""Augmentation: MONAI dictionary transforms, EM-specific section artefacts, and on-device strong augmentation.

Three stages, chosen so that the teacher/student contract of MaskTwins holds:

* **geometric** (loader, source and target, keys ``image`` + ``label``): flips, in-plane 90-degree rotations and, for
  near-isotropic voxels only, z<->y/x transposition;
* **source intensity** (loader, source only): contrast (gamma), scale, shift, Gaussian noise and blur (MONAI), plus EM
  section artefacts: a missing section, a single blurred section, a misaligned stack (section shift);
* **source in-plane affine** (:func:`random_inplane_affine`, on the batch's device, by the trainer for every method):
  rotation and zoom of source image and labels;
* **strong target augmentation** (:func:`strong_intensity_augment`, on the batch's device): one random brightness,
  contrast, gamma, noise and blur per target patch, applied *once* before masking so both complementary views
  differ only by the mask (as in the reference implementation); the teacher sees the un-augmented patch.

Loader transforms are reseeded per sample (:func:`reseed`), so a sample is a function of ``(seed, index)`` only:
identical with any number of DataLoader workers and after resuming.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandHistogramShiftd,
    RandomizableTransform,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from ..config import AugmentConfig

__all__ = [
    "RandMissingSectiond",
    "RandSectionBlurd",
    "RandMisalignd",
    "RandTransposeZd",
    "geometric_transforms",
    "source_intensity_transforms",
    "random_inplane_affine",
    "build_transforms",
    "reseed",
    "strong_intensity_augment",
]


class _RandSectionTransform(RandomizableTransform, MapTransform):
    """A random change of whole z-sections, the same for every key: subclasses draw it in ``randomize(n_sections)``
    and apply it to one (C, Z, Y, X) image in ``_apply`` (on a copy; patches with fewer than ``min_sections``
    sections are left alone)."""

    min_sections = 1

    def __init__(self, keys, prob: float, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)

    def _apply(self, img: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        first = d[self.first_key(d)]
        self.randomize(first.shape[1])
        if not self._do_transform or first.shape[1] < self.min_sections:
            return d
        for key in self.key_iterator(d):
            d[key] = self._apply(d[key].clone())
        return d


class RandMissingSectiond(_RandSectionTransform):
    """Replace one random z-section of the image by a constant (0 = the normalised mean), as in lost/damaged sections.

    Args:
        keys: Image keys (labels are left untouched: the structure is still there, only the image is lost).
        prob: Probability of applying.
        value: Fill value.
    """

    min_sections = 2

    def __init__(self, keys, prob: float = 0.1, value: float = 0.0, allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.value = value
        self._z = 0

    def randomize(self, n_sections: int) -> None:
        super().randomize(None)
        self._z = int(self.R.randint(0, max(1, n_sections)))

    def _apply(self, img: torch.Tensor) -> torch.Tensor:
        img[:, self._z] = self.value
        return img


class RandSectionBlurd(_RandSectionTransform):
    """Blur one random z-section in-plane (out-of-focus section), sigma in voxels."""

    def __init__(self, keys, prob: float = 0.1, sigma: tuple[float, float] = (1.0, 3.0),
                 allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.sigma = sigma
        self._z, self._s = 0, 1.0

    def randomize(self, n_sections: int) -> None:
        super().randomize(None)
        self._z = int(self.R.randint(0, max(1, n_sections)))
        self._s = float(self.R.uniform(*self.sigma))

    def _apply(self, img: torch.Tensor) -> torch.Tensor:
        img[:, self._z] = _blur2d(img[:, self._z : self._z + 1], self._s)[:, 0]
        return img


def _gaussian_kernel1d(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur2d(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable in-plane Gaussian blur of a (C, Z, Y, X) tensor."""
    k = _gaussian_kernel1d(sigma, img.device, img.dtype)
    r = k.numel() // 2
    x = img.reshape(-1, 1, *img.shape[-2:])
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x.reshape(img.shape)


class RandMisalignd(_RandSectionTransform):
    """Shift all sections above a random z by a few voxels in-plane (serial-section misalignment).

    Applied to image and label alike, so the label stays correct.
    """

    min_sections = 2

    def __init__(self, keys, prob: float = 0.05, max_shift: int = 4, allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.max_shift = max_shift
        self._z, self._dy, self._dx = 0, 0, 0

    def randomize(self, n_sections: int) -> None:
        super().randomize(None)
        self._z = int(self.R.randint(1, max(2, n_sections)))
        self._dy, self._dx = (int(v) for v in self.R.randint(-self.max_shift, self.max_shift + 1, size=2))

    def _apply(self, img: torch.Tensor) -> torch.Tensor:
        img[:, self._z :] = torch.roll(img[:, self._z :], shifts=(self._dy, self._dx), dims=(-2, -1))
        return img


class RandTransposeZd(RandomizableTransform, MapTransform):
    """Swap z with y or x (only sensible for near-isotropic voxels and cubic patches)."""

    def __init__(self, keys, prob: float = 0.5, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self._axis = 2

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._axis = int(self.R.randint(2, 4))

    def __call__(self, data):
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = d[key].transpose(1, self._axis).contiguous()
        return d


def geometric_transforms(cfg: AugmentConfig, voxel_size: Optional[Sequence[float]], patch_size: Sequence[int],
                         keys=("image", "label")) -> list:
    """Flips on every axis, in-plane rot90, z-transposition only for near-isotropic voxels and cubic patches."""
    keys = list(keys)
    out: list = []
    if cfg.flip:
        out += [RandFlipd(keys, prob=0.5, spatial_axis=a, allow_missing_keys=True) for a in (0, 1, 2)]
    if cfg.rot90 and patch_size[1] == patch_size[2]:
        out.append(RandRotate90d(keys, prob=0.75, max_k=3, spatial_axes=(1, 2), allow_missing_keys=True))
    isotropic = voxel_size is not None and max(voxel_size) / min(voxel_size) < 1.5
    cubic = len(set(patch_size)) == 1
    if cfg.transpose_z == "always" or (cfg.transpose_z == "auto" and isotropic and cubic):
        out.append(RandTransposeZd(keys, prob=0.5, allow_missing_keys=True))
    return out


def source_intensity_transforms(cfg: AugmentConfig, image_key: str = "image", label_keys=("label",)) -> list:
    """Intensity and EM-artefact augmentation of the (normalised) source image."""
    p = cfg.intensity_prob
    keys = [image_key]
    shift = ([RandHistogramShiftd(keys, num_control_points=tuple(cfg.histogram_points), prob=cfg.histogram_shift_prob)]
             if cfg.histogram_shift_prob > 0 else [])  # only when on: the draws of the other transforms stay as before
    return shift + [
        RandAdjustContrastd(keys, prob=p, gamma=tuple(cfg.gamma), retain_stats=True),
        RandScaleIntensityd(keys, factors=(cfg.contrast[0] - 1, cfg.contrast[1] - 1), prob=p),
        RandShiftIntensityd(keys, offsets=cfg.brightness, prob=p),
        RandGaussianSmoothd(keys, sigma_x=tuple(cfg.blur_sigma), sigma_y=tuple(cfg.blur_sigma),
                            sigma_z=(0.0, 0.5), prob=cfg.blur_prob),
        RandGaussianNoised(keys, prob=p, mean=0.0, std=cfg.noise_std),
        RandMissingSectiond(keys, prob=cfg.missing_section_prob),
        RandSectionBlurd(keys, prob=cfg.section_blur_prob),
        RandMisalignd([image_key, *label_keys], prob=cfg.misalign_prob, allow_missing_keys=True),
    ]


def random_inplane_affine(image: torch.Tensor, label: torch.Tensor, cfg: AugmentConfig,
                          generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random in-plane rotation and zoom of a source batch, on its own device (one draw per sample, the same for
    every section): bilinear for the image, nearest for the labels, reflection at the borders.

    A batched 2D ``grid_sample`` over all sections costs about a millisecond per batch, where MONAI's
    ``RandAffined`` (3D grid, per sample) took 25 ms per patch in the CPU loader.

    Args:
        image: ``(B, 1, Z, Y, X)``.
        label: ``(B, 1, Z, Y, X)`` 0/1.
        cfg: ``affine_prob``, ``rotate`` (degrees) and ``zoom`` (fraction).

    Returns:
        The transformed ``(image, label)``.
    """
    if cfg.affine_prob <= 0 or (cfg.rotate <= 0 and cfg.zoom <= 0):
        return image, label
    b, c, z, h, w = image.shape
    dev = image.device
    u = torch.rand((b, 4), generator=generator, device=dev, dtype=torch.float32)
    on = (u[:, 0] < cfg.affine_prob).float()
    angle = (2 * u[:, 1] - 1) * math.radians(cfg.rotate) * on
    sy = 1 + (2 * u[:, 2] - 1) * cfg.zoom * on
    sx = 1 + (2 * u[:, 3] - 1) * cfg.zoom * on
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output -> input mapping in pixel units about the centre, expressed in affine_grid's normalised coordinates
    # (x, y order): theta = D^-1 (R S^-1) D with D = diag(w, h) / 2, so non-square sections rotate correctly
    a = torch.stack([torch.stack([cos / sx, -sin / sy * (h / w)], -1),
                     torch.stack([sin / sx * (w / h), cos / sy], -1)], -2)
    theta = torch.cat([a, torch.zeros(b, 2, 1, device=dev)], -1)
    theta = theta.repeat_interleave(z, dim=0)  # one 2D transform per section, the same within a sample
    grid = F.affine_grid(theta, (b * z, c, h, w), align_corners=False)

    def warp(x, mode):
        flat = x.transpose(1, 2).reshape(b * z, c, h, w).float()
        out = F.grid_sample(flat, grid, mode=mode, padding_mode="reflection", align_corners=False)
        return out.reshape(b, z, c, h, w).transpose(1, 2).to(x.dtype)

    return warp(image, "bilinear"), warp(label, "nearest")


def build_transforms(cfg: AugmentConfig, voxel_size, patch_size, intensity: bool) -> Compose:
    """Loader transforms: geometric (+ source intensity when ``intensity``)."""
    ts = geometric_transforms(cfg, voxel_size, patch_size)
    if intensity:
        ts += source_intensity_transforms(cfg)
    return Compose(ts)


def reseed(transform: Compose, seed: int, index: int) -> None:
    """Make the random draws of ``transform`` a function of (seed, index) only."""
    transform.set_random_state(seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))


def strong_intensity_augment(x: torch.Tensor, cfg: AugmentConfig, generator: Optional[torch.Generator] = None
                             ) -> torch.Tensor:
    """Random per-sample brightness, contrast, gamma, noise and blur of a normalised batch, on its own device.

    Args:
        x: ``(B, 1, Z, Y, X)`` normalised images.
        cfg: Ranges (``contrast``, ``brightness``, ``gamma``, ``noise_std``, ``blur_prob``, ``blur_sigma``).
        generator: Optional generator on ``x.device`` for reproducibility.

    Returns:
        A tensor like ``x``. Every sample gets its own parameters; the same output feeds both masked views.
    """
    b = x.shape[0]
    dev, dt = x.device, torch.float32
    x = x.float()

    def uniform(lo, hi):
        return torch.rand((b, 1, 1, 1, 1), device=dev, dtype=dt, generator=generator) * (hi - lo) + lo

    # gamma on the per-sample min-max range, keeping mean and std (like MONAI's retain_stats)
    lo = x.amin(dim=(1, 2, 3, 4), keepdim=True)
    hi = x.amax(dim=(1, 2, 3, 4), keepdim=True)
    mean, std = x.mean(dim=(1, 2, 3, 4), keepdim=True), x.std(dim=(1, 2, 3, 4), keepdim=True)
    g = torch.exp(uniform(float(np.log(cfg.gamma[0])), float(np.log(cfg.gamma[1]))))
    y = ((x - lo) / (hi - lo + 1e-6)).clamp_min(0) ** g
    y = (y - y.mean(dim=(1, 2, 3, 4), keepdim=True)) / (y.std(dim=(1, 2, 3, 4), keepdim=True) + 1e-6) * std + mean
    y = y * uniform(*cfg.contrast) + uniform(-cfg.brightness, cfg.brightness)
    if cfg.blur_prob > 0:
        do_blur = torch.rand(b, device=dev, generator=generator) < cfg.blur_prob
        if bool(do_blur.any()):
            sigma = float(uniform(*cfg.blur_sigma).mean())
            blurred = _blur2d(y.reshape(-1, *y.shape[2:]), sigma).reshape(y.shape)
            y = torch.where(do_blur.view(b, 1, 1, 1, 1), blurred, y)
    noise = torch.randn(y.shape, device=dev, dtype=dt, generator=generator)
    y = y + noise * uniform(0.0, cfg.noise_std)
    return y
