"""napari reader: EM volumes as lazy layers with their voxel size.

:func:`get_reader` claims a path only when it holds at least one 3D volume that
:func:`masktwins_bio.io.open_volume` can open; otherwise it returns ``None`` so napari tries its other readers. The
layers are dask arrays over the stores (nothing is read until displayed), with ``scale`` = voxel size (nm, z, y, x),
``units`` nm and axis labels z, y, x when the voxel size is known.

What becomes a layer:

* OME-Zarr multiscale image: one (multiscale) layer from all pyramid levels; its OME ``labels/`` sub-images become
  label layers. An OME label image (``image-label`` metadata) is a label layer.
* Plain Zarr array: one layer; plain Zarr group: one layer per 3D array or OME image inside (searched 4 levels deep).
* HDF5: one layer per 3D dataset (``file.h5:/key``).
* Multi-page TIFF (3D; 2D and RGB TIFFs are left to other readers) and folders of at least two PNG/TIFF slices.

Integer volumes become label layers when their store says so (OME ``image-label``, masktwins-bio provenance), when
their dtype is 32/64-bit integer (raw EM is 8 or 16 bit), or when their name looks like labels (``labels``, ``seg``,
``mito``, ``gt``, ``mask``, ``instances``, ...). The source path spec is kept in ``layer.metadata["masktwins_bio"]``.

napari's builtin reader also claims ``*.zarr``, ``*.h5`` and ``*.tif``; pick this one with
``viewer.open(path, plugin="masktwins-bio")`` or in napari's reader dialog.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..io import open_volume
from ..io.attributes import ome_attributes, provenance
from ..io.readers import SLICE_SUFFIXES, is_zarr_path
from ._layers import AXIS_LABELS, META_KEY, NM_UNITS

__all__ = ["get_reader", "find_layers", "read_layers", "LayerSpec"]

log = logging.getLogger("masktwins_bio.napari")

LayerData = tuple[Any, dict, str]
PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

_LABEL_NAME = re.compile(r"(^|[^a-z])(labels?|seg|segmentation|mito|mitochondria|gt|groundtruth|ground_truth|mask|"
                         r"masks|instances?|neuron_ids|ids|clefts)([^a-z]|$)", re.IGNORECASE)
_MAX_DEPTH = 4
_PREDICT_TASKS = ("predict",)
_LABEL_TASKS = ("segment", "label_components")


@dataclass
class LayerSpec:
    """One layer to read: the path spec for :func:`open_volume`, its kind, name and pyramid level specs."""

    spec: str
    kind: str
    name: str
    levels: list[str] = field(default_factory=list)
    voxel_size_known: bool = True


# -- discovery ---------------------------------------------------------------------------------------------------


def _is_volume_shape(shape: Sequence[int]) -> bool:
    shape = tuple(int(s) for s in shape)
    return len(shape) >= 3 and all(s == 1 for s in shape[:-3]) and all(s >= 1 for s in shape[-3:])


def _guess_kind(name: str, dtype, attrs: Optional[dict] = None) -> str:
    ome, prov = ome_attributes(attrs), provenance(attrs)
    dtype = np.dtype(dtype)
    if "image-label" in ome or prov.get("kind") == "labels" or prov.get("task") in _LABEL_TASKS:
        return "labels"
    if prov.get("task") in _PREDICT_TASKS:
        return "image"
    if dtype == np.bool_:
        return "labels"
    if np.issubdtype(dtype, np.integer) and (dtype.itemsize >= 4 or _LABEL_NAME.search(name)):
        return "labels"
    return "image"


def _zarr_group_specs(group, path: str, name: str, depth: int, kind: Optional[str] = None) -> list[LayerSpec]:
    import zarr

    attrs = dict(group.attrs)
    ome = ome_attributes(attrs)
    if "multiscales" in ome:
        ms = ome["multiscales"][0]
        levels = [f"{path}/{d['path']}" for d in ms.get("datasets", [])]
        if not levels:
            return []
        level0 = zarr.open_array(levels[0], mode="r")
        if not _is_volume_shape(level0.shape):
            return []
        known = (ms.get("metadata") or {}).get("voxel_size_known", True) is not False
        kind = kind or _guess_kind(name, level0.dtype, attrs)
        out = [LayerSpec(path, kind, str(ms.get("name") or name), levels, known)]
        # OME label images that belong to this image (image.zarr/labels/<name>)
        try:
            labels_group = group["labels"]
            names = ome_attributes(labels_group.attrs).get("labels") or []
        except (KeyError, TypeError):
            names = []
        for label_name in names:
            try:
                sub = labels_group[label_name]
            except KeyError:
                continue
            out.extend(_zarr_group_specs(sub, f"{path}/labels/{label_name}", f"{name} {label_name}", depth + 1,
                                         kind="labels"))
        return out
    if depth >= _MAX_DEPTH:
        return []
    out: list[LayerSpec] = []
    for child, member in sorted(group.members(), key=lambda m: m[0]):
        child_path, child_name = f"{path}/{child}", f"{name}/{child}"
        if isinstance(member, zarr.Array):
            if _is_volume_shape(member.shape):
                out.append(LayerSpec(child_path, _guess_kind(child_name, member.dtype, dict(member.attrs)),
                                     child_name))
        else:
            out.extend(_zarr_group_specs(member, child_path, child_name, depth + 1))
    return out


def _zarr_specs(path: str) -> list[LayerSpec]:
    import zarr

    node = zarr.open(path, mode="r")
    name = Path(path).stem
    if isinstance(node, zarr.Array):
        if not _is_volume_shape(node.shape):
            return []
        return [LayerSpec(path, _guess_kind(name, node.dtype, dict(node.attrs)), name)]
    return _zarr_group_specs(node, path, name, 0)


def _h5_specs(path: str) -> list[LayerSpec]:
    import h5py

    specs: list[LayerSpec] = []
    with h5py.File(path, "r") as f:
        def visit(key, obj):
            if isinstance(obj, h5py.Dataset) and _is_volume_shape(obj.shape):
                attrs = {k: v for k, v in obj.attrs.items() if isinstance(v, str)}
                specs.append(LayerSpec(f"{path}:/{key}", _guess_kind(key, obj.dtype, attrs),
                                       f"{Path(path).stem} {key}"))
        f.visititems(visit)
    return specs


def _tiff_specs(path: str) -> list[LayerSpec]:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
    if "S" in axes or not _is_volume_shape(shape):  # RGB and 2D images are for other readers
        return []
    name = Path(path).name.split(".")[0]
    return [LayerSpec(path, _guess_kind(name, dtype), name)]


def _folder_specs(path: str) -> list[LayerSpec]:
    folder = Path(path)
    slices = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES
              and not p.name.startswith(".")]
    if len(slices) < 2:
        return []
    vol = open_volume(path)  # probes the slice headers: same size and readable
    return [LayerSpec(path, _guess_kind(folder.name, vol.dtype), folder.name)]


def find_layers(path: Union[str, os.PathLike]) -> list[LayerSpec]:
    """The layers this plugin would read from ``path`` (empty when it cannot read it; never raises)."""
    path = os.fspath(path)
    p = Path(path)
    try:
        if not p.exists():
            return []
        suffix = p.suffix.lower()
        if suffix in (".h5", ".hdf5", ".hdf") and p.is_file():
            return _h5_specs(path)
        if is_zarr_path(p):
            return _zarr_specs(path.rstrip("/"))
        if suffix in (".tif", ".tiff") and p.is_file():
            return _tiff_specs(path)
        if p.is_dir():
            return _folder_specs(path)
    except Exception as exc:  # unreadable or foreign: let other readers try
        log.debug("masktwins-bio reader declines %s: %s", path, exc)
    return []


# -- reading -----------------------------------------------------------------------------------------------------


def _to_dask(vol):
    """A dask array over a Volume; chunks: the store's, else one section (what napari reads to show a slice)."""
    import dask.array as da

    chunks = vol.chunks or (1,) + tuple(min(n, 2048) for n in vol.shape[1:])
    # meta given explicitly: dask would otherwise probe the reader's array object for numpy attributes (ndim)
    return da.from_array(vol, chunks=chunks, asarray=True, lock=False, meta=np.empty((0, 0, 0), dtype=vol.dtype))


def _layer_data(spec: LayerSpec) -> LayerData:
    kind = spec.kind
    vol = open_volume(spec.spec)
    if kind == "labels" and not (np.issubdtype(vol.dtype, np.integer) or vol.dtype == np.bool_):
        kind = "image"  # float "labels" (e.g. a mask saved as float) are shown as an image
    data: Any = _to_dask(vol)
    multiscale = False
    if len(spec.levels) > 1:
        try:
            data = [_to_dask(open_volume(level)) for level in spec.levels]
            multiscale = True
        except Exception as exc:  # a damaged pyramid level: show level 0 only
            log.warning("%s: pyramid levels unreadable (%s); showing level 0 only", spec.spec, exc)
    voxel_size = vol.voxel_size if spec.voxel_size_known else None
    prov = provenance(vol.attrs)
    name = spec.name
    if prov.get("complete") is False:  # shown, but never mistaken for a finished result
        name = f"{name} (incomplete)"
        log.warning("%s: incomplete (an interrupted or still running masktwins-bio %s); unfinished blocks show as "
                    "0 - rerun it with --resume to finish it", spec.spec, prov.get("task") or "job")
    kwargs: dict = {
        "name": name,
        "axis_labels": AXIS_LABELS,
        "metadata": {META_KEY: {"path": spec.spec, "voxel_size": list(voxel_size) if voxel_size else None,
                                "format": vol.format, "kind": kind, "provenance": prov}},
    }
    if voxel_size is not None:
        kwargs["scale"] = tuple(float(v) for v in voxel_size)
        kwargs["units"] = NM_UNITS
    if multiscale:
        kwargs["multiscale"] = True
    if kind == "image":
        if vol.dtype == np.uint8:
            kwargs["contrast_limits"] = (0, 255)
        if prov.get("task") in _PREDICT_TASKS:  # a probability map: overlay it
            kwargs.update(colormap="magma", blending="additive", opacity=0.7)
            if prov.get("scale") == 1:
                kwargs["contrast_limits"] = (0.0, 1.0)
    return data, kwargs, kind


def read_layers(specs: Sequence[LayerSpec]) -> list[LayerData]:
    """Layer data tuples ``(data, kwargs, layer_type)`` for ``specs`` (lazy dask arrays)."""
    return [_layer_data(s) for s in specs]


def get_reader(path: PathOrPaths) -> Optional[Callable[[PathOrPaths], list[LayerData]]]:
    """npe2 reader hook: a function reading ``path`` (one path or a list), or ``None`` when it is not ours."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    specs: list[LayerSpec] = []
    for p in paths:
        found = find_layers(p)
        if not found:
            return None
        specs.extend(found)

    def reader(_path: PathOrPaths) -> list[LayerData]:
        return read_layers(specs)

    return reader
