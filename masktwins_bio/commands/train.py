"""``masktwins-bio train CONFIG``: adapt a model (or train source-only), as the config's ``method.name`` says."""

from __future__ import annotations

from ._common import add_config_arguments


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train/adapt a model from a YAML config",
        description="Train a segmentation model on the labelled source and adapt it to the unlabelled target with "
                    "the method in the config (source_only, mean_teacher, mic, masktwins_random_pair, masktwins). "
                    "Writes model.pt, last.pt, logs and summary.json to the run directory. Multi-GPU: "
                    "torchrun --nproc_per_node=N -m masktwins_bio.cli train CONFIG")
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    add_config_arguments(p)
    p.add_argument("--run-dir", help="output directory (default: run_dir from the config, or runs/<name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt (same config)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..config import load_config
    from ..training import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite, run_dir=args.run_dir,
                   progress=not args.no_progress)
    if result.summary:
        print(f"model: {result.model_path} (step {result.selected_step} of {result.steps}, "
              f"selection: {cfg.train.selection}); run directory: {result.run_dir}")
    return 0
