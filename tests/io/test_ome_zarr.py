"""OmeZarrWriter.finalize: the parallel pyramid equals the plain numpy definition bit for bit, for any worker count;
removing a partial or replaced store waits for Zarr writes still in flight."""

from __future__ import annotations

import asyncio
import shutil
import time

import numpy as np
import pytest
import zarr

from masktwins_bio.io import create_ome_zarr


def reference_level(data: np.ndarray, step, kind: str) -> np.ndarray:
    """One pyramid step over the whole array, as the serial implementation computed it: strided pick (labels), or
    block mean with edge replication (images; integers ``(sum + n // 2) // n`` in int64, floats a float64 mean)."""
    if kind == "labels":
        return data[:: step[0], :: step[1], :: step[2]]
    out = [-(-n // s) for n, s in zip(data.shape, step)]
    data = np.pad(data, [(0, o * s - n) for o, s, n in zip(out, step, data.shape)], mode="edge")
    blocks = data.reshape(out[0], step[0], out[1], step[1], out[2], step[2])
    n = int(np.prod(step))
    if np.issubdtype(data.dtype, np.integer):
        return ((blocks.sum(axis=(1, 3, 5), dtype=np.int64) + n // 2) // n).astype(data.dtype)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float64).astype(data.dtype)


def random_volume(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.float16:  # signed, from subnormal to large values: float16 sums must stay exact
        return (rng.standard_normal(shape) * 10.0 ** rng.uniform(-7, 4, shape)).astype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1e3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype,kind,ome_version", [
    ("uint8", "image", "0.4"), ("uint8", "image", "0.5"), ("int8", "image", "0.4"), ("uint16", "image", "0.4"),
    ("int16", "image", "0.4"), ("float16", "image", "0.4"), ("float32", "image", "0.4"), ("uint32", "image", "0.4"),
    ("uint32", "labels", "0.4"), ("uint64", "labels", "0.5"),
])
def test_pyramid_is_bit_identical_for_any_worker_count(tmp_path, dtype, kind, ome_version):
    shape = (9, 37, 70)  # odd sizes: edge blocks are completed by replication
    data = random_volume(shape, dtype)
    levels = []
    for workers in (1, 3):
        path = tmp_path / f"w{workers}.zarr"
        writer = create_ome_zarr(path, shape, dtype, (30.0, 8.0, 8.0), chunks=(4, 16, 16), kind=kind,
                                 ome_version=ome_version)
        writer.write((0, 0, 0), data)
        factors = writer.finalize(levels=5, workers=workers)
        group = zarr.open_group(str(path), mode="r")
        levels.append([group[str(i)][:] for i in range(len(factors))])
    assert factors == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (2, 8, 8), (4, 16, 16)]  # anisotropic, then isotropic
    expected = data
    for level, (f, prev) in enumerate(zip(factors[1:], factors), start=1):
        expected = reference_level(expected, [a // b for a, b in zip(f, prev)], kind)
        for got in (levels[0][level], levels[1][level]):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert got.tobytes() == expected.tobytes(), f"level {level}"


@pytest.mark.parametrize("dtype,kind,block_shape,block_levels", [
    ("uint8", "image", (4, 32, 32), 1),     # level 1 from the blocks, levels 2-4 by finalize
    ("uint8", "image", (8, 64, 64), 2),
    ("float16", "image", (4, 64, 64), 2),
    ("uint32", "labels", (4, 32, 32), 1),
    ("uint8", "image", (4, 16, 16), 0),     # level-1 copies would be half chunks: finalize builds every level
    ("uint8", "image", (9, 32, 128), 1),    # blocks spanning an axis need not divide it
])
def test_block_written_levels_equal_finalize(tmp_path, dtype, kind, block_shape, block_levels):
    """Levels written block by block (BlockPyramid, any block order) equal the pyramid finalize builds; a resumed
    writer keeps them."""
    import pickle

    from masktwins_bio.io import OmeZarrWriter

    shape = (9, 61, 70)
    data = random_volume(shape, dtype)
    ref = create_ome_zarr(tmp_path / "ref.zarr", shape, dtype, (30.0, 8.0, 8.0), chunks=(4, 16, 16), kind=kind)
    ref.write((0, 0, 0), data)
    factors = ref.finalize(levels=5)
    writer = create_ome_zarr(tmp_path / "b.zarr", shape, dtype, (30.0, 8.0, 8.0), chunks=(4, 16, 16), kind=kind)
    pyramid = pickle.loads(pickle.dumps(writer.create_block_levels(block_shape, levels=5)))
    assert pyramid.levels == block_levels
    starts = [(z, y, x) for z in range(0, shape[0], block_shape[0]) for y in range(0, shape[1], block_shape[1])
              for x in range(0, shape[2], block_shape[2])]
    for start in starts[::-1]:
        pyramid.write(start, data[tuple(slice(a, a + b) for a, b in zip(start, block_shape))])
    writer = OmeZarrWriter.reopen(tmp_path / "b.zarr")
    assert writer.create_block_levels(block_shape, levels=5).levels == block_levels
    assert writer.finalize(levels=5) == factors
    got, expected = zarr.open_group(str(tmp_path / "b.zarr")), zarr.open_group(str(tmp_path / "ref.zarr"))
    for level in range(len(factors)):
        assert got[str(level)][:].tobytes() == expected[str(level)][:].tobytes(), f"level {level}"


async def _late_chunk_write(store):
    """A chunk write that Zarr's IO thread finishes after the calling thread stopped waiting for it."""
    await asyncio.sleep(0.3)
    (store / "0" / "c").mkdir(parents=True, exist_ok=True)
    (store / "0" / "c" / "0").write_bytes(b"chunk")


def _write_in_flight(store):
    """Leave a chunk write of ``store`` running on Zarr's IO loop, as a write interrupted in the caller does."""
    from zarr.core.sync import loop

    warm = store.parent / "warm.zarr"
    zarr.zeros((2,), store=str(warm))  # Zarr's IO loop running, as in any real write
    shutil.rmtree(warm)
    asyncio.run_coroutine_threadsafe(_late_chunk_write(store), loop[0])


def test_atomic_output_waits_for_a_zarr_write_still_in_flight(tmp_path):
    """An exception raised while the calling thread waits on Zarr (Ctrl-C, SIGTERM) leaves the chunk write running on
    Zarr's IO thread; removing the partial store must wait for it, or the write recreates the store afterwards."""
    from masktwins_bio.io.ome_zarr import atomic_output

    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "o.zarr") as tmp:
            tmp.mkdir()
            _write_in_flight(tmp)
            raise KeyboardInterrupt
    time.sleep(0.5)
    assert list(tmp_path.iterdir()) == []


def test_restoring_a_replaced_output_waits_for_a_zarr_write_still_in_flight(tmp_path):
    """An interrupted ``--overwrite`` puts the old output back; a write of the new one still in flight must not
    land in it."""
    from masktwins_bio.io.guard import restore_aside, set_aside

    out = tmp_path / "o.zarr"
    out.mkdir()
    (out / "old").write_text("the previous output")
    aside = set_aside(out)
    out.mkdir()  # the new output, begun
    _write_in_flight(out)
    restore_aside(aside, out)
    time.sleep(0.5)
    assert sorted(p.name for p in out.iterdir()) == ["old"]
