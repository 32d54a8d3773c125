"""Training-step costs measured side by side in one run.

Prints three ratios (each from interleaved repetitions on the same network, patches and device):

1. MaskTwins step time / source-only step time - same student, batch ``--batch-source`` source patches (+
   ``--batch-target`` target patches for MaskTwins: teacher forward + two masked views in one batched student
   forward). Anchor: a straightforward implementation measured 2.5-2.9x on an H100; target <= 2.5x.
2. Zarr-loader step rate / in-memory-tensor step rate - the full trainer step (``Trainer.next_batch`` +
   ``train_step``) reading patches lazily from OME-Zarr through DataLoader workers, versus the same step fed from
   batches already resident on the device. Target >= 0.95.
3. Mask generation time / MaskTwins step time - the complementary masks on the batch's device. Target < 1 %.
4. With several ``--amp`` settings (default on CPU: ``none+native,none,auto``: the old code - fp32 with MONAI's
   PReLU - then fp32 and bf16, where the CPU has native bf16, with the trainer's fast_activations), both steps under
   each, interleaved, and the speed-up of each setting over the first one.
5. With ``--concurrent N``: the throughput of a ladder on this machine, old setting against new - one process
   with all CPU threads under the first ``--amp`` setting and MONAI's own PReLU (``--native-prelu``, the code at
   issue 11's filing), against N processes at once (the threads split between them, as
   ``benchmarks/adaptation_study.py --jobs N`` runs a study) under the last one with the trainer's
   :func:`~masktwins_bio.models.fast_activations`; total steps per second of each step kind, alternated over two
   rounds.

    python benchmarks/train_step.py                      # the CPU preset of `masktwins-bio benchmark`, fp32 vs auto
    python benchmarks/train_step.py --concurrent 2       # + ladder throughput: fp32 x 1 process vs auto x 2
    python benchmarks/train_step.py --device cuda --model unet --channels 32,64,128,256 \\
        --patch 32,256,256 --batch-source 4 --batch-target 2 --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


class _ReluPReLU(torch.nn.PReLU):
    """``fast_activations``' PReLU until 2026-12-07 (``--amp auto+relu``): ``relu(x) - w relu(-x)`` with autograd's
    backward, kept here to time today's fused forward and hand-written backward against it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - torch.relu(-x) * self.weight.to(x.dtype)


def make_config(data: Path, args, method: str, run_dir: Path, amp: str = "auto"):
    from masktwins_bio.config import config_from_dict

    return config_from_dict({
        "name": "bench", "seed": 0, "data_root": str(data), "run_dir": str(run_dir),
        "source": {"image": "source/raw.zarr", "labels": "source/mito.zarr"},
        "target": {"image": "target/raw.zarr"},
        # the synthetic source's own grid: a step costs the same on any grid, and the default training grid
        # (12 nm for 96-pixel patches) would shrink the small synthetic volumes below the CPU preset's patch
        "data": {"patch_size": list(args.patch), "num_workers": args.workers, "voxel_size": [40, 8, 8]},
        "model": {"name": args.model, "channels": list(args.channels), "num_res_units": args.res_units},
        "method": {"name": method, "adapt_from_step": 0},  # every step adapts (timed steps only)
        "train": {"steps": 10**6, "batch_source": args.batch_source, "batch_target": args.batch_target,
                  "device": args.device, "val_every": 10**6, "checkpoint_every": 10**6, "log_every": 10**6,
                  "val_patches": 1, "amp": amp},
    })


def main() -> None:
    from masktwins_bio.experiments.harness import PRESETS

    cpu = PRESETS["cpu"]
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=cpu["model"]["name"], choices=("unet", "basic_unet", "dynunet", "segresnet"))
    ap.add_argument("--channels", default=",".join(map(str, cpu["model"]["channels"])), type=ints)
    ap.add_argument("--res-units", type=int, default=cpu["model"]["num_res_units"])
    ap.add_argument("--patch", default="8,96,96", type=ints, help="default: the CPU preset's patch on FAFB")
    ap.add_argument("--batch-source", type=int, default=cpu["batch"][0])
    ap.add_argument("--batch-target", type=int, default=cpu["batch"][1])
    ap.add_argument("--workers", type=int, default=cpu["workers"])
    ap.add_argument("--amp", default=None, help="comma-separated train.amp settings compared side by side, each "
                    "optionally '+native' (MONAI's own PReLU, the code before fast_activations) or '+relu' (PReLU as "
                    "relu(x) - w relu(-x), fast_activations before 2026-12-07's fused forward); default on CPU: "
                    "none+native,none,auto (the old code first), auto on CUDA")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per variant (after warm-up)")
    ap.add_argument("--block", type=int, default=4, help="consecutive steps per timed repetition")
    ap.add_argument("--size", default="small", help="synthetic data size (tiny/small/demo/large)")
    ap.add_argument("--concurrent", type=int, default=0, help="also measure the throughput of N processes at once "
                    "(the new setting) against one process (the old); see point 5")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process")
    ap.add_argument("--native-prelu", action="store_true", help="train with MONAI's nn.PReLU (the old code) instead "
                    "of the trainer's numerically equal fast_activations")
    ap.add_argument("--steps-json", action="store_true", help=argparse.SUPPRESS)  # child of --concurrent
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.native_prelu:
        import masktwins_bio.training.trainer as trainer_module

        trainer_module.fast_activations = lambda net, **_: net  # the network exactly as MONAI builds it
    if args.concurrent:
        concurrent(args)
        return

    from masktwins_bio.data.synthetic import sample_data
    from masktwins_bio.methods.masks import complementary_masks
    from masktwins_bio.precision import cpu_has_native_bf16
    from masktwins_bio.training.trainer import Trainer

    work = Path(tempfile.mkdtemp(prefix="mtb-bench-"))
    sample_data(work / "data", size=args.size, seed=0)
    device = torch.device(args.device)
    amps = (args.amp or ("auto" if device.type == "cuda" else "none+native,none,auto")).split(",")

    import masktwins_bio.training.trainer as trainer_module

    fast = trainer_module.fast_activations
    trainers = {}
    import masktwins_bio.models as models_module

    fused = models_module._FastPReLU
    for amp in amps:  # "<amp>+native": MONAI's own PReLU (the code before fast_activations); "+relu": see --amp
        setting, native = amp.split("+")[0], amp.endswith("+native")
        trainer_module.fast_activations = (lambda net, **_: net) if native or args.native_prelu else fast
        models_module._FastPReLU = _ReluPReLU if amp.endswith("+relu") else fused
        for method in ("source_only", "masktwins"):
            tr = Trainer(make_config(work / "data", args, method, work / f"{method}-{amp}", setting), progress=False)
            tr.setup()
            trainers[method, amp] = tr
    trainer_module.fast_activations = fast
    models_module._FastPReLU = fused
    mt = trainers["masktwins", amps[-1]]
    cached = [mt.next_batch(0) for _ in range(4)]  # resident batches for the in-memory variants

    def step(tr, batch, i=[0]):  # noqa: B006 - a step counter shared by the closures
        i[0] += 1
        tr.train_step(dict(batch), i[0])

    def so_step(amp):
        return lambda: step(trainers["source_only", amp], {k: v for k, v in cached[0].items()
                                                           if k.startswith("source")})

    def mt_step(amp):
        return lambda: step(trainers["masktwins", amp], cached[1])

    def zarr_step():
        step(mt, mt.next_batch(0))

    gen = torch.Generator(device=device).manual_seed(0)
    shape = cached[0]["target_image"].shape

    def masks():
        complementary_masks(shape, mt.method.mask_block, 0.5, gen, device, cached[0]["target_image"].dtype)

    variants = {**{("so", a): so_step(a) for a in amps}, **{("mt", a): mt_step(a) for a in amps},
                "zarr": zarr_step, "mem": mt_step(amps[-1]), "mask": masks}
    if args.steps_json:  # a --concurrent child: the two step kinds only
        variants = {k: v for k, v in variants.items() if isinstance(k, tuple)}
    for fn in variants.values():  # warm-up (cudnn autotune, allocator, worker start, oneDNN primitive caches)
        for _ in range(3):
            fn()
    res = {k: [] for k in variants}

    def block(fn, n=args.block):
        def run():
            for _ in range(n):
                fn()
        return run

    for _ in range(args.reps):  # interleave blocks of consecutive steps so machine noise hits all variants alike
        for key, fn in variants.items():
            res[key] += timed(block(fn), device, 1)  # zarr: steady state, the workers keep prefetching
    med = {k: statistics.median(v) / args.block for k, v in res.items()}
    if args.steps_json:
        print(json.dumps({"so": med["so", amps[-1]], "mt": med["mt", amps[-1]]}))
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    print(f"device      : {name} ({native}), torch {torch.__version__}, {os.cpu_count()} CPUs, threads "
          f"{torch.get_num_threads()}")
    print(f"setup       : {args.model} {args.channels} (res units {args.res_units}), patch "
          f"{'x'.join(map(str, args.patch))}, batch {args.batch_source} source + {args.batch_target} target, "
          f"workers {args.workers}, medians of {args.reps} x {args.block} steps")
    first = amps[0]
    for amp in amps:
        dt = trainers["masktwins", amp].autocast_dtype
        so, mtt = med["so", amp], med["mt", amp]
        print(f"amp {amp:<11} ({str(dt).replace('torch.', '') if dt else 'fp32'}): source-only step {so * 1e3:8.1f} ms "
              f"({med['so', first] / so:.2f}x vs {first}), MaskTwins step {mtt * 1e3:8.1f} ms "
              f"({med['mt', first] / mtt:.2f}x vs {first}), ratio MaskTwins/source-only = {mtt / so:.2f}")
    print(f"step from Zarr loader   : {med['zarr'] * 1e3:9.1f} ms   rate ratio Zarr/in-memory = "
          f"{med['mem'] / med['zarr']:.2f}  (target >= 0.95; amp {amps[-1]})")
    print(f"mask generation         : {med['mask'] * 1e3:9.3f} ms   mask/step = "
          f"{100 * med['mask'] / med['mt', amps[-1]]:.3f} %  (target < 1 %)")


def concurrent(args) -> None:
    """Point 5: total steps/s of one all-threads process (old) vs ``--concurrent`` single-share processes (new)."""
    cpus = os.cpu_count() or 1
    amps = (args.amp or "none,auto").split(",")
    passthrough = [f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                   for k, v in vars(args).items()
                   if k not in ("amp", "concurrent", "threads", "steps_json", "native_prelu") and v is not None]
    settings = {"old": (amps[0], 1), "new": (amps[-1], args.concurrent)}
    old_flags = {"old": ["--native-prelu"], "new": []}
    rates: dict[str, dict[str, list[float]]] = {k: {"so": [], "mt": []} for k in settings}
    for _ in range(2):  # old, new, old, new: slow drifts of a shared machine hit both alike
        for name, (amp, jobs) in settings.items():
            cmd = [sys.executable, __file__, *passthrough, f"--amp={amp}", f"--threads={max(1, cpus // jobs)}",
                   "--steps-json", *old_flags[name]]
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            for kind in ("so", "mt"):
                rates[name][kind].append(sum(1.0 / o[kind] for o in outs))
    print(f"ladder throughput: old = 1 process x {cpus} threads, amp {amps[0]}, MONAI PReLU; new = {args.concurrent} "
          f"processes x {max(1, cpus // args.concurrent)} thread(s), amp {amps[-1]}, fast_activations; total steps/s, "
          "mean of 2 rounds")
    for kind, label in (("so", "source-only"), ("mt", "MaskTwins")):
        old, new = (statistics.mean(rates[n][kind]) for n in ("old", "new"))
        print(f"  {label:<11} step: old {old:6.2f} steps/s, new {new:6.2f} steps/s, speed-up {new / old:.2f}x")


if __name__ == "__main__":
    main()
