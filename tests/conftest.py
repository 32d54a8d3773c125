"""Shared fixtures: tiny synthetic volumes, the real-data root (skipped when absent), CPU-friendly torch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))


def shared_data_root() -> Path | None:
    """Real EM data: $MASKTWINS_DATA_ROOT, else ../shared/data beside the checkout."""
    env = os.environ.get("MASKTWINS_DATA_ROOT")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (cand / "vnc3_drosophila_mito").is_dir():
            return cand
    return None


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
