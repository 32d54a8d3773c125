"""Synthetic EM-like domains: a labelled source volume and a shifted target volume, without downloads.

The generator works in two steps so that one piece of "tissue" can be imaged by different "microscopes":

1. :func:`make_scene` draws the tissue in **world units** (nm, z, y, x): Voronoi-like cells with wavy
   membranes, mitochondria (bent capsules with a radius, a cristae period and a cristae layout; some pairs
   touching), small vesicles and dark distractor blobs (dense-core vesicles, lipid droplets). Nothing here
   depends on a voxel grid.
2. :func:`render_scene` images a scene with a :class:`DomainStyle` on that style's voxel grid: it evaluates
   the geometry at voxel centres (per-object bounding boxes, a k-d tree for cells, never Python loops over
   voxels), adds cytoplasm texture at the style's grain, blurs (PSF, in nm), applies brightness, contrast and
   gamma and adds Gaussian and shot noise. Labels are the exact geometry (uint32 instances, 1..N).

A domain pair (:func:`make_domain_pair`) is two *different* pieces of tissue of the same world extent, the
source rendered with :data:`SOURCE_STYLE` (ssTEM-like, 40x8x8 nm, crisp, high-contrast cristae) and the target
with ``SOURCE_STYLE.interpolate(TARGET_STYLE, shift)`` (FIB-SEM-like 25x10x10 nm, low contrast, gamma, noise,
blur, coarser texture, faint cristae, many more dark distractors). ``shift=0`` gives a target in the source
style, ``shift=1`` the target preset, ``shift>1`` an exaggerated gap. Per-volume z-scoring removes
brightness/contrast differences but not the texture, blur, noise, cristae and distractor differences, so a
source-only model degrades on the target while membranes and shapes stay recognisable.

Everything is deterministic by seed (numpy ``Generator`` from a ``SeedSequence`` only).
:func:`sample_data` writes the pair as OME-Zarr (``masktwins-bio sample-data DIR``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .._version import __version__
from ..errors import InputError

__all__ = [
    "DomainStyle",
    "SOURCE_STYLE",
    "TARGET_STYLE",
    "SIZES",
    "style_for_shift",
    "Mitochondrion",
    "Scene",
    "make_scene",
    "render_scene",
    "generate_volume",
    "make_domain_pair",
    "sample_data",
]

Triple = tuple[float, float, float]

#: Size presets: shape (z, y, x) in voxels of the SOURCE grid. The target covers the same extent in nm.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (8, 64, 64),
    "small": (16, 128, 128),
    "demo": (32, 192, 192),
    "large": (64, 512, 512),
}

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


# ----------------------------------------------------------------------------------------------------- scene


@dataclass
class Mitochondrion:
    """One mitochondrion in world coordinates (nm, z, y, x).

    Attributes:
        centerline: (k, 3) polyline of the (slightly bent) long axis.
        radius: Mean radius in nm.
        radius_wobble: (amplitude, frequency, phase) of the radius along the axis (relative amplitude).
        cristae_period: Spacing of cristae along the axis in nm.
        cristae_phase: Offset of the cristae pattern in nm.
        cristae_offset: (n,) per-crista centre across the width, in units of the radius.
        cristae_halflength: (n,) per-crista half extent across the width, in units of the radius.
        cristae_wave: (amplitude nm, wavelength in radii, phase) bending the cristae.
    """

    centerline: np.ndarray
    radius: float
    radius_wobble: tuple[float, float, float]
    cristae_period: float
    cristae_phase: float
    cristae_offset: np.ndarray
    cristae_halflength: np.ndarray
    cristae_wave: tuple[float, float, float]

    @property
    def segment_lengths(self) -> np.ndarray:
        return np.linalg.norm(np.diff(self.centerline, axis=0), axis=1)

    @property
    def length(self) -> float:
        """Tip-to-tip length in nm (axis length + 2 radii)."""
        return float(self.segment_lengths.sum() + 2 * self.radius)

    def bounds(self, pad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """World bounding box (lo, hi) in nm, padded by ``pad`` nm."""
        r = self.radius * (1 + abs(self.radius_wobble[0])) + pad
        return self.centerline.min(axis=0) - r, self.centerline.max(axis=0) + r

    def locate(self, points: np.ndarray):
        """Distance and axial/transverse coordinates of ``points`` (n, 3) nm.

        Returns:
            ``(depth, s, t)``: signed depth inside the membrane surface in nm (> 0 inside), arc length of the
            closest axis point in nm (< 0 or > axis length in the end caps), and the transverse coordinate in
            units of the radius (in-plane direction where the axis is not vertical).
        """
        best_d2 = np.full(len(points), np.inf, dtype=np.float32)
        s = np.zeros(len(points), dtype=np.float32)
        t = np.zeros(len(points), dtype=np.float32)
        cum = np.concatenate([[0.0], np.cumsum(self.segment_lengths)])
        for j in range(len(self.centerline) - 1):
            a, b = self.centerline[j], self.centerline[j + 1]
            ab = (b - a).astype(np.float32)
            ll = float(ab @ ab)
            rel = (points - a).astype(np.float32)
            q_raw = rel @ ab / max(ll, 1e-6)
            q = np.clip(q_raw, 0.0, 1.0)
            v = rel - q[:, None] * ab[None, :]
            d2 = np.einsum("ij,ij->i", v, v)
            upd = d2 < best_d2
            best_d2 = np.where(upd, d2, best_d2)
            # beyond the ends (the caps) the arc length continues past 0 / the axis length
            q_s = np.clip(q_raw, None if j == 0 else 0.0, None if j == len(self.centerline) - 2 else 1.0)
            s = np.where(upd, cum[j] + q_s * math.sqrt(ll), s)
            e1 = _transverse_axis(ab)
            t = np.where(upd, v @ e1, t)
        amp, freq, phase = self.radius_wobble
        length = max(float(cum[-1]), 1.0)
        r = self.radius * (1 + amp * np.sin(2 * np.pi * freq * np.clip(s, 0, length) / length + phase))
        return (r - np.sqrt(best_d2)).astype(np.float32), s, (t / r).astype(np.float32)


def _cross(a, b) -> np.ndarray:
    """3-vector cross product (np.cross has a large per-call overhead)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _transverse_axis(axis: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to ``axis``, in the (y, x) plane when possible (z, y, x order)."""
    a = axis / (math.sqrt(float(axis @ axis)) + 1e-9)
    e = _cross(a, (1.0, 0.0, 0.0))  # perpendicular to the axis and to z
    if math.sqrt(float(e @ e)) < 0.2:  # nearly vertical axis
        e = _cross(a, (0.0, 0.0, 1.0))
    return (e / math.sqrt(float(e @ e))).astype(np.float32)


@dataclass
class Scene:
    """A piece of synthetic tissue in world coordinates (nm, z, y, x), independent of any voxel grid.

    Attributes:
        extent_nm: Size (z, y, x) of the imaged box in nm; the box starts at the origin.
        cell_seeds: (n, 3) Voronoi seeds of the cells (also outside the box, so border cells look natural).
        cell_offsets: (n,) relative cytoplasm brightness offset per cell.
        warp: (3, k, 5) sinusoidal warp of the cell membranes: per output axis k terms (wave vector z, y, x in
            rad/nm, phase, amplitude nm).
        mitochondria: The mitochondria; instance id = index + 1 before relabelling.
        touching_pairs: Index pairs of mitochondria placed in contact.
        vesicles: (n, 4) centre (z, y, x) and radius of small clear vesicles, nm.
        blobs: (n, 4) centre and radius of dark distractor blobs, nm.
        blob_kinds: (n,) 0 = dense-core vesicle (dark core, light halo), 1 = lipid droplet (uniform dark).
    """

    extent_nm: Triple
    cell_seeds: np.ndarray
    cell_offsets: np.ndarray
    warp: np.ndarray
    mitochondria: list[Mitochondrion] = field(default_factory=list)
    touching_pairs: list[tuple[int, int]] = field(default_factory=list)
    vesicles: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    blob_kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    _tree: Optional[cKDTree] = field(default=None, init=False, repr=False, compare=False)
    _gaps: Optional[np.ndarray] = field(default=None, init=False, repr=False, compare=False)

    def warped(self, points: np.ndarray) -> np.ndarray:
        """Apply the membrane warp to (n, 3) world points (nm)."""
        k = self.warp.shape[1]
        waves = self.warp[:, :, :3].reshape(-1, 3).T.astype(np.float32)  # (3, 3k)
        phases = self.warp[:, :, 3].reshape(-1).astype(np.float32)
        amps = np.zeros((3 * k, 3), dtype=np.float32)  # term -> output axis
        for axis in range(3):
            amps[axis * k:(axis + 1) * k, axis] = self.warp[axis, :, 4]
        pts = points.astype(np.float32, copy=False)
        return pts + np.sin(pts @ waves + phases) @ amps

    def cells(self, points: np.ndarray):
        """Cell index and distance to the nearest cell membrane (nm) of (n, 3) world points."""
        if self._tree is None:
            self._tree = cKDTree(self.cell_seeds)
        d, i = self._tree.query(self.warped(points), k=2)
        gap = np.linalg.norm(self.cell_seeds[i[:, 0]] - self.cell_seeds[i[:, 1]], axis=1)
        # exact distance to the bisector plane of the two nearest seeds (in warped space)
        dist = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * np.maximum(gap, 1e-6))
        return i[:, 0], dist.astype(np.float32)


# Scene parameters (nm): chosen to resemble neuropil at ~10 nm resolution.
_CELL_SPACING = 850.0
_MITO_LENGTH = (300.0, 1500.0)
_MITO_RADIUS = (75.0, 200.0)
_VESICLE_DENSITY = 120.0  # per um^3
_VESICLE_RADIUS = (15.0, 25.0)


def _random_direction(rng: np.random.Generator, tilted: bool) -> np.ndarray:
    """Unit axis (z, y, x): mostly in-plane; ``tilted`` ones up to 60 degrees through z."""
    phi = rng.uniform(0, 2 * np.pi)
    elev = np.deg2rad(rng.uniform(15, 60) if tilted else rng.uniform(-12, 12))
    elev *= 1 if rng.random() < 0.5 else -1
    return np.array([np.sin(elev), np.cos(elev) * np.sin(phi), np.cos(elev) * np.cos(phi)])


def _random_cristae(rng: np.random.Generator, axis_len: float) -> dict:
    """Random cristae layout (period, phase, per-crista position and extent across the width, bending)."""
    period = rng.uniform(35, 60)
    n = int(axis_len / period) + 8
    return {
        "cristae_period": float(period), "cristae_phase": float(rng.uniform(0, period)),
        "cristae_offset": rng.uniform(-0.45, 0.45, n), "cristae_halflength": rng.uniform(0.35, 1.0, n),
        "cristae_wave": (float(rng.uniform(0, 12)), float(rng.uniform(1.0, 3.0)), float(rng.uniform(0, 6.3))),
    }


def _random_wobble(rng: np.random.Generator) -> tuple[float, float, float]:
    return float(rng.uniform(0.0, 0.1)), float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 6.3))


def _make_mito(rng: np.random.Generator, centre, direction, length: float, radius: float) -> Mitochondrion:
    """A mitochondrion of tip-to-tip ``length`` nm along ``direction``; its axis is a slightly bent curve."""
    axis_len = max(length - 2 * radius, 1.0)
    normal = _cross(direction, rng.normal(size=3))
    normal /= np.linalg.norm(normal) + 1e-9
    bend = rng.uniform(-0.12, 0.12) * axis_len
    p0, p2 = centre - direction * axis_len / 2, centre + direction * axis_len / 2
    p1 = centre + normal * bend
    u = np.linspace(0, 1, 7)[:, None]
    centerline = (1 - u) ** 2 * p0 + 2 * u * (1 - u) * p1 + u ** 2 * p2  # quadratic Bezier
    return Mitochondrion(centerline=centerline, radius=float(radius), radius_wobble=_random_wobble(rng),
                         **_random_cristae(rng, axis_len))


def _partner(m: Mitochondrion, offset: np.ndarray, rng: np.random.Generator, radius: float) -> Mitochondrion:
    """A mitochondrion running alongside ``m`` (axis shifted by ``offset`` nm, ends randomly trimmed), with
    its own radius and cristae."""
    k = len(m.centerline)
    lo, hi = int(rng.integers(0, 2)), k - int(rng.integers(0, 2))  # so the pair is not a perfect copy
    centerline = m.centerline[lo:hi] + offset
    axis_len = float(np.linalg.norm(np.diff(centerline, axis=0), axis=1).sum())
    return Mitochondrion(centerline=centerline, radius=float(radius), radius_wobble=_random_wobble(rng),
                         **_random_cristae(rng, axis_len))


def _too_close(group: Sequence[Mitochondrion], dense: Sequence[np.ndarray], reach: Sequence[float],
               gap: float) -> bool:
    """Whether any of ``group`` comes within ``gap`` nm of the placed mitochondria (densified axes, radii)."""
    for g in group:
        pg = _densify(g.centerline)
        rg = g.radius * (1 + g.radius_wobble[0])
        lo, hi = pg.min(0) - rg - gap, pg.max(0) + rg + gap
        for pm, rm in zip(dense, reach):
            if np.any(pm.max(0) + rm < lo) or np.any(pm.min(0) - rm > hi):
                continue  # bounding boxes apart
            d = np.sqrt(((pg[:, None, :] - pm[None, :, :]) ** 2).sum(-1)).min()
            if d - rg - rm < gap:
                return True
    return False


def _densify(line: np.ndarray, step: float = 20.0) -> np.ndarray:
    """Points along a polyline at most ~``step`` nm apart."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    n = max(2, int(seg.sum() / step) + 2)
    s = np.linspace(0, seg.sum(), n)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return np.stack([np.interp(s, cum, line[:, a]) for a in range(3)], axis=1)


def _inside_one_cell(scene: Scene, m: Mitochondrion, margin: float) -> bool:
    """Whether a mitochondrion (axis and a ring of surface points) lies in one cell, ``margin`` nm inside."""
    axis = _densify(m.centerline, 40.0)
    d = np.diff(m.centerline, axis=0)
    e1 = _transverse_axis(d[len(d) // 2])
    e2 = _cross(d[len(d) // 2] / np.linalg.norm(d[len(d) // 2]), e1)
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts = np.concatenate([axis] + [axis + m.radius * (np.cos(a) * e1 + np.sin(a) * e2) for a in angles])
    idx, dist = scene.cells(pts)
    return bool((idx == idx[0]).all() and (dist[len(axis):] > margin).all())


def _fraction_inside(mitos: Sequence[Mitochondrion], points: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(points), dtype=bool)
    for m in mitos:
        lo, hi = m.bounds()
        sel = np.all((points >= lo) & (points <= hi), axis=1)
        if sel.any():
            depth, _, _ = m.locate(points[sel])
            inside[np.flatnonzero(sel)[depth > 0]] = True
    return inside


def make_scene(extent_nm: Sequence[float], seed=0,
               distractor_density: float = SOURCE_STYLE.distractor_density,
               foreground_fraction: Optional[float] = None, touching_fraction: float = 0.35) -> Scene:
    """Draw a piece of synthetic tissue (world coordinates, nm).

    Args:
        extent_nm: Box size (z, y, x) in nm.
        seed: Integer seed or ``numpy.random.SeedSequence``.
        distractor_density: Dark distractor blobs per um^3 (see :class:`DomainStyle`).
        foreground_fraction: Target fraction of the box inside mitochondria; default drawn in [0.06, 0.09].
        touching_fraction: Probability that a mitochondrion gets a touching partner (the first one always
            does).

    Returns:
        The :class:`Scene`.
    """
    extent = np.asarray(extent_nm, dtype=float)
    if extent.shape != (3,) or not np.all(extent > 0):
        raise InputError(f"extent {tuple(extent_nm)}: expected three positive sizes (z, y, x) in nm")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    rng_cells, rng_mito, rng_ves, rng_blob, rng_mc = (np.random.default_rng(s) for s in ss.spawn(5))

    # cells: jittered Poisson-disk-like seeds in the box padded by one spacing
    lo, hi = -_CELL_SPACING, extent + _CELL_SPACING
    n_cells = max(4, int(np.prod(hi - lo) / _CELL_SPACING ** 3 * 1.3))
    seeds: list[np.ndarray] = []
    for _ in range(n_cells * 30):
        p = rng_cells.uniform(lo, hi)
        if all(np.linalg.norm(p - q) > 0.65 * _CELL_SPACING for q in seeds):
            seeds.append(p)
            if len(seeds) >= n_cells:
                break
    cell_seeds = np.asarray(seeds)
    offsets = rng_cells.normal(0, 0.035, len(cell_seeds))
    offsets[rng_cells.random(len(cell_seeds)) < 0.15] -= 0.08  # a few darker (e.g. glial) profiles
    warp = np.zeros((3, 3, 5))
    for axis in range(3):
        for k in range(3):
            wavelength = rng_cells.uniform(500, 1600)
            direction = _random_direction(rng_cells, tilted=rng_cells.random() < 0.5)
            warp[axis, k, :3] = direction * 2 * np.pi / wavelength
            warp[axis, k, 3] = rng_cells.uniform(0, 2 * np.pi)
            warp[axis, k, 4] = rng_cells.uniform(30, 90)
    scene = Scene(tuple(float(v) for v in extent), cell_seeds, offsets, warp)

    # mitochondria until the target volume fraction is reached (Monte-Carlo estimate, clipped to the box)
    target = float(rng_mito.uniform(0.06, 0.09) if foreground_fraction is None else foreground_fraction)
    box_volume = float(np.prod(extent))
    mean_mito_volume = np.pi * np.mean(_MITO_RADIUS) ** 2 * np.mean(_MITO_LENGTH)
    expected = max(1.0, target * box_volume / mean_mito_volume)  # mitochondria needed, roughly
    # Monte-Carlo points: ~100 per average mitochondrion
    mc = rng_mc.uniform(0, extent, size=(int(np.clip(100 * box_volume / mean_mito_volume, 6000, 300_000)), 3))
    inside = np.zeros(len(mc), dtype=bool)
    mitos: list[Mitochondrion] = []
    dense: list[np.ndarray] = []  # densified centerlines, for the spacing test
    reach: list[float] = []
    pairs: list[tuple[int, int]] = []
    max_attempts = int(max(400, 25 * expected))
    fit = 1.0  # size factor, reduced when objects are too big for a small box
    for attempt in range(max_attempts):
        if inside.mean() >= target:
            break
        relax = attempt > 0.4 * max_attempts  # after many failures accept crossing cell membranes
        shrink = 1.0 if attempt < 0.15 * max_attempts else 0.6
        # small boxes get proportionally smaller objects so one object cannot fill the box
        length = rng_mito.uniform(_MITO_LENGTH[0], _MITO_LENGTH[1] * shrink)
        length = fit * min(length, 0.8 * extent[1:].max())
        radius = min(fit * rng_mito.uniform(*_MITO_RADIUS), 0.3 * length, 0.25 * extent[1:].min())
        direction = _random_direction(rng_mito, tilted=rng_mito.random() < 0.25)
        centre = rng_mito.uniform(0, extent)
        cand = _make_mito(rng_mito, centre, direction, length, radius)
        group = [cand]
        if not mitos or rng_mito.random() < touching_fraction:
            r2 = min(rng_mito.uniform(*_MITO_RADIUS), 0.25 * extent[1:].min())
            d = np.diff(cand.centerline, axis=0)[len(cand.centerline) // 2 - 1]
            e1 = _transverse_axis(d)
            # touching: centre distance slightly below the sum of radii so that the labels are in contact
            off = e1 * (cand.radius + r2 - rng_mito.uniform(5, 15)) * (1 if rng_mito.random() < 0.5 else -1)
            group.append(_partner(cand, off, rng_mito, r2))
        if mitos and _too_close(group, dense, reach, 25.0):
            continue
        if not relax and not all(_inside_one_cell(scene, g, margin=20.0) for g in group):
            continue
        gains = [_fraction_inside([g], mc) for g in group]
        own = [np.pi * g.radius ** 2 * (g.length - 2 * g.radius / 3) / box_volume * len(mc) for g in group]
        if not all(g.sum() >= max(3.0, 0.2 * o) for g, o in zip(gains, own)):  # mostly outside the box
            continue
        gain = np.logical_or.reduce(gains)
        if attempt < 0.75 * max_attempts and (inside | gain).mean() > max(1.5 * target, target + 0.03):
            fit = max(0.3, 0.85 * fit)  # would overshoot the target fraction: try smaller objects
            continue
        base = len(mitos)
        for g in group:
            mitos.append(g)
            dense.append(_densify(g.centerline))
            reach.append(g.radius * (1 + g.radius_wobble[0]))
        if len(group) == 2:
            pairs.append((base, base + 1))
        inside |= gain
    scene.mitochondria, scene.touching_pairs = mitos, pairs

    def _clear_of_mitos(centres: np.ndarray, radii: np.ndarray, pad: float) -> np.ndarray:
        keep = np.ones(len(centres), dtype=bool)
        for m in mitos:
            lo_b, hi_b = m.bounds(pad + radii.max(initial=0))
            sel = np.flatnonzero(np.all((centres >= lo_b) & (centres <= hi_b), axis=1))
            if len(sel):
                depth, _, _ = m.locate(centres[sel])
                keep[sel[depth > -(radii[sel] + pad)]] = False
        return keep

    # vesicles: half spread out, half in a few clusters (synapse-like)
    vol_um3 = float(np.prod(extent)) / 1e9
    n_ves = rng_ves.poisson(_VESICLE_DENSITY * vol_um3)
    n_clusters = max(1, int(round(vol_um3 * 0.8)))
    cluster_centres = rng_ves.uniform(0, extent, size=(n_clusters, 3))
    clustered = rng_ves.random(n_ves) < 0.5
    centres = rng_ves.uniform(0, extent, size=(n_ves, 3))
    which = rng_ves.integers(0, n_clusters, n_ves)
    spread = rng_ves.normal(0, 180, size=(int(clustered.sum()), 3))
    centres[clustered] = cluster_centres[which[clustered]] + spread
    radii = rng_ves.uniform(*_VESICLE_RADIUS, n_ves)
    keep = _clear_of_mitos(centres, radii, 15.0)
    scene.vesicles = np.column_stack([centres, radii])[keep]

    # dark distractors: dense-core vesicles (small) and lipid droplets (large, uniform)
    pad = 200.0
    n_blobs = rng_blob.poisson(distractor_density * float(np.prod(extent + 2 * pad)) / 1e9)
    kinds = (rng_blob.random(n_blobs) < 0.4).astype(np.int8)
    radii = np.where(kinds == 1, rng_blob.uniform(90, 230, n_blobs), rng_blob.uniform(35, 60, n_blobs))
    centres = rng_blob.uniform(-pad, extent + pad, size=(n_blobs, 3))
    keep = _clear_of_mitos(centres, radii, 20.0)
    scene.blobs, scene.blob_kinds = np.column_stack([centres, radii])[keep], kinds[keep]
    return scene


# ---------------------------------------------------------------------------------------------------- render


def _centres(shape, voxel_size, z0: int = 0, z1: Optional[int] = None) -> np.ndarray:
    """World coordinates (n, 3) nm of the voxel centres of z-slices ``z0:z1``."""
    z1 = shape[0] if z1 is None else z1
    axes = [(np.arange(a, b) + 0.5) * v for a, b, v in zip((z0, 0, 0), (z1, shape[1], shape[2]), voxel_size)]
    grid = np.meshgrid(*[a.astype(np.float32) for a in axes], indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _bbox(lo, hi, shape, voxel_size) -> Optional[tuple[slice, ...]]:
    """Voxel slices of the world box [lo, hi] nm, clipped to the grid; None if empty."""
    vs = np.asarray(voxel_size)
    a = np.maximum(np.floor(np.asarray(lo) / vs - 0.5).astype(int), 0)
    b = np.minimum(np.ceil(np.asarray(hi) / vs - 0.5).astype(int) + 1, shape)
    if np.any(b <= a):
        return None
    return tuple(slice(int(i), int(j)) for i, j in zip(a, b))


def _box_centres(box, voxel_size) -> np.ndarray:
    axes = [((np.arange(s.start, s.stop) + 0.5) * v).astype(np.float32) for s, v in zip(box, voxel_size)]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Gaussian-filtered white noise with unit std (float32)."""
    x = rng.standard_normal(shape, dtype=np.float32)
    x = ndimage.gaussian_filter(x, sigma=sigma_vox, mode="wrap", truncate=3.0)
    return x / max(float(x.std()), 1e-6)


def _gauss(x, w):
    return np.exp(-0.5 * (x / w) ** 2)


def _line_width(nm: float, voxel_size: Sequence[float], frac: float = 0.45) -> float:
    """Line profile sigma: ``nm``, but at least ``frac`` in-plane voxels so thin lines do not alias away."""
    return max(nm, frac * min(voxel_size[1:]))


def _cells_on_grid(scene: Scene, shape, vs, z0: int, z1: int, factor: int):
    """Cell index and membrane distance (nm) of the voxels of z-slices ``z0:z1``.

    The k-d tree is queried only on nodes every ``factor`` voxels in-plane, for the 4 nearest seeds; each
    voxel then picks its two nearest seeds exactly among the candidates of its nearest node, in warped
    coordinates interpolated linearly between nodes (the warp is smooth: wavelengths >= 500 nm).
    """
    ny, nx = shape[1], shape[2]
    # node voxel indices, one past the edge so that every voxel lies between two nodes
    gy, gx = np.arange(0, ny + factor, factor), np.arange(0, nx + factor, factor)
    axes = [((np.arange(z0, z1) + 0.5) * vs[0]).astype(np.float32),
            ((gy + 0.5) * vs[1]).astype(np.float32), ((gx + 0.5) * vs[2]).astype(np.float32)]
    grid = np.meshgrid(*axes, indexing="ij")
    warped = scene.warped(np.stack([g.ravel() for g in grid], axis=1))
    k = min(4, len(scene.cell_seeds))
    if scene._tree is None:
        scene._tree = cKDTree(scene.cell_seeds)
    _, cand = scene._tree.query(warped, k=k)
    sub = (z1 - z0, len(gy), len(gx))
    warped = warped.reshape(sub + (3,))
    cand = cand.reshape(sub + (k,))
    if factor > 1:
        iy, ix = np.arange(ny) / factor, np.arange(nx) / factor
        jy, jx = iy.astype(int), ix.astype(int)
        wy = (iy - jy).astype(np.float32)[None, :, None, None]
        wx = (ix - jx).astype(np.float32)[None, None, :, None]
        w = warped[:, jy] * (1 - wy) + warped[:, jy + 1] * wy
        warped = w[:, :, jx] * (1 - wx) + w[:, :, jx + 1] * wx
        cand = cand[:, np.round(iy).astype(int)][:, :, np.round(ix).astype(int)]
    else:
        warped, cand = warped[:, :ny, :nx], cand[:, :ny, :nx]
    seeds = scene.cell_seeds.astype(np.float32)
    d2 = np.zeros(cand.shape, dtype=np.float32)  # (z, y, x, k)
    for axis in range(3):
        d2 += (seeds[:, axis][cand] - warped[..., axis, None]) ** 2
    # two smallest of k (argmin twice is much faster than sorting the last axis)
    first = d2.argmin(-1)[..., None]
    d_first = np.take_along_axis(d2, first, -1)[..., 0]
    np.put_along_axis(d2, first, np.inf, -1)
    second = d2.argmin(-1)[..., None]
    d_second = np.take_along_axis(d2, second, -1)[..., 0]
    i1, i2 = np.take_along_axis(cand, first, -1)[..., 0], np.take_along_axis(cand, second, -1)[..., 0]
    gap = _seed_gaps(scene)[i1, i2]
    # exact distance to the bisector plane of the two nearest seeds (in warped space)
    dist = (d_second - d_first) / (2 * np.maximum(gap, 1e-6))
    return i1, dist.astype(np.float32)


def _seed_gaps(scene: Scene) -> np.ndarray:
    """(n, n) float32 distances between the cell seeds (cached on the scene)."""
    if scene._gaps is None:
        s = scene.cell_seeds
        scene._gaps = np.sqrt(((s[:, None, :] - s[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    return scene._gaps


def _splat_vesicles(vesicles: np.ndarray, shape, vs, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Rim and lumen maps (float32, ``shape``) of small spherical vesicles ``(n, 4)`` (centre nm, radius nm).

    All vesicles are drawn at once on a fixed neighbourhood of voxels around their centres (maximum where they
    overlap).
    """
    rim = np.zeros(shape, dtype=np.float32)
    lumen = np.zeros(shape, dtype=np.float32)
    if len(vesicles) == 0:
        return rim, lumen
    vs_a = np.asarray(vs, dtype=np.float32)
    reach = float(vesicles[:, 3].max()) + 3 * width
    half = np.ceil(reach / vs_a).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1).reshape(-1, 3)
    centres = vesicles[:, :3].astype(np.float32)
    idx = np.floor(centres / vs_a).astype(int)[:, None, :] + offsets[None]  # (n, k, 3)
    valid = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=-1)
    d = np.linalg.norm((idx + 0.5) * vs_a - centres[:, None, :], axis=-1)
    r = vesicles[:, 3:4].astype(np.float32)
    flat = np.ravel_multi_index(tuple(np.where(valid[..., None], idx, 0).transpose(2, 0, 1)), shape)
    np.maximum.at(rim.reshape(-1), flat[valid], _gauss(d - r, width)[valid])
    np.maximum.at(lumen.reshape(-1), flat[valid], np.clip((r - d) / max(width, 1e-3) + 0.5, 0, 1)[valid])
    return rim, lumen


def render_scene(scene: Scene, style: DomainStyle, seed=0, shape: Optional[Sequence[int]] = None,
                 slab_voxels: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Image a scene with a style on the style's voxel grid.

    Args:
        scene: World-coordinate tissue from :func:`make_scene`.
        style: Imaging style; ``style.voxel_size`` (nm, z, y, x) sets the grid.
        seed: Integer seed or ``SeedSequence`` for texture and noise (the geometry comes from the scene).
        shape: Grid shape (z, y, x); default ``round(scene.extent_nm / style.voxel_size)``.
        slab_voxels: Voxels per z-slab for the k-d tree queries (bounds peak memory on large volumes).

    Returns:
        ``(image, instances)``: uint8 (z, y, x) grey image and uint32 (z, y, x) mitochondria instance labels
        with consecutive ids 1..N (0 = background).
    """
    vs = tuple(float(v) for v in style.voxel_size)
    if shape is None:
        shape = tuple(max(1, int(round(e / v))) for e, v in zip(scene.extent_nm, vs))
    shape = tuple(int(s) for s in shape)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    rng_tex, rng_noise = (np.random.default_rng(s) for s in ss.spawn(2))
    inplane = min(vs[1:])

    # --- background: cells, membranes, texture, vesicles
    intensity = np.empty(shape, dtype=np.float32)
    membrane = np.empty(shape, dtype=np.float32)
    w_mem = _line_width(7.0, vs)
    w_ves = _line_width(3.5, vs, 0.35)
    # k-d tree queries on nodes ~32 nm apart in-plane only (9-16x fewer); see _cells_on_grid
    factor = max(1, int(32.0 // inplane))
    step = max(1, slab_voxels // max(1, shape[1] * shape[2]))
    for z0 in range(0, shape[0], step):
        z1 = min(shape[0], z0 + step)
        cell, dist = _cells_on_grid(scene, shape, vs, z0, z1, factor)
        intensity[z0:z1] = 1.0 + scene.cell_offsets[cell]
        membrane[z0:z1] = _gauss(dist, w_mem)
    ves_rim, ves_lumen = _splat_vesicles(scene.vesicles, shape, vs, w_ves)
    sig = np.asarray(style.texture_scale_nm) / np.asarray(vs)
    texture = _smooth_noise(rng_tex, shape, sig) + 0.6 * _smooth_noise(rng_tex, shape, 3 * sig)
    texture *= style.texture_strength / 1.17
    # granular specks (ribosomes, glycogen): the tail of a fine noise field, at the style's grain
    specks = np.clip(_smooth_noise(rng_tex, shape, sig) - 1.8, 0, None)
    intensity *= (1.0 + texture) * (1.0 - 0.5 * np.minimum(specks, 1.0))
    del specks
    intensity += 0.12 * ves_lumen
    mc = style.membrane_contrast
    intensity *= (1.0 - mc * membrane) * (1.0 - 0.8 * mc * ves_rim)
    del membrane, ves_rim, ves_lumen

    # --- dark distractors (per-object bounding boxes)
    for (cz, cy, cx, r), kind in zip(scene.blobs, scene.blob_kinds):
        c = np.array([cz, cy, cx])
        box = _bbox(c - r - 30, c + r + 30, shape, vs)
        if box is None:
            continue
        d = np.linalg.norm(_box_centres(box, vs) - c, axis=1).reshape(tuple(s.stop - s.start for s in box))
        edge = _line_width(5.0, vs)
        occ = np.clip((r - d) / (2 * edge) + 0.5, 0, 1)
        if kind == 0:  # dense-core vesicle: dark core, light halo, thin membrane
            core = np.clip((0.65 * r - d) / (2 * edge) + 0.5, 0, 1)
            value = (1.08 - 0.62 * core) * (1 - 0.7 * mc * _gauss(d - r, w_ves))
            occ = np.maximum(occ, _gauss(d - r, w_ves))
        else:  # lipid droplet: homogeneous, as dark as mitochondrial matrix or darker
            value = style.matrix_intensity * 0.92 * (1 + 0.3 * texture[box])
        intensity[box] = intensity[box] * (1 - occ) + value * occ

    # --- mitochondria (per-object bounding boxes); the deepest object owns a voxel
    labels = np.zeros(shape, dtype=np.uint32)
    depth_best = np.full(shape, -np.inf, dtype=np.float32)
    w_om = _line_width(4.0, vs)
    w_cr = _line_width(5.5, vs)
    edge = 0.5 * inplane
    for idx, m in enumerate(scene.mitochondria):
        box = _bbox(*m.bounds(40.0), shape, vs)
        if box is None:
            continue
        sub = tuple(s.stop - s.start for s in box)
        depth, s, t = (a.reshape(sub) for a in m.locate(_box_centres(box, vs)))
        occ = np.clip(depth / edge + 0.5, 0, 1)
        if not occ.any():
            continue
        # cristae: stripes perpendicular to the axis, each spanning part of the width, slightly bent
        amp, wl, ph = m.cristae_wave
        s_eff = s + m.cristae_phase + amp * np.sin(2 * np.pi * t / wl + ph)
        k = np.floor(s_eff / m.cristae_period + 0.5).astype(int)
        dist = s_eff - k * m.cristae_period
        kk = np.clip(k, 0, len(m.cristae_offset) - 1)
        across = np.clip(1 + (m.cristae_halflength[kk] - np.abs(t - m.cristae_offset[kk])) * 6, 0, 1)
        # no cristae in the end caps: there the arc length is constant and a stripe would cover the whole cap
        axis_len = float(m.segment_lengths.sum())
        in_body = np.clip(np.minimum(s, axis_len - s) / 20 + 1, 0, 1)
        cristae = _gauss(dist, w_cr) * across * in_body * np.clip((depth - 14) / 8, 0, 1)
        interior = style.matrix_intensity * (1 + 0.5 * texture[box]) * (1 - style.cristae_contrast * cristae)
        # double outer membrane: outer at ~4 nm, inner at ~17 nm depth
        rings = np.maximum(_gauss(depth - 4, w_om), 0.85 * _gauss(depth - 17, w_om))
        old = intensity[box]
        intensity[box] = (old * (1 - occ) + interior * occ) * (1 - 1.1 * mc * rings)
        own = (depth > 0) & (depth > depth_best[box])
        depth_best[box] = np.where(own, depth, depth_best[box])
        labels[box] = np.where(own, idx + 1, labels[box])
    del depth_best, texture

    # --- imaging: blur (PSF), display mapping, gamma, noise
    sigma = [style.blur_sigma_nm / v for v in vs]
    if max(sigma) > 0.05:
        intensity = ndimage.gaussian_filter(intensity, sigma=sigma, mode="nearest", truncate=3.0)
    grey = style.brightness + style.contrast * 0.6 * (intensity - 1.0)
    grey += style.section_jitter * rng_noise.standard_normal(shape[0]).astype(np.float32)[:, None, None]
    np.clip(grey, 0.0, 1.0, out=grey)
    grey **= style.gamma
    noise = rng_noise.standard_normal(shape, dtype=np.float32)
    if style.shot_noise > 0:
        grey += noise * (style.noise_std + style.shot_noise * np.sqrt(grey))
    else:
        grey += noise * style.noise_std
    image = np.clip(np.round(grey * 255.0), 0, 255).astype(np.uint8)

    # consecutive ids in order of first appearance (objects may fall outside or vanish between slices)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(len(scene.mitochondria) + 1, dtype=np.uint32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
    return image, lut[labels]


def generate_volume(shape: Sequence[int], style: DomainStyle = SOURCE_STYLE, seed: int = 0,
                    foreground_fraction: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic EM volume: a new scene covering ``shape * style.voxel_size`` nm, rendered with ``style``.

    Args:
        shape: Grid shape (z, y, x) in voxels of ``style.voxel_size``.
        style: Imaging style (:data:`SOURCE_STYLE`, :data:`TARGET_STYLE`, :func:`style_for_shift`...).
        seed: Seed of scene and rendering.
        foreground_fraction: Target mitochondria volume fraction (default drawn in [0.06, 0.09]).

    Returns:
        ``(image, instances)``: uint8 and uint32 arrays of ``shape``.
    """
    shape = _check_shape(shape)
    scene_ss, render_ss = np.random.SeedSequence(_check_seed(seed)).spawn(2)
    extent = tuple(s * v for s, v in zip(shape, style.voxel_size))
    scene = make_scene(extent, scene_ss, distractor_density=style.distractor_density,
                       foreground_fraction=foreground_fraction)
    return render_scene(scene, style, render_ss, shape=shape)


# ------------------------------------------------------------------------------------------------ pairs, I/O


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed {seed!r}: expected a non-negative integer, e.g. --seed 0")
    return int(seed)


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise InputError(f"shape {shape!r}: expected three positive integers (z, y, x)")
    return out  # type: ignore[return-value]


def _size_shape(size) -> tuple[int, int, int]:
    if isinstance(size, str):
        if size not in SIZES:
            raise InputError(f"size {size!r}: unknown preset; choose one of {', '.join(SIZES)}")
        return SIZES[size]
    return _check_shape(size)


def make_domain_pair(size="small", seed: int = 0, shift: float = 1.0) -> dict:
    """A labelled source volume and a target volume (different tissue, same extent in nm) in memory.

    Args:
        size: Preset name from :data:`SIZES` (``tiny``, ``small``, ``demo``, ``large``) or a source-grid shape
            (z, y, x).
        seed: Non-negative integer; the same seed gives identical volumes.
        shift: Domain-gap strength: 0 = target imaged like the source, 1 = :data:`TARGET_STYLE`, > 1
            exaggerated.

    Returns:
        dict with ``source_image`` (uint8, z, y, x), ``source_labels`` (uint32 instances), ``target_image``,
        ``target_labels`` (evaluation only), ``source_voxel_size`` / ``target_voxel_size`` (nm, z, y, x),
        ``source_style`` / ``target_style`` (:class:`DomainStyle`), ``extent_nm``, ``size``, ``seed``,
        ``shift``.
    """
    shape = _size_shape(size)
    seed = _check_seed(seed)
    target_style = style_for_shift(shift)
    extent = tuple(s * v for s, v in zip(shape, SOURCE_STYLE.voxel_size))
    ss = np.random.SeedSequence([seed, 0x5EED])
    scene_src, scene_tgt, render_src, render_tgt = ss.spawn(4)
    src = make_scene(extent, scene_src, distractor_density=SOURCE_STYLE.distractor_density)
    tgt = make_scene(extent, scene_tgt, distractor_density=target_style.distractor_density)
    src_img, src_lab = render_scene(src, SOURCE_STYLE, render_src, shape=shape)
    tgt_img, tgt_lab = render_scene(tgt, target_style, render_tgt)
    return {
        "source_image": src_img, "source_labels": src_lab,
        "target_image": tgt_img, "target_labels": tgt_lab,
        "source_voxel_size": tuple(SOURCE_STYLE.voxel_size),
        "target_voxel_size": tuple(target_style.voxel_size),
        "source_style": SOURCE_STYLE, "target_style": target_style,
        "extent_nm": extent, "size": size if isinstance(size, str) else list(shape), "seed": seed,
        "shift": float(shift),
    }


_README = """# masktwins-bio synthetic sample data

Generated by `masktwins-bio sample-data` (masktwins-bio {version}): size `{size}`, seed {seed},
shift {shift:g}.

| path | content |
| --- | --- |
| `source/raw.zarr` | labelled source image, uint8, {src_shape} voxels of {src_vs} nm (z, y, x) |
| `source/mito.zarr` | source mitochondria instance labels (uint32, 0 = background) |
| `target/raw.zarr` | unlabelled target image for adaptation, uint8, {tgt_shape} voxels of {tgt_vs} nm |
| `target_groundtruth/mito.zarr` | target instance labels: **evaluation only**, never train on them |

All volumes are OME-Zarr {ome}; voxel sizes are in the metadata (`masktwins-bio info PATH`).
The target differs from the source in voxel size/anisotropy, contrast, gamma, noise, blur, cytoplasm
texture, cristae contrast and the number of dark non-mitochondrial distractors; `sample_data.json` lists every
parameter.
"""


def sample_data(out_dir, size="small", seed: int = 0, shift: float = 1.0, ome_version: str = "0.4",
                overwrite: bool = False) -> dict:
    """Write a synthetic source/target pair as OME-Zarr into ``out_dir`` (atomically).

    Layout: ``source/raw.zarr``, ``source/mito.zarr`` (labels), ``target/raw.zarr`` (unlabelled),
    ``target_groundtruth/mito.zarr`` (labels, evaluation only), ``sample_data.json`` and ``README.md``. The
    folder is written under a temporary name and renamed when complete, so a failure leaves nothing behind.

    Args:
        out_dir: Output folder; refused if it exists unless ``overwrite``. Missing parent folders are created.
        size: Preset name from :data:`SIZES` or a source-grid shape (z, y, x).
        seed: Non-negative integer seed.
        shift: Domain-gap strength (see :func:`make_domain_pair`).
        ome_version: ``"0.4"`` (Zarr v2) or ``"0.5"`` (Zarr v3).
        overwrite: Replace an existing ``out_dir``.

    Returns:
        dict of final paths: ``source_image``, ``source_labels``, ``target_image``, ``target_groundtruth``,
        ``metadata`` (sample_data.json), ``readme``.
    """
    from ..io import atomic_output, check_output_path, write_ome_zarr
    from ..io.guard import write_marker

    out = Path(out_dir)
    if ome_version not in ("0.4", "0.5"):
        raise InputError(f"OME-Zarr version {ome_version!r} is not supported; use 0.4 or 0.5")
    if out.exists() and not overwrite:
        check_output_path(out, overwrite=False, what="sample-data folder", command="sample-data")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another output folder")
    pair = make_domain_pair(size, seed, shift)  # validates size, seed and shift before touching the disk

    rel = {
        "source_image": "source/raw.zarr",
        "source_labels": "source/mito.zarr",
        "target_image": "target/raw.zarr",
        "target_groundtruth": "target_groundtruth/mito.zarr",
        "metadata": "sample_data.json",
        "readme": "README.md",
    }
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(out, overwrite=overwrite, what="sample-data folder", command="sample-data") as tmp:
            tmp.mkdir()
            write_marker(tmp, "sample-data")
            info = {}
            for domain, img_key, lab_key in (("source", "source_image", "source_labels"),
                                             ("target", "target_image", "target_groundtruth")):
                style: DomainStyle = pair[f"{domain}_style"]
                image, labels = pair[f"{domain}_image"], pair[f"{domain}_labels"]
                prov = {"synthetic": {"domain": domain, "seed": seed, "shift": float(shift),
                                      "style": style.to_dict()}}
                for key, data, kind in ((img_key, image, "image"), (lab_key, labels, "labels")):
                    path = tmp / rel[key]
                    path.parent.mkdir(exist_ok=True)
                    name = f"{domain}_{'raw' if kind == 'image' else 'mito'}"
                    write_ome_zarr(path, data, voxel_size=style.voxel_size, ome_version=ome_version,
                                   kind=kind, attrs=prov, name=name)
                info[domain] = {
                    "shape": list(image.shape), "voxel_size_nm": list(style.voxel_size),
                    "extent_nm": [s * v for s, v in zip(image.shape, style.voxel_size)],
                    "n_instances": int(labels.max()),
                    "foreground_fraction": round(float((labels > 0).mean()), 4),
                    "style": style.to_dict(),
                }
            meta = {
                "generator": "masktwins_bio.data.synthetic", "version": __version__,
                "size": pair["size"], "seed": seed, "shift": float(shift), "ome_version": ome_version,
                **info, "files": rel,
                "note": "target_groundtruth is for evaluation only; adapt with target/raw.zarr alone",
            }
            (tmp / rel["metadata"]).write_text(json.dumps(meta, indent=2) + "\n")
            (tmp / rel["readme"]).write_text(_README.format(
                version=__version__, size=pair["size"], seed=seed, shift=float(shift), ome=ome_version,
                src_shape="x".join(map(str, info["source"]["shape"])),
                src_vs="x".join(f"{v:g}" for v in info["source"]["voxel_size_nm"]),
                tgt_shape="x".join(map(str, info["target"]["shape"])),
                tgt_vs="x".join(f"{v:g}" for v in info["target"]["voxel_size_nm"])))
    except BaseException:
        for p in created:  # parent folders made for nothing (deepest first)
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    return {k: out / v for k, v in rel.items()}
