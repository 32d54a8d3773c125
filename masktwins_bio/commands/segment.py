"""``masktwins-bio segment PROB.zarr LABELS.zarr``: instances, blockwise and consistent across chunks."""

from __future__ import annotations

from ._common import add_run_arguments, execution_from, number, triple


def register(sub) -> None:
    p = sub.add_parser(
        "segment", help="mitochondria instances from probabilities (blockwise, consistent across chunks)",
        description="Threshold a probability volume (uint8 p*255 from 'predict', or float in [0, 1]), label "
                    "connected components (cc3d) or split touching objects with a seeded watershed, remove small "
                    "objects, and write OME-Zarr labels. Runs block by block; a global relabel across block faces "
                    "gives every object one id in all chunks, and sizes are whole-object sizes. With --method cc "
                    "the result is exactly the whole-volume connected components.",
        epilog="example: masktwins-bio segment prob.zarr instances.zarr --method watershed --min-size 200")
    p.add_argument("prob", help="probability volume (e.g. the output of 'masktwins-bio predict')")
    p.add_argument("output", help="output .zarr (OME-Zarr label image)")
    p.add_argument("--threshold", type=number(float, 0, 1, low_open=True, high_open=True),
                   default=0.5, help="foreground is p >= threshold (default 0.5)")
    p.add_argument("--method", choices=("cc", "watershed"), default="cc",
                   help="cc = connected components (default); watershed = seeded watershed on the distance "
                        "transform, splits touching mitochondria")
    p.add_argument("--min-size", type=number(int, 0),
                   default=64, help="remove objects with fewer voxels (default 64)")
    p.add_argument("--seed-distance", type=number(float, 0, low_open=True), default=40.0,
                   help="watershed: seeds at least this far apart along each axis, in nm (default 40)")
    p.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26, help="voxel connectivity (default 26)")
    p.add_argument("--voxel-size", type=triple, metavar="Z,Y,X", help="voxel size in nm (overrides metadata)")
    add_run_arguments(p, "output", "64,512,512")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read an input an interrupted masktwins-bio job left unfinished (refused by default)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..postprocess import segment

    out = segment(args.prob, args.output, threshold=args.threshold, method=args.method, min_size=args.min_size,
                  seed_distance=args.seed_distance, connectivity=args.connectivity, block_shape=args.block_shape,
                  chunks=args.chunks, overwrite=args.overwrite, resume=args.resume, voxel_size=args.voxel_size,
                  ome_version=args.ome_version, allow_incomplete=args.allow_incomplete,
                  execution=execution_from(args))
    import zarr

    n = dict(zarr.open_group(str(out), mode="r").attrs).get("masktwins_bio", {}).get("n_instances")
    print(f"wrote {out} ({n} instances)")
    return 0
