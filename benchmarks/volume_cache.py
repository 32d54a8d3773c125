"""End-to-end CPU training speed on a real pair: volumes read lazily against volumes held in memory, side by side.

`benchmarks/train_step.py` times the step alone, fed from batches already in memory. A real run also reads and
resamples every patch from storage (with the CPU preset's 12 nm grid both directions resample both volumes, patch by
patch) and validates every 250 steps. This script runs the same `masktwins-bio benchmark` command of
`benchmarks/adaptation_study.py` (row ``base``, seed 0) twice, one setting after the other: with ``data.cache_mb=0`` (every
patch read lazily, the code before the cache) and with the default (each domain's training-grid volume read into memory
once). It prints each method's training seconds and steps per second, the speed-up, and the target metrics of both
runs, which must agree (the patches are the same values).

    python benchmarks/volume_cache.py                                   # VNC III -> FAFB, 1000 steps
    python benchmarks/volume_cache.py --directions vnc2fafb,fafb2vnc --jobs 2   # a study's two runs at once

Data: ``$MASKTWINS_DATA_ROOT`` or ``../shared/data`` beside the checkout. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptation_study import DIRECTIONS, command  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--directions", default="vnc2fafb", help=f"comma-separated, of {', '.join(DIRECTIONS)}")
    ap.add_argument("--jobs", type=int, default=1, help="directions trained at once, the CPU threads split between "
                    "them (as adaptation_study.py --jobs)")
    ap.add_argument("--steps", type=int, default=1000, help="steps per run; adaptation methods fork at half of them")
    ap.add_argument("--methods", default="source_only,masktwins")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    directions = args.directions.split(",")
    if args.out and args.out.exists() and any(args.out.iterdir()) and not args.dry_run:
        ap.error(f"--out {args.out} is not empty: the harness would reuse the runs there instead of timing new ones; "
                 "give a new folder")
    out = args.out or Path(tempfile.mkdtemp(prefix="mtb-cache-"))
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.jobs))} if args.jobs > 1 else None
    results = {}
    for setting, extra in (("lazy", ["data.cache_mb=0"]), ("in memory", [])):
        folder = out / setting.replace(" ", "_")
        cmds = [command(d, "base", args.seed, folder, extra, args.methods) + ["--steps", str(args.steps)]
                for d in directions]
        for cmd in cmds:
            print(" ".join(cmd), flush=True)
        if args.dry_run:
            continue
        for i in range(0, len(cmds), args.jobs):
            procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL) for c in cmds[i:i + args.jobs]]
            if any(p.wait() for p in procs):
                return 1
        for d in directions:
            runs = json.loads((folder / d / "base" / "comparison.json").read_text())["runs"]
            results[setting, d] = {r["method"]: r for r in runs}
    if args.dry_run:
        return 0
    print(f"\n{args.steps} steps, seed {args.seed}, {args.jobs} run(s) at once")
    print("| direction | method | lazy: train s (steps/s) | in memory: train s (steps/s) | speed-up | "
          "IoU lazy / in memory |")
    print("|---|---|---|---|---|---|")
    for d in directions:
        for method, lazy in results["lazy", d].items():
            mem = results["in memory", d][method]
            steps = lazy["steps"] if method == "source_only" else lazy["steps"] - (lazy.get("forked_at") or 0)
            print(f"| {d} | {method} | {lazy['train_seconds']:.1f} ({steps / lazy['train_seconds']:.2f}) | "
                  f"{mem['train_seconds']:.1f} ({steps / mem['train_seconds']:.2f}) | "
                  f"{lazy['train_seconds'] / mem['train_seconds']:.2f}x | "
                  f"{100 * lazy['metrics']['IoU']:.2f} / {100 * mem['metrics']['IoU']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
