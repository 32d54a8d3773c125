"""PatchDataset: lazy reads, foreground-aware sampling, determinism across workers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masktwins_bio.config import AugmentConfig
from masktwins_bio.data.dataset import PatchDataset, StepSampler, foreground_map
from masktwins_bio.data.transforms import build_transforms
from masktwins_bio.errors import InputError
from masktwins_bio.io import open_volume, write_ome_zarr


@pytest.fixture
def volumes(tmp_path, rng):
    img = rng.integers(0, 255, (16, 96, 96), dtype=np.uint8)
    lab = np.zeros(img.shape, np.uint8)
    lab[10:12, 70:80, 5:15] = 1  # sparse: 200 voxels of 147k
    write_ome_zarr(tmp_path / "i.zarr", img, voxel_size=(40, 8, 8), chunks=(4, 32, 32))
    write_ome_zarr(tmp_path / "l.zarr", lab, voxel_size=(40, 8, 8), chunks=(4, 32, 32), kind="labels")
    return open_volume(tmp_path / "i.zarr"), open_volume(tmp_path / "l.zarr", kind="labels"), lab


def test_foreground_map_counts(volumes):
    _, labels, lab = volumes
    counts = foreground_map(labels, (4, 16, 16))
    assert counts.shape == (4, 6, 6) and counts.sum() == lab.sum()
    assert counts[2, 4, 0] == 200  # z 10-11, y 70-79, x 5-14 all fall in cell (2, 4, 0)


def test_foreground_sampling_finds_sparse_objects(volumes):
    img, labels, _ = volumes
    ds = PatchDataset(img, (8, 32, 32), labels=labels, foreground_fraction=1.0, seed=0)
    assert all(ds[i]["label"].sum() > 0 for i in range(20))
    ds0 = PatchDataset(img, (8, 32, 32), labels=labels, foreground_fraction=0.0, seed=0)
    assert sum(ds0[i]["label"].sum() > 0 for i in range(20)) < 10


def test_items_are_normalised_tensors(volumes):
    img, labels, _ = volumes
    item = PatchDataset(img, (8, 32, 32), labels=labels)[3]
    assert item["image"].shape == (1, 8, 32, 32) and item["image"].dtype == torch.float32
    assert abs(item["image"].mean().item()) < 0.3 and item["label"].dtype == torch.float32
    assert item["index"] == 3


def test_resampled_to_training_voxel_size(volumes):
    img, labels, _ = volumes
    ds = PatchDataset(img, (8, 24, 24), voxel_size=(40, 16, 16), labels=labels)
    assert ds.image.shape == (16, 48, 48) and ds[0]["image"].shape == (1, 8, 24, 24)


def test_deterministic_and_independent_of_workers(volumes):
    img, labels, _ = volumes
    tf = build_transforms(AugmentConfig(), (40, 8, 8), (8, 32, 32), intensity=True)
    ds = PatchDataset(img, (8, 32, 32), labels=labels, transform=tf, seed=5)

    def batches(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=StepSampler(3, 2, steps=6),
                                             num_workers=workers)
        return [b["image"] for b in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3
    for a, b in zip(serial, parallel):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ds[6]["image"], serial[0][0])  # step 3, batch 2 -> first index 6


def test_step_sampler_ranks_do_not_overlap():
    a = list(StepSampler(0, 2, rank=0, world_size=2, steps=3))
    b = list(StepSampler(0, 2, rank=1, world_size=2, steps=3))
    assert not set(a) & set(b) and a[:2] == [0, 1] and b[:2] == [2, 3]
    assert list(StepSampler(2, 2, steps=3)) == [4, 5]


def test_label_shape_mismatch(tmp_path, volumes):
    img, _, _ = volumes
    write_ome_zarr(tmp_path / "bad.zarr", np.zeros((16, 96, 90), np.uint8), kind="labels")
    with pytest.raises(InputError, match=r"label shape \(16, 96, 90\) differs from image shape \(16, 96, 96\)"):
        PatchDataset(img, (8, 32, 32), labels=open_volume(tmp_path / "bad.zarr", kind="labels"))


def test_negative_labels(tmp_path, volumes):
    img, _, _ = volumes
    lab = np.zeros((16, 96, 96), np.int16)
    lab[0, 0, 0] = -1
    write_ome_zarr(tmp_path / "neg.zarr", lab, kind="labels")
    with pytest.raises(InputError, match="negative values"):
        PatchDataset(img, (8, 32, 32), labels=open_volume(tmp_path / "neg.zarr", kind="labels"))


def test_empty_labels(tmp_path, volumes):
    img, _, _ = volumes
    write_ome_zarr(tmp_path / "e.zarr", np.zeros((16, 96, 96), np.uint8), kind="labels")
    with pytest.raises(InputError, match="contain no foreground"):
        PatchDataset(img, (8, 32, 32), labels=open_volume(tmp_path / "e.zarr", kind="labels"))


def test_patch_larger_than_volume(volumes):
    img, _, _ = volumes
    with pytest.raises(InputError, match=r"patch size \[32, 32, 32\] is larger than the source volume"):
        PatchDataset(img, (32, 32, 32))


@pytest.mark.parametrize("voxel_size", [None, (40, 16, 16)])
def test_a_cached_volume_gives_the_lazy_patches(volumes, voxel_size):
    img, labels, _ = volumes
    tf = build_transforms(AugmentConfig(), (40, 8, 8), (8, 24, 24), intensity=True)
    lazy = PatchDataset(img, (8, 24, 24), voxel_size=voxel_size, labels=labels, transform=tf, seed=2)
    cached = PatchDataset(img, (8, 24, 24), voxel_size=voxel_size, labels=labels, transform=tf, seed=2,
                          cache_bytes=10**8)
    assert isinstance(cached.image.array, np.ndarray) and isinstance(cached.labels.array, np.ndarray)
    assert not isinstance(lazy.image.array, np.ndarray)
    for i in range(6):
        a, b = lazy[i], cached[i]
        torch.testing.assert_close(a["image"], b["image"], atol=1e-4, rtol=0)
        torch.testing.assert_close(a["label"], b["label"], atol=0, rtol=0)


def test_a_volume_above_the_cache_budget_stays_lazy(volumes):
    img, labels, _ = volumes
    need = img.nbytes + labels.nbytes
    assert not isinstance(PatchDataset(img, (8, 24, 24), labels=labels, cache_bytes=need - 1).image.array, np.ndarray)
    assert isinstance(PatchDataset(img, (8, 24, 24), labels=labels, cache_bytes=need).image.array, np.ndarray)
