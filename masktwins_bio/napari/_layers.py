"""Between napari layers and library volumes: voxel size from a layer's scale, layers as lazy :class:`Volume`
objects, placement of outputs written on another voxel grid, and parsing of the widgets' text fields.

Nothing here imports Qt; the functions take any object with napari's layer attributes (``data``, ``scale``,
``translate``, ``units``, ``multiscale``, ``name``, ``ndim``, ``rgb``), so they are unit-testable with
``napari.components.ViewerModel`` layers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..io import Volume, split_h5_spec

__all__ = [
    "ArrayAdapter",
    "layer_level0",
    "layer_voxel_size",
    "layer_volume",
    "layer_problem",
    "output_placement",
    "parse_triple",
    "parse_overrides",
    "path_text",
    "spec_exists",
    "known_voxel_size",
    "voxel_size_hint",
    "viewer_camera",
    "layer_units",
    "META_KEY",
]

#: Key of the layer ``metadata`` entry written by the reader (source path spec, voxel size, format, kind).
META_KEY = "masktwins_bio"
NM_UNITS = ("nm", "nm", "nm")
AXIS_LABELS = ("z", "y", "x")


class ArrayAdapter:
    """A read-only (z, y, x) view of a layer's array (numpy, dask or zarr) with the attributes a Volume expects.

    dask reports chunks as tuples of block sizes; the Volume API wants one integer per axis, so the adapter exposes
    the regular chunk size. Reads always return numpy arrays.
    """

    def __init__(self, data):
        self.data = data
        self.shape = tuple(int(s) for s in data.shape)
        self.dtype = np.dtype(data.dtype)
        chunks = getattr(data, "chunksize", None) or getattr(data, "chunks", None)
        if chunks is not None and len(chunks) == len(self.shape):
            chunks = tuple(c[0] if isinstance(c, tuple) else c for c in chunks)
            self.chunks: Optional[tuple[int, ...]] = tuple(max(1, int(c)) for c in chunks)
        else:
            self.chunks = None

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.data[key])


def layer_level0(layer):
    """The full-resolution array of a layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def _unit_to_nm(unit) -> Optional[float]:
    """nm per unit for a pint unit or unit string; ``None`` for pixels or unknown units."""
    if unit is None:
        return None
    try:
        import pint

        ureg = pint.get_application_registry()
        quantity = ureg.Quantity(1, unit) if isinstance(unit, str) else 1 * unit
        return float(quantity.to("nanometer").magnitude)
    except Exception:  # pixels, dimensionless or unknown units
        return None


def viewer_camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    camera = getattr(scene, "camera", None) if scene is not None else None
    return camera if camera is not None else viewer.camera


def layer_units(layer) -> Optional[tuple[str, ...]]:
    """The last three axis units of a layer as strings (to give derived layers the same world units)."""
    units = getattr(layer, "units", None)
    if units is None or len(units) < 3:
        return None
    return tuple(str(u) for u in units[-3:])


def layer_voxel_size(layer) -> Optional[tuple[float, float, float]]:
    """Voxel size in nm (z, y, x) of a 3D layer, or ``None`` when the layer has no physical scale.

    A layer with length units (e.g. from this plugin's reader: nm) converts its ``scale`` to nm. A layer in napari's
    default pixel units with a non-trivial scale is taken to be in nm (the convention of EM viewers and of this
    plugin); a scale of all ones in pixel units means "unknown".
    """
    scale = np.asarray(layer.scale, dtype=float)[-3:]
    units = getattr(layer, "units", None)
    factors = [_unit_to_nm(u) for u in units[-3:]] if units is not None and len(units) >= 3 else [None] * 3
    if all(f is not None for f in factors):
        return tuple(float(s * f) for s, f in zip(scale, factors))  # type: ignore[return-value]
    if np.allclose(scale, 1.0):
        return None
    return tuple(float(s) for s in scale)  # type: ignore[return-value]


def layer_problem(layer, what: str = "image") -> Optional[str]:
    """Why a layer cannot be used as a 3D greyscale volume (one line), or ``None`` when it can."""
    if layer is None:
        return None
    shape = tuple(int(s) for s in layer_level0(layer).shape)
    if getattr(layer, "rgb", False):
        return f"layer '{layer.name}' is RGB {shape}; a greyscale 3D (z, y, x) {what} is needed"
    squeezed = [s for s in shape[:-3] if s != 1]
    if len(shape) < 3:
        return (f"layer '{layer.name}' is {len(shape)}D {shape}; a 3D (z, y, x) {what} is needed "
                "(open the whole stack, not one section)")
    if squeezed:
        return f"layer '{layer.name}' has shape {shape}; a single-channel 3D (z, y, x) {what} is needed"
    dtype = np.dtype(layer_level0(layer).dtype)
    if what == "labels":
        if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
            return f"labels layer '{layer.name}' has dtype {dtype}; labels must be integers"
    elif dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        return (f"layer '{layer.name}' has dtype {dtype}; an integer or float greyscale image is needed "
                "(convert it, e.g. to uint8)")
    return None


def layer_volume(layer, kind: str = "image", voxel_size: Optional[Sequence[float]] = None) -> Volume:
    """A lazy :class:`Volume` over a layer's full-resolution data (no copy).

    Args:
        layer: A napari Image or Labels layer (3D, leading singleton axes are dropped).
        kind: ``image`` or ``labels``.
        voxel_size: nm (z, y, x); default from the layer (:func:`layer_voxel_size`).

    Raises:
        InputError: the layer is not a usable 3D volume (:func:`layer_problem`).
    """
    problem = layer_problem(layer, kind)
    if problem:
        raise InputError(problem)
    data = layer_level0(layer)
    while data.ndim > 3:
        data = data[0]
    vs = tuple(float(v) for v in voxel_size) if voxel_size is not None else layer_voxel_size(layer)
    meta = (getattr(layer, "metadata", None) or {}).get(META_KEY) or {}
    source = f" from {meta['path']}" if meta.get("path") else ""
    return Volume(array=ArrayAdapter(data), voxel_size=vs, path=f"<napari layer '{layer.name}'{source}>", kind=kind,
                  format="napari layer")


def output_placement(in_scale: Sequence[float], in_translate: Sequence[float], in_voxel_size: Sequence[float],
                     out_voxel_size: Sequence[float], offset_voxels: Sequence[int] = (0, 0, 0)
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``scale`` and ``translate`` (world units) that overlay an output written on another voxel grid.

    The library resamples by voxel centres: output voxel ``j`` of a region starting at input voxel ``o`` has its
    centre at ``o * v_in + (j + 0.5) * v_out`` nm from the input's corner. napari puts data index ``i`` at world
    ``i * scale + translate`` (voxel centres), so with ``w = in_scale / v_in`` world units per nm::

        scale_out     = v_out * w
        translate_out = in_translate + o * in_scale + (scale_out - in_scale) / 2

    Args:
        in_scale, in_translate: The input layer's world transform (last three axes).
        in_voxel_size, out_voxel_size: Voxel sizes in nm of the input and of the output grid.
        offset_voxels: Input voxel where the output region starts (an ROI or crop).
    """
    in_scale = np.asarray(in_scale, dtype=float)[-3:]
    in_translate = np.asarray(in_translate, dtype=float)[-3:]
    per_nm = in_scale / np.asarray(in_voxel_size, dtype=float)
    scale = np.asarray(out_voxel_size, dtype=float) * per_nm
    translate = in_translate + np.asarray(offset_voxels, dtype=float) * in_scale + (scale - in_scale) / 2
    return tuple(float(s) for s in scale), tuple(float(t) for t in translate)


def parse_triple(text: str, what: str, integer: bool = False) -> Optional[tuple]:
    """``"30, 8, 8"`` (or ``30x8x8``) -> a (z, y, x) triple of positive numbers; blank -> ``None``.

    Raises:
        InputError: not three positive numbers.
    """
    text = (text or "").strip()
    if not text:
        return None
    parts = [p for p in text.replace("x", ",").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [int(p) if integer else float(p) for p in parts]
    except ValueError:
        raise InputError(f"{what} '{text}' is not three numbers; write z,y,x, e.g. "
                         f"{'16,96,96' if integer else '30,8,8'}") from None
    if len(values) != 3 or any(not np.isfinite(v) or v <= 0 for v in values):
        raise InputError(f"{what} '{text}' must be three positive numbers z,y,x, e.g. "
                         f"{'16,96,96' if integer else '30,8,8'}")
    return tuple(values)


def parse_overrides(text: str) -> list[str]:
    """Extra config settings ``"train.lr=5e-4; model.channels=[8,16]"`` -> ``["train.lr=5e-4", ...]``.

    Raises:
        InputError: an entry without ``=``.
    """
    items = [t.strip() for t in (text or "").replace("\n", ";").split(";") if t.strip()]
    bad = [t for t in items if "=" not in t]
    if bad:
        raise InputError(f"extra setting '{bad[0]}' needs the form key=value, e.g. train.lr=5e-4")
    return items


def spec_exists(spec: str) -> bool:
    """Whether the file or folder of a path spec exists (an HDF5 ``:/key`` suffix is ignored)."""
    return Path(split_h5_spec(spec)[0]).exists()


def known_voxel_size(layer=None, path: Optional[str] = None) -> Optional[tuple[float, float, float]]:
    """The voxel size (nm) a layer's scale or a path's metadata gives, ``None`` when unknown or unreadable."""
    if layer is not None:
        return layer_voxel_size(layer)
    if path is None or not spec_exists(path):
        return None
    try:
        from ..io import open_volume

        return open_volume(path).voxel_size
    except Exception:  # unreadable: the Run check names the problem
        return None


def voxel_size_hint(field, layer=None, path: Optional[str] = None) -> None:
    """Show in a blank voxel-size field what it would use - the layer's or file's voxel size - or that it must be
    typed (as the field's placeholder: an empty field still means "from the metadata")."""
    if layer is None and path is None:
        text = "z,y,x nm (blank: from the layer or file)"
    else:
        vs = known_voxel_size(layer, path)
        text = (f"{', '.join(f'{v:g}' for v in vs)} nm (from the {'layer' if layer is not None else 'file'})"
                if vs is not None else "unknown: type z,y,x in nm")
    try:
        field.native.setPlaceholderText(text)
    except AttributeError:  # another magicgui backend: no placeholder
        pass


def path_text(value) -> Optional[str]:
    """The path typed in a FileEdit (``None`` when blank)."""
    if value is None:
        return None
    text = os.fspath(value).strip() if isinstance(value, (str, Path)) else str(value).strip()
    return text or None
