"""Synthetic tissue in world units (nm): cells, mitochondria, vesicles and dark distractors (:func:`make_scene`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputError
from .style import SOURCE_STYLE, Triple


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
    # one generator per stage, so a change to one stage leaves the others' draws as they were
    rng_cells, rng_mito, rng_ves, rng_blob, rng_mc = (np.random.default_rng(s) for s in ss.spawn(5))
    scene = _draw_cells(extent, rng_cells)
    target = float(rng_mito.uniform(0.06, 0.09) if foreground_fraction is None else foreground_fraction)
    scene.mitochondria, scene.touching_pairs = _place_mitochondria(scene, extent, target, touching_fraction,
                                                                   rng_mito, rng_mc)
    scene.vesicles = _draw_vesicles(scene.mitochondria, extent, rng_ves)
    scene.blobs, scene.blob_kinds = _draw_distractors(scene.mitochondria, extent, distractor_density, rng_blob)
    return scene


def _draw_cells(extent: np.ndarray, rng: np.random.Generator) -> Scene:
    """Cells: jittered Poisson-disk-like seeds in the box padded by one spacing, intensity offsets, membrane warp."""
    lo, hi = -_CELL_SPACING, extent + _CELL_SPACING
    n_cells = max(4, int(np.prod(hi - lo) / _CELL_SPACING ** 3 * 1.3))
    seeds: list[np.ndarray] = []
    for _ in range(n_cells * 30):
        p = rng.uniform(lo, hi)
        if all(np.linalg.norm(p - q) > 0.65 * _CELL_SPACING for q in seeds):
            seeds.append(p)
            if len(seeds) >= n_cells:
                break
    cell_seeds = np.asarray(seeds)
    offsets = rng.normal(0, 0.035, len(cell_seeds))
    offsets[rng.random(len(cell_seeds)) < 0.15] -= 0.08  # a few darker (e.g. glial) profiles
    warp = np.zeros((3, 3, 5))
    for axis in range(3):
        for k in range(3):
            wavelength = rng.uniform(500, 1600)
            direction = _random_direction(rng, tilted=rng.random() < 0.5)
            warp[axis, k, :3] = direction * 2 * np.pi / wavelength
            warp[axis, k, 3] = rng.uniform(0, 2 * np.pi)
            warp[axis, k, 4] = rng.uniform(30, 90)
    return Scene(tuple(float(v) for v in extent), cell_seeds, offsets, warp)


def _place_mitochondria(scene: Scene, extent: np.ndarray, target: float, touching_fraction: float,
                        rng: np.random.Generator, rng_mc: np.random.Generator
                        ) -> tuple[list[Mitochondrion], list[tuple[int, int]]]:
    """Mitochondria (some in touching pairs) until ``target`` of the box is inside one (Monte-Carlo estimate,
    clipped to the box): each candidate inside one cell, apart from the others, mostly inside the box."""
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
        length = rng.uniform(_MITO_LENGTH[0], _MITO_LENGTH[1] * shrink)
        length = fit * min(length, 0.8 * extent[1:].max())
        radius = min(fit * rng.uniform(*_MITO_RADIUS), 0.3 * length, 0.25 * extent[1:].min())
        direction = _random_direction(rng, tilted=rng.random() < 0.25)
        centre = rng.uniform(0, extent)
        cand = _make_mito(rng, centre, direction, length, radius)
        group = [cand]
        if not mitos or rng.random() < touching_fraction:
            r2 = min(rng.uniform(*_MITO_RADIUS), 0.25 * extent[1:].min())
            d = np.diff(cand.centerline, axis=0)[len(cand.centerline) // 2 - 1]
            e1 = _transverse_axis(d)
            # touching: centre distance slightly below the sum of radii so that the labels are in contact
            off = e1 * (cand.radius + r2 - rng.uniform(5, 15)) * (1 if rng.random() < 0.5 else -1)
            group.append(_partner(cand, off, rng, r2))
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
    return mitos, pairs


def _clear_of_mitos(mitos: Sequence[Mitochondrion], centres: np.ndarray, radii: np.ndarray,
                    pad: float) -> np.ndarray:
    """Which spheres (centres, radii in nm) stay at least ``pad`` nm outside every mitochondrion."""
    keep = np.ones(len(centres), dtype=bool)
    for m in mitos:
        lo_b, hi_b = m.bounds(pad + radii.max(initial=0))
        sel = np.flatnonzero(np.all((centres >= lo_b) & (centres <= hi_b), axis=1))
        if len(sel):
            depth, _, _ = m.locate(centres[sel])
            keep[sel[depth > -(radii[sel] + pad)]] = False
    return keep


def _draw_vesicles(mitos: Sequence[Mitochondrion], extent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vesicles (n, 4: centre nm, radius nm): half spread out, half in a few clusters (synapse-like)."""
    vol_um3 = float(np.prod(extent)) / 1e9
    n_ves = rng.poisson(_VESICLE_DENSITY * vol_um3)
    n_clusters = max(1, int(round(vol_um3 * 0.8)))
    cluster_centres = rng.uniform(0, extent, size=(n_clusters, 3))
    clustered = rng.random(n_ves) < 0.5
    centres = rng.uniform(0, extent, size=(n_ves, 3))
    which = rng.integers(0, n_clusters, n_ves)
    spread = rng.normal(0, 180, size=(int(clustered.sum()), 3))
    centres[clustered] = cluster_centres[which[clustered]] + spread
    radii = rng.uniform(*_VESICLE_RADIUS, n_ves)
    keep = _clear_of_mitos(mitos, centres, radii, 15.0)
    return np.column_stack([centres, radii])[keep]


def _draw_distractors(mitos: Sequence[Mitochondrion], extent: np.ndarray, density: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark distractors (n, 4) and their kinds: dense-core vesicles (0, small) and lipid droplets (1, large)."""
    pad = 200.0
    n_blobs = rng.poisson(density * float(np.prod(extent + 2 * pad)) / 1e9)
    kinds = (rng.random(n_blobs) < 0.4).astype(np.int8)
    radii = np.where(kinds == 1, rng.uniform(90, 230, n_blobs), rng.uniform(35, 60, n_blobs))
    centres = rng.uniform(-pad, extent + pad, size=(n_blobs, 3))
    keep = _clear_of_mitos(mitos, centres, radii, 20.0)
    return np.column_stack([centres, radii])[keep], kinds[keep]
