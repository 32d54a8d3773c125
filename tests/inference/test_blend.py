"""WindowBlender equals MONAI's sliding window; carried window sums equal recomputed ones and save the z halo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masktwins_bio.inference import WindowBlender, predict, window_starts
from masktwins_bio.io import open_volume


def gaussian(window):
    from monai.data.utils import compute_importance_map

    return compute_importance_map(window, mode="gaussian", sigma_scale=0.125, device="cpu",
                                  dtype=torch.float32)[None, None]


@pytest.mark.parametrize("shape,window,overlap,batch", [
    ((10, 32, 36), (8, 24, 24), 0.25, 2),
    ((12, 40, 29), (4, 16, 16), 0.5, 3),
    ((9, 17, 30), (9, 17, 10), 0.0, 1),
])
def test_whole_volume_sums_are_monai_bit_for_bit(shape, window, overlap, batch):
    from monai.inferers import sliding_window_inference

    torch.manual_seed(0)
    x = torch.randn((1, 1) + shape)
    conv = torch.nn.Conv3d(1, 1, 3, padding=1)

    def predictor(w):
        return torch.sigmoid(conv(w))

    with torch.inference_mode():
        ref = sliding_window_inference(x, window, batch, predictor, overlap=overlap, mode="gaussian")
        num, den = torch.zeros_like(x), torch.zeros_like(x)
        n = WindowBlender(window, predictor, batch, gaussian(window)).accumulate(
            x, [window_starts(s, w, overlap) for s, w in zip(shape, window)], num, den)
    assert n == np.prod([len(window_starts(s, w, overlap)) for s, w in zip(shape, window)])
    assert torch.equal(num / den, ref)


def windows_run(monkeypatch) -> list:
    """Record how many windows each WindowBlender.accumulate call evaluates."""
    counts: list = []
    original = WindowBlender.accumulate

    def counting(self, *args, **kwargs):
        counts.append(original(self, *args, **kwargs))
        return counts[-1]

    monkeypatch.setattr(WindowBlender, "accumulate", counting)
    return counts


def test_carry_runs_every_window_once_along_z(tmp_path, model_file, raw, monkeypatch):
    """Blocks of a z column hand their sums on: no window runs twice, and the result is bit-identical to blocks
    that recompute their z halo (dask tasks of 2 blocks: every other block starts a chain)."""
    import importlib

    from distributed import LocalCluster

    monkeypatch.setattr(importlib.import_module("masktwins_bio.inference.predict"), "DASK_CHAIN", 2)
    path, data = raw
    kw = {"block_shape": (2, 32, 36), "progress": False, "device": "cpu", "output_dtype": "float16"}
    counts = windows_run(monkeypatch)
    carried = predict(model_file, path, tmp_path / "carried.zarr", **kw)
    whole = np.prod([len(window_starts(n, w, 0.25)) for n, w in zip(data.shape, (8, 24, 24))])
    assert len(counts) == 5 and sum(counts) == whole  # 5 z blocks, each window once
    counts.clear()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        recomputed = predict(model_file, path, tmp_path / "recomputed.zarr", executor="dask",
                             address=cluster.scheduler_address, **kw)
    assert sum(counts) > whole
    np.testing.assert_array_equal(open_volume(carried)[:], open_volume(recomputed)[:])


def test_carried_blocks_read_only_their_own_windows(tmp_path, model_file, raw, monkeypatch):
    """A carried block reads the input planes of the windows it runs, not its whole z halo; same result."""
    import importlib

    predict_module = importlib.import_module("masktwins_bio.inference.predict")
    original = predict_module.read_region
    z_read: list = []

    def recording(array, start, stop):
        z_read.append(stop[0] - start[0])
        return original(array, start, stop)

    path, data = raw
    kw = {"block_shape": (2, 32, 36), "progress": False, "device": "cpu", "output_dtype": "float16"}
    reference = predict(model_file, path, tmp_path / "ref.zarr", **{**kw, "block_shape": (10, 32, 36)})
    monkeypatch.setattr(predict_module, "read_region", recording)
    carried = predict(model_file, path, tmp_path / "carried.zarr", **kw)
    # z = 10, window 8, stride 6: windows start at 0 and 2; block 0 (planes 0-1) runs the window at 0 (planes 0-7),
    # block 1 the one at 2 (planes 2-9) and takes the rest over; blocks 2-4 own no window and read nothing
    assert z_read == [8, 8, 0, 0, 0]
    np.testing.assert_array_equal(open_volume(carried)[:], open_volume(reference)[:])
