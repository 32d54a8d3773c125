"""Random ``kill -9`` of predict, segment, convert and train, each followed by a resume: identical results every time.

For each command a reference output is made without interruption. Then ``--kills`` times, spread over the four
commands, the command is started in a subprocess and killed with SIGKILL after a random delay: uniform between 0.5
and 0.95 x the reference run's duration, so past the imports and mostly while writing. Each killed run is then
finished: ``--resume`` for predict, segment and train, a plain rerun for convert (it writes beside the final path,
so a killed convert leaves no output). Every finished output is compared with the reference: the arrays of the Zarr
stores bit for bit, and for train the model weights and the selected step. Prints one line per kill and a summary;
exit status 1 if any result differed.

    python benchmarks/faults.py                  # 20 kills, tiny synthetic data, CPU (a few minutes)
    python benchmarks/faults.py --kills 8 --seed 1
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-m", "masktwins_bio.cli"]


def run(args, timeout=600) -> float:
    t0 = time.perf_counter()
    subprocess.run([*CLI, *map(str, args)], check=True, capture_output=True, timeout=timeout)
    return time.perf_counter() - t0


def killed(args, delay: float) -> bool:
    """Start the command and SIGKILL it after ``delay`` s; False if it finished first."""
    proc = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


def arrays(store: Path) -> dict:
    import zarr

    group = zarr.open_group(str(store), mode="r")
    return {k: np.asarray(v[...]) for k, v in group.arrays()}


def same_store(a: Path, b: Path) -> bool:
    x, y = arrays(a), arrays(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def same_model(a: Path, b: Path) -> bool:
    import json

    import torch

    sa, sb = (torch.load(p / "model.pt", map_location="cpu", weights_only=True) for p in (a, b))
    wa, wb = sa["state_dict"], sb["state_dict"]
    same_weights = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [json.loads((p / "summary.json").read_text())["selected_step"] for p in (a, b)]
    return same_weights and steps[0] == steps[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mtb-faults-"))
    try:
        return _run(work, args.kills, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, kills: int, rng: random.Random) -> int:
    import yaml

    data = work / "data"
    run(["sample-data", data, "--size", "tiny"])
    cfg = {"name": "faults", "seed": 0, "data_root": str(data),
           "source": {"image": "source/raw.zarr", "labels": "source/mito.zarr"}, "target": {"image": "target/raw.zarr"},
           "data": {"patch_size": [8, 32, 32]}, "model": {"channels": [4, 8, 16], "num_res_units": 1},
           "method": {"name": "masktwins"},
           "train": {"steps": 40, "batch_source": 1, "batch_target": 1, "val_every": 10, "checkpoint_every": 5,
                     "val_patches": 2, "device": "cpu", "warmup_steps": 2}}
    (work / "c.yaml").write_text(yaml.safe_dump(cfg))
    image = data / "target" / "raw.zarr"
    commands = {  # name -> (arguments writing to OUT, resume flag or None for a plain rerun, comparison)
        "train": (["train", work / "c.yaml", "--no-progress", "--run-dir", "OUT"], "--resume", same_model),
        "predict": (["predict", work / "ref-train" / "model.pt", image, "OUT", "--no-progress", "--block-shape",
                     "8,32,32"], "--resume", same_store),
        "segment": (["segment", work / "ref-predict.zarr", "OUT", "--no-progress", "--block-shape", "8,32,32",
                     "--min-size", "4"], "--resume", same_store),
        "convert": (["convert", image, "OUT", "--chunks", "1,32,32"], None, same_store),
    }
    def path(prefix: str, name: str) -> Path:
        return work / (f"{prefix}-{name}" + ("" if name == "train" else ".zarr"))

    startup = run(["--version"])  # before this nothing is written: kills are drawn after it
    durations = {}
    for name, (argv, _, _) in commands.items():  # references, in dependency order
        durations[name] = run([path("ref", name) if a == "OUT" else a for a in argv])
        print(f"reference {name:<8} {durations[name]:5.1f} s", flush=True)
    names = [list(commands)[i % len(commands)] for i in range(kills)]
    rng.shuffle(names)
    failures = n_killed = 0
    for i, name in enumerate(names):
        argv, resume, same = commands[name]
        out = path(f"kill{i}", name)
        full = [out if a == "OUT" else a for a in argv]
        delay = max(startup, rng.uniform(0.5, 0.95) * durations[name])  # late enough to be writing, mostly
        was_killed = killed(full, delay)
        n_killed += was_killed
        if was_killed:
            if name == "train" and not (out / "last.pt").exists():  # killed before its first checkpoint
                run(full + (["--overwrite"] if out.exists() else []))
            else:
                run(full + ([resume] if resume else []))
        leftovers = [p.name for p in work.glob(f".{out.name}.*")]  # partial stores, lock files
        ok = same(path("ref", name), out) and not leftovers
        failures += not ok
        print(f"kill {i + 1:2d}: {name:<8} after {delay:4.1f} s ({'killed' if was_killed else 'finished first'}), "
              f"resumed: {'identical' if ok else 'DIFFERENT'}", flush=True)
    print(f"{kills - failures}/{kills} runs ({n_killed} killed, the others finished before their kill) gave results "
          "identical to the uninterrupted ones, with nothing left behind")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
