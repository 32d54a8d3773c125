"""Blocks over a volume: the unit of work of predict, segment and evaluate.

A :class:`BlockGrid` tiles a (z, y, x) volume into write blocks (aligned to output chunks so that no two blocks ever
write the same chunk) and gives each a read region enlarged by a halo (context a block needs around it, e.g. the
sliding-window overlap). Regions are in voxels of the grid's volume; :attr:`BlockGrid.voxel_size` converts to nm.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from .errors import InputError

__all__ = ["Block", "BlockGrid"]


@dataclass(frozen=True)
class Block:
    """One block of a grid.

    Attributes:
        index: Block coordinates in the grid (bz, by, bx).
        block_id: Linear id (C order over the grid), stable for a given grid.
        write_start, write_stop: The region this block owns (voxels, half-open).
        read_start, read_stop: ``write`` enlarged by the halo; may extend beyond the volume (callers replicate edges
            with :func:`masktwins_bio.io.read_region` or clip with :meth:`read_slices`).
    """

    index: tuple[int, int, int]
    block_id: int
    write_start: tuple[int, int, int]
    write_stop: tuple[int, int, int]
    read_start: tuple[int, int, int]
    read_stop: tuple[int, int, int]

    @property
    def write_slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.write_start, self.write_stop))  # type: ignore[return-value]

    @property
    def write_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.write_start, self.write_stop))  # type: ignore[return-value]

    def read_slices(self, shape: Sequence[int]) -> tuple[slice, slice, slice]:
        """The read region clipped to a volume of ``shape``."""
        return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(self.read_start, self.read_stop, shape))  # type: ignore[return-value]

    def core_in_read(self, shape: Optional[Sequence[int]] = None) -> tuple[slice, slice, slice]:
        """Where the write region lies inside the (optionally clipped) read region."""
        starts = self.read_start if shape is None else tuple(max(0, a) for a in self.read_start)
        return tuple(slice(w0 - r0, w1 - r0) for w0, w1, r0 in zip(self.write_start, self.write_stop, starts))  # type: ignore[return-value]


class BlockGrid:
    """A grid of blocks covering ``shape``.

    Args:
        shape: Volume shape (z, y, x) in voxels.
        block_shape: Write-block shape in voxels.
        halo: Context added on every side of the read region, in voxels.
        chunks: If given, ``block_shape`` must be a multiple of it (so blocks never share an output chunk).
        voxel_size: Voxel size in nm (for world-unit reporting).
    """

    def __init__(self, shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int] = (0, 0, 0),
                 chunks: Optional[Sequence[int]] = None, voxel_size: Optional[Sequence[float]] = None):
        self.shape = tuple(int(s) for s in shape)
        self.block_shape = tuple(int(min(b, s)) if b > 0 else 0 for b, s in zip(block_shape, self.shape))
        if any(b <= 0 for b in self.block_shape):
            raise InputError(f"block shape {list(block_shape)} must be positive in z, y, x")
        self.halo = tuple(int(h) for h in halo)
        if chunks is not None:
            for axis, b, c, s in zip("zyx", self.block_shape, chunks, self.shape):
                if b % c and b != s:
                    raise InputError(
                        f"block shape {list(self.block_shape)} is not a multiple of the chunks {list(chunks)} along "
                        f"{axis}; use a block shape of whole chunks, e.g. {[max(1, round(bb / cc)) * cc for bb, cc in zip(self.block_shape, chunks)]}"
                    )
        self.voxel_size = tuple(float(v) for v in voxel_size) if voxel_size is not None else None
        self.grid_shape = tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape))

    def __len__(self) -> int:
        return int(np.prod(self.grid_shape))

    def block(self, index: Sequence[int]) -> Block:
        index = tuple(int(i) for i in index)
        start = tuple(i * b for i, b in zip(index, self.block_shape))
        stop = tuple(min(s + b, n) for s, b, n in zip(start, self.block_shape, self.shape))
        return Block(
            index=index,  # type: ignore[arg-type]
            block_id=int(np.ravel_multi_index(index, self.grid_shape)),
            write_start=start,  # type: ignore[arg-type]
            write_stop=stop,  # type: ignore[arg-type]
            read_start=tuple(s - h for s, h in zip(start, self.halo)),  # type: ignore[arg-type]
            read_stop=tuple(e + h for e, h in zip(stop, self.halo)),  # type: ignore[arg-type]
        )

    def __iter__(self) -> Iterator[Block]:
        for index in itertools.product(*(range(g) for g in self.grid_shape)):
            yield self.block(index)

    def __repr__(self) -> str:
        return f"BlockGrid(shape={self.shape}, block_shape={self.block_shape}, halo={self.halo}, blocks={len(self)})"
