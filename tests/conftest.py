"""Shared fixtures: tiny synthetic volumes, the real-data root (skipped when absent), CPU-friendly torch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from masktwins_bio.io import write_ome_zarr

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))


def shared_data_root() -> Path | None:
    """Real EM data: $MASKTWINS_DATA_ROOT, else ../shared/data beside the checkout."""
    env = os.environ.get("MASKTWINS_DATA_ROOT")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (cand / "vnc3_drosophila_mito").is_dir():
            return cand
    return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where CUDA is available (skipped, with the reason, elsewhere)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("real EM data not available (set MASKTWINS_DATA_ROOT or place it in ../shared/data)")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def blob_volume(rng):
    """A small (z, y, x) uint8 image with ellipsoid 'mitochondria' and their 0/1 labels."""
    shape = (12, 48, 40)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    for c, r in (((4, 12, 10), (3, 6, 8)), ((8, 30, 25), (3, 9, 6)), ((6, 40, 8), (2, 5, 5))):
        labels |= (((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 < 1)
    image = np.clip(150 + rng.normal(0, 12, shape) - 70 * labels, 0, 255).astype(np.uint8)
    return image, labels


@pytest.fixture
def digest():
    """A digest of every file name and byte under a path (an input must be byte-identical after a refusal)."""

    def digest_of(path) -> str:
        h = hashlib.sha256()
        for p in sorted(Path(path).rglob("*")):
            h.update(str(p.relative_to(path)).encode())
            if p.is_file():
                h.update(p.read_bytes())
        return h.hexdigest()

    return digest_of


@pytest.fixture
def refusal(capsys):
    """Check that the command just run printed one line on stderr, no traceback, containing every needle."""

    def check(*needles) -> None:
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for needle in needles:
            assert needle in err, err

    return check


# -- a tiny labelled source / unlabelled target pair and a CPU-sized config (trainer, ladder, harness tests) --
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
            "data": {"patch_size": [4, 32, 32], "voxel_size": [40, 8, 8]},  # the volumes' grid (tests/data/test_grid.py
            "model": {"channels": [4, 8], "num_res_units": 1},                 # and the trainer test cover the default)
            "train": {"steps": 6, "batch_source": 1, "batch_target": 1, "val_every": 3, "checkpoint_every": 3,
                      "log_every": 1, "warmup_steps": 2, "val_patches": 2, "device": "cpu"},
        }
        for key, value in sections.items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path, cfg

    return make
