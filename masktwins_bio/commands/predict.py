"""``masktwins-bio predict MODEL INPUT OUTPUT.zarr``: blockwise, resumable sliding-window inference."""

from __future__ import annotations

from ._common import add_device, add_run_arguments, execution_from, int_triple, number, triple


def register(sub) -> None:
    p = sub.add_parser(
        "predict", help="foreground probabilities of a volume of any size (blockwise, resumable)",
        description="Run a trained model over a volume block by block and write foreground probabilities to "
                    "OME-Zarr (uint8 = p*255 by default). Each block blends, MONAI's way (gaussian weights), the "
                    "whole-volume sliding windows that touch it, so the result equals one MONAI sliding window "
                    "over the whole volume while memory stays bounded; blocks hand their window sums on along z, so "
                    "no window runs twice there. Reading, compute and writing overlap. The "
                    "input is resampled on the fly to the model's voxel size; the output is on the model's grid. "
                    "Interrupted runs continue with --resume.",
        epilog="example: masktwins-bio predict runs/demo/model.pt target.zarr prob.zarr --tta flips --resume")
    p.add_argument("paths", nargs="+", metavar="[MODEL] INPUT OUTPUT",
                   help="MODEL: model file (model.pt written by 'masktwins-bio train'); left out, the starter model "
                        "shipped with the package (trained on synthetic EM: a starting point, adapt it to your data). "
                        "INPUT: vol.zarr, file.h5:/key, stack.tif or a folder of slices. OUTPUT: .zarr (OME-Zarr "
                        "probabilities)")
    p.add_argument("--tta", choices=("none", "flips"), default="none",
                   help="test-time augmentation: flips = mean over the 8 z/y/x flips of each window "
                        "(z is never swapped with y/x)")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="only this region of the input (input voxels)")
    add_device(p)
    p.add_argument("--overlap", type=number(float, 0, 1, high_open=True),
                   default=0.25, help="sliding-window overlap fraction (default 0.25)")
    p.add_argument("--batch-size", type=number(int, 1), default=2, help="windows per forward pass (default 2)")
    p.add_argument("--window", type=int_triple, metavar="Z,Y,X", help="window size (default: the model's patch size)")
    p.add_argument("--dtype", choices=("uint8", "float16"), default="uint8",
                   help="uint8 = round(p*255) (default, 2x smaller) or float16")
    p.add_argument("--voxel-size", type=triple, metavar="Z,Y,X", help="input voxel size in nm (overrides metadata)")
    p.add_argument("--allow-resampling", action="store_true",
                   help="accept an input more than 8x finer or coarser than the model (refused: usually a wrong "
                        "voxel size)")
    add_run_arguments(p, "output",
                      "one window thick in z, 8 (CPU) or 16 (CUDA) windows wide, at most 16 Mi / 128 Mi voxels")
    p.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from ..errors import InputError
    from ..inference import predict
    from ..models import STARTER

    if len(args.paths) not in (2, 3):
        raise InputError(f"give [MODEL] INPUT OUTPUT, got {len(args.paths)} paths: {' '.join(args.paths)}")
    model, inp, output = args.paths if len(args.paths) == 3 else (STARTER, *args.paths)
    if model == STARTER:
        print("no model given: using the starter model, trained on synthetic EM - a starting point, not a model of "
              "your data; train or adapt one with 'masktwins-bio train' (configs/demo.yaml's network can start "
              "from it: --set train.init=starter)", file=sys.stderr)
    out = predict(model, inp, output, tta=args.tta, roi=args.roi, overwrite=args.overwrite,
                  resume=args.resume, device=args.device, block_shape=args.block_shape, chunks=args.chunks,
                  overlap=args.overlap, sw_batch_size=args.batch_size, output_dtype=args.dtype,
                  voxel_size=args.voxel_size, window=args.window, ome_version=args.ome_version,
                  allow_resampling=args.allow_resampling, execution=execution_from(args))
    print(f"wrote {out}")
    return 0
