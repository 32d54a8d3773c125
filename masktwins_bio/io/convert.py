"""Streaming conversion of any readable volume to OME-Zarr (or, to export, OME-TIFF / HDF5), and volume summaries
(``masktwins-bio info``).

Conversion reads the source one z-slab (one chunk deep) at a time and writes it to the output, so peak memory is
about ``chunk_z x Y x X`` voxels, independent of the number of sections. The slab depth is capped so that one slab
stays under ``memory_budget`` bytes. Resampling to another voxel size is available here as a conversion step
(``resample_to``); training and inference resample lazily per patch/block instead, so conversion is optional.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from .attributes import ome_attributes, provenance
from .guard import check_complete
from .lock import holds_output_lock
from .ome_zarr import DEFAULT_OME_VERSION, OmeZarrWriter, atomic_output, default_chunks
from .readers import open_volume
from .volume import Volume

__all__ = ["convert_volume", "volume_info", "format_info", "OUTPUT_FORMATS"]

#: what ``convert`` writes: OME-Zarr (the working format), and for tools that want them OME-TIFF and HDF5
OUTPUT_FORMATS = ("zarr", "tiff", "h5")
_SUFFIXES = {".zarr": "zarr", ".tif": "tiff", ".tiff": "tiff", ".h5": "h5", ".hdf5": "h5", ".hdf": "h5"}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="vox", unit_scale=True, disable=not enabled, leave=False)


@holds_output_lock("convert", "dst")
def convert_volume(
    src: str | os.PathLike | Volume,
    dst: str | os.PathLike,
    voxel_size: Optional[Sequence[float]] = None,
    ome_version: str = DEFAULT_OME_VERSION,
    chunks: Optional[Sequence[int]] = None,
    labels: bool = False,
    binarize: Optional[float] = None,
    resample_to: Optional[Sequence[float]] = None,
    levels: Optional[int] = None,
    overwrite: bool = False,
    memory_budget: int = 256 * 2**20,
    progress: bool = False,
    allow_incomplete: bool = False,
    format: Optional[str] = None,
) -> Path:
    """Convert a volume to chunked, compressed OME-Zarr (or export it as OME-TIFF / HDF5), streaming slab by slab.

    Args:
        src: Source path spec (any format :func:`~masktwins_bio.io.open_volume` reads) or an open Volume.
        dst: Output path: ``.zarr``; or, to export, ``.tif``/``.tiff`` (BigTIFF OME-TIFF, zlib, with the voxel size
            as OME PhysicalSize in nm) or ``.h5``/``.hdf5`` with an optional ``:/key`` (default ``/data``; gzip
            chunks, voxel size as ``voxel_size`` (nm) and ``element_size_um`` attributes, as ilastik and Fiji read
            them). Written atomically (temporary sibling, renamed when complete).
        voxel_size: Voxel size in nm (z, y, x); overrides the source metadata.
        ome_version: ``"0.5"`` (Zarr v3, the default) or ``"0.4"`` (Zarr v2, for readers without Zarr v3).
        chunks: Output chunk shape (z, y, x); default ``(32, 256, 256)`` clipped to the volume and to the memory
            budget.
        labels: Treat the source as a label volume (integer check, nearest-neighbour pyramid, ``image-label``).
        binarize: For labels: store ``labels >= binarize`` as a 0/1 uint8 mask (e.g. 1 for 0/255 masks, 128 for
            masks with stray grey values).
        resample_to: Resample to this voxel size (nm) while converting.
        levels: Pyramid levels (``None``: automatic).
        overwrite: Replace an existing output.
        memory_budget: Upper bound in bytes of one source slab held in memory.
        progress: Show a progress bar.
        format: ``zarr``, ``tiff`` or ``h5``; default from the suffix of ``dst``.

    Returns:
        The output path (for HDF5 the file, without the key).
    """
    kind = "labels" if labels or binarize is not None else "image"
    vol = open_volume(src, voxel_size=voxel_size, kind=kind) if not isinstance(src, Volume) else src
    check_complete(vol, "source", allow_incomplete, then=", then convert")  # else a partial copy looks finished
    if voxel_size is not None:
        vol = vol.with_voxel_size(voxel_size)
    out_dtype = vol.dtype  # resampled images are cast back (rounded, clipped) to the source dtype
    if resample_to is not None:
        vol = vol.resampled(resample_to)
    from .readers import split_h5_spec

    dst_file, h5_key = split_h5_spec(os.fspath(dst))
    dst = Path(dst_file)
    fmt = format or _SUFFIXES.get(dst.suffix.lower())
    if format is not None and _SUFFIXES.get(dst.suffix.lower()) != format:  # readers go by the suffix too
        wanted = {"zarr": ".zarr", "tiff": ".tif", "h5": ".h5"}.get(format, ".zarr")
        raise InputError(f"{dst}: --format {format} writes a {wanted} file; name the output {dst.stem}{wanted}")
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"{dst}: unknown output format; name it .zarr (OME-Zarr), .tif (OME-TIFF) or .h5 (HDF5), "
                         "or pass --format zarr|tiff|h5")
    if fmt != "zarr" and levels is not None:
        raise InputError(f"--levels: {fmt} exports hold one resolution level; drop --levels or write .zarr")
    if binarize is not None:
        if not float(binarize) > 0:  # labels are non-negative: every voxel would be foreground
            raise InputError(f"--binarize {binarize:g}: must be > 0 (foreground = labels >= T; {binarize:g} makes "
                             "every voxel foreground), e.g. 1 for 0/1 or 0/255 masks, 128 for 8-bit masks")
        out_dtype = np.dtype(np.uint8)
    shape = vol.shape
    chunks = tuple(chunks) if chunks else default_chunks(shape)
    if len(chunks) != 3 or any(int(c) <= 0 for c in chunks):
        raise InputError(f"--chunks {list(chunks)}: needs three positive integers (z, y, x)")
    slice_bytes = shape[1] * shape[2] * max(vol.dtype.itemsize, np.dtype(out_dtype).itemsize)
    max_depth = max(1, memory_budget // max(1, slice_bytes))
    chunks = (int(min(chunks[0], max_depth)),) + tuple(int(c) for c in chunks[1:])
    provenance = {"source": str(vol.path), "source_format": vol.format, "converted": True}
    if resample_to is not None:
        provenance["resampled_to_nm"] = [float(v) for v in resample_to]
    if binarize is not None:
        provenance["binarized_at"] = float(binarize)
    def slabs(depth: int):
        with _progress(vol.size, f"convert {Path(str(vol.path)).name}", progress) as bar:
            for z0 in range(0, shape[0], depth):
                slab = vol[z0 : z0 + depth]
                if kind == "labels" and binarize is None and np.issubdtype(slab.dtype, np.signedinteger):
                    if slab.size and slab.min() < 0:
                        raise InputError(f"{vol.path}: labels contain negative values (e.g. in sections {z0}..); "
                                         "labels must be >= 0 (0 = background)")
                if binarize is not None:
                    slab = (slab >= binarize).astype(np.uint8)
                elif slab.dtype != out_dtype:
                    info = np.iinfo(out_dtype) if np.issubdtype(out_dtype, np.integer) else None
                    slab = np.clip(np.round(slab), info.min, info.max) if info is not None else slab
                yield z0, slab.astype(out_dtype, copy=False)
                bar.update(slab.size)
                del slab

    if fmt != "zarr":
        _export_file(dst, fmt, h5_key, slabs, shape, np.dtype(out_dtype), vol, chunks, overwrite, src, provenance)
        return dst
    with atomic_output(dst, overwrite, inputs=[src], command="convert", locked=True) as tmp:
        writer = OmeZarrWriter(tmp, shape, out_dtype, vol.voxel_size, chunks=chunks, ome_version=ome_version,
                               kind=kind, name=dst.stem, attrs=provenance)
        for z0, slab in slabs(writer.chunks[0]):
            writer.write((z0, 0, 0), slab)
        writer.finalize(levels)
    return dst


def _export_file(dst: Path, fmt: str, h5_key: Optional[str], slabs, shape, dtype: np.dtype, vol: Volume, chunks,
                 overwrite: bool, src, provenance: dict) -> None:
    """Stream the slabs into one OME-TIFF or HDF5 file, written to a temporary sibling and renamed when complete."""
    import json

    from ..files import atomic_file
    from .guard import check_not_an_input, check_parent, refuse_existing

    check_not_an_input(dst, [src])
    if dst.exists() and not overwrite:
        refuse_existing(dst, f"{fmt} file")
    check_parent(dst)
    vs = vol.voxel_size
    with atomic_file(dst) as tmp:
        if fmt == "tiff":
            import tifffile

            meta: dict = {"axes": "ZYX", "Name": dst.stem, "Description": json.dumps({"masktwins_bio": provenance})}
            if vs is not None:  # OME PhysicalSize in nm: read back by masktwins-bio, Fiji/Bio-Formats, napari
                meta.update({"PhysicalSizeZ": vs[0], "PhysicalSizeY": vs[1], "PhysicalSizeX": vs[2],
                             "PhysicalSizeZUnit": "nm", "PhysicalSizeYUnit": "nm", "PhysicalSizeXUnit": "nm"})
            pages = (section for _, slab in slabs(max(1, int(chunks[0]))) for section in slab)
            with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
                tif.write(pages, shape=shape, dtype=dtype, compression="zlib", metadata=meta)
        else:
            import h5py

            key = h5_key or "/data"
            with h5py.File(tmp, "w") as f:
                ds = f.create_dataset(key, shape=shape, dtype=dtype, compression="gzip", compression_opts=4,
                                      chunks=tuple(int(min(c, s)) for c, s in zip(chunks, shape)))
                if vs is not None:
                    ds.attrs["voxel_size"] = np.asarray(vs, dtype=np.float64)  # nm, z y x
                    ds.attrs["element_size_um"] = np.asarray(vs, dtype=np.float64) / 1000.0
                ds.attrs["masktwins_bio"] = json.dumps(provenance)
                for z0, slab in slabs(max(1, int(chunks[0]))):
                    ds[z0 : z0 + slab.shape[0]] = slab


def volume_info(spec: str | os.PathLike | Volume, value_range: bool = True, voxel_size=None) -> dict:
    """Summary of a volume: format, shape, dtype, chunks, voxel size (nm), value range (streamed), provenance."""
    vol = spec if isinstance(spec, Volume) else open_volume(spec, voxel_size=voxel_size)
    info = {
        "path": str(vol.path),
        "format": vol.format,
        "shape": list(vol.shape),
        "dtype": str(vol.dtype),
        "chunks": list(vol.chunks) if vol.chunks else None,
        "voxel_size_nm": list(vol.voxel_size) if vol.voxel_size else None,
        "extent_um": [round(e / 1000, 4) for e in vol.extent_nm] if vol.extent_nm else None,
        "size_bytes": vol.nbytes,
    }
    ome = ome_attributes(vol.attrs)
    if "multiscales" in ome:
        info["pyramid_levels"] = len(ome["multiscales"][0].get("datasets", []))
        info["label_image"] = "image-label" in ome
    if provenance(vol.attrs):
        info["provenance"] = provenance(vol.attrs)
    if value_range:
        lo, hi = vol.value_range()
        info["value_range"] = [lo, hi]
    return info


def format_info(info: dict) -> str:
    """Human-readable, aligned rendering of :func:`volume_info`."""

    def fmt(v):
        if isinstance(v, list):
            return " x ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        return str(v)

    rows = [
        ("path", info["path"]),
        ("format", info["format"]),
        ("shape (z, y, x)", fmt(info["shape"])),
        ("dtype", info["dtype"]),
        ("chunks", fmt(info["chunks"]) if info["chunks"] else "none (read per section/page)"),
        ("voxel size (nm)", fmt(info["voxel_size_nm"]) if info["voxel_size_nm"] else "unknown (pass --voxel-size)"),
        ("extent (um)", fmt(info["extent_um"]) if info.get("extent_um") else "-"),
        ("size", f"{info['size_bytes'] / 2**20:.1f} MiB"),
    ]
    if "pyramid_levels" in info:
        rows.append(("pyramid levels", str(info["pyramid_levels"])))
    if "value_range" in info:
        lo, hi = info["value_range"]
        rows.append(("value range", f"{lo:g} .. {hi:g}"))
    prov = info.get("provenance")
    if prov:
        rows.append(("written by", f"masktwins-bio {prov.get('version', '?')}"))
        if "complete" in prov:
            rows.append(("complete", str(prov["complete"])))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
