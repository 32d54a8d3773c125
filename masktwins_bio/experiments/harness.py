"""The protocol harness: a source-only vs MaskTwins (or any ladder) comparison on user-given volumes.

Given a labelled source, an unlabelled target (for adaptation) and a labelled target test set - each as any path
spec with a voxel size from its metadata or given explicitly - :func:`build_experiment` writes a complete
:class:`~masktwins_bio.config.Config` (training voxel size, a patch that fits every volume, a CPU- or GPU-sized
network) and :func:`~masktwins_bio.training.compare` runs the methods with a fixed budget (steps or
wall-clock minutes) and reports the DA-ISC metrics (pixel AP, F1, MCC, IoU; per section and whole volume) and the
instance metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..config import Config, ModelConfig, config_from_dict
from ..data.grid import training_voxel_size
from ..errors import InputError
from ..io import open_volume
from ..models import required_divisor

__all__ = ["build_experiment", "preset_recipe", "summarize_shapes", "PRESETS"]

#: network / patch / batch presets; the patch is shrunk to fit the smallest volume. Budgets are chosen by
#: convergence (BENCHMARKS.md, "Adaptation study"): every method trains ``steps`` steps, the adaptation methods the
#: second half of them from the source-trained model of the first half (``method.adapt_from_step: auto``).
PRESETS = {
    "cpu": {"model": {"name": "unet", "channels": [16, 32, 64, 128], "num_res_units": 1},
            "patch": (16, 96, 96), "batch": (2, 2), "workers": 0, "steps": 4000},
    "gpu": {"model": {"name": "unet", "channels": [32, 64, 128, 256], "num_res_units": 2},
            "patch": (16, 256, 256), "batch": (4, 2), "workers": 8, "steps": 6000},
}


def preset_recipe(preset: str = "cpu", steps: Optional[int] = None) -> dict:
    """The preset's training recipe for a step budget, as config sections: ``model``, ``data`` (patch size),
    ``train`` (batches, warm-up, validation and checkpoint intervals) and ``method`` (MaskTwins, the teacher decay).

    The one place the recipe of BENCHMARKS.md's adaptation study is written down: ``masktwins-bio benchmark`` and the
    napari Adapt widget both start from it (everything else - the training grid, whole-section masks, augmentation -
    is the config schema's default).
    """
    if preset not in PRESETS:
        raise InputError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    steps = steps or p["steps"]
    return {
        "model": dict(p["model"]),
        "data": {"patch_size": list(p["patch"]), "num_workers": p["workers"]},
        "train": {"batch_source": p["batch"][0], "batch_target": p["batch"][1],
                  "warmup_steps": min(200, max(1, steps // 10)),
                  "val_every": max(min(steps, 5), min(500, steps // 16)),
                  "checkpoint_every": max(1, min(500, steps // 2)), "steps": steps},
        # The paper's teacher decay (0.999) averages ~1000 steps: too slow to track a student trained for a few
        # hundred; scale the averaging horizon with the budget (0.99 at <= 2000 steps, 0.999 from 20k steps).
        # The views' agreement is chosen without labels (training/choice.py): symmetric removes a source model's
        # false positives, directed keeps the true objects it under-segments; the label-free score of the two
        # adapted models told which one a pair needs in 6 of 6 paired runs (BENCHMARKS.md; half an adaptation more:
        # the two are compared halfway, method.agreement_probe).
        "method": {"name": "masktwins", "ema_alpha": round(min(0.999, max(0.99, 1 - 20 / steps)), 4),
                   "agreement": "auto"},
    }


def _fit_patch(preset_patch, shapes, model_cfg: ModelConfig, voxel_size) -> tuple[int, int, int]:
    patch = []
    div = required_divisor(model_cfg, voxel_size, preset_patch)
    for axis in range(3):
        limit = min(s[axis] for s in shapes)
        p = min(preset_patch[axis], limit)
        p = (p // div[axis]) * div[axis]
        if p < div[axis]:
            raise InputError(f"the volumes are only {limit} voxels along {'zyx'[axis]} at the training voxel size; "
                             f"the network needs at least {div[axis]} (choose a coarser --voxel-size or a smaller "
                             "network in --config)")
        patch.append(p)
    return tuple(patch)  # type: ignore[return-value]


def build_experiment(source_image: str, source_labels: str, target_image: str, test_image: str, test_labels: str,
                     *, source_voxel_size=None, target_voxel_size=None, test_voxel_size=None, voxel_size=None,
                     source_label_threshold: float = 1.0, test_label_threshold: float = 1.0,
                     preset: str = "cpu", steps: Optional[int] = None, minutes: Optional[float] = None,
                     device: str = "auto", out_dir="runs/benchmark", base: Optional[Config] = None,
                     seed: int = 0, test_voxel_size_default: Optional[str] = None) -> Config:
    """A complete experiment config for the given volumes.

    Args:
        source_image, source_labels: Labelled source (path specs).
        target_image: Unlabelled target used for adaptation.
        test_image, test_labels: Labelled target test set (metrics only; may be the adaptation volume itself for a
            transductive protocol).
        source_voxel_size, target_voxel_size, test_voxel_size: nm (z, y, x); default: the files' metadata.
        test_voxel_size_default: ``"target"``: a test volume without voxel-size metadata (and no
            ``test_voxel_size``) takes the target's voxel size, as ``masktwins-bio benchmark`` documents.
        voxel_size: Training voxel size in nm; default: ``base``'s, else
            :func:`~masktwins_bio.data.grid.training_voxel_size` of the two domains for the preset's patch (12 nm
            in-plane for the CPU preset's 96-pixel patches on 8 nm data).
        source_label_threshold, test_label_threshold: Foreground is ``labels >= threshold``.
        preset: ``cpu`` or ``gpu`` network/patch/batch sizes (ignored for what ``base`` sets).
        steps: Step budget (an upper bound when ``minutes`` is given); default: ``base``'s, else the preset's (500 on
            CPU, 3000 on a GPU).
        minutes: Wall-clock budget per method.
        device: Training and inference device.
        out_dir: Run directory.
        base: Optional config whose model/method/train/data settings are used instead of the preset.
        seed: Seed.
    """
    if preset not in PRESETS:
        raise InputError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    vols = {
        "source": open_volume(source_image, source_voxel_size),
        "target": open_volume(target_image, target_voxel_size),
        "test": open_volume(test_image, test_voxel_size),
    }
    if vols["test"].voxel_size is None and test_voxel_size_default == "target" and vols["target"].voxel_size:
        vols["test"] = vols["test"].with_voxel_size(vols["target"].voxel_size)  # imaged like the target
    for name, vol in vols.items():
        if vol.voxel_size is None:
            raise InputError(f"{vol.path}: the {name} voxel size is unknown; give it with --{name}-voxel-size z,y,x (nm)")
    p = PRESETS[preset]
    data = base.resolved() if base is not None else {}
    if voxel_size is None and data.get("data", {}).get("voxel_size"):
        voxel_size = data["data"]["voxel_size"]
    grid_patch = tuple(data["data"]["patch_size"]) if base is not None else p["patch"]
    train_vs = tuple(float(v) for v in (voxel_size or training_voxel_size(vols["source"].voxel_size,
                                                                           vols["target"].voxel_size, grid_patch)))
    shapes = [tuple(max(1, int(round(n * v / t))) for n, v, t in zip(vol.shape, vol.voxel_size, train_vs))
              for vol in (vols["source"], vols["target"])]
    steps = steps or data.get("train", {}).get("steps") or p["steps"]
    model_cfg = ModelConfig.model_validate(data.get("model", p["model"]))
    patch = tuple(data["data"]["patch_size"]) if base is not None else _fit_patch(p["patch"], shapes, model_cfg,
                                                                                  train_vs)
    recipe = preset_recipe(preset, steps)
    cfg = {
        **({k: v for k, v in data.items() if k in ("method", "inference", "segment")}),
        "name": Path(str(out_dir)).name or "benchmark",
        "seed": seed,
        "data_root": ".",
        "run_dir": str(out_dir),
        "source": {"image": str(source_image), "labels": str(source_labels), "voxel_size": list(vols["source"].voxel_size),
                   "label_threshold": source_label_threshold},
        "target": {"image": str(target_image), "voxel_size": list(vols["target"].voxel_size),
                   "eval": {"image": str(test_image), "labels": str(test_labels),
                            "voxel_size": list(vols["test"].voxel_size), "label_threshold": test_label_threshold}},
        "data": {**data.get("data", {}), "voxel_size": list(train_vs), "patch_size": list(patch),
                 "num_workers": data.get("data", {}).get("num_workers", p["workers"])},
        "model": model_cfg.model_dump(mode="json"),
        "train": {**data.get("train", recipe["train"]), "steps": steps, "max_minutes": minutes, "device": device},
    }
    if "method" not in cfg:
        cfg["method"] = recipe["method"]
    if minutes is not None and base is None:
        cfg["train"]["val_every"] = max(1, min(cfg["train"]["val_every"], 100))
    return config_from_dict(cfg, "benchmark settings")


def summarize_shapes(cfg: Config) -> list[str]:
    """Human-readable lines describing what will be compared (for the CLI)."""
    lines = []
    for name, spec, vs in (("source", cfg.source.image, cfg.source.voxel_size),
                           ("target", cfg.target.image, cfg.target.voxel_size),
                           ("test", cfg.target.eval.image, cfg.target.eval.voxel_size)):
        vol = open_volume(spec, vs)
        lines.append(f"  {name:<6} {vol.path}: {'x'.join(map(str, vol.shape))} voxels of "
                     f"{'x'.join(f'{v:g}' for v in vol.voxel_size)} nm")
    lines.append(f"  training grid {'x'.join(f'{v:g}' for v in cfg.data.voxel_size)} nm, patch "
                 f"{'x'.join(map(str, cfg.data.patch_size))}, {cfg.model.name} {list(cfg.model.channels)}")
    return lines

