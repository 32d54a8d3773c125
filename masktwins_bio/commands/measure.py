"""``masktwins-bio measure LABELS --out table.csv``: per-mitochondrion morphology, blockwise."""

from __future__ import annotations

from ._common import int_triple, triple


def register(sub) -> None:
    p = sub.add_parser(
        "measure", help="per-instance morphology table (volume, surface, shape, intensity) of a label volume",
        description="Measure every instance of a label volume (0 = background), block by block so that any size "
                    "fits in memory: voxel count, volume (um^3), marching-cubes surface (um^2), centroid and "
                    "bounding box (nm), axis lengths of the moment-equivalent ellipsoid, elongation, sphericity, "
                    "mean intensity (with --image) and whether it touches the volume's border. Writes a CSV (or "
                    "parquet) table and TABLE.json beside it with every column's meaning and unit and the sources. "
                    "The result does not depend on the block shape.",
        epilog="example: masktwins-bio measure instances.zarr --image raw.zarr --out mito.csv")
    p.add_argument("labels", help="label volume (e.g. the output of 'masktwins-bio segment')")
    p.add_argument("--out", required=True, help="table to write: .csv, or .parquet (needs pyarrow)")
    p.add_argument("--image", help="EM image for the mean intensity (on the labels' grid, or resampled onto it)")
    p.add_argument("--voxel-size", type=triple, metavar="Z,Y,X", help="labels' voxel size in nm (overrides metadata)")
    p.add_argument("--image-voxel-size", type=triple, metavar="Z,Y,X", help="image voxel size in nm")
    p.add_argument("--block-shape", type=int_triple, metavar="Z,Y,X",
                   help="voxels per block (default 32,256,256 in whole chunks; the table does not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing table")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="measure labels an interrupted 'segment' left unfinished (refused by default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..postprocess import measure
    from ..postprocess.measure import check_table_path

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"--out {out}: give a .csv or .parquet file name")
    check_table_path(out, args.overwrite)  # before the work, not after it
    table = measure(args.labels, args.image, voxel_size=args.voxel_size, image_voxel_size=args.image_voxel_size,
                    block_shape=args.block_shape, allow_incomplete=args.allow_incomplete,
                    progress=not args.no_progress)
    table.save(out, overwrite=args.overwrite)
    print(f"wrote {out} ({len(table)} instances) and {out.name}.json")
    return 0
