"""Regions of interest: one parser and one check for every ``roi`` (predict, evaluate, volume specs, configs).

A region is written ``"z0:z1, y0:y1, x0:x1"`` in voxels (numpy slice syntax without steps; an empty bound is the
volume's edge, a negative one counts from the end, a single index is a one-voxel range) or given as three slices.
A region that reaches outside the volume or is empty is refused, never clipped: a clipped region would silently
evaluate or predict something else than what was asked for.
"""

from __future__ import annotations

import re
from typing import Sequence, Union

from .errors import InputError

__all__ = ["parse_roi", "roi_slices", "format_roi"]

Roi = Union[str, Sequence[Union[slice, int]]]

_RANGE = re.compile(r"(-?\d*)\s*(?::\s*(-?\d*))?")


def parse_roi(text: str) -> tuple[slice, slice, slice]:
    """Parse ``"z0:z1, y0:y1, x0:x1"`` into three slices (bounds as written: ``None``, negative).

    Raises:
        ValueError: not three comma-separated ``start:stop`` ranges.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise ValueError(f"roi {text!r} must have three comma-separated ranges (z, y, x), e.g. '0:4, :, :'")
    out = []
    for p in parts:
        m = _RANGE.fullmatch(p)
        if not m:
            raise ValueError(f"roi range {p!r} in {text!r} is not of the form start:stop")
        if m.group(2) is None and m.group(1) != "":  # a single index -> one-voxel range
            i = int(m.group(1))
            out.append(slice(i, i + 1 if i != -1 else None))
        else:
            out.append(slice(int(m.group(1)) if m.group(1) else None, int(m.group(2)) if m.group(2) else None))
    return tuple(out)  # type: ignore[return-value]


def roi_slices(roi: Roi, shape: Sequence[int], where: str = "--roi") -> tuple[slice, slice, slice]:
    """A region as three ``slice(start, stop)`` with ``0 <= start < stop <= n`` per axis of ``shape``.

    Args:
        roi: ``"z0:z1, y0:y1, x0:x1"`` or three slices / integers.
        shape: The volume's shape (voxels).
        where: What the region belongs to (a path, an option), for messages.

    Raises:
        InputError: malformed, not three ranges, or reaching outside the volume / empty along an axis.
    """
    if isinstance(roi, str):
        try:
            roi = parse_roi(roi)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
    roi = tuple(roi)
    if len(roi) != 3:
        raise InputError(f"{where}: roi needs three ranges z0:z1,y0:y1,x0:x1, got {len(roi)}")
    out = []
    for axis, s, n in zip("zyx", roi, shape):
        if not isinstance(s, slice):
            s = slice(int(s), int(s) + 1 if int(s) != -1 else None)
        if s.step not in (None, 1):
            raise InputError(f"{where}: roi {axis} range has a step ({s.step}); regions are contiguous")
        start = 0 if s.start is None else (s.start + n if s.start < 0 else s.start)
        stop = n if s.stop is None else (s.stop + n if s.stop < 0 else s.stop)
        if not 0 <= start < stop <= n:
            raise InputError(f"{where}: roi {axis} range {_bound(s.start)}:{_bound(s.stop)} lies outside the volume "
                             f"or is empty (0:{n} along {axis}, shape {tuple(shape)}); give ranges inside the volume")
        out.append(slice(int(start), int(stop)))
    return tuple(out)  # type: ignore[return-value]


def format_roi(roi: Sequence[slice]) -> str:
    """``"z0:z1, y0:y1, x0:x1"`` of resolved slices."""
    return ", ".join(f"{s.start}:{s.stop}" for s in roi)


def _bound(v) -> str:
    return "" if v is None else str(v)
