"""``masktwins-bio demo``: the whole toolkit on built-in synthetic domains, on the CPU in a few minutes."""

from __future__ import annotations

from ._common import add_device, number


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="synthetic source/target -> source-only vs MaskTwins -> predictions -> metrics + figure",
        description="Generate a synthetic labelled source and unlabelled target with a domain shift, train a "
                    "source-only model, adapt it with MaskTwins (no target labels), predict, segment and evaluate "
                    "both on the target, print a table and write demo_figure.png. Needs no downloads.")
    p.add_argument("--out", default="masktwins-demo", help="output folder (default: masktwins-demo)")
    p.add_argument("--size", default="demo", choices=("tiny", "small", "demo", "large"), help="synthetic data size")
    p.add_argument("--steps", type=number(int, 1), help="source-only training steps (default 300)")
    p.add_argument("--adapt-steps", type=number(int, 1), help="MaskTwins adaptation steps (default 150)")
    p.add_argument("--seed", type=number(int, 0), default=0)
    add_device(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..experiments import run_demo

    run_demo(args.out, size=args.size, steps=args.steps, adapt_steps=args.adapt_steps, device=args.device,
             seed=args.seed, progress=not args.no_progress)
    return 0
