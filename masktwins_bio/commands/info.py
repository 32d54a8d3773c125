"""``masktwins-bio info PATH``: shape, dtype, chunks, voxel size and value range of a volume."""

from __future__ import annotations

import json

from ._common import triple


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a volume (shape, dtype, chunks, voxel size, value range)",
                       description="Describe a volume of any supported format without loading it into memory.")
    p.add_argument("path", help="volume path spec: vol.zarr, vol.zarr/array, file.h5:/key, stack.tif, or a slice folder")
    p.add_argument("--voxel-size", type=triple, help="voxel size in nm z,y,x (overrides metadata)")
    p.add_argument("--no-range", action="store_true", help="skip the value range (it reads the whole volume)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..io import format_info, volume_info

    info = volume_info(args.path, value_range=not args.no_range, voxel_size=args.voxel_size)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
