"""Imaging styles of the synthetic domains: :class:`DomainStyle`, the source and target presets, interpolation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from ...errors import InputError

Triple = tuple[float, float, float]

# Style fields interpolated in log space (positive scales) rather than linearly.
_GEOMETRIC = ("contrast", "gamma", "noise_std", "blur_sigma_nm", "texture_scale_nm", "distractor_density")
# Clamp ranges of linearly interpolated fields, so that shift > 1 stays physical.
_LINEAR_RANGE = {
    "brightness": (0.15, 0.85),
    "shot_noise": (0.0, 0.5),
    "texture_strength": (0.0, 0.4),
    "cristae_contrast": (0.0, 0.9),
    "membrane_contrast": (0.05, 0.9),
    "matrix_intensity": (0.4, 1.0),
    "section_jitter": (0.0, 0.2),
}


@dataclass(frozen=True)
class DomainStyle:
    """How a "microscope" images a scene. Intensities are relative to cytoplasm (= 1) before display mapping.

    Attributes:
        name: Label stored in metadata.
        voxel_size: Voxel size (z, y, x) in nm of the rendered grid.
        brightness: Display grey level of cytoplasm in [0, 1] (before gamma).
        contrast: Display gain of deviations from cytoplasm (1 = source).
        gamma: Display gamma applied to [0, 1] grey levels (> 1 darkens mid-tones).
        noise_std: Std of additive Gaussian noise in [0, 1] grey units.
        shot_noise: Poisson-like noise: std ``shot_noise * sqrt(grey)`` (0 = off).
        blur_sigma_nm: Isotropic Gaussian point-spread sigma in nm.
        texture_scale_nm: Grain (Gaussian sigma, nm) of the cytoplasm texture; a second octave at 3x this
            scale.
        texture_strength: Relative amplitude of the cytoplasm texture.
        cristae_contrast: Darkness of cristae stripes relative to the matrix (0 = invisible).
        membrane_contrast: Darkness of cell, mitochondrial and vesicle membranes (0 = invisible).
        matrix_intensity: Mitochondrial matrix intensity relative to cytoplasm (< 1 = darker).
        distractor_density: Dark non-mitochondrial blobs (dense-core vesicles, lipid droplets) per um^3.
        section_jitter: Std of a per-section brightness offset (ssTEM section thickness variation).
    """

    name: str
    voxel_size: Triple
    brightness: float
    contrast: float
    gamma: float
    noise_std: float
    shot_noise: float
    blur_sigma_nm: float
    texture_scale_nm: float
    texture_strength: float
    cristae_contrast: float
    membrane_contrast: float
    matrix_intensity: float
    distractor_density: float
    section_jitter: float

    def interpolate(self, other: "DomainStyle", t: float, name: Optional[str] = None) -> "DomainStyle":
        """Style ``t`` of the way from ``self`` (t=0) to ``other`` (t=1); ``t > 1`` extrapolates (clamped).

        Positive scales (voxel size, contrast, gamma, noise, blur, texture scale, distractor density) are
        interpolated geometrically so that they stay positive when extrapolated; the others linearly with
        clamping.
        """
        t = float(t)
        values: dict = {"name": name or (other.name if t == 1 else f"{self.name}->{other.name}@{t:g}")}
        values["voxel_size"] = tuple(
            round(float(a * (b / a) ** t), 4) for a, b in zip(self.voxel_size, other.voxel_size))
        for f in dataclasses.fields(self):
            if f.name in ("name", "voxel_size"):
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in _GEOMETRIC:
                v = a * (b / a) ** t
            else:
                lo, hi = _LINEAR_RANGE[f.name]
                v = min(hi, max(lo, a + (b - a) * t))
            values[f.name] = round(float(v), 6)
        return DomainStyle(**values)

    def to_dict(self) -> dict:
        """JSON-able dict of all fields."""
        d = dataclasses.asdict(self)
        d["voxel_size"] = list(d["voxel_size"])
        return d


#: ssTEM-like source: anisotropic 40x8x8 nm, crisp, high-contrast cristae and membranes, fine texture, and enough
#: dark non-mitochondrial distractors that a source-only model learns shape and membranes, not just "dark".
SOURCE_STYLE = DomainStyle(
    name="source", voxel_size=(40.0, 8.0, 8.0), brightness=0.62, contrast=1.0, gamma=1.0, noise_std=0.03,
    shot_noise=0.0, blur_sigma_nm=3.0, texture_scale_nm=9.0, texture_strength=0.09, cristae_contrast=0.55,
    membrane_contrast=0.6, matrix_intensity=0.7, distractor_density=2.0, section_jitter=0.015,
)

#: FIB-SEM-like target: 25x10x10 nm, lower contrast, gamma 1.4, more noise and blur, coarser texture, faint
#: cristae, weaker membranes, a matrix nearly as bright as the cytoplasm and more dark distractors. (Chosen so that
#: a source-only model transfers only partly - about 35% target IoU - leaving room for adaptation.)
TARGET_STYLE = DomainStyle(
    name="target", voxel_size=(25.0, 10.0, 10.0), brightness=0.55, contrast=0.7, gamma=1.4, noise_std=0.035,
    shot_noise=0.03, blur_sigma_nm=8.0, texture_scale_nm=20.0, texture_strength=0.12, cristae_contrast=0.25,
    membrane_contrast=0.5, matrix_intensity=0.9, distractor_density=3.0, section_jitter=0.0,
)


def style_for_shift(shift: float) -> DomainStyle:
    """Target style of a domain-shift strength: 0 = source, 1 = :data:`TARGET_STYLE`, > 1 exaggerated."""
    if not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift >= 0):
        raise InputError(f"shift {shift!r}: expected a finite number >= 0 "
                         "(0 = no domain gap, 1 = default target)")
    if shift == 0:
        return dataclasses.replace(SOURCE_STYLE, name="target@0")
    if shift == 1:
        return TARGET_STYLE
    return SOURCE_STYLE.interpolate(TARGET_STYLE, shift, name=f"target@{shift:g}")
