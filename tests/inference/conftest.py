"""Fixtures for inference tests: a tiny randomly initialised exported model and a small OME-Zarr volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from masktwins_bio.config import ModelConfig
from masktwins_bio.io import write_ome_zarr
from masktwins_bio.models import build_network, export_model

VOXEL = (30.0, 8.0, 8.0)
PATCH = (8, 24, 24)


def make_model(path, voxel_size=VOXEL, patch=PATCH, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(channels=(4, 8), num_res_units=0)
    net = build_network(cfg, voxel_size, patch)
    return export_model(net, path, cfg, {"voxel_size": list(voxel_size), "patch_size": list(patch)})


def smooth_volume(shape, seed=0) -> np.ndarray:
    data = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.5)
    return ((data - data.min()) / (data.max() - data.min()) * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny windows gain nothing from intra-op threads, and on a busy shared CPU they cost a lot (spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model():
    """``tiny_model(path, voxel_size=..., patch=..., seed=0)`` exports a randomly initialised UNet(4, 8)."""
    return make_model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def raw(tmp_path_factory):
    """(raw path, array): 10 x 32 x 36 voxels at 30 x 8 x 8 nm, chunks 2 x 8 x 8."""
    data = smooth_volume((10, 32, 36))
    path = tmp_path_factory.mktemp("raw") / "raw.zarr"
    write_ome_zarr(path, data, voxel_size=VOXEL, chunks=(2, 8, 8))
    return path, data
