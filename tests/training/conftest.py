"""A tiny labelled source / unlabelled target pair and a CPU-sized config for trainer tests."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from masktwins_bio.io import write_ome_zarr


def _blobs(shape, n, seed, dark, noise):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    for _ in range(n):
        c = rng.uniform((0, 0, 0), shape)
        r = rng.uniform((2, 5, 5), (4, 10, 10))
        labels |= ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 < 1
    image = 150 + rng.normal(0, noise, shape) - dark * labels
    return np.clip(image, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    for name, (seed, dark, noise) in {"source": (1, 60, 10), "target": (2, 30, 20)}.items():
        image, labels = _blobs((12, 64, 64), 10, seed, dark, noise)
        write_ome_zarr(root / f"{name}.zarr", image, voxel_size=(40, 8, 8), chunks=(4, 32, 32))
        write_ome_zarr(root / f"{name}_labels.zarr", labels, voxel_size=(40, 8, 8), chunks=(4, 32, 32),
                       kind="labels")
    write_ome_zarr(root / "float_labels.zarr", np.zeros((12, 64, 64), np.float32), voxel_size=(40, 8, 8))
    write_ome_zarr(root / "short_labels.zarr", np.ones((12, 64, 60), np.uint8), voxel_size=(40, 8, 8), kind="labels")
    return root


@pytest.fixture
def tiny_config(tiny_pair, tmp_path):
    """Write a tiny config file; returns (path, dict)."""

    def make(**sections):
        cfg = {
            "name": "tiny",
            "seed": 3,
            "data_root": str(tiny_pair),
            "run_dir": str(tmp_path / "run"),
            "source": {"image": "source.zarr", "labels": "source_labels.zarr"},
            "target": {"image": "target.zarr", "eval": {"image": "target.zarr", "labels": "target_labels.zarr"}},
            "data": {"patch_size": [4, 32, 32]},
            "model": {"channels": [4, 8], "num_res_units": 1},
            "train": {"steps": 6, "batch_source": 1, "batch_target": 1, "val_every": 3, "checkpoint_every": 3,
                      "log_every": 1, "warmup_steps": 2, "val_patches": 2, "device": "cpu"},
        }
        for key, value in sections.items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path, cfg

    return make
