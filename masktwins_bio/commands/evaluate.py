"""``masktwins-bio evaluate PRED GT``: streamed semantic and instance metrics, summary.json and a table."""

from __future__ import annotations

import sys

from ._common import add_overwrite, int_triple, number, triple


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="metrics of a prediction against ground truth (streamed; summary.json)",
        description="Compare a probability map or label volume with ground truth, block by block (bounded memory). "
                    "Semantic metrics as DA-ISC (pixel AP, F1, MCC, foreground IoU at the threshold; per-section mean "
                    "and whole volume) plus Dice, precision, recall, accuracy; for label predictions also instance "
                    "metrics (MitoEM-style AP at IoU 0.5/0.75, P/R/F1 at 0.5, VOI, ARAND). Prints a table (x100) "
                    "and writes summary.json with --out.",
        epilog="Volumes: .zarr, file.h5:/key, .tif, or a folder of slices. Example: masktwins-bio evaluate "
               "prob.zarr ../shared/data/fafb_mito_damitoseg/seg --gt-threshold 128 --out results/")
    p.add_argument("pred", help="prediction: probability map (uint8 p*255 or float in [0,1]) or label volume")
    p.add_argument("gt", help="ground truth: integer labels or a mask")
    p.add_argument("--out", metavar="DIR_OR_JSON", help="write summary.json into this folder, or to this .json file")
    p.add_argument("--threshold", type=number(float, 0, 1, low_open=True),
                   default=0.5, help="foreground probability threshold (default 0.5)")
    p.add_argument("--gt-threshold", type=number(float, 0, low_open=True), metavar="T",
                   help="GT foreground is value >= T (e.g. 128 for 8-bit masks); default: value > 0")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="evaluate this region of the GT only (GT voxels)")
    p.add_argument("--no-instances", action="store_true", help="skip instance metrics")
    p.add_argument("--no-per-section", action="store_true", help="whole-volume metrics only")
    p.add_argument("--prob", metavar="PROB",
                   help="probability map used to score predicted instances for AP (mean probability; default: size)")
    p.add_argument("--pred-kind", choices=("auto", "probability", "labels"), default="auto",
                   help="what PRED holds (default: from dtype and metadata; uint8 without masktwins-bio provenance "
                        "is read as labels)")
    p.add_argument("--pred-voxel-size", type=triple, metavar="Z,Y,X",
                   help="prediction voxel size in nm (overrides metadata; the prediction is resampled lazily onto "
                        "the GT grid when voxel sizes and shapes differ)")
    p.add_argument("--gt-voxel-size", type=triple, metavar="Z,Y,X", help="GT voxel size in nm (overrides metadata)")
    p.add_argument("--block-shape", type=int_triple, metavar="Z,Y,X",
                   help="block shape in voxels, whole chunks of PRED (default: about 4 Mi voxels)")
    p.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                   help="connectivity of the instances of binary masks (default 26)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    add_overwrite(p, "summary.json")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read an input an interrupted masktwins-bio job left unfinished (refused by default)")
    p.add_argument("--allow-resampling", action="store_true",
                   help="accept a prediction more than 8x finer or coarser than the GT (refused: usually a wrong "
                        "voxel size)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..metrics import evaluate, format_summary
    from ..metrics.summary import dumps

    summary = evaluate(
        args.pred, args.gt, args.out, threshold=args.threshold, gt_threshold=args.gt_threshold,
        per_section=not args.no_per_section, instance=False if args.no_instances else "auto", prob=args.prob,
        pred_kind=args.pred_kind, roi=args.roi, block_shape=args.block_shape, pred_voxel_size=args.pred_voxel_size,
        gt_voxel_size=args.gt_voxel_size, connectivity=args.connectivity, overwrite=args.overwrite,
        progress=sys.stderr.isatty(), allow_incomplete=args.allow_incomplete, allow_resampling=args.allow_resampling,
    )
    if args.json:
        print(dumps(summary))
    else:
        print(format_summary(summary))
    return 0
