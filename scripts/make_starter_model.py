"""Re-create the starter model shipped in masktwins_bio/starter/ (python scripts/make_starter_model.py).

A small source-only MONAI UNet trained on the project's own synthetic source domain (`masktwins-bio sample-data
--size demo --seed 0`, licence-clean), on the CPU, fixed seed. It is a *starting point for adaptation* - `predict`
uses it when no model is given, the napari Adapt widget can start from it - not a generalist mitochondria model:
on real EM expect it to need adaptation (`masktwins-bio train` with `train.init`) before its output is useful.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "masktwins_bio" / "starter" / "starter_model.pt"


def main() -> int:
    from masktwins_bio.data.synthetic import sample_data
    from masktwins_bio.experiments import demo_config
    from masktwins_bio.models import MODEL_FORMAT
    from masktwins_bio.training import train

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        sample_data(Path(tmp) / "data", size="demo", seed=0)
        cfg = demo_config(data_dir=str(Path(tmp) / "data"), run_dir=str(Path(tmp) / "run"), steps=args.steps,
                          device="cpu", seed=0)
        result = train(cfg, ["method.name=source_only", "train.selection=last"], progress=False)
        blob = torch.load(result.model_path, map_location="cpu", weights_only=True)
    assert blob["format"] == MODEL_FORMAT
    meta = blob["metadata"]
    meta["starter"] = {
        "description": "masktwins-bio starter model: source-only UNet trained on synthetic EM "
                       "(masktwins-bio sample-data --size demo --seed 0). A starting point for adaptation, not a "
                       "generalist mitochondria model.",
        "recreate": "python scripts/make_starter_model.py",
        "steps": args.steps,
    }
    training = meta.get("training") or {}
    for key in ("source", "target", "run_dir", "config_path"):  # temporary paths mean nothing elsewhere
        training.pop(key, None)
    training["data"] = "masktwins-bio sample-data --size demo --seed 0"
    meta["training"] = training
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
