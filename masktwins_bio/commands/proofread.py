"""``masktwins-bio proofread LABELS``: merge, split, delete and filter instances of a label volume."""

from __future__ import annotations

import argparse

from ._common import number


def _ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected instance ids separated by commas, e.g. 3,8") from None
    if not ids or min(ids) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected instance ids > 0, e.g. 3,8")
    return ids


def _split(text: str) -> tuple[int, list[tuple[float, float, float]]]:
    label, _, rest = text.partition("@")
    try:
        seeds = [tuple(float(v) for v in p.split(",")) for p in rest.split(";") if p]
        ok = label.strip().isdigit() and len(seeds) >= 2 and all(len(s) == 3 for s in seeds)
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ID@Z,Y,X;Z,Y,X (an instance and two or more seed "
                                         "voxels inside it), e.g. 5@2,40,51;2,60,80")
    return int(label), seeds  # type: ignore[return-value]


def register(sub) -> None:
    p = sub.add_parser(
        "proofread", help="merge, split, delete and filter instances of a label volume (saved in place or to a copy)",
        description="Edit the instances of an OME-Zarr label volume without loading it: only the chunks of the "
                    "instances concerned are read and rewritten. Operations run in this order: --merge, --split, "
                    "--delete, then the filters. The edits are recorded in the store's provenance; the pyramid is "
                    "rebuilt. The same operations (with undo) are masktwins_bio.Proofreader and napari's "
                    "Proofread widget.",
        epilog="example: masktwins-bio proofread instances.zarr --merge 3,8 --split '5@2,40,51;2,60,80' "
               "--min-voxels 200 --drop-border --out proofread.zarr")
    p.add_argument("labels", help="label store (.zarr), e.g. the output of 'masktwins-bio segment'")
    p.add_argument("--merge", type=_ids, action="append", default=[], metavar="IDS",
                   help="merge these ids into the smallest (repeatable)")
    p.add_argument("--split", type=_split, action="append", default=[], metavar="ID@Z,Y,X;Z,Y,X",
                   help="split an instance at seed voxels, one part per seed (repeatable)")
    p.add_argument("--delete", type=_ids, action="append", default=[], metavar="IDS", help="delete these ids")
    p.add_argument("--min-voxels", type=number(int, 1), help="delete instances smaller than this")
    p.add_argument("--max-voxels", type=number(int, 1), help="delete instances larger than this")
    p.add_argument("--drop-border", action="store_true", help="delete instances touching a face of the volume")
    p.add_argument("--out", help="write the result to this new .zarr instead of editing LABELS in place")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import InputError
    from ..postprocess import Proofreader

    if not (args.merge or args.split or args.delete or args.min_voxels or args.max_voxels or args.drop_border):
        raise InputError("proofread: nothing to do; give --merge, --split, --delete, --min-voxels, --max-voxels or "
                         "--drop-border")
    if args.out is not None:
        from pathlib import Path

        from ..io.guard import check_parent, refuse_existing

        if Path(args.out).exists() and not args.overwrite:
            refuse_existing(args.out, "output")
        check_parent(args.out)
    pr = Proofreader(args.labels)
    before = len(pr.ids())
    for ids in args.merge:
        pr.merge(ids)
    for label, seeds in args.split:
        pr.split(label, seeds)
    for ids in args.delete:
        pr.delete(ids)
    if args.min_voxels or args.max_voxels or args.drop_border:
        edit = pr.filter(min_voxels=args.min_voxels, max_voxels=args.max_voxels, touching_border=args.drop_border)
        print(f"filter removed {len(edit.args['ids'])} instances")
    after = len(pr.ids())
    if args.dry_run:
        print(f"dry run: {before} -> {after} instances; nothing written")
        return 0
    out = pr.save(args.out, overwrite=args.overwrite)
    print(f"wrote {out}: {before} -> {after} instances ({len(pr.history)} edits recorded in its provenance)")
    return 0
