"""Blockwise predict: equality with MONAI's whole-volume sliding window, resume after kill -9, dask, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from masktwins_bio import cli
from masktwins_bio.data.normalize import normalize, volume_statistics
from masktwins_bio.errors import Cancelled, InputError
from masktwins_bio.inference import predict, tta_predictor, window_starts
from masktwins_bio.io import Volume, open_volume, write_ome_zarr
from masktwins_bio.models import load_model

VOXEL = (30.0, 8.0, 8.0)  # as in conftest.py
PATCH = (8, 24, 24)


def monai_whole_volume(model_file, data, overlap=0.25, tta="none", window=PATCH, device="cpu") -> np.ndarray:
    """MONAI sliding_window_inference over the whole in-memory volume, same normalisation and predictor (on CUDA
    in bf16 autocast, as predict runs there)."""
    import contextlib

    from monai.inferers import sliding_window_inference

    lm = load_model(model_file, device)
    x = torch.from_numpy(normalize(data, volume_statistics(Volume(data, VOXEL))))[None, None].to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device != "cpu" else contextlib.nullcontext()

    def forward(w):
        with amp:
            logits = lm.network(w)
        return lm.foreground_probability(logits)

    with torch.inference_mode():
        out = sliding_window_inference(x, window, 2, tta_predictor(forward, tta), overlap=overlap, mode="gaussian")
    return out[0, 0].float().cpu().numpy()


def read(path) -> np.ndarray:
    return open_volume(path)[:]


def provenance(path) -> dict:
    return dict(zarr.open_group(str(path), mode="r").attrs)["masktwins_bio"]


@pytest.mark.parametrize("size,window,overlap",
                         [(44, 24, 0.25), (40, 24, 0.5), (14, 8, 0.0), (5, 8, 0.25), (24, 24, 0.3)])
def test_window_starts_match_monai(size, window, overlap):
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    padded = max(size, window)
    interval = _get_scan_interval((padded,), (window,), 1, (overlap,))
    expected = sorted({s[0].start for s in dense_patch_slices((padded,), (window,), interval)})
    assert window_starts(size, window, overlap).tolist() == expected


@pytest.mark.parametrize("overlap,block_shape,tta", [
    (0.25, (4, 16, 16), "none"),    # blocks smaller than the window
    (0.5, (6, 16, 24), "none"),
    (0.25, (10, 32, 36), "none"),   # one block = the whole volume
    (0.25, (10, 16, 36), "flips"),
])
def test_equals_monai_whole_volume(tmp_path, model_file, raw, overlap, block_shape, tta):
    """Blocks run the whole-volume windows that touch them, so the result equals MONAI on the whole volume."""
    path, data = raw
    out = predict(model_file, path, tmp_path / "p.zarr", overlap=overlap, block_shape=block_shape, tta=tta,
                  output_dtype="float16", progress=False, device="cpu")
    ref = monai_whole_volume(model_file, data, overlap, tta)
    assert read(out).dtype == np.float16
    np.testing.assert_allclose(read(out).astype(np.float32), ref, atol=1e-3)  # float16 rounding only


@pytest.mark.gpu
@pytest.mark.parametrize("block_shape,tta", [((4, 16, 16), "none"), ((10, 16, 36), "flips")])
def test_equals_monai_whole_volume_on_cuda(tmp_path, model_file, raw, block_shape, tta):
    """Issue 13: the same equality on the GPU (bf16 autocast in both), to bf16 and float16 rounding."""
    path, data = raw
    out = predict(model_file, path, tmp_path / "p.zarr", block_shape=block_shape, tta=tta, output_dtype="float16",
                  progress=False, device="cuda")
    ref = monai_whole_volume(model_file, data, tta=tta, device="cuda")
    got = read(out).astype(np.float32)
    # bf16 logits (8 mantissa bits) and cuDNN's choice of kernels per batch make single voxels differ slightly;
    # a wrong blend or window placement shows as errors of 0.1 and more
    np.testing.assert_allclose(got, ref, atol=3e-2)
    assert np.abs(got - ref).mean() < 3e-3


def test_uint8_output_and_provenance(tmp_path, model_file, raw):
    path, data = raw
    out = predict(model_file, path, tmp_path / "p.zarr", block_shape=(8, 24, 24), chunks=(4, 8, 8), progress=False,
                  device="cpu")
    ref = np.round(monai_whole_volume(model_file, data) * 255)
    got = read(out).astype(np.float32)
    assert read(out).dtype == np.uint8 and np.abs(got - ref).max() <= 1 and (got == ref).mean() > 0.99
    prov = provenance(out)
    assert prov["complete"] is True and prov["task"] == "predict"
    assert prov["model"]["sha256"] == load_model(model_file).sha256 and prov["tta"] == "none"
    assert prov["window"] == list(PATCH) and prov["overlap"] == 0.25 and prov["version"]
    assert not (out / ".masktwins_work").exists()
    vol = open_volume(out)
    assert vol.voxel_size == VOXEL and vol.chunks == (4, 8, 8)


def test_roi_equals_whole_volume_of_crop(tmp_path, model_file, raw):
    path, data = raw
    out = predict(model_file, path, tmp_path / "p.zarr", roi="1:9, 4:30, :-4", block_shape=(4, 16, 16),
                  output_dtype="float16", progress=False, device="cpu")
    crop = np.ascontiguousarray(data[1:9, 4:30, :-4])
    # normalisation uses the statistics of the whole input volume, not of the crop
    stats = volume_statistics(Volume(data, VOXEL))
    lm = load_model(model_file)
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        ref = sliding_window_inference(torch.from_numpy(normalize(crop, stats))[None, None], PATCH, 2,
                                       lambda w: lm.foreground_probability(lm.network(w)), overlap=0.25,
                                       mode="gaussian")[0, 0].numpy()
    assert read(out).shape == (8, 26, 32)
    np.testing.assert_allclose(read(out).astype(np.float32), ref, atol=1e-3)


def test_resamples_to_model_voxel_size(tmp_path, raw, tiny_model):
    path, data = raw
    model = tiny_model(tmp_path / "coarse.pt", voxel_size=(30.0, 16.0, 16.0), patch=(8, 16, 16))
    out = predict(model, path, tmp_path / "p.zarr", block_shape=(10, 16, 18), progress=False, device="cpu")
    vol = open_volume(out)
    assert vol.shape == (10, 16, 18) and vol.voxel_size == (30.0, 16.0, 16.0)
    assert provenance(out)["input"]["voxel_size"] == list(VOXEL)
    # the network saw the lazily resampled input: equal to MONAI on the resampled volume
    from monai.inferers import sliding_window_inference

    lm = load_model(model)
    small = open_volume(path).resampled((30.0, 16.0, 16.0))[:]
    x = torch.from_numpy(normalize(small, volume_statistics(Volume(data, VOXEL))))[None, None]
    with torch.inference_mode():
        ref = sliding_window_inference(x, (8, 16, 16), 2, lambda w: lm.foreground_probability(lm.network(w)),
                                       overlap=0.25, mode="gaussian")[0, 0].numpy()
    assert np.abs(vol[:].astype(np.float32) - np.round(ref * 255)).max() <= 1


def test_unknown_voxel_size_needs_flag(tmp_path, model_file, raw):
    _, data = raw
    bare = tmp_path / "bare.zarr"
    zarr.open_array(str(bare), mode="w", shape=data.shape, chunks=(5, 16, 18), dtype="uint8")[:] = data
    with pytest.raises(InputError, match="--voxel-size"):
        predict(model_file, bare, tmp_path / "p.zarr", progress=False)
    out = predict(model_file, bare, tmp_path / "p.zarr", voxel_size=VOXEL, block_shape=(5, 32, 36), progress=False)
    assert open_volume(out).shape == data.shape


def test_output_exists_overwrite_resume(tmp_path, model_file, raw, tiny_model):
    path, _ = raw
    out = tmp_path / "p.zarr"
    kw = {"block_shape": (10, 32, 36), "progress": False}
    predict(model_file, path, out, **kw)
    first = read(out)
    with pytest.raises(InputError, match="--overwrite.*--resume"):
        predict(model_file, path, out, **kw)
    assert predict(model_file, path, out, resume=True, **kw) == out  # complete: nothing to do
    with pytest.raises(InputError, match="tta"):
        predict(model_file, path, out, resume=True, tta="flips", **kw)
    with pytest.raises(InputError, match="model_sha256"):
        predict(tiny_model(tmp_path / "other.pt", seed=1), path, out, resume=True, **kw)
    predict(model_file, path, out, overwrite=True, **kw)
    np.testing.assert_array_equal(read(out), first)



def test_two_writers_on_one_output(tmp_path, model_file, raw, refusal):
    """Issue 12: two predicts on one output (one with --overwrite) both exited 0, the store mixing both models.
    The second is refused while the first holds the output; the first's result equals a solo run."""
    from masktwins_bio.io.lock import output_lock

    kw = {"block_shape": (10, 32, 36), "progress": False}
    solo = read(predict(model_file, raw[0], tmp_path / "solo.zarr", **kw))
    out = tmp_path / "p.zarr"
    with output_lock(out, "predict"):  # the first writer, mid-run
        for extra in ([], ["--overwrite"], ["--resume"]):
            assert cli.main(["predict", str(model_file), str(raw[0]), str(out), "--no-progress", *extra]) == 2
            refusal("masktwins-bio predict (PID", "is writing this output")
    np.testing.assert_array_equal(read(predict(model_file, raw[0], out, **kw)), solo)

def test_a_nan_voxel_stays_local(tmp_path, model_file, raw):
    """Issue 12: one NaN voxel in the input gave an all-zero prediction marked complete. It is now the mean
    intensity (normalised 0): only windows near it change, and the statistics leave it out."""
    data = raw[1].astype(np.float32)
    clean = write_ome_zarr(tmp_path / "clean.zarr", data, voxel_size=VOXEL, chunks=(2, 8, 8))
    data[5, 16, 18] = np.nan
    data[0, 0, 0] = np.inf
    holed = write_ome_zarr(tmp_path / "nan.zarr", data, voxel_size=VOXEL, chunks=(2, 8, 8))
    stats = volume_statistics(open_volume(holed))
    assert np.isfinite(stats["mean"]) and stats["nonfinite_fraction"] == pytest.approx(2 / data.size)
    kw = {"block_shape": (10, 32, 36), "progress": False}
    a = read(predict(model_file, clean, tmp_path / "a.zarr", **kw)).astype(int)
    b = read(predict(model_file, holed, tmp_path / "b.zarr", **kw)).astype(int)
    assert b.any() and np.mean(a != b) < 0.5

def test_overwrite_never_destroys_an_input_or_a_foreign_folder(tmp_path, model_file, raw, digest, refusal):
    """Issue 12: `predict MODEL in.zarr in.zarr --overwrite` replaced the input by a prediction, `predict MODEL
    proj/data/vol.zarr proj --overwrite` deleted the whole project folder; both exited 0."""
    import shutil

    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    vol = shutil.copytree(raw[0], proj / "data" / "vol.zarr")
    (proj / "notes.txt").write_text("unrelated")
    before = digest(proj)
    args = ["--block-shape", "10,32,36", "--no-progress", "--overwrite"]
    assert cli.main(["predict", str(model_file), str(vol), str(vol), *args]) == 2
    refusal("is (or contains) the input")
    assert cli.main(["predict", str(model_file), str(vol), str(proj), *args]) == 2
    refusal("is (or contains) the input")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert cli.main(["predict", str(model_file), str(vol), str(foreign), *args]) == 2
    refusal("--overwrite only replaces what this command wrote")
    assert cli.main(["predict", str(model_file), str(vol), str(foreign)]) == 2  # no --overwrite offered either
    refusal("not a masktwins-bio output")
    assert digest(proj) == before and (foreign / "keep.txt").exists()

@pytest.mark.parametrize("kwargs,match", [
    ({"roi": "0:20, :, :"}, "outside the volume"),
    ({"roi": "3:2, :, :"}, "outside the volume"),
    ({"block_shape": (3, 8, 8), "chunks": (2, 8, 8)}, "not a multiple of the chunks"),
    ({"tta": "rot90"}, "tta"),
    ({"output_dtype": "int16"}, "uint8 or float16"),
    ({"overlap": 1.0}, "overlap"),
    ({"overwrite": True, "resume": True}, "exclude each other"),
])
def test_bad_input(tmp_path, model_file, raw, kwargs, match):
    with pytest.raises(InputError, match=match):
        predict(model_file, raw[0], tmp_path / "p.zarr", progress=False, **kwargs)
    assert not (tmp_path / "p.zarr").exists()


def test_cli_errors_exit_2(tmp_path, raw, capsys):
    assert cli.main(["predict", str(tmp_path / "missing.pt"), str(raw[0]), str(tmp_path / "p.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model file not found" in err and len(err.splitlines()) == 1


def test_dask_equals_serial(tmp_path, model_file, raw):
    from distributed import LocalCluster

    path, _ = raw
    kw = {"block_shape": (6, 16, 24), "progress": False, "device": "cpu"}
    serial = predict(model_file, path, tmp_path / "serial.zarr", **kw)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = predict(model_file, path, tmp_path / "dask.zarr", executor="dask", address=cluster.scheduler_address,
                       **kw)
    np.testing.assert_array_equal(read(dask), read(serial))


def _markers(out) -> int:
    folder = out / ".masktwins_work" / "done_predict"
    return len([n for n in os.listdir(folder) if n.endswith(".npz")]) if folder.is_dir() else 0


def test_kill_and_resume_identical(tmp_path, raw, tiny_model):
    """kill -9 a CLI run after a few blocks, --resume it, compare with an uninterrupted run byte for byte."""
    model = tiny_model(tmp_path / "small.pt", patch=(4, 16, 16))
    path = write_ome_zarr(tmp_path / "raw.zarr", raw[1][:8, :, :32], voxel_size=VOXEL, chunks=(2, 8, 8))
    args = ["--block-shape", "2,8,8", "--device", "cpu", "--no-progress"]  # 64 blocks
    reference = tmp_path / "ref.zarr"
    assert cli.main(["predict", str(model), str(path), str(reference), *args]) == 0
    out = tmp_path / "killed.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "masktwins_bio.cli", "predict", str(model), str(path), str(out),
                             *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and _markers(out) < 3 and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= _markers(out) < 64, "the run should have been killed part-way"
    assert provenance(out)["complete"] is False
    assert cli.main(["predict", str(model), str(path), str(out), *args, "--resume"]) == 0
    assert provenance(out)["complete"] is True
    for level in ("0", "1"):
        if (reference / level).exists():
            np.testing.assert_array_equal(zarr.open_array(str(out / level))[:],
                                          zarr.open_array(str(reference / level))[:])


def test_callback_and_should_stop_then_resume_identical(tmp_path, model_file, raw):
    """Stopping through should_stop leaves a resumable output; resume gives the uninterrupted result."""
    path, data = raw
    kw = {"block_shape": (4, 16, 24), "progress": False, "device": "cpu"}  # 3 x 2 x 2 blocks
    calls = []
    reference = predict(model_file, path, tmp_path / "ref.zarr", callback=lambda *a: calls.append(a), **kw)
    assert len(calls) == 13 and calls[0] == ("predict", 0, data.size) and calls[-1] == ("predict",) + (data.size,) * 2
    out = tmp_path / "p.zarr"
    calls.clear()
    with pytest.raises(Cancelled):
        predict(model_file, path, out, callback=lambda *a: calls.append(a), should_stop=lambda: len(calls) > 3, **kw)
    assert provenance(out)["complete"] is False and 3 <= _markers(out) < 12
    assert predict(model_file, path, out, resume=True, **kw) == out
    assert provenance(out)["complete"] is True and not (out / ".masktwins_work").exists()
    np.testing.assert_array_equal(read(out), read(reference))


def test_should_stop_is_polled_between_windows_of_a_block(tmp_path, model_file, raw, monkeypatch):
    """Issue 14 (Cancel took 9.6 s): one big block of many windows stops within a batch of windows, not at the
    block's end; the output stays resumable and resume gives the uninterrupted result."""
    from masktwins_bio.inference.blend import WindowBlender

    path, data = raw
    kw = {"block_shape": tuple(data.shape), "progress": False, "device": "cpu", "sw_batch_size": 1}  # one block
    reference = predict(model_file, path, tmp_path / "ref.zarr", **kw)
    batches = []
    real = WindowBlender.accumulate

    def counting(self, x, starts, num, den, should_stop=None):
        def stop():
            batches.append(1)
            return len(batches) > 2  # after two batches of windows
        return real(self, x, starts, num, den, stop if should_stop is not None else None)

    monkeypatch.setattr(WindowBlender, "accumulate", counting)
    out = tmp_path / "p.zarr"
    with pytest.raises(Cancelled):
        predict(model_file, path, out, should_stop=lambda: False, **kw)
    assert len(batches) == 3  # stopped at the third poll, inside the block
    monkeypatch.undo()
    assert provenance(out)["complete"] is False
    predict(model_file, path, out, resume=True, **kw)
    np.testing.assert_array_equal(read(out), read(reference))


def test_resume_after_interrupted_pyramid(tmp_path, model_file, raw, monkeypatch):
    """Killed after the blocks but before 'complete': resume rebuilds the pyramid only, same result."""
    from masktwins_bio.io.outputs import ResumableOutput

    path, _ = raw
    kw = {"block_shape": (10, 32, 36), "progress": False, "device": "cpu"}
    reference = predict(model_file, path, tmp_path / "ref.zarr", **kw)

    def interrupted(self, **_):
        self.writer.finalize()
        raise KeyboardInterrupt

    monkeypatch.setattr(ResumableOutput, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(model_file, path, tmp_path / "p.zarr", **kw)
    monkeypatch.undo()
    assert provenance(tmp_path / "p.zarr")["complete"] is False
    out = predict(model_file, path, tmp_path / "p.zarr", resume=True, **kw)
    assert provenance(out)["complete"] is True
    np.testing.assert_array_equal(read(out), read(reference))


def test_pyramid_written_with_the_blocks_equals_finalize(tmp_path, tiny_model):
    """Level 1 comes from the blocks (write-behind), level 2 from finalize; both equal a pyramid built afterwards."""
    from masktwins_bio.io import create_ome_zarr

    data = np.random.default_rng(0).integers(0, 256, (2, 1030, 600), dtype=np.uint8)
    path = tmp_path / "wide.zarr"
    write_ome_zarr(path, data, voxel_size=VOXEL, chunks=(2, 128, 128))
    model = tiny_model(tmp_path / "m.pt", patch=(2, 64, 64))
    out = predict(model, path, tmp_path / "p.zarr", block_shape=(2, 256, 256), chunks=(2, 128, 128),
                  progress=False, device="cpu")
    ref = create_ome_zarr(tmp_path / "ref.zarr", (2, 1030, 600), "uint8", VOXEL, chunks=(2, 128, 128))
    ref.write((0, 0, 0), read(out))
    factors = ref.finalize()
    assert factors == [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
    for level in ("1", "2"):
        np.testing.assert_array_equal(zarr.open_array(str(out / level))[:],
                                      zarr.open_array(str(tmp_path / "ref.zarr" / level))[:])


@pytest.mark.parametrize("shape,window,device,expected", [
    ((128, 1024, 1024), (32, 128, 128), "cuda", (32, 1024, 1024)),   # the benchmark anchor: 4 blocks along z
    ((100, 4096, 4096), (32, 128, 128), "cuda", (32, 2048, 2048)),   # 16 windows wide
    ((100, 4096, 4096), (16, 256, 256), "cuda", (32, 2048, 2048)),   # large windows: capped at 128 Mi voxels
    ((64, 4096, 4096), (16, 64, 64), "cpu", (32, 512, 512)),
    ((64, 4096, 4096), (16, 256, 256), "cpu", (32, 512, 1024)),      # capped at 16 Mi voxels
    ((10, 32, 36), (8, 24, 24), "cpu", (10, 32, 36)),               # clipped to the volume
])
def test_default_block_shape(shape, window, device, expected):
    from masktwins_bio.inference import default_block_shape

    chunks = tuple(min(c, s) for c, s in zip((32, 256, 256), shape))
    assert default_block_shape(shape, chunks, window, device) == expected


def test_large_resampling_is_announced_and_beyond_8x_refused(tmp_path, raw, tiny_model, caplog):
    """Issue 12: predict resampled 10x finer without a word (a wrong voxel size is the usual cause)."""
    model = tiny_model(tmp_path / "fine.pt", voxel_size=(30.0, 2.0, 2.0), patch=(8, 32, 32))
    with caplog.at_level("WARNING"):
        predict(model, raw[0], tmp_path / "p.zarr", roi="0:2, 0:8, 0:8", progress=False, device="cpu")
    assert "resampled from 30x8x8 nm to 30x2x2 nm (factors 1, 4, 4 along z, y, x)" in caplog.text
    finer = tiny_model(tmp_path / "finer.pt", voxel_size=(30.0, 0.5, 0.5), patch=(8, 32, 32))
    with pytest.raises(InputError, match="more than 8x along an axis is usually a wrong voxel size"):
        predict(finer, raw[0], tmp_path / "q.zarr", roi="0:2, 0:2, 0:2", progress=False, device="cpu")
    assert not (tmp_path / "q.zarr").exists()
    out = predict(finer, raw[0], tmp_path / "q.zarr", roi="0:2, 0:2, 0:2", progress=False, device="cpu",
                  allow_resampling=True)
    assert out.exists()


def test_predict_takes_an_in_memory_array(tmp_path, model_file, raw):
    """Issue 15: mtb.predict(numpy_array, ...) failed with 'OSError: File name too long' and the array printed."""
    from masktwins_bio.io import open_volume

    path, data = raw
    vs = open_volume(path).voxel_size
    kw = {"block_shape": (10, 32, 36), "progress": False, "device": "cpu"}
    with pytest.raises(InputError, match="<input array>: voxel size unknown"):
        predict(model_file, np.asarray(data), tmp_path / "a.zarr", **kw)
    out = predict(model_file, np.asarray(data), tmp_path / "a.zarr", voxel_size=vs, **kw)
    np.testing.assert_array_equal(read(out), read(predict(model_file, path, tmp_path / "p.zarr", **kw)))
