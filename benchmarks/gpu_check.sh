#!/usr/bin/env bash
# The GPU checks of the inference issue in one short device call (about 6 min on an H100 or H200).
#
# The device image has torch but not monai/zarr/cc3d/pydantic: they travel as wheels in .whl/ (see the device
# README; this repo's .git/info/exclude ignores /.whl/). From the repo root on the device machine:
#
#     bash benchmarks/gpu_check.sh            (device run, carry [".whl"]; results land in $OUT)
#
# 1. predict on CUDA equals MONAI's whole-volume sliding window on CUDA (uint8, bf16) - the correctness claim;
# 2. benchmarks/inference.py at the issue's anchor setting (BasicUNet-32, bf16, 128 x 1024 x 1024, window
#    32 x 128 x 128, overlap 0.25) with the RSS runs, then at 128 x 2048 x 2048 without them.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 - <<'EOF' 2>&1 | tee "$OUT/equality.txt"
import tempfile, pathlib, numpy as np, torch
from monai.inferers import sliding_window_inference
import masktwins_bio as mtb
from masktwins_bio.config import ModelConfig
from masktwins_bio.data.normalize import normalize, volume_statistics
from masktwins_bio.models import build_network, export_model, load_model

tmp = pathlib.Path(tempfile.mkdtemp())
torch.manual_seed(0)
cfg = ModelConfig(name="basic_unet", channels=(32, 32, 64, 128, 256, 32))
export_model(build_network(cfg, (30.0, 8.0, 8.0), (32, 128, 128)), tmp / "m.pt", cfg,
             {"voxel_size": [30, 8, 8], "patch_size": [32, 128, 128]})
data = np.random.default_rng(0).integers(0, 256, (96, 512, 512), dtype=np.uint8)
mtb.write_ome_zarr(tmp / "raw.zarr", data, voxel_size=(30, 8, 8))
out = mtb.predict(tmp / "m.pt", tmp / "raw.zarr", tmp / "p.zarr", device="cuda", sw_batch_size=4, progress=False,
                  block_shape=(32, 256, 256))
lm = load_model(tmp / "m.pt", "cuda")
x = torch.from_numpy(normalize(data, volume_statistics(mtb.open_volume(tmp / "raw.zarr"))))[None, None].cuda()
def f(w):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return lm.foreground_probability(lm.network(w))
with torch.inference_mode():
    ref = sliding_window_inference(x, (32, 128, 128), 4, f, overlap=0.25, mode="gaussian")[0, 0]
    ref = ref.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
got = mtb.open_volume(out)[:]
diff = np.abs(got.astype(int) - ref.astype(int))
print(f"predict (blocks 32x256x256, z carry) vs MONAI whole volume on CUDA: max |diff| {diff.max()} (uint8), "
      f"voxels differing {(diff > 0).mean():.2e}")
EOF
ANCHOR=(--device cuda --net basic_unet --channels 32,32,64,128,256,32 --window 32,128,128 --batch-size 8)
python3 benchmarks/inference.py "${ANCHOR[@]}" --size 128,1024,1024 --rss-size 64,512,512 --rss-block 32,256,256 \
    --rounds 2 2>&1 | tee "$OUT/inference_128x1024x1024.txt"
python3 benchmarks/inference.py "${ANCHOR[@]}" --size 128,2048,2048 --skip-rss --rounds 1 2>&1 \
    | tee "$OUT/inference_128x2048x2048.txt"
