"""``masktwins-bio benchmark``: source-only vs MaskTwins (or a ladder) on your own volumes, with a fixed budget."""

from __future__ import annotations

from ._common import add_config_arguments, number, triple


def register(sub) -> None:
    p = sub.add_parser(
        "benchmark", help="compare methods on user-given source/target/test volumes (DA-ISC metrics table)",
        description="Protocol harness: train each method on the labelled source + unlabelled target with the same "
                    "budget, predict the labelled test volume, and print/save the DA-ISC metrics (pixel AP, F1, MCC, "
                    "IoU; per section and whole volume) and instance metrics. Volumes are resampled lazily to the "
                    "training voxel size. Example (real data beside the checkout): masktwins-bio benchmark "
                    "--source-image ../shared/data/vnc3_drosophila_mito/raw --source-labels "
                    "../shared/data/vnc3_drosophila_mito/mitochondria --source-voxel-size 50,4.6,4.6 "
                    "--target-image ../shared/data/fafb_mito_damitoseg/im --target-voxel-size 40,8,8 "
                    "--test-image ../shared/data/fafb_mito_damitoseg/im --test-labels "
                    "../shared/data/fafb_mito_damitoseg/seg --test-label-threshold 128 --voxel-size 40,8,8 "
                    "--steps 300 --device cpu")
    g = p.add_argument_group("volumes (any path spec: .zarr, file.h5:/key, .tif, slice folder)")
    g.add_argument("--source-image", required=True)
    g.add_argument("--source-labels", required=True)
    g.add_argument("--target-image", required=True, help="unlabelled target used for adaptation")
    g.add_argument("--test-image", help="labelled target test image (default: --target-image, transductive)")
    g.add_argument("--test-labels", required=True)
    g.add_argument("--source-voxel-size", type=triple, metavar="Z,Y,X", help="nm; default from metadata")
    g.add_argument("--target-voxel-size", type=triple, metavar="Z,Y,X")
    g.add_argument("--test-voxel-size", type=triple, metavar="Z,Y,X",
                   help="nm; default from metadata, else the target's (flag or metadata)")
    g.add_argument("--source-label-threshold", type=number(float, 0, low_open=True),
                   default=1.0, help="foreground = labels >= T")
    g.add_argument("--test-label-threshold", type=number(float, 0, low_open=True), default=1.0)
    b = p.add_argument_group("budget and setup")
    b.add_argument("--voxel-size", type=triple, metavar="Z,Y,X",
                   help="training voxel size, nm (default: the coarser of the two domains' in-plane pixels, coarsened "
                        "by at most 1.5x until a patch spans 1152 nm - 12 nm for the CPU preset on 8 nm data - and "
                        "the thinner of their sections, the thicker if one is over 1.5x the other)")
    b.add_argument("--methods", default="source_only,masktwins", help="comma-separated (default source_only,masktwins)")
    b.add_argument("--steps", type=number(int, 1),
                   help="steps per method (an upper bound with --minutes; default 4000 with the "
                                             "cpu preset, 6000 with gpu; adaptation methods adapt in the second half)")
    b.add_argument("--minutes", type=number(float, 0, low_open=True), help="wall-clock budget per method")
    b.add_argument("--seeds", default="0", help="comma-separated seeds")
    b.add_argument("--preset", choices=("cpu", "gpu"), help="network/patch sizes (default: gpu on CUDA, else cpu)")
    b.add_argument("--config", help="base YAML whose model/method/train/data settings replace the preset")
    b.add_argument("--device", default="auto")
    b.add_argument("--no-instances", action="store_true", help="skip segmentation and instance metrics")
    b.add_argument("--out", default="runs/benchmark", help="output directory")
    b.add_argument("--overwrite", action="store_true", help="retrain runs that already exist")
    b.add_argument("--prefix-from", metavar="DIR",
                   help="fork the adaptation methods from the source-only prefix of an earlier benchmark in DIR (same "
                        "volumes and settings, with method.adapt_from_step) instead of training it again")
    b.add_argument("--no-progress", action="store_true")
    add_config_arguments(b)  # --set KEY=VALUE on the built experiment (ablations of the preset's recipe)
    p.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from ..config import load_config
    from ..experiments import compare, format_comparison
    from ..experiments.harness import build_experiment, summarize_shapes

    preset = args.preset or ("gpu" if (args.device != "cpu" and torch.cuda.is_available()) else "cpu")
    cfg = build_experiment(
        args.source_image, args.source_labels, args.target_image, args.test_image or args.target_image,
        args.test_labels, source_voxel_size=args.source_voxel_size, target_voxel_size=args.target_voxel_size,
        test_voxel_size=args.test_voxel_size, test_voxel_size_default="target",
        voxel_size=args.voxel_size, source_label_threshold=args.source_label_threshold,
        test_label_threshold=args.test_label_threshold, preset=preset, steps=args.steps, minutes=args.minutes,
        device=args.device, out_dir=args.out, base=load_config(args.config) if args.config else None)
    if args.overrides:
        from ..config import apply_overrides, config_from_dict

        cfg = config_from_dict(apply_overrides(cfg.resolved(), args.overrides), "benchmark settings (with --set)")
    print("\n".join(["benchmark:"] + summarize_shapes(cfg)))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = compare(cfg, methods, seeds=seeds, out_dir=args.out, progress=not args.no_progress,
                     overwrite=args.overwrite, instances=not args.no_instances, prefix_from=args.prefix_from)
    print(format_comparison(result))
    print(f"saved {args.out}/comparison.md and comparison.json")
    return 0
