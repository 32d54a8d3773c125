#!/usr/bin/env bash
# The GPU checks of the inference issue in one short device call (about 5 min on an H100 or H200).
#
# The device image has torch but not monai/zarr/cc3d/pydantic: they travel as wheels in .whl/ (see the device
# README; this repo's .git/info/exclude ignores /.whl/). From the repo root on the device machine:
#
#     bash benchmarks/gpu_check.sh            (device run, carry [".whl"]; results land in $OUT)
#
# benchmarks/inference.py at the anchor setting (BasicUNet-32, bf16, 128 x 1024 x 1024, window
# 32 x 128 x 128, overlap 0.25) with the RSS runs, then at 128 x 2048 x 2048 without them. Each run also prints how
# far our uint8 output is from MONAI's whole-volume sliding window on the same GPU (the correctness claim).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
ANCHOR=(--device cuda --net basic_unet --channels 32,32,64,128,256,32 --window 32,128,128 --batch-size 8)
python3 benchmarks/inference.py "${ANCHOR[@]}" --size 128,1024,1024 --rss-size 64,512,512 --rss-block 32,256,256 \
    --rounds 2 2>&1 | tee "$OUT/inference_128x1024x1024.txt"
python3 benchmarks/inference.py "${ANCHOR[@]}" --size 128,2048,2048 --skip-rss --rounds 1 2>&1 \
    | tee "$OUT/inference_128x2048x2048.txt"
