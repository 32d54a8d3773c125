"""The block scheduler: grid, resume markers, serial/staged/dask executors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from masktwins_bio.blockwise import BlockGrid, DoneMarkers, run_blockwise
from masktwins_bio.errors import InputError


def test_grid_blocks_cover_volume():
    grid = BlockGrid((5, 9, 10), (2, 4, 5), halo=(1, 2, 0), chunks=(2, 2, 5))
    cover = np.zeros((5, 9, 10), int)
    for b in grid:
        cover[b.write_slices] += 1
        assert b.read_start == tuple(s - h for s, h in zip(b.write_start, (1, 2, 0)))
    assert len(grid) == 3 * 3 * 2 and (cover == 1).all()
    assert [b.block_id for b in grid] == list(range(len(grid)))


def test_grid_refuses_block_not_multiple_of_chunks():
    with pytest.raises(InputError, match="not a multiple of the chunks"):
        BlockGrid((8, 8, 8), (3, 4, 4), chunks=(2, 4, 4))


def test_markers_roundtrip(tmp_path):
    done = DoneMarkers(tmp_path / "m")
    assert done.done_ids() == set() and 3 not in done
    done.mark(3, {"sizes": np.arange(4), "empty": np.zeros((0, 3), int)})
    done.mark(5)
    assert done.done_ids() == {3, 5} and 3 in done
    assert done.load(3)["sizes"].tolist() == [0, 1, 2, 3] and done.load(3)["empty"].shape == (0, 3)
    assert done.load(5) is None
    assert not list((tmp_path / "m").glob("*.tmp"))
    done.clear()
    assert done.done_ids() == set()


def _square(block):
    return {"v": np.array([block.block_id ** 2])}


def test_serial_resume_skips_done_blocks(tmp_path):
    grid = BlockGrid((4, 4, 4), (2, 2, 2))
    calls = []

    def task(block):
        calls.append(block.block_id)
        if block.block_id == 5:
            raise RuntimeError("boom")
        return _square(block)

    done = DoneMarkers(tmp_path / "m")
    with pytest.raises(RuntimeError):
        run_blockwise(grid, task, done=done, progress=False)
    assert done.done_ids() == {0, 1, 2, 3, 4}  # the failing block has no marker
    calls.clear()
    results = run_blockwise(grid, _square, done=done, progress=False)
    assert sorted(results) == list(range(8)) and results[7]["v"][0] == 49 and results[2]["v"][0] == 4
    assert done.done_ids() == set(range(8))


class Staged:
    """Records which thread ran each stage; write fails for one block."""

    def __init__(self, fail=None):
        self.fail = fail
        self.threads = {"read": set(), "compute": set(), "write": set()}
        self.written = {}

    def read(self, block):
        self.threads["read"].add(threading.current_thread().name)
        return np.full(block.write_shape, block.block_id)

    def compute(self, block, data):
        self.threads["compute"].add(threading.current_thread().name)
        return data * 2

    def write(self, block, out):
        self.threads["write"].add(threading.current_thread().name)
        if block.block_id == self.fail:
            raise OSError("disk full")
        self.written[block.block_id] = out
        return {"sum": np.array([out.sum()])}


def test_staged_pipeline_overlaps_io_and_marks_after_write(tmp_path):
    grid = BlockGrid((6, 4, 4), (2, 2, 2))
    task = Staged()
    results = run_blockwise(grid, task, done=tmp_path / "m", progress=False)
    assert sorted(task.written) == list(range(len(grid)))
    assert all(results[b]["sum"][0] == 2 * b * 8 for b in range(len(grid)))
    assert task.threads["read"] != task.threads["compute"] != task.threads["write"]
    failing = Staged(fail=4)
    done = DoneMarkers(tmp_path / "m2")
    with pytest.raises(OSError):
        run_blockwise(grid, failing, done=done, progress=False)
    assert 4 not in done and done.done_ids() <= set(failing.written)


def test_dask_equals_serial(tmp_path):
    from distributed import LocalCluster

    grid = BlockGrid((4, 6, 6), (2, 3, 3))
    serial = run_blockwise(grid, _square, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        dask = run_blockwise(grid, _square, executor="dask", address=cluster.scheduler_address,
                             done=tmp_path / "m", progress=False)
        staged = Staged()
        run_blockwise(grid, staged, executor="dask", address=cluster.scheduler_address, progress=False)
    assert {k: v["v"].tolist() for k, v in dask.items()} == {k: v["v"].tolist() for k, v in serial.items()}
    assert DoneMarkers(tmp_path / "m").done_ids() == set(range(len(grid)))


def test_unknown_executor():
    with pytest.raises(InputError, match="executor"):
        run_blockwise(BlockGrid((2, 2, 2), (2, 2, 2)), _square, executor="ray", progress=False)
