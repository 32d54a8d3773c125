"""Volume I/O: lazy reading of Zarr/OME-Zarr, HDF5, TIFF and slice folders; OME-Zarr writing; conversion."""

from .convert import convert_volume, format_info, volume_info
from .ome_zarr import OmeZarrWriter, atomic_output, check_output_path, create_ome_zarr, default_chunks, write_ome_zarr
from .readers import as_volume, is_zarr_path, open_volume, split_h5_spec
from .volume import Volume, read_region

__all__ = [
    "Volume",
    "open_volume",
    "as_volume",
    "read_region",
    "convert_volume",
    "volume_info",
    "format_info",
    "OmeZarrWriter",
    "create_ome_zarr",
    "write_ome_zarr",
    "atomic_output",
    "check_output_path",
    "default_chunks",
    "is_zarr_path",
    "split_h5_spec",
]
