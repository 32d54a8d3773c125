"""Issue 11's baseline target: today's source-only recipe against the one at the issue's filing, at equal wall-clock.

For each seed, on the VNC III -> FAFB direction:

1. **old**: the code of the filing (commit 1335fe4, checked out with ``git worktree add OLD 1335fe4``) runs its own
   ``masktwins-bio benchmark`` with the recipe of its table - 400 source-only steps, fp32, 40 x 8 x 8 nm grid - and
   reports its training seconds;
2. **new**: this checkout's ``masktwins-bio benchmark`` trains source-only under a wall-clock budget of exactly those
   seconds (``--minutes``; the learning-rate schedule follows elapsed time) with everything else at its defaults.

Both evaluate on the whole FAFB volume with their own code. Old and new of one seed run one after the other, so
machine noise hits both alike; the table (per-section IoU x100, mean +- std over seeds) goes to stdout and
``<out>/baseline_budget.md``.

    git worktree add /tmp/old1335 1335fe4
    python benchmarks/baseline_budget.py --old-checkout /tmp/old1335 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from adaptation_study import DIRECTIONS, data_root  # noqa: E402

RUN_OLD = "import sys; from masktwins_bio.cli import main; sys.exit(main(sys.argv[1:]))"


def volume_args(direction: str = "vnc2fafb") -> list[str]:
    d, root = DIRECTIONS[direction], data_root()
    src, tgt = root / d["source"], root / d["target"]
    return ["--source-image", str(src / d["source_image"]), "--source-labels", str(src / d["source_labels"]),
            "--source-voxel-size", d["source_vs"], "--source-label-threshold", d["source_thr"],
            "--target-image", str(tgt / d["image"]), "--target-voxel-size", d["target_vs"],
            "--test-labels", str(tgt / d["target_labels"]), "--test-label-threshold", d["target_thr"],
            "--methods", "source_only", "--device", "cpu", "--no-progress"]


def result(out: Path) -> tuple[float, float]:
    """(per-section IoU, training seconds) of a one-run comparison."""
    run = json.loads((out / "comparison.json").read_text())["runs"][0]
    return run["metrics"]["IoU"], run["train_seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-checkout", type=Path, required=True, help="a worktree of commit 1335fe4")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--old-steps", type=int, default=400, help="the old table's budget")
    ap.add_argument("--out", type=Path, default=Path("runs/baseline_budget"))
    args = ap.parse_args()
    if not (args.old_checkout / "masktwins_bio" / "cli.py").exists():
        ap.error(f"--old-checkout {args.old_checkout}: no masktwins_bio/cli.py there; create it with "
                 "'git worktree add DIR 1335fe4'")
    args.out = args.out.resolve()  # the old checkout runs in its own folder
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        old_out, new_out = (args.out / kind / f"seed{seed}" for kind in ("old", "new"))
        if not (old_out / "comparison.json").exists():
            env = {**os.environ, "PYTHONPATH": str(args.old_checkout.resolve())}
            subprocess.run([sys.executable, "-c", RUN_OLD, "benchmark", *volume_args(), "--voxel-size", "40,8,8",
                            "--steps", str(args.old_steps), "--seeds", str(seed), "--out", str(old_out)],
                           env=env, check=True, cwd=args.old_checkout)
        iou_old, secs = result(old_out)
        if not (new_out / "comparison.json").exists():
            subprocess.run(["masktwins-bio", "benchmark", *volume_args(), "--minutes", f"{secs / 60:.4f}",
                            "--seeds", str(seed), "--out", str(new_out)], check=True)
        iou_new, secs_new = result(new_out)
        rows.append((seed, iou_old, secs, iou_new, secs_new))
        print(f"seed {seed}: old {100 * iou_old:.1f} IoU in {secs:.0f} s, new {100 * iou_new:.1f} IoU in "
              f"{secs_new:.0f} s", flush=True)
    old, new = (np.array([r[i] for r in rows]) * 100 for i in (1, 3))
    lines = ["| recipe | seeds | per-section IoU | train s (mean) |", "|---|---|---|---|",
             f"| old (commit 1335fe4, {args.old_steps} steps, fp32, 40 x 8 x 8 nm) | {len(rows)} | "
             f"{old.mean():.1f} +- {old.std():.1f} | {np.mean([r[2] for r in rows]):.0f} |",
             f"| new (this checkout's defaults, the same seconds) | {len(rows)} | {new.mean():.1f} +- {new.std():.1f} | "
             f"{np.mean([r[4] for r in rows]):.0f} |"]
    table = "\n".join(lines)
    print(table)
    (args.out / "baseline_budget.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
