"""``masktwins-bio convert SRC DST.zarr``: stream any volume into chunked, compressed OME-Zarr (or export it as
OME-TIFF / HDF5)."""

from __future__ import annotations

from ..files import DEFAULT_OME_VERSION, OME_VERSIONS
from ._common import add_overwrite, int_triple, number, triple


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert a volume to OME-Zarr, or export one as OME-TIFF / HDF5 (streamed, bounded memory)",
        description="Convert Zarr, HDF5 (file.h5:/key), multi-page TIFF or a folder of PNG/TIFF slices to chunked, "
                    "compressed OME-Zarr with multiscale metadata; or export any of them (e.g. predict's "
                    "probabilities, segment's labels) to an OME-TIFF (.tif) or HDF5 file (.h5[:/key]) with the "
                    "voxel size in its metadata, for tools that want those. Reads one chunk-deep slab at a time.",
        epilog="examples: masktwins-bio convert slices/ raw.zarr --voxel-size 50,4.6,4.6; "
               "masktwins-bio convert instances.zarr instances.tif; masktwins-bio convert prob.zarr prob.h5:/prob")
    p.add_argument("src", help="source path spec")
    p.add_argument("dst", help="output: .zarr, .tif/.tiff (OME-TIFF) or .h5[:/key] (HDF5)")
    p.add_argument("--format", choices=("zarr", "tiff", "h5"), help="output format (default: from DST's suffix)")
    p.add_argument("--voxel-size", type=triple, metavar="Z,Y,X", help="voxel size in nm (overrides metadata)")
    p.add_argument("--ome-version", choices=OME_VERSIONS, default=DEFAULT_OME_VERSION,
                   help="0.5 = Zarr v3, the current OME-Zarr (default); 0.4 = Zarr v2, for readers without Zarr v3")
    p.add_argument("--chunks", type=int_triple, metavar="Z,Y,X", help="chunk shape (default 32,256,256)")
    p.add_argument("--labels", action="store_true", help="the source is a label volume (integers)")
    p.add_argument("--binarize", type=number(float, 0, low_open=True), metavar="T",
                   help="store labels >= T as a 0/1 mask (implies --labels), e.g. 1 or 128")
    p.add_argument("--resample-to", type=triple, metavar="Z,Y,X", help="resample to this voxel size (nm)")
    p.add_argument("--levels", type=number(int, 1), help="pyramid levels (default: automatic)")
    p.add_argument("--memory-budget-mb", type=number(int, 1),
                   default=256, help="max MiB of one source slab in memory")
    add_overwrite(p)
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read an input an interrupted masktwins-bio job left unfinished (refused by default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..io import convert_volume, format_info, volume_info

    out = convert_volume(args.src, args.dst, voxel_size=args.voxel_size, ome_version=args.ome_version,
                         chunks=args.chunks, labels=args.labels, binarize=args.binarize,
                         resample_to=args.resample_to, levels=args.levels, overwrite=args.overwrite,
                         memory_budget=args.memory_budget_mb * 2**20, progress=not args.no_progress,
                         allow_incomplete=args.allow_incomplete, format=args.format)
    print(format_info(volume_info(str(out), value_range=False)))
    return 0
