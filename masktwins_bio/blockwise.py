"""Blocks over a volume and the block scheduler: the unit of work of predict, segment and evaluate.

A :class:`BlockGrid` tiles a (z, y, x) volume into write blocks (aligned to output chunks so that no two blocks ever
write the same chunk) and gives each a read region enlarged by a halo (context a block needs around it, e.g. the
sliding-window overlap). Regions are in voxels of the grid's volume; :attr:`BlockGrid.voxel_size` converts to nm.

:func:`run_blockwise` runs "a function of a block" over a grid. It knows nothing about networks or labels:

* ``process_block(block) -> result`` is any picklable callable; ``result`` is ``None`` or a small dict of numpy
  arrays (e.g. per-block label counts). A task may instead offer three stages, ``read(block) -> data``,
  ``compute(block, data) -> out`` and ``write(block, out) -> result`` (see :class:`StagedTask`): the serial executor
  then reads the next blocks in a prefetch thread and writes finished blocks in a write-behind thread (bounded
  queues, so host memory holds at most ``prefetch + 3`` blocks whatever the volume size) while the calling thread
  computes.
* **Resume.** With ``done=`` a :class:`DoneMarkers` folder, a block whose marker exists is skipped (its stored result
  is returned), and a block's marker is written - atomically, with its result - only after its output is fully
  written. Killing the run at any moment (even ``kill -9``) and running it again therefore redoes only unfinished
  blocks. Where the markers live is the caller's business: masktwins-bio's outputs keep them inside the output
  store (:class:`masktwins_bio.io.outputs.ResumableOutput`); this module imports nothing from :mod:`masktwins_bio.io`.
* **Executors.** ``executor="serial"`` runs in this process (the debug mode). ``executor="dask"`` submits one task
  per block (or per ``chains`` group of blocks that must run in order in one thread) to a ``dask.distributed``
  cluster: a new ``LocalCluster`` (one worker process per GPU when CUDA is
  present, else ``num_workers``), or an existing scheduler at ``address``. Workers run exactly the same block
  function as the serial path and write the markers themselves, so results are identical to the serial path (for
  network inference: identical on the same device type and thread settings) and a killed driver can resume.
  Per-worker state (e.g. one loaded model per worker, pinned to one GPU) is the task's business, see
  :mod:`masktwins_bio.inference.worker`.
* **Progress and stopping.** ``callback(desc, done, total)`` reports progress in *voxels* (of the blocks' write
  regions, so edge blocks count for what they are): once when the pass starts (``done`` = voxels already done on
  resume) and after every finished block, always on the calling thread. ``should_stop()`` is polled between blocks;
  once it returns True no new block is started, blocks already computed are written and marked, and
  :class:`~masktwins_bio.errors.Cancelled` is raised (dask: blocks not yet running are cancelled). The output is then
  left exactly as after ``kill -9``: incomplete and resumable. :func:`track_blocks` gives the same hooks (and the
  tqdm bar) to simple serial loops over blocks, e.g. ``evaluate``.

Running on a SLURM cluster needs no code change: start a dask-jobqueue cluster (``pip install dask-jobqueue``),
scale it, and hand its scheduler address to the CLI or the API. The output and input must live on a file system
all nodes see::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=1, memory="64GB", walltime="04:00:00",
                           job_extra_directives=["--gres=gpu:1"])        # one GPU worker per job
    cluster.scale(jobs=8)
    print(cluster.scheduler_address)                                     # e.g. tcp://10.0.0.5:8786

    masktwins-bio predict model.pt raw.zarr prob.zarr --dask tcp://10.0.0.5:8786 --resume

(or ``masktwins_bio.predict(..., executor="dask", address=cluster.scheduler_address)``). ``--resume`` makes a
re-submitted job continue where a pre-empted one stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from .errors import Cancelled, InputError
from .files import atomic_file

__all__ = ["Block", "BlockGrid", "DoneMarkers", "StagedTask", "Execution", "run_blockwise", "track_blocks",
           "ProgressCallback", "StopCheck", "EXECUTORS"]

log = logging.getLogger(__name__)

EXECUTORS = ("serial", "dask")
Result = Optional[dict]
#: ``callback(desc, done, total)``: progress of a pass in voxels (see the module docstring)
ProgressCallback = Callable[[str, int, int], None]
#: ``should_stop() -> bool``: polled between blocks; True stops the call with :class:`~masktwins_bio.errors.Cancelled`
StopCheck = Callable[[], bool]


_OPTIONS = ("executor", "address", "num_workers", "progress", "callback", "should_stop")


@dataclass(frozen=True)
class Execution:
    """How blockwise work runs, never what it computes (daisy's runner beside its Task).

    One object carries the executor, its cluster, progress reporting and cancellation from the CLI, the napari
    plugin or a notebook through ``predict``, ``segment``, ``label_components`` and ``evaluate`` down to
    :func:`run_blockwise`. The public functions also take these as separate keyword arguments.

    Attributes:
        executor: ``serial`` (this process: the debug mode) or ``dask``.
        address: Scheduler address of an existing dask cluster (``tcp://host:8786``); ``None`` starts a
            ``LocalCluster``.
        num_workers: Workers of that ``LocalCluster`` (default: one per GPU, else 2).
        progress: Show tqdm bars counting voxels.
        callback: ``callback(desc, done, total)`` in voxels (see the module docstring).
        should_stop: Polled between blocks; True stops the run cleanly (see the module docstring).
    """

    executor: str = "serial"
    address: Optional[str] = None
    num_workers: Optional[int] = None
    progress: bool = True
    callback: Optional[ProgressCallback] = None
    should_stop: Optional[StopCheck] = None

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise InputError(f"executor {self.executor!r} is not known; choose one of {', '.join(EXECUTORS)}")

    @property
    def serial(self) -> bool:
        return self.executor == "serial"

    def replace(self, **changes) -> "Execution":
        return dataclasses.replace(self, **changes)

    @classmethod
    def merge(cls, execution: Optional["Execution"], defaults: "Execution", **options) -> "Execution":
        """``execution``, or ``defaults`` with the keyword ``options`` a public function was called with.

        Raises:
            InputError: Both ``execution`` and an option that differs from its default were given.
        """
        changed = {k: v for k, v in options.items() if v != getattr(defaults, k)}
        if execution is None:
            return defaults.replace(**changed)
        if changed:
            raise InputError(f"give either execution= or {', '.join(changed)}, not both (Execution holds "
                             f"{', '.join(_OPTIONS)})")
        return execution


@dataclass(frozen=True)
class Block:
    """One block of a grid.

    Attributes:
        index: Block coordinates in the grid (bz, by, bx).
        block_id: Linear id (C order over the grid), stable for a given grid.
        write_start, write_stop: The region this block owns (voxels, half-open).
        read_start, read_stop: ``write`` enlarged by the halo; may extend beyond the volume (callers replicate edges
            with :func:`masktwins_bio.io.read_region` or clip with :meth:`read_slices`).
    """

    index: tuple[int, int, int]
    block_id: int
    write_start: tuple[int, int, int]
    write_stop: tuple[int, int, int]
    read_start: tuple[int, int, int]
    read_stop: tuple[int, int, int]

    @property
    def write_slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.write_start, self.write_stop))  # type: ignore[return-value]

    @property
    def write_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.write_start, self.write_stop))  # type: ignore[return-value]

    def read_slices(self, shape: Sequence[int]) -> tuple[slice, slice, slice]:
        """The read region clipped to a volume of ``shape``."""
        return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(self.read_start, self.read_stop, shape))  # type: ignore[return-value]

    def core_in_read(self, shape: Optional[Sequence[int]] = None) -> tuple[slice, slice, slice]:
        """Where the write region lies inside the (optionally clipped) read region."""
        starts = self.read_start if shape is None else tuple(max(0, a) for a in self.read_start)
        return tuple(slice(w0 - r0, w1 - r0) for w0, w1, r0 in zip(self.write_start, self.write_stop, starts))  # type: ignore[return-value]


class BlockGrid:
    """A grid of blocks covering ``shape``.

    Args:
        shape: Volume shape (z, y, x) in voxels.
        block_shape: Write-block shape in voxels.
        halo: Context added on every side of the read region, in voxels.
        chunks: If given, ``block_shape`` must be a multiple of it (so blocks never share an output chunk).
        voxel_size: Voxel size in nm (for world-unit reporting).
    """

    def __init__(self, shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int] = (0, 0, 0),
                 chunks: Optional[Sequence[int]] = None, voxel_size: Optional[Sequence[float]] = None):
        self.shape = tuple(int(s) for s in shape)
        self.block_shape = tuple(int(min(b, s)) if b > 0 else 0 for b, s in zip(block_shape, self.shape))
        if any(b <= 0 for b in self.block_shape):
            raise InputError(f"block shape {list(block_shape)} must be positive in z, y, x")
        self.halo = tuple(int(h) for h in halo)
        if chunks is not None:
            for axis, b, c, s in zip("zyx", self.block_shape, chunks, self.shape):
                if b % c and b != s:
                    raise InputError(
                        f"block shape {list(self.block_shape)} is not a multiple of the chunks {list(chunks)} along "
                        f"{axis}; use a block shape of whole chunks, e.g. {[max(1, round(bb / cc)) * cc for bb, cc in zip(self.block_shape, chunks)]}"
                    )
        self.voxel_size = tuple(float(v) for v in voxel_size) if voxel_size is not None else None
        self.grid_shape = tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape))

    def __len__(self) -> int:
        return int(np.prod(self.grid_shape))

    def block(self, index: Sequence[int]) -> Block:
        index = tuple(int(i) for i in index)
        start = tuple(i * b for i, b in zip(index, self.block_shape))
        stop = tuple(min(s + b, n) for s, b, n in zip(start, self.block_shape, self.shape))
        return Block(
            index=index,  # type: ignore[arg-type]
            block_id=int(np.ravel_multi_index(index, self.grid_shape)),
            write_start=start,  # type: ignore[arg-type]
            write_stop=stop,  # type: ignore[arg-type]
            read_start=tuple(s - h for s, h in zip(start, self.halo)),  # type: ignore[arg-type]
            read_stop=tuple(e + h for e, h in zip(stop, self.halo)),  # type: ignore[arg-type]
        )

    def __iter__(self) -> Iterator[Block]:
        for index in itertools.product(*(range(g) for g in self.grid_shape)):
            yield self.block(index)

    def __repr__(self) -> str:
        return f"BlockGrid(shape={self.shape}, block_shape={self.block_shape}, halo={self.halo}, blocks={len(self)})"


# -- resume markers ----------------------------------------------------------------------------------------------


class DoneMarkers:
    """Completion markers of one pass over a grid: ``<folder>/<block_id>.npz`` per finished block.

    A marker holds the block's small result (named numpy arrays; empty when the block returns ``None``) and is
    written atomically (temporary file, then rename), so a marker is either absent or complete. Markers are plain
    files: they work from any process or node that sees the folder, and loading them never unpickles objects.

    Args:
        folder: Marker folder (created on the first :meth:`mark`).
    """

    def __init__(self, folder: Union[str, os.PathLike]):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"DoneMarkers({str(self.folder)!r})"

    def _path(self, block_id: int) -> Path:
        return self.folder / f"{int(block_id)}.npz"

    def __contains__(self, block_id: int) -> bool:
        return self._path(block_id).exists()

    def done_ids(self) -> set[int]:
        """Ids of the blocks marked done (one directory listing)."""
        if not self.folder.is_dir():
            return set()
        return {int(n[:-4]) for n in os.listdir(self.folder) if n.endswith(".npz") and n[:-4].isdigit()}

    def mark(self, block_id: int, result: Result = None) -> None:
        """Record that ``block_id`` is finished, with its result; call only after its output is written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self._path(block_id)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in (result or {}).items()})

    def load(self, block_id: int) -> Result:
        """The stored result of a finished block (``None`` if it returned none)."""
        with np.load(self._path(block_id), allow_pickle=False) as z:
            return {k: z[k] for k in z.files} or None

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- tasks ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class StagedTask(Protocol):
    """A block task split into I/O and compute stages, so the serial executor can overlap them.

    ``read`` runs in a prefetch thread, ``compute`` in the calling thread, ``write`` in a write-behind thread; on
    dask the three run one after the other inside the worker's task.
    """

    def read(self, block: Block) -> Any: ...

    def compute(self, block: Block, data: Any) -> Any: ...

    def write(self, block: Block, out: Any) -> Result: ...


def _run_one(task, block: Block) -> Result:
    if isinstance(task, StagedTask):
        return task.write(block, task.compute(block, task.read(block)))
    return task(block)


def _dask_chain(task, chain: Sequence[Block], done: Optional[DoneMarkers]) -> list:
    """A chain of blocks on a dask worker, in order, each marked done once written (by the worker, not the driver,
    so a killed driver can resume). A staged task gets the serial executor's prefetch and write-behind threads
    inside the worker, so its reading and writing overlap its compute there too."""
    out: list = []
    if isinstance(task, StagedTask) and len(chain) > 1:
        _run_serial(task, list(chain), done, lambda block_id, result: out.append((block_id, result)), 2,
                    lambda: False)
        return out
    for block in chain:
        result = _run_one(task, block)
        if done is not None:
            done.mark(block.block_id, result)
        out.append((block.block_id, result))
    return out


# -- progress and stopping -----------------------------------------------------------------------------------------


class _Progress:
    """Progress of one pass over blocks, in voxels: a tqdm bar, a ``callback`` and the ``should_stop`` poll.

    A context manager; the bar leaves no line behind when the pass ends with an error.

    Args:
        desc: Name of the pass (bar label, first argument of ``callback``).
        total: Voxels of the pass. ``done``: voxels already done (resume).
        progress: Show the tqdm bar; ``leave``: keep it on the terminal when done.
        callback, should_stop: See the module docstring.
    """

    def __init__(self, desc: str, total: int, done: int = 0, *, progress: bool = True, leave: bool = True,
                 callback: Optional[ProgressCallback] = None, should_stop: Optional[StopCheck] = None):
        from tqdm import tqdm

        self.desc, self.total, self.done = desc, int(total), int(done)
        self.callback, self.should_stop = callback, should_stop
        self.bar = tqdm(total=self.total, initial=self.done, unit="vox", unit_scale=True, desc=desc,
                        disable=not progress, leave=leave, dynamic_ncols=True)
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.desc, self.done, self.total)

    def stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def cancelled(self) -> Cancelled:
        return Cancelled(f"{self.desc}: stopped after {self.done} of {self.total} voxels")

    def advance(self, voxels: int) -> None:
        self.done += int(voxels)
        self.bar.update(voxels)
        self._report()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self.bar.leave = False  # an error message should stand alone on the terminal
        self.bar.close()


def _voxels(block: Block) -> int:
    return int(np.prod(block.write_shape))


def track_blocks(blocks: Iterable[Block], desc: str, *, execution: Optional[Execution] = None,
                 progress: bool = False, callback: Optional[ProgressCallback] = None,
                 should_stop: Optional[StopCheck] = None) -> Iterator[Block]:
    """Iterate over ``blocks`` in this thread with the hooks of :func:`run_blockwise` (and a transient bar).

    ``should_stop`` is polled before each block (True raises :class:`~masktwins_bio.errors.Cancelled`);
    ``callback(desc, done, total)`` (voxels) is called at the start and once the loop body has finished a block.
    ``execution`` gives all three at once (its executor is not used: the loop runs here).
    """
    run = Execution.merge(execution, Execution(progress=False), progress=progress, callback=callback,
                          should_stop=should_stop)
    blocks = list(blocks)
    with _Progress(desc, sum(map(_voxels, blocks)), progress=run.progress, leave=False, callback=run.callback,
                   should_stop=run.should_stop) as prog:
        for block in blocks:
            if prog.stop_requested():
                raise prog.cancelled()
            yield block
            prog.advance(_voxels(block))


# -- scheduler -----------------------------------------------------------------------------------------------------


def run_blockwise(
    grid: BlockGrid,
    process_block: Callable[[Block], Result],
    *,
    done: Union[DoneMarkers, str, os.PathLike, None] = None,
    execution: Optional[Execution] = None,
    executor: str = "serial",
    address: Optional[str] = None,
    num_workers: Optional[int] = None,
    progress: bool = True,
    desc: str = "blocks",
    blocks: Optional[Iterable[Block]] = None,
    chains: Optional[Iterable[Sequence[Block]]] = None,
    prefetch: int = 2,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
) -> dict[int, dict]:
    """Run ``process_block`` on every block of ``grid`` (or on ``blocks``), skipping blocks already done.

    Args:
        grid: The block grid.
        process_block: ``f(block) -> None | dict[str, np.ndarray]``, or a :class:`StagedTask`. Must be picklable
            for ``executor="dask"``.
        done: Resume markers (:class:`DoneMarkers` or its folder); ``None`` disables resume.
        execution: How to run (:class:`Execution`), instead of ``executor`` ... ``should_stop`` one by one.
        executor: ``serial`` (this process; prefetch/write-behind threads for staged tasks) or ``dask``.
        address: Scheduler address of an existing dask cluster (``tcp://host:8786``); ``None`` starts a
            ``LocalCluster``.
        num_workers: Workers of the ``LocalCluster`` (default: one per GPU, else 2).
        progress: Show a tqdm bar counting voxels (its rate is voxels/s).
        desc: Label of the progress bar.
        blocks: A subset of the grid's blocks to run, in this order (default: all, C order).
        chains: Instead of ``blocks``: groups of blocks that run in the given order in one thread of one process
            (one dask task per group), so that a task may hand state from one block to the next (e.g.
            :class:`~masktwins_bio.inference.PredictTask` carries window sums along z). The serial executor runs
            the groups one after the other. Default: every block on its own.
        prefetch: Blocks read ahead by the serial executor.
        callback: ``callback(desc, done, total)`` in voxels, at the start and after every finished block.
        should_stop: Polled between blocks; when it returns True the run stops cleanly (see the module docstring).

    Returns:
        ``{block_id: result}`` for every block with a non-``None`` result, including those skipped on resume.

    Raises:
        Cancelled: ``should_stop()`` returned True; finished blocks are marked done, the rest can be resumed.
    """
    run = Execution.merge(execution, Execution(), executor=executor, address=address, num_workers=num_workers,
                          progress=progress, callback=callback, should_stop=should_stop)
    if done is not None and not isinstance(done, DoneMarkers):
        done = DoneMarkers(done)
    if chains is not None:
        chains = [list(c) for c in chains]
        blocks = [b for c in chains for b in c]
    else:
        blocks = list(grid if blocks is None else blocks)
        chains = [[b] for b in blocks]
    finished = done.done_ids() if done is not None else set()
    results: dict[int, dict] = {}
    todo = []
    for b in blocks:
        if b.block_id in finished:
            r = done.load(b.block_id)  # type: ignore[union-attr]
            if r is not None:
                results[b.block_id] = r
        else:
            todo.append(b)
    nvox = {b.block_id: _voxels(b) for b in blocks}
    with _Progress(desc, sum(nvox.values()), sum(nvox[b.block_id] for b in blocks if b.block_id in finished),
                   progress=run.progress, callback=run.callback, should_stop=run.should_stop) as prog:

        def finish(block_id: int, result: Result) -> None:
            if result is not None:
                results[block_id] = result
            prog.advance(nvox[block_id])

        stopped = False
        if todo and run.serial:
            stopped = _run_serial(process_block, todo, done, finish, prefetch, prog.stop_requested)
        elif todo:
            todo_chains = [c for c in ([b for b in chain if b.block_id not in finished] for chain in chains) if c]
            stopped = _run_dask(process_block, todo_chains, done, finish, run.address, run.num_workers,
                                prog.stop_requested)
        if stopped:
            raise prog.cancelled()
    return results


def _run_serial(task, todo: list[Block], done: Optional[DoneMarkers], finish, prefetch: int, stop) -> bool:
    """Run ``todo`` in this process; returns True when ``stop()`` ended the run early."""

    def write_and_mark(block: Block, out) -> Result:
        result = task.write(block, out)
        if done is not None:
            done.mark(block.block_id, result)
        return result

    if not isinstance(task, StagedTask):
        for block in todo:
            if stop():
                return True
            result = task(block)
            if done is not None:
                done.mark(block.block_id, result)
            finish(block.block_id, result)
        return False
    # read-ahead and write-behind: at most `prefetch` reads in flight, 2 writes queued, 1 block computing
    with ThreadPoolExecutor(1, thread_name_prefix="mtb-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="mtb-write") as writer:
        pending_blocks: Iterator[Block] = iter(todo)
        reads: deque = deque()
        writes: deque = deque()

        def submit_read() -> None:
            block = next(pending_blocks, None)
            if block is not None:
                reads.append((block, reader.submit(task.read, block)))

        for _ in range(max(1, prefetch)):
            submit_read()
        stopped = False
        try:
            while reads:
                if stop():  # computed blocks are still written and marked below; pending reads are dropped
                    stopped = True
                    break
                block, fut = reads.popleft()
                data = fut.result()
                submit_read()
                out = task.compute(block, data)
                del data
                writes.append((block, writer.submit(write_and_mark, block, out)))
                del out
                while len(writes) > 2:
                    b, f = writes.popleft()
                    finish(b.block_id, f.result())
            for _, f in reads:
                f.cancel()
            while writes:
                b, f = writes.popleft()
                finish(b.block_id, f.result())
        except BaseException:
            for _, f in itertools.chain(reads, writes):
                f.cancel()
            raise
    return stopped


def _default_workers() -> int:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return 2


def _run_dask(task, todo: list[list[Block]], done: Optional[DoneMarkers], finish, address, num_workers,
              stop) -> bool:
    """Run the chains of blocks ``todo`` on a dask cluster; returns True when ``stop()`` ended the run early."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("the dask executor needs dask.distributed; install it with "
                         "pip install 'masktwins-bio[distributed]'") from None
    cluster = None
    if address:
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"dask scheduler {address}: cannot connect ({exc}); check the address") from None
    else:
        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter would drown the progress bar
        cluster = LocalCluster(n_workers=num_workers or _default_workers(), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        # the task (settings, small arrays) travels once to every worker; chains are submitted in a bounded window
        task_future = client.scatter(task, broadcast=True, hash=False)
        window = max(4, 2 * sum(client.nthreads().values()))
        pending = iter(todo)
        queue = as_completed()
        running: set = set()

        def submit(chain: list[Block]) -> None:
            fut = client.submit(_dask_chain, task_future, chain, done, pure=False)
            running.add(fut)
            queue.add(fut)

        if stop():
            return True
        for chain in itertools.islice(pending, window):
            submit(chain)
        for fut in queue:
            running.discard(fut)
            for block_id, result in fut.result():
                finish(block_id, result)
            fut.release()
            chain = next(pending, None)
            if (chain is not None or running) and stop():
                client.cancel(list(running))  # queued chains never start; a running one may still finish and mark
                return True
            if chain is not None:
                submit(chain)
        return False
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
