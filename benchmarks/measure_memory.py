"""Peak memory of `masktwins-bio measure` on a label volume larger than the memory bound (issue 14: 1 Gvox < 1 GiB).

Generates an OME-Zarr uint32 label volume (default 256 x 2048 x 2048 = 1.07 Gvox, 4 GiB as raw uint32) chunk by
chunk - mitochondria-like ellipsoids of 0.2-1.5 um at 40 x 8 x 8 nm, about 1 in 12 voxels foreground, some cut by
the volume's faces - then runs `masktwins-bio measure` on it in a child process that reports its own peak resident
set size (Linux ``VmHWM``), and prints both with the table's row count and the time.

    python benchmarks/measure_memory.py                  # 1 Gvox, the acceptance check (peak RSS < 1 GiB)
    python benchmarks/measure_memory.py --size 64,1024,1024   # quick (64 Mvox)

Generating the volume needs little memory too (one chunk at a time). Check the table against a smaller volume
measured whole with ``--check`` (compares with skimage.measure.regionprops on a 32 x 512 x 512 crop-free volume).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_memory import CHILD  # noqa: E402  (the child that runs the CLI and reports its own VmHWM)

VOXEL = (40.0, 8.0, 8.0)


def objects(shape, seed: int = 0):
    """Ellipsoids (centre, semi-axes in voxels) filling about 8 % of the volume."""
    rng = np.random.default_rng(seed)
    volume = float(np.prod(shape))
    out, filled = [], 0.0
    while filled < 0.08 * volume:
        semi_nm = rng.uniform(100, 750, 3)  # 0.2-1.5 um across
        semi = np.maximum(semi_nm / np.asarray(VOXEL), 1.0)
        centre = rng.uniform(0, shape)
        out.append((centre, semi))
        filled += 4 / 3 * np.pi * np.prod(semi)
    return out


def make_labels(path: Path, shape, chunks=(32, 256, 256)) -> int:
    from masktwins_bio.io.ome_zarr import OmeZarrWriter

    objs = objects(shape)
    centres = np.array([c for c, _ in objs])
    semis = np.array([s for _, s in objs])
    writer = OmeZarrWriter(path, shape, np.uint32, VOXEL, chunks=chunks, kind="labels", name="benchmark")
    for z0 in range(0, shape[0], chunks[0]):
        for y0 in range(0, shape[1], chunks[1]):
            for x0 in range(0, shape[2], chunks[2]):
                lo = np.array([z0, y0, x0])
                hi = np.minimum(lo + chunks, shape)
                near = np.flatnonzero(np.all((centres + semis >= lo) & (centres - semis <= hi), axis=1))
                if not len(near):
                    continue
                zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
                block = np.zeros(tuple(hi - lo), np.uint32)
                for i in near:  # later objects overwrite earlier ones where they overlap
                    c, s = centres[i], semis[i]
                    inside = ((zz - c[0]) / s[0]) ** 2 + ((yy - c[1]) / s[1]) ** 2 + ((xx - c[2]) / s[2]) ** 2 <= 1
                    block[inside] = i + 1
                writer.write(tuple(lo), block)
    writer.finalize(levels=1)
    return len(objs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256,2048,2048", help="label volume shape z,y,x (default 1.07 Gvox)")
    ap.add_argument("--workdir", help="where to write the volume (default: a temporary folder; kept for reruns)")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.size.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mtb-measure-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    labels = work / f"labels_{'x'.join(map(str, shape))}.zarr"
    t0 = time.perf_counter()
    if not labels.exists():
        n = make_labels(labels, shape)
        print(f"generated {labels} ({np.prod(shape) / 1e9:.2f} Gvox, {n} objects) in {time.perf_counter() - t0:.0f} s")
    table = work / "table.csv"
    if table.exists():
        table.unlink()
        Path(f"{table}.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, "measure", str(labels), "--out", str(table), "-q"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr)
    peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_kib"] / 2**20
    rows = sum(1 for _ in open(table)) - 1
    print(json.dumps({"shape": shape, "gvox": round(float(np.prod(shape)) / 1e9, 3), "rows": rows,
                      "seconds": round(seconds, 1), "peak_rss_gib": round(peak, 3),
                      "raw_uint32_gib": round(float(np.prod(shape)) * 4 / 2**30, 2),
                      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
