"""Peak memory of `masktwins-bio convert` on a stack larger than the memory bound.

Generates a uint8 multi-page TIFF (default 2.0 GiB: 128 sections of 4096 x 4096), converts it to OME-Zarr with the
CLI in a child process, and reports the child's peak resident set size next to the stack size (Linux: ``VmHWM`` of the
child itself; ``ru_maxrss`` of a child would include the parent's resident size at the time it was started).

    python benchmarks/convert_memory.py                 # 2 GiB, the acceptance check (< 1 GiB peak RSS)
    python benchmarks/convert_memory.py --gib 0.25      # quick
    python benchmarks/convert_memory.py --format png    # folder of PNG slices instead of one TIFF

The stack is written section by section, so generating it needs little memory either.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


# the child: the CLI, then its own peak RSS (KiB) as the last line of stderr
CHILD = """
import json, resource, sys
from masktwins_bio import cli
rc = cli.main(sys.argv[1:])
try:
    kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": kib}), file=sys.stderr)
sys.exit(rc)
"""


def make_stack(path: Path, n_sections: int, side: int, fmt: str) -> int:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    base = ((np.sin(yy / 37.0) + np.cos(xx / 53.0)) * 40 + 128).astype(np.int16)
    if fmt == "tif":
        import tifffile

        with tifffile.TiffWriter(path, bigtiff=True) as tw:
            for z in range(n_sections):
                noise = rng.integers(-20, 20, (side, side), dtype=np.int16)
                tw.write(np.clip(base + noise + z % 7, 0, 255).astype(np.uint8), contiguous=True)
    else:
        from PIL import Image

        path.mkdir()
        for z in range(n_sections):
            noise = rng.integers(-20, 20, (side, side), dtype=np.int16)
            Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path / f"{z:05d}.png", compress_level=1)
    return n_sections * side * side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0, help="stack size in GiB (default 2.0)")
    ap.add_argument("--side", type=int, default=4096, help="section side in voxels")
    ap.add_argument("--format", choices=("tif", "png"), default="tif")
    ap.add_argument("--ome-version", choices=("0.4", "0.5"), help="OME-Zarr version written (default: the CLI's)")
    ap.add_argument("--workdir", help="where to write the stack (default: a temporary folder)")
    args = ap.parse_args()

    n = max(1, int(round(args.gib * 2**30 / args.side**2)))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mtb-convert-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / ("stack.tif" if args.format == "tif" else "slices")
    dst = work / "stack.zarr"
    try:
        t0 = time.perf_counter()
        size = make_stack(src, n, args.side, args.format)
        t_make = time.perf_counter() - t0
        cmd = [sys.executable, "-c", CHILD, "convert", str(src), str(dst), "--voxel-size", "30,8,8"]
        if args.ome_version:
            cmd += ["--ome-version", args.ome_version]
        t0 = time.perf_counter()
        child = subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t_conv = time.perf_counter() - t0
        peak = json.loads(child.stderr.strip().splitlines()[-1])["peak_kib"] * 1024
        print(f"machine        : {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"stack          : {n} x {args.side} x {args.side} uint8 {args.format} = {size / 2**30:.2f} GiB "
              f"(written in {t_make:.0f} s)")
        print(f"convert        : {t_conv:.1f} s = {size / t_conv / 2**20:.0f} MiB/s")
        print(f"peak RSS       : {peak / 2**30:.3f} GiB")
        print(f"peak RSS/stack : {peak / size:.3f}  (bound: < 1 GiB peak RSS -> {'PASS' if peak < 2**30 else 'FAIL'})")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
