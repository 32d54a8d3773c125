"""Random 3D patches drawn lazily from (possibly huge) volumes.

:class:`PatchDataset` reads only the patch it returns (through the lazy :class:`~masktwins_bio.io.Volume`, resampled
on the fly to the training voxel size). For sparse mitochondria it centres a fraction of source patches on
foreground: a coarse foreground map (voxel counts per cell of a quarter patch) is built once by streaming the label
volume slab by slab, and a foreground-centred patch is placed around a random point of a cell drawn in proportion
to its foreground count. Because a cell is at most a quarter of the patch, the patch always contains that cell.

Sample ``i`` is a deterministic function of ``(seed, i)`` (position, augmentation), independent of DataLoader
workers; the trainer feeds consecutive indices through :class:`StepSampler`, so resuming at step ``s`` continues
with exactly the samples an uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from monai.data import get_track_meta, set_track_meta
from torch.utils.data import Dataset, Sampler

from ..errors import InputError
from ..io.volume import Volume
from .normalize import normalize, volume_statistics
from .transforms import reseed

__all__ = ["PatchDataset", "StepSampler", "foreground_map", "prepare_volume"]



def _without_meta(transform, item: dict) -> dict:
    """Run a MONAI transform on plain tensors: MetaTensor bookkeeping costs time and patches carry no metadata.

    MONAI's switch is process-global, so it is set for the call only and restored (importing this module changes
    nothing for other MONAI users in the process).
    """
    before = get_track_meta()
    set_track_meta(False)
    try:
        return transform(item)
    finally:
        set_track_meta(before)


def prepare_volume(vol: Volume, voxel_size: Optional[Sequence[float]], what: str) -> Volume:
    """Resample ``vol`` lazily to the training voxel size (no-op when equal)."""
    if voxel_size is None:
        return vol
    if vol.voxel_size is None:
        raise InputError(
            f"{vol.path}: {what} voxel size is unknown; set it in the config ({what}.voxel_size: [z, y, x] in nm) "
            "or convert with --voxel-size"
        )
    return vol.resampled(voxel_size)


def foreground_map(labels: Volume, cell: Sequence[int], threshold: float = 1.0, what: str = "labels") -> np.ndarray:
    """Foreground voxel counts per cell, streamed slab by slab.

    Args:
        labels: Label volume (any integer dtype; foreground is ``labels >= threshold``).
        cell: Cell size in voxels (z, y, x).
        threshold: Foreground threshold.

    Returns:
        ``int64`` array of shape ``ceil(shape / cell)``.

    Raises:
        InputError: negative label values.
    """
    cell = tuple(int(c) for c in cell)
    grid = tuple(-(-s // c) for s, c in zip(labels.shape, cell))
    counts = np.zeros(grid, dtype=np.int64)
    signed = np.issubdtype(labels.dtype, np.signedinteger)
    for gz in range(grid[0]):
        slab = labels[gz * cell[0] : (gz + 1) * cell[0]]
        if signed and slab.size and slab.min() < 0:
            raise InputError(f"{labels.path}: {what} contain negative values; labels must be >= 0 (0 = background)")
        fg = (slab >= threshold).sum(axis=0)  # (Y, X) counts within this z-cell
        pad = [(0, g * c - s) for g, c, s in zip(grid[1:], cell[1:], fg.shape)]
        fg = np.pad(fg, pad)
        counts[gz] = fg.reshape(grid[1], cell[1], grid[2], cell[2]).sum(axis=(1, 3))
    return counts


class PatchDataset(Dataset):
    """Random patches of one volume (and its labels), normalised and augmented.

    Args:
        image: Image volume (any format; resampled lazily to ``voxel_size``).
        patch_size: Patch size in voxels (z, y, x) at ``voxel_size``.
        voxel_size: Training voxel size in nm, or ``None`` to keep the volume's grid.
        labels: Optional label volume of the same shape as ``image``.
        label_threshold: Foreground is ``labels >= label_threshold``.
        foreground_fraction: Probability that a patch is centred on foreground (needs labels).
        transform: MONAI dictionary transform (keys ``image``/``label``), reseeded per sample.
        normalization: ``zscore`` or ``percentile`` (per-volume statistics).
        seed: Seed of the patch stream.
        length: Nominal length (indices are unbounded in practice; the sampler decides).
        what: Name used in error messages (``source``, ``target``).
        stats: Normalisation statistics (default: estimated from ``image``).
        cache_bytes: Read the (resampled) image and labels into memory once when together they take at most this
            many bytes (see :meth:`~masktwins_bio.io.Volume.in_memory`); patches are then the same values, sliced
            from memory. ``0``: always lazy.

    Each item is ``{"image": (1, Z, Y, X) float32, "label": (1, Z, Y, X) float32 (0/1), "index": int}``
    (no ``label`` without labels).
    """

    def __init__(self, image: Volume, patch_size: Sequence[int], voxel_size=None, labels: Optional[Volume] = None,
                 label_threshold: float = 1.0, foreground_fraction: float = 0.5, transform=None,
                 normalization: str = "zscore", seed: int = 0, length: int = 10**9, what: str = "source",
                 stats: Optional[dict] = None, cache_bytes: float = 0):
        if labels is not None and tuple(labels.shape) != tuple(image.shape):
            raise InputError(f"{labels.path}: label shape {labels.shape} differs from image shape {image.shape} "
                             f"({image.path}); labels must cover exactly the image volume")
        self.stats = stats or volume_statistics(image, seed=seed)
        self.image = prepare_volume(image, voxel_size, what)
        self.labels = prepare_volume(labels, voxel_size, what) if labels is not None else None
        self.patch_size = tuple(int(p) for p in patch_size)
        for axis, p, s in zip("zyx", self.patch_size, self.image.shape):
            if p > s:
                vs = "" if voxel_size is None else f" at {'x'.join(f'{v:g}' for v in voxel_size)} nm"
                fit = [min(q, n) for q, n in zip(self.patch_size, self.image.shape)]
                raise InputError(
                    f"{image.path}: patch size {list(self.patch_size)} is larger than the {what} volume "
                    f"{list(self.image.shape)}{vs} along {axis}; use a smaller data.patch_size, e.g. --set "
                    f"data.patch_size=[{','.join(map(str, fit))}] (the network may need multiples of its strides)"
                )
        if self.image.nbytes + (self.labels.nbytes if self.labels is not None else 0) <= cache_bytes:
            self.image = self.image.in_memory()
            self.labels = self.labels.in_memory() if self.labels is not None else None
        self.label_threshold = label_threshold
        self.foreground_fraction = foreground_fraction if self.labels is not None else 0.0
        self.transform = transform
        self.normalization = normalization
        self.seed = seed
        self.length = length
        self.what = what
        self.cell = tuple(max(1, p // 4) for p in self.patch_size)
        self._fg_cells = None
        self._fg_weights = None
        if self.labels is not None:
            counts = foreground_map(self.labels, self.cell, label_threshold, f"{what} labels")
            if counts.sum() == 0:
                raise InputError(f"{labels.path}: {what} labels contain no foreground (no value >= "
                                 f"{label_threshold:g}); check the label volume or its label_threshold")
            self.foreground_voxels = int(counts.sum())
            flat = np.flatnonzero(counts)
            self._fg_cells = np.stack(np.unravel_index(flat, counts.shape), axis=1)
            self._fg_weights = counts.ravel()[flat] / counts.sum()

    def __len__(self) -> int:
        return self.length

    def _origin(self, rng: np.random.Generator) -> tuple[int, int, int]:
        shape = np.asarray(self.image.shape)
        patch = np.asarray(self.patch_size)
        if self._fg_cells is not None and rng.random() < self.foreground_fraction:
            cell = self._fg_cells[rng.choice(len(self._fg_cells), p=self._fg_weights)]
            lo = cell * self.cell
            hi = np.minimum(lo + self.cell, shape)
            centre = np.array([rng.integers(a, b) for a, b in zip(lo, hi)])
            origin = centre - patch // 2
        else:
            origin = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, patch)])
        return tuple(int(v) for v in np.clip(origin, 0, shape - patch))  # type: ignore[return-value]

    def read(self, origin: Sequence[int]) -> dict:
        """Read, normalise and package the patch at ``origin`` (no augmentation)."""
        sl = tuple(slice(o, o + p) for o, p in zip(origin, self.patch_size))
        image = normalize(self.image[sl], self.stats, self.normalization)
        item = {"image": torch.from_numpy(np.ascontiguousarray(image))[None]}
        if self.labels is not None:
            label = (self.labels[sl] >= self.label_threshold).astype(np.float32)
            item["label"] = torch.from_numpy(label)[None]
        return item

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(index)])
        item = self.read(self._origin(rng))
        if self.transform is not None:
            reseed(self.transform, self.seed, int(index))
            item = _without_meta(self.transform, item)
        item["index"] = int(index)
        return item


class StepSampler(Sampler[int]):
    """Consecutive indices ``start, start + 1, ...`` (strided by ``stride`` and offset by ``offset`` for DDP ranks).

    With ``batch_size`` b the batch of step s holds indices ``(s * world + rank) * b + k``, so resuming at step s
    draws exactly the patches an uninterrupted run would have drawn.
    """

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world_size: int = 1, steps: int = 10**9):
        self.start_step = start_step
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.steps = steps

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.steps):
            base = (step * self.world_size + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.batch_size
