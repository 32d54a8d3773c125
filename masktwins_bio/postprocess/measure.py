"""Per-mitochondrion morphology of a label volume, blockwise: a table for papers (volume, surface, shape, intensity).

:func:`measure` reads a label volume (0 = background, each id one instance) block by block, so memory stays bounded
by a block whatever the volume size, and returns one row per instance:

========================  =====  ==========================================================================
column                    unit   meaning
========================  =====  ==========================================================================
``label``                        instance id
``voxels``                       voxel count
``volume_um3``            um^3   ``voxels`` x voxel volume
``surface_um2``           um^2   area of the marching-cubes surface (scikit-image, level 0.5, at the voxel size)
``centroid_{z,y,x}_nm``   nm     mean voxel position; voxel ``i`` is centred at ``i x voxel size`` (OME-Zarr and
                                 napari's convention)
``bbox_{z,y,x}0_nm``,     nm     bounding box of the voxel centres: ``start x voxel size`` and
``bbox_{z,y,x}1_nm``             ``stop x voxel size`` (stop exclusive), so ``bbox1 - bbox0`` is the extent
``axis_major_nm``,        nm     full axis lengths of the ellipsoid with the same second moments (as
``axis_middle_nm``,              scikit-image's ``axis_major_length`` / ``axis_minor_length`` with ``spacing``)
``axis_minor_nm``
``elongation``                   ``axis_major_nm / axis_minor_nm`` (1 for a sphere; NaN for a one-voxel-thin object)
``sphericity``                   ``pi^(1/3) (6 V)^(2/3) / A`` (Wadell; 1 for a sphere, smaller for tubes and flat
                                 shapes; voxelised surfaces make it read low for very small objects)
``mean_intensity``               mean image value over the instance (only with an image)
``touches_border``               the instance reaches a face of the volume (it may be cut off there)
========================  =====  ==========================================================================

Why blockwise is exact: counts, coordinate sums and second moments add up over blocks, and so does the marching
cubes area - each 2 x 2 x 2 cell's triangles depend only on its eight voxels, so a block that owns the cells whose
first corner lies in it (it reads one voxel more on its far side, and a zero layer outside the volume) contributes
exactly its part of every surface. The table is identical for any block shape (tests check it against
``skimage.measure.regionprops`` and the whole-volume marching cubes).
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._version import __version__
from ..blockwise import Block, BlockGrid, Execution, ProgressCallback, StopCheck, run_blockwise
from ..errors import InputError
from ..files import atomic_file, plain
from ..io import Volume, as_volume
from ..io.guard import check_complete, check_parent, refuse_existing
from ..io.outputs import default_block

__all__ = ["measure", "Measurements", "COLUMNS", "TABLE_FORMATS"]

#: the table's columns, in order (``mean_intensity`` only with an image)
COLUMNS = ("label", "voxels", "volume_um3", "surface_um2", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm",
           "bbox_z0_nm", "bbox_y0_nm", "bbox_x0_nm", "bbox_z1_nm", "bbox_y1_nm", "bbox_x1_nm", "axis_major_nm",
           "axis_middle_nm", "axis_minor_nm", "elongation", "sphericity", "mean_intensity", "touches_border")
TABLE_FORMATS = ("csv", "parquet")
_DEFAULT_BLOCK = (32, 256, 256)  # 2 Mi voxels: a block's labels, image and coordinates stay well under 100 MB

# per-block accumulator columns: sums (added over blocks), then minima and maxima of the bounding box
_SUMS = ("n", "z", "y", "x", "zz", "yy", "xx", "zy", "zx", "yx", "intensity")
_MINS, _MAXS = ("z0", "y0", "x0"), ("z1", "y1", "x1")


@dataclass
class Measurements:
    """The per-instance table of :func:`measure`: ``columns[name]`` is an array with one entry per instance.

    Attributes:
        columns: Column name -> array (rows sorted by label).
        voxel_size: Voxel size of the label volume (nm, z, y, x).
        source: Where the labels (and image) came from, and the settings (written beside the table).
    """

    columns: dict[str, np.ndarray]
    voxel_size: tuple[float, float, float]
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["label"])

    def rows(self) -> list[dict]:
        """The table as a list of dicts (one per instance), plain Python values."""
        names = list(self.columns)
        return [dict(zip(names, values)) for values in zip(*(plain(self.columns[n]) for n in names))]

    def select(self, touches_border: Optional[bool] = None, **bounds) -> "Measurements":
        """The rows within bounds, e.g. ``table.select(volume_um3=(0.01, None), touches_border=False)``.

        Args:
            touches_border: Keep only instances that do (True) or do not (False) reach a face of the volume.
            **bounds: ``column=(low, high)``, inclusive, ``None`` for an open end; NaN values never match a bound.

        Returns:
            A new table (same voxel size and source) with the selected rows, in label order.

        Raises:
            InputError: an unknown column, or one that is not numeric.
        """
        keep = np.ones(len(self), dtype=bool)
        for name, (low, high) in bounds.items():
            values = self.columns.get(name)
            if values is None or not np.issubdtype(np.asarray(values).dtype, np.number):
                numeric = [c for c, v in self.columns.items() if np.issubdtype(np.asarray(v).dtype, np.number)]
                raise InputError(f"measurement column {name!r} is not a numeric column; choose one of "
                                 f"{', '.join(numeric)}")
            with np.errstate(invalid="ignore"):
                if low is not None:
                    keep &= values >= low
                if high is not None:
                    keep &= values <= high
        if touches_border is not None:
            keep &= self.columns["touches_border"].astype(bool) == bool(touches_border)
        return Measurements({c: v[keep] for c, v in self.columns.items()}, self.voxel_size, dict(self.source))

    def to_pandas(self):
        """A ``pandas.DataFrame`` (pandas is installed with the napari and notebook extras)."""
        import pandas as pd

        return pd.DataFrame(self.columns)

    def csv_text(self) -> str:
        out = _io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(list(self.columns))
        for row in self.rows():
            writer.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                             (repr(v) if isinstance(v, float) else v) for v in row.values()])
        return out.getvalue()

    def save(self, path: Union[str, os.PathLike], overwrite: bool = False, format: Optional[str] = None) -> Path:
        """Write the table (``.csv``, or ``.parquet`` with pyarrow) and ``<path>.json`` beside it (what the columns
        mean, their units, the source and settings), each atomically; an existing table needs ``overwrite``."""
        p = Path(path)
        fmt = format or ("parquet" if p.suffix.lower() == ".parquet" else "csv")
        if fmt not in TABLE_FORMATS:
            raise InputError(f"table format {fmt!r} is not known; choose csv or parquet")
        check_table_path(p, overwrite)
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise InputError(f"{p}: writing parquet needs pyarrow (pip install pyarrow); or write .csv") from None
        sidecar = p.with_name(p.name + ".json")
        with atomic_file(p) as tmp:
            if fmt == "csv":
                tmp.write_text(self.csv_text())
            else:
                self.to_pandas().to_parquet(tmp, index=False)
        with atomic_file(sidecar) as tmp:
            tmp.write_text(json.dumps(plain({"table": p.name, "rows": len(self), "voxel_size_nm": self.voxel_size,
                                             "columns": {c: COLUMN_DOCS[c] for c in self.columns},
                                             **self.source, "version": __version__}, finite=True), indent=2))
        return p


def check_table_path(path: Union[str, os.PathLike], overwrite: bool = False) -> None:
    """Refuse a table path whose table - or whose ``.json`` sidecar - exists, unless ``overwrite``."""
    p = Path(path)
    check_parent(p)
    for q, what in ((p, "table"), (p.with_name(p.name + ".json"), "table sidecar")):
        if q.exists() and not overwrite:
            refuse_existing(q, what, other="choose another --out")


COLUMN_DOCS = {
    "label": "instance id", "voxels": "voxel count", "volume_um3": "volume (um^3)",
    "surface_um2": "marching-cubes surface area (um^2, scikit-image, level 0.5, at the voxel size)",
    **{f"centroid_{a}_nm": f"mean voxel position along {a} (nm; voxel i centred at i x voxel size)" for a in "zyx"},
    **{f"bbox_{a}0_nm": f"bounding box start along {a} (nm, first voxel x voxel size)" for a in "zyx"},
    **{f"bbox_{a}1_nm": f"bounding box stop along {a} (nm, exclusive: last voxel + 1, x voxel size)" for a in "zyx"},
    "axis_major_nm": "major axis length of the moment-equivalent ellipsoid (nm)",
    "axis_middle_nm": "middle axis length of the moment-equivalent ellipsoid (nm)",
    "axis_minor_nm": "minor axis length of the moment-equivalent ellipsoid (nm)",
    "elongation": "axis_major_nm / axis_minor_nm", "sphericity": "pi^(1/3) (6 V)^(2/3) / surface (Wadell)",
    "mean_intensity": "mean image value over the instance", "touches_border": "reaches a face of the volume",
}


def _surface_nm2(mask: np.ndarray, voxel_size) -> float:
    """Marching-cubes area (nm^2) of the cells of ``mask`` (every 2 x 2 x 2 neighbourhood it holds)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    if min(mask.shape) < 2 or not mask.any() or mask.all():
        return 0.0
    verts, faces, _, _ = marching_cubes(mask.astype(np.float32), 0.5, spacing=tuple(voxel_size), method="lewiner")
    return float(mesh_surface_area(verts, faces))


@dataclass
class MeasureTask:
    """Per block: moments, bounding boxes and intensity sums of the write region, and the surface area of the cells
    the block owns (read one voxel further on the far side; a zero layer outside the volume)."""

    labels: Volume
    image: Optional[Volume]
    voxel_size: tuple[float, float, float]

    def __call__(self, block: Block) -> dict:
        shape = self.labels.shape
        w0, w1 = np.asarray(block.write_start), np.asarray(block.write_start) + np.asarray(block.write_shape)
        r1 = np.minimum(w1 + 1, shape)
        region = np.asarray(self.labels[tuple(slice(a, b) for a, b in zip(w0, r1))])
        if region.dtype.kind not in "iub":
            raise InputError(f"{self.labels.path}: labels have dtype {region.dtype}; measure needs integer instance "
                             "ids (0 = background), e.g. the output of 'masktwins-bio segment'")
        if region.dtype.kind == "i" and region.size and region.min() < 0:
            raise InputError(f"{self.labels.path}: holds negative labels; instance ids must be >= 0")
        own = region[tuple(slice(0, int(b - a)) for a, b in zip(w0, w1))]
        fg = own > 0
        ids_v = own[fg].astype(np.int64)
        area_ids, areas = self._areas(region, w0, r1, shape)
        if ids_v.size == 0:
            return {"ids": np.zeros(0, np.int64), "sums": np.zeros((0, len(_SUMS))),
                    "lo": np.zeros((0, 3), np.int64), "hi": np.zeros((0, 3), np.int64),
                    "area_ids": area_ids, "areas": areas}
        ids, inv = np.unique(ids_v, return_inverse=True)
        coords = [c.astype(np.float64) + o for c, o in zip(np.nonzero(fg), w0)]
        sums = np.zeros((len(ids), len(_SUMS)))
        sums[:, 0] = np.bincount(inv, minlength=len(ids))
        for j, c in enumerate(coords):
            sums[:, 1 + j] = np.bincount(inv, weights=c, minlength=len(ids))
        for j, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
            sums[:, 4 + j] = np.bincount(inv, weights=coords[a] * coords[b], minlength=len(ids))
        if self.image is not None:
            img = np.asarray(self.image[tuple(slice(a, b) for a, b in zip(w0, w1))], dtype=np.float64)
            sums[:, 10] = np.bincount(inv, weights=img[fg], minlength=len(ids))
        lo = np.full((len(ids), 3), np.iinfo(np.int64).max, np.int64)
        hi = np.full((len(ids), 3), -1, np.int64)
        for j, c in enumerate(coords):
            ci = c.astype(np.int64)
            np.minimum.at(lo[:, j], inv, ci)
            np.maximum.at(hi[:, j], inv, ci + 1)
        return {"ids": ids, "sums": sums, "lo": lo, "hi": hi, "area_ids": area_ids, "areas": areas}

    def _areas(self, region: np.ndarray, w0, r1, shape) -> tuple[np.ndarray, np.ndarray]:
        """Ids in the read region and their surface area (nm^2) in the cells this block owns (an id that starts on
        the far rim still has cells here, between the write region's last voxels and the rim)."""
        from scipy import ndimage

        pad = [(1 if a == 0 else 0, 1 if b == s else 0) for a, b, s in zip(w0, r1, shape)]
        padded = np.pad(region, pad)
        values, local = np.unique(padded, return_inverse=True)
        local = local.reshape(padded.shape)
        if values[0] != 0:  # no background in the region: shift so that local id 0 stays background
            values, local = np.r_[0, values], local + 1
        boxes = ndimage.find_objects(local)
        local_id = dict(zip(values.tolist(), range(len(values))))
        ids = values[1:].astype(np.int64)
        areas = np.zeros(len(ids))
        for j, label in enumerate(ids.tolist()):
            k = local_id[label]
            # one voxel of margin: the cells between the object and its surroundings (within the padded region)
            sl = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(boxes[k - 1], padded.shape))
            areas[j] = _surface_nm2(local[sl] == k, self.voxel_size)
        return ids, areas


def _reduce(results: dict, n_blocks: int):
    """Per-block partial results -> per-instance (ids, sums, bbox lo, bbox hi, area nm^2), sorted by id."""
    parts = [results[b] for b in range(n_blocks) if b in results and len(results[b]["ids"])]
    if not parts:
        return (np.zeros(0, np.int64), np.zeros((0, len(_SUMS))), np.zeros((0, 3), np.int64),
                np.zeros((0, 3), np.int64), np.zeros(0))
    all_parts = [results[b] for b in range(n_blocks) if b in results]
    area_ids = np.concatenate([p["area_ids"] for p in all_parts])
    area_vals = np.concatenate([p["areas"] for p in all_parts])
    ids = np.concatenate([p["ids"] for p in parts])
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    sums = np.add.reduceat(np.concatenate([p["sums"] for p in parts])[order], starts, axis=0)
    lo = np.minimum.reduceat(np.concatenate([p["lo"] for p in parts])[order], starts, axis=0)
    hi = np.maximum.reduceat(np.concatenate([p["hi"] for p in parts])[order], starts, axis=0)
    ids = ids[starts]
    area = np.zeros(len(ids))
    np.add.at(area, np.searchsorted(ids, area_ids), area_vals)  # every id with cells has voxels somewhere
    return ids, sums, lo, hi, area


def _table(ids, sums, lo, hi, area, vs, shape, with_image: bool) -> dict[str, np.ndarray]:
    vs = np.asarray(vs, dtype=np.float64)
    n = sums[:, 0]
    mean = sums[:, 1:4] / n[:, None]  # voxel units
    second = sums[:, 4:10] / n[:, None]
    cov = np.zeros((len(ids), 3, 3))
    for j, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
        c = (second[:, j] - mean[:, a] * mean[:, b]) * vs[a] * vs[b]
        cov[:, a, b] = cov[:, b, a] = c
    eig = np.clip(np.linalg.eigvalsh(cov)[:, ::-1], 0, None) if len(ids) else np.zeros((0, 3))
    axes = np.sqrt(20.0 * eig)  # a solid ellipsoid with semi-axes a: variance a^2 / 5, full length 2 a
    volume_nm3 = n * float(np.prod(vs))
    with np.errstate(divide="ignore", invalid="ignore"):
        elongation = np.where(axes[:, 2] > 0, axes[:, 0] / axes[:, 2], np.nan)
        sphericity = np.where(area > 0, math.pi ** (1 / 3) * (6 * volume_nm3) ** (2 / 3) / area, np.nan)
    cols: dict[str, np.ndarray] = {
        "label": ids, "voxels": n.astype(np.int64), "volume_um3": volume_nm3 / 1e9, "surface_um2": area / 1e6,
        **{f"centroid_{a}_nm": mean[:, j] * vs[j] for j, a in enumerate("zyx")},
        **{f"bbox_{a}0_nm": lo[:, j] * vs[j] for j, a in enumerate("zyx")},
        **{f"bbox_{a}1_nm": hi[:, j] * vs[j] for j, a in enumerate("zyx")},
        "axis_major_nm": axes[:, 0], "axis_middle_nm": axes[:, 1], "axis_minor_nm": axes[:, 2],
        "elongation": elongation, "sphericity": sphericity,
    }
    if with_image:
        cols["mean_intensity"] = sums[:, 10] / n
    cols["touches_border"] = ((lo == 0) | (hi == np.asarray(shape))).any(axis=1)
    return cols


def measure(
    labels: Union[str, os.PathLike, Volume, np.ndarray],
    image: Union[str, os.PathLike, Volume, np.ndarray, None] = None,
    *,
    voxel_size: Optional[Sequence[float]] = None,
    image_voxel_size: Optional[Sequence[float]] = None,
    block_shape: Optional[Sequence[int]] = None,
    allow_incomplete: bool = False,
    progress: bool = False,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
    execution: Optional[Execution] = None,
) -> Measurements:
    """Per-instance morphology of a label volume (the columns are in the module docstring), blockwise.

    Args:
        labels: Instance labels ``(z, y, x)`` (0 = background): a path spec, :class:`~masktwins_bio.io.Volume` or
            array (give ``voxel_size``).
        image: Optional EM image for ``mean_intensity``; on the labels' grid, or resampled onto it lazily when both
            voxel sizes are known.
        voxel_size: nm (z, y, x) of the labels, overriding (or, for arrays, supplying) the metadata.
        image_voxel_size: nm of the image, likewise.
        block_shape: Voxels per block (default 32 x 256 x 256, in whole chunks of the labels); the table does not
            depend on it.
        allow_incomplete: Measure a label store an interrupted ``segment`` left unfinished (refused by default).
        progress, callback, should_stop, execution: How the blocks run (see :class:`~masktwins_bio.blockwise.Execution`;
            ``executor="dask"`` measures on a cluster).

    Returns:
        :class:`Measurements` (``.save("table.csv")``, ``.to_pandas()``).

    Raises:
        InputError: unknown voxel size (nothing is guessed), non-integer or negative labels, an image of another
            shape or grid.
    """
    run = Execution.merge(execution, Execution(progress=False), progress=progress, callback=callback,
                          should_stop=should_stop)
    lab = as_volume(labels, voxel_size=voxel_size, kind="labels", role="labels")
    check_complete(lab, "label volume", allow_incomplete)
    if lab.voxel_size is None:
        raise InputError(f"{lab.path}: voxel size unknown; measurements are in nm and um, give it with --voxel-size "
                         "Z,Y,X")
    img = None
    if image is not None:
        img = as_volume(image, voxel_size=image_voxel_size, role="image")
        if img.shape != lab.shape or (img.voxel_size is not None and
                                      not np.allclose(img.voxel_size, lab.voxel_size, rtol=1e-6)):
            if img.voxel_size is None:
                raise InputError(f"{img.path}: image shape {list(img.shape)} differs from the labels' "
                                 f"{list(lab.shape)} and its voxel size is unknown; give it with --image-voxel-size")
            img = img.resampled(lab.voxel_size, shape=lab.shape)
    chunks = lab.chunks or _DEFAULT_BLOCK
    chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, lab.shape))
    block = tuple(block_shape) if block_shape else default_block(lab.shape, chunks, _DEFAULT_BLOCK)
    grid = BlockGrid(lab.shape, block)
    task = MeasureTask(lab, img, tuple(float(v) for v in lab.voxel_size))
    results = run_blockwise(grid, task, execution=run, desc="measure")
    ids, sums, lo, hi, area = _reduce(results, len(grid))
    cols = _table(ids, sums, lo, hi, area, lab.voxel_size, lab.shape, img is not None)
    source = {"labels": str(lab.path), "image": None if img is None else str(img.path),
              "shape": list(lab.shape), "block_shape": list(block)}
    return Measurements(cols, tuple(float(v) for v in lab.voxel_size), source)
