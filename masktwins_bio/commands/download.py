"""``masktwins-bio download NAME DIR``: fetch a public EM dataset, verify it and convert it to OME-Zarr."""

from __future__ import annotations


def register(sub) -> None:
    from ..datasets import DATASETS

    p = sub.add_parser(
        "download", help="fetch a public EM dataset (checksums, resume) and convert it to OME-Zarr",
        description="Download a public EM dataset from its official source into the data root DIR, in the layout "
                    "the shipped configs read: resumable (an interrupted download continues), verified by sha256 "
                    "(published checksums, else the one recorded at the first download), archives extracted, and "
                    "converted to OME-Zarr with the dataset's voxel size and label binarisation. Running it again "
                    "finishes what an interrupted run left.",
        epilog="example: masktwins-bio download lucchi ../shared/data  (then: masktwins-bio train "
               "configs/vnc2lucchi.yaml)")
    p.add_argument("name", choices=list(DATASETS), metavar="NAME",
                   help="; ".join(f"{n}: {d.title}" for n, d in DATASETS.items()))
    p.add_argument("dir", help="data root to download into (what data_root / $MASKTWINS_DATA_ROOT names)")
    p.add_argument("--mirror", metavar="URL",
                   help="fetch URL/<path> instead of the official sources (default $MASKTWINS_DATASETS_MIRROR)")
    p.add_argument("--no-convert", action="store_true", help="download only, no OME-Zarr conversion")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..datasets import DATASETS, download

    root = download(args.name, args.dir, mirror=args.mirror, convert=not args.no_convert,
                    progress=not args.no_progress)
    ds = DATASETS[args.name]
    print(f"{ds.title}: ready in {root}\n  licence: {ds.license}\n  cite: {ds.cite}")
    return 0
