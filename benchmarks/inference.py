"""Blockwise Zarr -> Zarr inference against the network's raw speed and MONAI's whole-volume sliding window.

Prints, measured side by side in one run on the same network and volume:

* ours: ``masktwins_bio.predict`` streaming an OME-Zarr input to an OME-Zarr output (voxels/s, end to end);
* raw forward: the network alone on windows already resident on the device (voxels/s), and the overlap redundancy
  of the sliding window (window voxels evaluated per output voxel), so ``raw / redundancy`` is the best any
  sliding window can do; plus the redundancy of our blocks (windows touching two blocks run twice);
* MONAI ``sliding_window_inference`` over the whole volume held in memory, windows on the device, stitching on the
  CPU (``device="cpu"``), excluding the time to load the volume; and how far our output is from MONAI's (uint8);
* peak RSS of our predict for volumes of 1x, 4x and 16x the RSS base size, each in a fresh subprocess (it must stay
  flat: memory is bounded by a few blocks).

CPU (small defaults)::

    python benchmarks/inference.py
GPU (the issue's anchor setting: BasicUNet-32, bf16, 128 x 1024 x 1024, overlap 0.25)::

    python benchmarks/inference.py --device cuda --net basic_unet --channels 32,32,64,128,256,32 \\
        --size 128,1024,1024 --window 32,128,128 --batch-size 8 --rss-size 64,512,512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def triple(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def make_volume(path: Path, shape, voxel_size, chunks=(32, 256, 256), seed=0) -> Path:
    """A random uint8 OME-Zarr volume, written slab by slab (never whole in memory)."""
    from masktwins_bio.io import create_ome_zarr

    w = create_ome_zarr(path, shape, "uint8", voxel_size, chunks=chunks)
    rng = np.random.default_rng(seed)
    for z0 in range(0, shape[0], w.chunks[0]):
        w.write((z0, 0, 0), rng.integers(0, 256, (min(w.chunks[0], shape[0] - z0),) + tuple(shape[1:]), np.uint8))
    w.finalize(levels=1)
    return path


def make_model(path: Path, args) -> Path:
    from masktwins_bio.config import ModelConfig
    from masktwins_bio.models import build_network, export_model

    torch.manual_seed(0)
    cfg = ModelConfig(name=args.net, channels=args.channels, num_res_units=0 if args.net == "unet" else 2)
    net = build_network(cfg, args.voxel_size, args.window)
    return export_model(net, path, cfg, {"voxel_size": list(args.voxel_size), "patch_size": list(args.window)})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_forward(model, args, device) -> float:
    """Voxels/s of network + softmax on a batch of windows already on the device."""
    x = torch.randn((args.batch_size, 1) + tuple(args.window), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                          enabled=False)

    def step():
        with torch.inference_mode(), autocast:
            return model.foreground_probability(model.network(x))

    for _ in range(2):
        step()
    sync(device)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    return x.numel() / float(np.median(times))


def redundancies(shape, block_shape, window, overlap) -> tuple[float, float]:
    """(whole-volume sliding window, our blocks): window voxels evaluated per output voxel.

    Our serial blocks hand their window sums on along z (``PredictTask.carried``), so only y and x block faces run
    windows twice.
    """
    from masktwins_bio.inference import window_starts

    whole = blocks = 1.0
    for axis, (n, b, w) in enumerate(zip(shape, block_shape, window)):
        g = window_starts(n, w, overlap)
        whole *= len(g) * min(w, n) / n
        per_block = [((g < min(a + b, n)) & (g + w > a)).sum() for a in range(0, n, b)] if axis else [len(g)]
        blocks *= sum(per_block) * min(w, n) / n
    return whole, blocks


def monai_cpu_stitched(model, volume_path, args, device) -> tuple[float, np.ndarray]:
    """Voxels/s of MONAI sliding_window_inference on the whole in-memory volume, stitched on the CPU, and its
    probabilities quantised like ours (uint8 ``round(p * 255)``)."""
    from monai.inferers import sliding_window_inference

    from masktwins_bio.data.normalize import normalize, volume_statistics
    from masktwins_bio.io import open_volume

    vol = open_volume(volume_path)
    x = torch.from_numpy(normalize(vol[:], volume_statistics(vol)))[None, None]  # loading is not timed
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                          enabled=False)

    def predictor(w):
        with autocast:
            return model.foreground_probability(model.network(w))

    t = time.perf_counter()
    with torch.inference_mode():
        out = sliding_window_inference(x, args.window, args.batch_size, predictor, overlap=args.overlap,
                                       mode="gaussian", sw_device=device, device="cpu")
    sync(device)
    elapsed = time.perf_counter() - t
    return vol.size / elapsed, out[0, 0].clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


def ours(model_path, volume_path, out, args) -> tuple[float, float]:
    """Voxels/s of our predict end to end, and without the final pyramid build (``ResumableOutput.finish``)."""
    import masktwins_bio as mtb
    from masktwins_bio.io.outputs import ResumableOutput

    finish = ResumableOutput.finish
    spent = []

    def timed_finish(self, **kw):
        t0 = time.perf_counter()
        finish(self, **kw)
        spent.append(time.perf_counter() - t0)

    ResumableOutput.finish = timed_finish
    try:
        t = time.perf_counter()
        mtb.predict(model_path, volume_path, out, device=args.device, overlap=args.overlap,
                    sw_batch_size=args.batch_size, block_shape=args.block_shape, progress=False, overwrite=True)
        elapsed = time.perf_counter() - t
    finally:
        ResumableOutput.finish = finish
    n = mtb.open_volume(volume_path).size
    return n / elapsed, n / (elapsed - spent[0])


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``; ``ru_maxrss`` would not do in a
    subprocess, because Linux carries it over from the parent (a benchmark parent holding MONAI's whole-volume output
    would inflate every child's figure).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(argv) -> None:
    """Subprocess: run predict, print peak RSS (MiB) as JSON."""
    import masktwins_bio as mtb

    model, volume, out, device, overlap, batch, block = argv
    mtb.predict(model, volume, out, device=device, overlap=float(overlap), sw_batch_size=int(batch),
                block_shape=None if block == "auto" else triple(block), progress=False, overwrite=True)
    print(json.dumps({"max_rss_mib": peak_rss_mib()}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        return rss_child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=triple, default=(32, 256, 256), help="volume (z,y,x) for the speed comparison")
    p.add_argument("--rss-size", type=triple, default=(16, 256, 256), help="1x volume of the RSS runs (4x, 16x in y,x)")
    p.add_argument("--rss-block", type=triple, default=(16, 64, 64), help="our block shape in the RSS runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast on CUDA)")
    p.add_argument("--net", default="unet", choices=("unet", "basic_unet", "dynunet", "segresnet"))
    p.add_argument("--channels", type=lambda t: tuple(int(v) for v in t.split(",")), default=(8, 16, 32),
                   help="network channels, e.g. 32,32,64,128,256,32 for BasicUNet-32")
    p.add_argument("--window", type=triple, default=(16, 64, 64), help="sliding window (z,y,x)")
    p.add_argument("--voxel-size", type=lambda t: tuple(float(v) for v in t.split(",")), default=(30.0, 8.0, 8.0))
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--block-shape", type=triple, default=None, help="our block shape (default: predict's choice)")
    p.add_argument("--repeats", type=int, default=5, help="repetitions of the raw forward timing (median)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (best of each is reported)")
    p.add_argument("--skip-rss", action="store_true")
    args = p.parse_args()

    from masktwins_bio.inference import default_block_shape
    from masktwins_bio.io import default_chunks
    from masktwins_bio.models import load_model

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="mtb-bench-") as tmp:
        tmp = Path(tmp)
        model_path = make_model(tmp / "model.pt", args)
        model = load_model(model_path, device)
        volume = make_volume(tmp / "raw.zarr", args.size, args.voxel_size)
        block = args.block_shape or default_block_shape(args.size, default_chunks(args.size), args.window, device.type)
        red_whole, red_blocks = redundancies(args.size, block, args.window, args.overlap)

        # warm-up (imports, cuDNN autotuning, allocator) on a small ROI
        import masktwins_bio as mtb

        mtb.predict(model_path, volume, tmp / "warm.zarr", device=args.device, sw_batch_size=args.batch_size,
                    roi=",".join(f"0:{min(n, 2 * w)}" for n, w in zip(args.size, args.window)), progress=False)
        # interleaved rounds, best of each: shared machines are noisy, and noise only ever slows a run down
        raw = ours_vps = ours_blocks = monai_vps = 0.0
        for _ in range(args.rounds):
            raw = max(raw, raw_forward(model, args, device))
            end_to_end, blocks_only = ours(model_path, volume, tmp / "ours.zarr", args)
            ours_vps, ours_blocks = max(ours_vps, end_to_end), max(ours_blocks, blocks_only)
            vps, monai_out = monai_cpu_stitched(model, volume, args, device)
            monai_vps = max(monai_vps, vps)
        # same network, same volume: ours must equal MONAI's whole-volume sliding window (up to float rounding)
        diff = np.abs(mtb.open_volume(tmp / "ours.zarr")[:].astype(np.int16) - monai_out.astype(np.int16))
        del monai_out

        rss = {}
        if not args.skip_rss:
            for factor, (fy, fx) in ((1, (1, 1)), (4, (2, 2)), (16, (4, 4))):
                z, y, x = args.rss_size
                shape = (z, y * fy, x * fx)
                vol = make_volume(tmp / f"rss{factor}.zarr", shape, args.voxel_size)
                out = subprocess.run([sys.executable, __file__, "--rss-child", str(model_path), str(vol),
                                      str(tmp / f"rss{factor}_out.zarr"), args.device, str(args.overlap),
                                      str(args.batch_size), ",".join(map(str, args.rss_block))],
                                     capture_output=True, text=True, check=True)
                rss[factor] = (shape, json.loads(out.stdout.strip().splitlines()[-1])["max_rss_mib"])

    name = f"{args.net}{list(args.channels)}"
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\ninference benchmark: {name}, window {list(args.window)}, overlap {args.overlap}, batch "
          f"{args.batch_size}, volume {list(args.size)} ({np.prod(args.size) / 1e6:.1f} Mvox), our blocks "
          f"{list(block)}, device {dev}{' (bf16)' if device.type == 'cuda' else ''}, torch threads "
          f"{torch.get_num_threads()}, best of {args.rounds} interleaved rounds")
    rows = [
        ("raw forward, resident windows", raw),
        (f"raw forward / redundancy {red_whole:.2f}", raw / red_whole),
        (f"ours: streaming Zarr->Zarr (block redundancy {red_blocks:.2f})", ours_vps),
        ("ours without the final pyramid build", ours_blocks),
        ("MONAI sliding window, whole volume in memory, CPU stitching", monai_vps),
    ]
    for label, v in rows:
        print(f"  {label:<64s} {v / 1e6:10.3f} Mvox/s")
    print(f"  ratio ours / (raw forward / redundancy)                          {ours_vps / (raw / red_whole):10.2f}")
    print(f"  ratio ours / MONAI CPU-stitched                                  {ours_vps / monai_vps:10.2f}")
    print(f"  ours vs MONAI output (uint8): max |difference| {int(diff.max())}, voxels differing "
          f"{np.count_nonzero(diff) / diff.size:.2e}")
    if rss:
        print(f"  peak RSS of ours (fresh process each, blocks {list(args.rss_block)}):")
        for factor, (shape, mib) in rss.items():
            print(f"    {factor:>2d}x volume {str(list(shape)):<20s} {np.prod(shape) / 1e6:8.1f} Mvox  {mib:8.0f} MiB")
        print(f"    RSS 16x / 1x: {rss[16][1] / rss[1][1]:.2f}, 16x / 4x: {rss[16][1] / rss[4][1]:.2f}")


if __name__ == "__main__":
    main()
