"""The block scheduler: grid, resume markers, serial/staged/dask executors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from masktwins_bio.blockwise import BlockGrid, DoneMarkers, Execution, run_blockwise, track_blocks
from masktwins_bio.errors import Cancelled, InputError


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


def _plain(results: dict) -> dict:
    return {k: {name: a.tolist() for name, a in v.items()} for k, v in results.items()}


class StopAfter:
    """``should_stop`` that turns True once ``k`` blocks have been reported done; records the callback calls."""

    def __init__(self, k=None):
        self.k = k
        self.calls = []

    def callback(self, desc, done, total):
        self.calls.append((desc, done, total))

    def __call__(self):
        return self.k is not None and len(self.calls) - 1 >= self.k  # the first call reports the start


@pytest.mark.parametrize("staged", [False, True])
def test_callback_counts_voxels_up_to_total(tmp_path, staged):
    grid = BlockGrid((5, 4, 4), (2, 3, 4))  # edge blocks are smaller
    hooks = StopAfter()
    run_blockwise(grid, Staged() if staged else _square, done=tmp_path / "m", progress=False, desc="pass",
                  callback=hooks.callback, should_stop=hooks)
    dones = [d for _, d, _ in hooks.calls]
    assert len(hooks.calls) == len(grid) + 1 and dones[0] == 0 and dones[-1] == 5 * 4 * 4
    assert dones == sorted(dones) and {(desc, total) for desc, _, total in hooks.calls} == {("pass", 80)}
    again = StopAfter()  # a resumed pass starts at what is already done
    run_blockwise(grid, _square, done=tmp_path / "m", progress=False, callback=again.callback)
    assert [d for _, d, _ in again.calls] == [80]


@pytest.mark.parametrize("staged", [False, True])
def test_should_stop_between_blocks_then_resume(tmp_path, staged):
    grid = BlockGrid((6, 4, 4), (1, 2, 2))  # 24 blocks
    reference = run_blockwise(grid, Staged() if staged else _square, progress=False)
    task = Staged() if staged else _square
    done = DoneMarkers(tmp_path / "m")
    hooks = StopAfter(3)
    with pytest.raises(Cancelled):
        run_blockwise(grid, task, done=done, progress=False, callback=hooks.callback, should_stop=hooks)
    # stopped between blocks: the finished ones (3, plus those already computed when staged) are marked
    assert 3 <= len(done.done_ids()) <= 6 and len(hooks.calls) - 1 == len(done.done_ids())
    if staged:
        assert set(task.written) == done.done_ids()  # computed blocks were written, nothing else
    resumed = run_blockwise(grid, Staged() if staged else _square, done=done, progress=False)
    assert _plain(resumed) == _plain(reference)
    with pytest.raises(Cancelled):  # asked to stop before the first block: nothing runs
        run_blockwise(grid, _square, done=tmp_path / "m2", progress=False, should_stop=lambda: True)
    assert not (tmp_path / "m2").exists()


def test_track_blocks_hooks():
    grid = BlockGrid((4, 4, 4), (2, 4, 4))
    hooks = StopAfter()
    assert len(list(track_blocks(grid, "loop", callback=hooks.callback, should_stop=hooks))) == 2
    assert hooks.calls == [("loop", 0, 64), ("loop", 32, 64), ("loop", 64, 64)]
    seen = []
    with pytest.raises(Cancelled):
        for block in track_blocks(grid, "loop", should_stop=lambda: bool(seen)):
            seen.append(block.block_id)
    assert seen == [0]


def test_dask_should_stop_cancels_the_rest(tmp_path):
    from distributed import LocalCluster

    grid = BlockGrid((8, 4, 4), (1, 2, 2))  # 32 blocks
    done = DoneMarkers(tmp_path / "m")
    hooks = StopAfter(2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(Cancelled):
            run_blockwise(grid, _square, executor="dask", address=cluster.scheduler_address, done=done,
                          progress=False, callback=hooks.callback, should_stop=hooks)
        assert 2 <= len(done.done_ids()) < len(grid)
        results = run_blockwise(grid, _square, executor="dask", address=cluster.scheduler_address, done=done,
                                progress=False)
    assert {k: int(v["v"][0]) for k, v in results.items()} == {b: b * b for b in range(len(grid))}


def test_unknown_executor():
    with pytest.raises(InputError, match="executor"):
        run_blockwise(BlockGrid((2, 2, 2), (2, 2, 2)), _square, executor="ray", progress=False)
    with pytest.raises(InputError, match="executor 'ray' is not known; choose one of serial, dask"):
        Execution(executor="ray")


def test_one_execution_object_or_the_separate_options_not_both():
    """Issue 13: the executor/progress/callback/should_stop tail travels as one Execution."""
    grid = BlockGrid((2, 4, 4), (2, 2, 2))
    seen: list = []
    run = Execution(progress=False, callback=lambda desc, done, total: seen.append((desc, done, total)))
    assert run_blockwise(grid, _square, execution=run, desc="x") == run_blockwise(grid, _square, progress=False)
    assert seen[0] == ("x", 0, 32) and seen[-1] == ("x", 32, 32) and len(seen) == len(grid) + 1
    assert len(list(track_blocks(grid, "t", execution=run))) == len(grid) and seen[-1] == ("t", 32, 32)
    with pytest.raises(InputError, match="give either execution= or executor, num_workers, not both"):
        run_blockwise(grid, _square, execution=run, executor="dask", num_workers=3)
    stop = Execution(progress=False, should_stop=lambda: True)
    with pytest.raises(Cancelled):
        run_blockwise(grid, _square, execution=stop)
    assert Execution.merge(None, Execution(progress=False), progress=False, executor="serial") == Execution(
        progress=False)


class ChainRecorder:
    """Records (thread, block) in the order blocks are processed."""

    def __init__(self):
        self.order = []
        self.lock = threading.Lock()

    def __call__(self, block):
        with self.lock:
            self.order.append((threading.get_ident(), block.block_id))
        return _square(block)


@pytest.mark.parametrize("executor", ["serial", "dask"])
def test_chains_run_in_order_in_one_thread_and_resume(tmp_path, executor):
    from distributed import LocalCluster

    grid = BlockGrid((6, 4, 4), (2, 2, 2))
    chains = [[grid.block((z, y, x)) for z in range(3)] for y in range(2) for x in range(2)]  # z columns
    done = DoneMarkers(tmp_path / "m")
    for b in (chains[0][0], chains[1][1]):  # resume: finished blocks are left out of their chains
        done.mark(b.block_id, _square(b))
    task = ChainRecorder()
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as cluster:
        results = run_blockwise(grid, task, chains=chains, done=done, executor=executor, progress=False,
                                address=cluster.scheduler_address if executor == "dask" else None)
    assert sorted(results) == list(range(len(grid))) and done.done_ids() == set(range(len(grid)))
    ran = [b for _, b in task.order]
    assert sorted(ran) == sorted(set(range(len(grid))) - {chains[0][0].block_id, chains[1][1].block_id})
    for chain in chains:
        ids = [b.block_id for b in chain if b.block_id in ran]
        threads = {t for t, b in task.order if b in ids}
        assert [b for b in ran if b in ids] == ids and len(threads) == 1  # in order, one thread
