"""napari writers: label layers to OME-Zarr label images, image layers to OME-Zarr.

Both use :func:`masktwins_bio.io.write_ome_zarr` (chunked, compressed, multiscale pyramid, written atomically:
nothing appears at the final path until the store is complete). The voxel size comes from the layer's ``scale``
(:func:`~masktwins_bio.napari._layers.layer_voxel_size` rules: nm, or unknown for a scale of ones in pixel units).
Label images get OME ``image-label`` metadata and nearest-neighbour pyramids, so this plugin's reader (and other
OME-Zarr readers) opens them as labels again. An existing Zarr store at the path is replaced (napari's save dialog
asks first); any other existing file or folder is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import write_ome_zarr
from ..io.readers import is_zarr_path
from ._layers import layer_voxel_size

__all__ = ["write_labels", "write_image"]


class _MetaLayer:
    """The attributes :func:`layer_voxel_size` reads, taken from a writer's ``meta`` dict."""

    def __init__(self, meta: dict, ndim: int):
        self.scale = tuple(meta.get("scale") or (1.0,) * ndim)
        self.units = meta.get("units")


def _to_volume_array(data: Any, meta: dict, what: str):
    if meta.get("multiscale") or (isinstance(data, (list, tuple)) and len(data) and hasattr(data[0], "shape")):
        data = data[0]
    name = meta.get("name", what)
    if meta.get("rgb"):
        raise InputError(f"layer '{name}' is RGB; OME-Zarr export here is for greyscale 3D volumes")
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise InputError(f"layer '{name}' has shape {tuple(data.shape)}; only 3D (z, y, x) layers can be written "
                         "to OME-Zarr by masktwins-bio")
    return data


def _write(path: str, data: Any, meta: dict, kind: str) -> list[str]:
    data = _to_volume_array(data, meta, kind)
    if kind == "labels":
        dtype = np.dtype(data.dtype)
        if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
            raise InputError(f"layer '{meta.get('name')}' has dtype {dtype}; labels must be integers")
        if dtype == np.bool_:
            data = np.asarray(data).astype(np.uint8)
    out = Path(path)
    if out.suffix.lower() != ".zarr":
        out = out.with_name(out.name + ".zarr")
    overwrite = out.exists() and is_zarr_path(out) and out.is_dir()
    if out.exists() and not overwrite:
        raise InputError(f"{out}: exists and is not a Zarr store; choose another name")
    voxel_size = layer_voxel_size(_MetaLayer(meta, data.ndim))
    write_ome_zarr(out, data, voxel_size=voxel_size, kind=kind, overwrite=overwrite,
                   name=str(meta.get("name") or out.stem), attrs={"exported_from": "napari"})
    return [str(out)]


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a label layer as an OME-Zarr label image (``image-label`` metadata); returns ``[path]``."""
    return _write(path, data, meta, "labels")


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write an image layer as OME-Zarr (NGFF 0.4, multiscale); returns ``[path]``."""
    return _write(path, data, meta, "image")
