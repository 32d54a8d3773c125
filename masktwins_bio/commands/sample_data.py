"""``masktwins-bio sample-data DIR``: write a synthetic source/target pair of EM-like volumes as OME-Zarr."""

from __future__ import annotations

import argparse
import math

from ..files import DEFAULT_OME_VERSION, OME_VERSIONS
from ._common import add_overwrite

_SIZES = ("tiny", "small", "demo", "large")


def _shift(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shift {text!r}: expected a number >= 0, e.g. 1.0") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"shift {text!r}: expected a finite number >= 0, e.g. 1.0")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r}: expected a non-negative integer, e.g. 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {text!r}: expected a non-negative integer, e.g. 0")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "sample-data", help="write synthetic EM-like source/target volumes (no download needed)",
        description="Write a labelled synthetic source volume and an unlabelled target volume with a "
                    "controllable domain shift (voxel size/anisotropy, contrast, gamma, noise, blur, "
                    "texture, cristae contrast, dark distractors) as OME-Zarr: DIR/source/raw.zarr, "
                    "DIR/source/mito.zarr, DIR/target/raw.zarr and DIR/target_groundtruth/mito.zarr "
                    "(evaluation only), plus sample_data.json and README.md. Deterministic by --seed; the "
                    "folder is written atomically.",
        epilog="Sizes (source voxels z,y,x at 40x8x8 nm; the target covers the same extent at its own "
               "voxel size): tiny 8x64x64 (tests), small 16x128x128, demo 32x192x192 (CPU demos), "
               "large 64x512x512. Example: masktwins-bio sample-data data/synthetic --size demo --seed 0")
    p.add_argument("dir", metavar="DIR", help="output folder (must not exist unless --overwrite)")
    p.add_argument("--size", choices=_SIZES, default="small", help="volume size preset (default: small)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed; the same seed gives identical data (default 0)")
    p.add_argument("--shift", type=_shift, default=1.0,
                   help="domain-gap strength: 0 = target imaged like the source, 1 = default target style, "
                        ">1 exaggerated (default 1.0)")
    p.add_argument("--ome-version", choices=OME_VERSIONS, default=DEFAULT_OME_VERSION,
                   help="0.5 = Zarr v3, the current OME-Zarr (default); 0.4 = Zarr v2, for readers without Zarr v3")
    add_overwrite(p, "output folder")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from ..data.synthetic import sample_data

    paths = sample_data(args.dir, size=args.size, seed=args.seed, shift=args.shift,
                        ome_version=args.ome_version, overwrite=args.overwrite)
    meta = json.loads(paths["metadata"].read_text())
    print(f"wrote {args.dir} (size {args.size}, seed {args.seed}, shift {args.shift:g}, "
          f"OME-Zarr {args.ome_version})")
    for key, domain in (("source_image", "source"), ("source_labels", "source"), ("target_image", "target"),
                        ("target_groundtruth", "target")):
        info = meta[domain]
        shape = "x".join(map(str, info["shape"]))
        vs = "x".join(f"{v:g}" for v in info["voxel_size_nm"])
        extra = ""
        if key in ("source_labels", "target_groundtruth"):
            fg = 100 * info["foreground_fraction"]
            extra = f", {info['n_instances']} mitochondria, {fg:.1f}% foreground"
        note = "  (evaluation only)" if key == "target_groundtruth" else ""
        print(f"  {paths[key]}: {shape} voxels of {vs} nm{extra}{note}")
    print(f"  {paths['metadata']}")
    print(f"  {paths['readme']}")
    return 0
