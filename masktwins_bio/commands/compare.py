"""``masktwins-bio compare CONFIG --methods a,b,c``: the method ladder with the same data, seeds and budget."""

from __future__ import annotations

from ._common import add_config_arguments


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    import argparse

    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="run several methods on one experiment and tabulate the target metrics",
        description="Train each method (same data, seeds, network and budget), predict the labelled target "
                    "evaluation volume (target.eval in the config) and write comparison.md + comparison.json.")
    p.add_argument("config", help="YAML config")
    p.add_argument("--methods", type=_csv, default=["source_only", "mean_teacher", "masktwins"],
                   help="comma-separated methods (default: source_only,mean_teacher,masktwins; also mic, "
                        "masktwins_random_pair)")
    p.add_argument("--seeds", type=_ints, help="comma-separated seeds, e.g. 0,1,2 (default: the config's seed)")
    p.add_argument("--out", help="output directory (default: <run_dir>/compare)")
    p.add_argument("--overwrite", action="store_true", help="retrain runs that already have a model")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--prefix-from", metavar="DIR", help="fork the adaptation methods from the source-only prefix "
                   "snapshots of an earlier comparison in DIR (same config; method.adapt_from_step > 0)")
    add_config_arguments(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..experiments import compare, format_comparison

    result = compare(args.config, args.methods, seeds=args.seeds, out_dir=args.out, overrides=args.overrides,
                     progress=not args.no_progress, overwrite=args.overwrite, prefix_from=args.prefix_from)
    print(format_comparison(result))
    return 0
