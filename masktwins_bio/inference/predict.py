"""Blockwise, resumable sliding-window inference: any volume in, a probability OME-Zarr out.

MONAI's ``sliding_window_inference`` needs the whole input in memory and keeps a dense float32 output and weight map
of the same size. :func:`predict` evaluates the same sliding window block by block instead. The output is tiled into
blocks aligned to its chunks (:class:`~masktwins_bio.blockwise.BlockGrid`). Each block is read with a halo made of
the windows of the *whole-volume* sliding-window grid that overlap the block (at most ``window - 1`` voxels per side),
normalised with the *input volume's* statistics, blended on the compute device with MONAI's gaussian importance map
(:class:`~.blend.WindowBlender`, MONAI's grid, order and arithmetic), cropped to its core and written as ``uint8``
(``round(p * 255)``) or ``float16``. Every output voxel is blended from the same windows, in the same order, with
the same weights as in one ``sliding_window_inference`` over the whole volume held in memory: the result equals it
(to float rounding; the blending itself is bit-identical) for any block shape, executor or resume history.

Windows that overlap two blocks are not run twice along z: blocks are run column by column (z fastest), and each
block hands the running window sums of the voxels above it to the next block of its column (``PredictTask.carried``),
which then runs only the windows starting inside it. So the default blocks are one window thick in z (the pipeline
gets many blocks to overlap I/O with compute) and wide in y and x (where block faces do re-run one row of windows;
``benchmarks/inference.py`` prints the resulting redundancy). The blocks of a column run as one chain
(:func:`~masktwins_bio.blockwise.run_blockwise`), on dask as tasks of :data:`DASK_CHAIN` blocks so that few columns
still spread over many workers. A block without its predecessor just before it in the same thread (the first of a
chain, the first after a resume) recomputes its z halo instead; the result is the same.

Host memory is bounded by a few blocks whatever the volume size: the serial executor reads the next blocks in a
prefetch thread and writes finished ones in a write-behind thread while the device computes (see
:func:`~masktwins_bio.blockwise.run_blockwise`). The input block is copied to the device once and only the
quantised core comes back. The write-behind thread also writes the block's down-sampled copies into the pyramid
levels whose chunks the block covers alone (:meth:`~masktwins_bio.io.OmeZarrWriter.create_block_levels`), so only
the small top levels are built after the last block.

Voxel size: the network runs at its training voxel size. If the input's voxel size differs, the input is
resampled lazily (per block, linear interpolation with anti-aliasing, :meth:`Volume.resampled`) and the output is
written on the *model's* grid, with the model's voxel size in its metadata. An input without voxel size metadata
needs ``voxel_size=`` (CLI ``--voxel-size``). A ``roi`` is given in input voxels; the output covers it on the model
grid and equals a whole-volume sliding window over the cropped region.

Resume: the output store records every finished block (``.masktwins_work/done_predict``) and its provenance holds
the settings; ``resume=True`` checks that model, input and settings are unchanged and runs only missing blocks. The
output's ``complete`` attribute stays ``False`` until all blocks are written and the pyramid is built.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .._version import __version__
from ..blockwise import Block, BlockGrid, Execution, ProgressCallback, StopCheck, run_blockwise
from ..errors import InputError
from ..files import plain
from ..io import Volume, as_volume, open_volume, read_region
from ..io.lock import holds_output_lock
from ..io.ome_zarr import DEFAULT_OME_VERSION, BlockPyramid
from ..io.outputs import ResumableOutput, default_block, output_chunks, temporary_store
from ..io.volume import check_resampling
from ..models import LoadedModel, load_model
from ..regions import roi_slices
from .blend import WindowBlender
from .tta import TTA_MODES, tta_predictor
from .worker import cached_model, resolve_device, worker_device

__all__ = ["predict", "PredictTask", "default_block_shape", "window_starts", "OUTPUT_DTYPES"]

log = logging.getLogger(__name__)

OUTPUT_DTYPES = ("uint8", "float16")
# raw input dtypes sent to the GPU as they are (normalised there)
_TORCH_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "float16"))
# default block = this many windows per axis (rounded up to whole chunks). Along z the blocks of a chain hand their
# window sums on (PredictTask.carried), so thin blocks cost nothing and keep the pipeline busy; in y and x every block
# face re-runs one row of windows, so blocks are wide there (larger on GPUs, which have the memory).
_BLOCK_WINDOWS = {"cpu": (1, 8, 8), "cuda": (1, 16, 16)}
# at most this many voxels per default block: with the halo, 128 Mi on CUDA is about 3 GiB of float32 input and
# window sums on the device (16 Mi on the CPU: a few hundred MiB of host memory per block)
_BLOCK_VOXELS = {"cpu": 16 * 2**20, "cuda": 128 * 2**20}
# blocks per dask task (a chain along z): long enough to amortise the z halo its first block recomputes, short
# enough to spread a volume of few columns over many workers
DASK_CHAIN = 8


def window_starts(size: int, window: int, overlap: float) -> np.ndarray:
    """Window start positions of MONAI's sliding window along one axis of ``size`` voxels.

    Mirrors ``monai.inferers.utils._get_scan_interval`` and ``monai.data.utils.dense_patch_slices``: a stride of
    ``int(window * (1 - overlap))`` (at least 1), the last window shifted back to end at the border; one window when
    the axis is not longer than the window (MONAI then pads it).
    """
    if size <= window:
        return np.zeros(1, dtype=np.int64)
    stride = max(1, int(window * (1 - overlap)))
    n = next(d for d in range(size) if d * stride + window >= size) + 1
    return np.minimum(np.arange(n, dtype=np.int64) * stride, size - window)


def default_block_shape(shape, chunks, window, device_type: str = "cpu") -> tuple[int, int, int]:
    """One window thick in z, 8 (CPU) or 16 (CUDA) windows wide, rounded up to whole chunks, clipped to the volume.

    Blocks larger than :data:`_BLOCK_VOXELS` (large windows, e.g. 256 x 256 in-plane) are narrowed in y/x, halving
    the wider axis (in whole chunks), so that a block's float32 input and window sums fit a modest GPU (or host).
    """
    k = _BLOCK_WINDOWS.get(device_type, _BLOCK_WINDOWS["cpu"])
    block = list(default_block(shape, chunks, [kk * w for kk, w in zip(k, window)]))
    limit = _BLOCK_VOXELS.get(device_type, _BLOCK_VOXELS["cpu"])
    while math.prod(block) > limit:
        axis = 1 if block[1] >= block[2] else 2
        narrower = max(chunks[axis], -(-block[axis] // 2 // chunks[axis]) * chunks[axis])
        if narrower >= block[axis]:
            break
        block[axis] = narrower
    return tuple(block)  # type: ignore[return-value]


@dataclass
class PredictTask:
    """The per-block work of :func:`predict` (a :class:`~masktwins_bio.blockwise.StagedTask`).

    Attributes:
        model_path: Model file; each process loads it once (:func:`~.worker.cached_model`).
        device: Requested device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        source: The input on the model's voxel grid (lazy, picklable).
        origin: Voxel offset of the output (the ROI start) in ``source``.
        shape: Output shape (the ROI on the model grid).
        output: Writer of a block into the output's level 0 and the pyramid levels blocks fill themselves.
        stats: Input intensity statistics; ``norm_mode``: ``zscore`` or ``percentile``.
        window, overlap, sw_batch_size, tta, output_dtype: Inference settings.
        model: A model already loaded in this process (serial runs); never pickled.
        should_stop: Serial runs: polled between batches of windows too, so that a big block stops within a
            batch (:class:`~masktwins_bio.errors.Cancelled`); never pickled.
        carried: Grid indices of the blocks that take over the window sums of the block below them, computed just
            before them in the same thread (every block of a chain but the first, see :func:`predict`). They read
            and run only their own windows; the others compute their z halo.
    """

    model_path: str
    device: str
    source: Volume
    origin: tuple[int, int, int]
    shape: tuple[int, int, int]
    output: BlockPyramid
    stats: dict
    norm_mode: str
    window: tuple[int, int, int]
    overlap: float
    sw_batch_size: int
    tta: str
    output_dtype: str
    model: Optional[LoadedModel] = None
    carried: frozenset = frozenset()
    should_stop: Optional[StopCheck] = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["model"] = None
        state["should_stop"] = None  # a callable of this process (the dask path stops between blocks)
        state["_cache"] = {}
        return state

    def _loaded(self) -> LoadedModel:
        if self.model is None:
            self.model = cached_model(self.model_path, worker_device(self.device))
        return self.model

    def touching(self, block: Block) -> list[np.ndarray]:
        """Per axis, the starts of the whole-volume windows that overlap the block (voxels of the output)."""
        out = []
        for n, w, a, b in zip(self.shape, self.window, block.write_start, block.write_stop):
            g = window_starts(n, w, self.overlap)
            out.append(g[(g < b) & (g + w > a)])
        return out

    def region(self, block: Block) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Read region of a block: the union of the whole-volume windows that overlap it (voxels, half-open)."""
        starts = self.touching(block)
        return (tuple(int(g.min()) for g in starts),
                tuple(min(n, int(g.max()) + w) for g, n, w in zip(starts, self.shape, self.window)))

    def _cuda(self) -> bool:
        return self.device != "cpu" and torch.cuda.is_available()

    def input_z(self, block: Block) -> tuple[int, int]:
        """The z range of input a block needs: its read region, or only its own windows' if it is carried."""
        start, stop = self.region(block)
        if block.index not in self.carried:
            return start[0], stop[0]
        own = self._own_z(block, self.touching(block)[0])
        if not len(own):  # a block thinner than the window stride may own no window at all
            return block.write_start[0], block.write_start[0]
        return int(own.min()), int(own.max()) + self.window[0]

    def read(self, block: Block, full: bool = False) -> tuple[torch.Tensor, int]:
        """The block's input as a (1, 1, Z, Y, X) tensor, and the z (in output voxels) of its first plane.

        The input covers the block's read region, except along z for a carried block (:meth:`input_z`), or the
        whole read region with ``full``. For CUDA the raw values travel (e.g. uint8: 4x less to copy than float32)
        in pinned memory and are normalised on the device; on the CPU they are normalised here, in the prefetch
        thread.
        """
        from ..data.normalize import normalize

        start, stop = self.region(block)
        if not full:
            z0, z1 = self.input_z(block)
            start, stop = (z0,) + start[1:], (z1,) + stop[1:]
        data = read_region(self.source.array, [o + a for o, a in zip(self.origin, start)],
                           [o + b for o, b in zip(self.origin, stop)])
        pin = self._cuda() and data.size > 0  # (a carried block owning no window reads nothing)
        if self._cuda() and data.dtype in _TORCH_DTYPES:
            x = torch.from_numpy(np.ascontiguousarray(data))[None, None]
        else:
            x = torch.from_numpy(normalize(data, self.stats, self.norm_mode))[None, None]
        return (x.pin_memory() if pin else x), start[0]

    def compute(self, block: Block, data: tuple) -> np.ndarray:
        """Blend the block's windows on the device (with TTA); returns the quantised core on the host.

        A carried block starts its sums from those of the block below it (just computed by this thread), so the
        windows that block already ran are not run again (see :mod:`.blend`).
        """
        import torch.nn.functional as F

        start, stop = self.region(block)
        carry = self._take_carry(block)
        if carry is None and data[0].shape[2] != stop[0] - start[0]:
            data = self.read(block, full=True)  # a carried block whose carry went missing: not expected, but safe
        model = self._loaded()
        x = self._on_device(data, start, stop, model.device)
        touching = self.touching(block)
        if carry is not None:
            touching[0] = self._own_z(block, touching[0])  # the block below ran the others
        starts = [g - r for g, r in zip(touching, start)]  # relative to the read region
        # an axis shorter than the window is padded (zeros, split as in MONAI) to one window
        pads = [max(0, w - n) for w, n in zip(self.window, x.shape[2:])]
        low = [p // 2 for p in pads]
        with torch.inference_mode():
            if any(pads):
                x = F.pad(x, [v for lo, p in zip(low[::-1], pads[::-1]) for v in (lo, p - lo)])
            num = torch.zeros_like(x, dtype=torch.float32)
            den = torch.zeros_like(x, dtype=torch.float32)
            if carry is not None:
                z_from, c_num, c_den = carry[1:]
                num[:, :, z_from - start[0]:z_from - start[0] + c_num.shape[2]] = c_num
                den[:, :, z_from - start[0]:z_from - start[0] + c_den.shape[2]] = c_den
            WindowBlender(self.window, self._predictor(model), self.sw_batch_size,
                          self._importance_map(model.device)).accumulate(x, starts, num, den, self.should_stop)
            core = (slice(None), slice(None)) + tuple(slice(a - r + lo, b - r + lo) for a, b, r, lo in
                                                      zip(block.write_start, block.write_stop, start, low))
            prob = (num[core] / den[core])[0, 0]
            nxt = (block.index[0] + 1,) + tuple(block.index[1:])
            if nxt in self.carried:
                z = block.write_stop[0] - start[0]
                self._give_carry((nxt, block.write_stop[0], num[:, :, z:].clone(), den[:, :, z:].clone()))
            if self.output_dtype == "uint8":
                out = prob.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
            else:
                out = prob.to(torch.float16)
        return out.cpu().numpy()

    @staticmethod
    def _own_z(block: Block, z_starts: np.ndarray) -> np.ndarray:
        """Of the z window starts touching ``block``, those it owns: starting inside it."""
        return z_starts[z_starts >= block.write_start[0]]

    def _slot(self) -> threading.local:
        """This thread's carry slot: blocks of a chain run in one thread; threads of a dask worker run other chains."""
        return self._cache.setdefault("carry", threading.local())

    def _take_carry(self, block: Block) -> Optional[tuple]:
        """The sums handed to ``block`` by the block below it, or ``None``; empties the slot either way."""
        slot = self._slot()
        carry, slot.value = getattr(slot, "value", None), None
        return carry if carry is not None and carry[0] == block.index else None

    def _give_carry(self, carry: tuple) -> None:
        """``(index of the next block, its first z, num, den)`` for the next block of this thread's chain."""
        self._slot().value = carry

    def _on_device(self, data: tuple, start, stop, dev: torch.device) -> torch.Tensor:
        """The block's input normalised on ``dev``, in the frame of its read region (planes not read are zero)."""
        from ..data.normalize import normalize

        x, x_z = data
        x = x.to(dev, non_blocking=True)
        if x.dtype != torch.float32:
            x = normalize(x, self.stats, self.norm_mode)
        depth = stop[0] - start[0]
        if x.shape[2] != depth:  # a carried block read only its own windows' planes
            full = x.new_zeros((1, 1, depth) + tuple(x.shape[3:]))
            full[:, :, x_z - start[0]:x_z - start[0] + x.shape[2]] = x
            x = full
        return x

    def _predictor(self, model: LoadedModel):
        """Windows -> foreground probabilities (bf16 autocast on CUDA), with the task's TTA."""
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if model.device.type == "cuda"
                    else contextlib.nullcontext())

        def forward(windows: torch.Tensor) -> torch.Tensor:
            with autocast:
                logits = model.network(windows)
            return model.foreground_probability(logits)

        return tta_predictor(forward, self.tta)

    def write(self, block: Block, out: np.ndarray) -> None:
        """Level 0 and the pyramid levels the block covers (in the write-behind thread)."""
        self.output.write(block.write_start, out)

    def _importance_map(self, dev: torch.device) -> torch.Tensor:
        key = ("weights", str(dev))
        if key not in self._cache:
            from monai.data.utils import compute_importance_map

            self._cache[key] = compute_importance_map(self.window, mode="gaussian", sigma_scale=0.125, device=dev,
                                                      dtype=torch.float32)[None, None]
        return self._cache[key]


def _chains(grid: BlockGrid, finished: set, length: Optional[int]) -> list[list[Block]]:
    """The blocks still to do as chains along z: runs of z-adjacent blocks of one column, at most ``length`` long.

    Within a chain each block takes over the window sums of the one before it (:attr:`PredictTask.carried`); the
    first block of a chain (of a column, after a finished block, or of a dask task) computes its z halo.
    """
    chains: list[list[Block]] = []
    for block in sorted(grid, key=lambda b: (b.index[1], b.index[2], b.index[0])):  # column by column, z fastest
        if block.block_id in finished:
            continue
        last = chains[-1][-1] if chains else None
        if (last is not None and last.index[1:] == block.index[1:] and last.index[0] + 1 == block.index[0]
                and (length is None or len(chains[-1]) < length)):
            chains[-1].append(block)
        else:
            chains.append([block])
    return chains


def _roi_on_grid(roi, in_vs, out_vs, out_shape) -> tuple[slice, slice, slice]:
    """Map an ROI in input voxels to the (resampled) model grid: the output voxels whose centres lie inside it."""
    out = []
    for s, a, b, n in zip(roi, in_vs, out_vs, out_shape):
        f = a / b
        start = max(0, int(math.floor(s.start * f + 1e-6)))
        stop = min(n, max(start + 1, int(math.ceil(s.stop * f - 1e-6))))
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


@holds_output_lock("predict")
def predict(
    model: Union[str, os.PathLike, LoadedModel],
    input: Union[str, os.PathLike, Volume, np.ndarray],
    output: Union[str, os.PathLike, None],
    *,
    tta: str = "none",
    roi=None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "auto",
    block_shape: Optional[Sequence[int]] = None,
    chunks: Optional[Sequence[int]] = None,
    overlap: float = 0.25,
    sw_batch_size: int = 2,
    output_dtype: str = "uint8",
    executor: str = "serial",
    address: Optional[str] = None,
    num_workers: Optional[int] = None,
    progress: bool = True,
    voxel_size: Optional[Sequence[float]] = None,
    window: Optional[Sequence[int]] = None,
    ome_version: str = DEFAULT_OME_VERSION,
    allow_resampling: bool = False,
    callback: Optional[ProgressCallback] = None,
    should_stop: Optional[StopCheck] = None,
    execution: Optional[Execution] = None,
) -> Path:
    """Foreground probabilities of a volume of any size, written blockwise to OME-Zarr (resumable).

    Args:
        model: Model file (``model.pt``) or a :class:`~masktwins_bio.models.LoadedModel` (its network is moved to
            ``device``; the dask executor re-loads it from ``model.path`` on every worker).
        input: Volume path spec (any format :func:`~masktwins_bio.io.open_volume` reads), a ``Volume``, or an
            in-memory (z, y, x) array (give its ``voxel_size``).
        output: Output ``.zarr`` path; ``None`` computes blockwise into a temporary store and returns the
            probabilities as a (z, y, x) numpy array on the model's grid (``output_dtype``; fits in memory only).
        tta: ``none`` or ``flips`` (8 flips; z is never swapped with y/x).
        roi: Sub-region in *input* voxels, ``"z0:z1,y0:y1,x0:x1"`` or three slices (negative = from the end).
        overwrite: Replace an existing output. ``resume``: continue an interrupted run with the same settings.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:N``. On CUDA the network runs in bf16.
        block_shape: Output block (voxels, z, y, x), a multiple of ``chunks``; default one window thick in z and
            8 (CPU) or 16 (CUDA) windows wide, at most 16 Mi (CPU) or 128 Mi (CUDA) voxels.
        chunks: Output chunk shape (voxels); default 32 x 256 x 256 clipped to the volume.
        overlap: Window overlap fraction in [0, 1) (MONAI's definition).
        sw_batch_size: Windows per forward pass.
        output_dtype: ``uint8`` (``round(p * 255)``) or ``float16`` (``p``).
        executor: ``serial`` or ``dask`` (``address``: scheduler of an existing cluster; ``num_workers``: size of
            the LocalCluster otherwise).
        progress: Show a progress bar (voxels/s).
        voxel_size: Input voxel size in nm (z, y, x), overriding (or supplying missing) metadata.
        window: Sliding-window size (voxels); default the model's training patch size.
        ome_version: ``0.5`` (Zarr v3, the default) or ``0.4`` (Zarr v2).
        allow_resampling: Accept an input more than 8x finer or coarser than the model along an axis (refused by
            default: a wrong voxel size is the usual cause); beyond 2x it is announced either way.
        callback: ``callback("predict", done, total)`` with output voxels, at the start and after every block.
        should_stop: Polled between blocks; True stops the run (see :func:`~masktwins_bio.blockwise.run_blockwise`).
        execution: ``executor``, ``address``, ``num_workers``, ``progress``, ``callback`` and ``should_stop`` as
            one :class:`~masktwins_bio.blockwise.Execution` (give either it or those arguments).

    Returns:
        The output path (or, for ``output=None``, the array). Its voxel size is the model's (the input is resampled
        when they differ).

    Raises:
        InputError: missing model/input, output exists without ``overwrite``/``resume``, resume with other
            settings, unknown input voxel size, resampling beyond 8x (without ``allow_resampling``), ROI outside
            the volume, block shape not a multiple of the chunks.
        Cancelled: ``should_stop()`` returned True; the output stays ``complete: false``, ``resume=True`` finishes it.
    """
    if output is None:  # an array back: the same blockwise run, into a store that is removed afterwards
        args = {k: v for k, v in locals().items() if k not in ("output", "model", "input")}
        with temporary_store("predict") as tmp:
            return open_volume(str(predict(model, input, tmp, **args)))[:]
    if tta not in TTA_MODES:
        raise InputError(f"tta {tta!r} is not known; choose one of {', '.join(TTA_MODES)}")
    if output_dtype not in OUTPUT_DTYPES:
        raise InputError(f"output dtype {output_dtype!r} is not supported; choose uint8 or float16")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap {overlap} must be in [0, 1), e.g. 0.25")
    if sw_batch_size < 1:
        raise InputError(f"batch size {sw_batch_size} must be at least 1")
    run = Execution.merge(execution, Execution(), executor=executor, address=address, num_workers=num_workers,
                          progress=progress, callback=callback, should_stop=should_stop)
    dev = resolve_device(device)

    loaded = model if isinstance(model, LoadedModel) else load_model(model, "cpu")
    vol = as_volume(input, role="input")
    vol = vol.with_voxel_size(voxel_size)
    if vol.voxel_size is None:
        trained = ",".join(f"{v:g}" for v in loaded.voxel_size)
        raise InputError(f"{vol.path}: voxel size unknown; the model was trained at {trained} nm, give the input's "
                         "with --voxel-size Z,Y,X")
    roi_in = roi_slices(roi if roi is not None else (slice(None),) * 3, vol.shape, vol.path)
    check_resampling(vol.path, vol.voxel_size, loaded.voxel_size, "input", allow_resampling)
    source = vol.resampled(loaded.voxel_size)
    roi_out = _roi_on_grid(roi_in, vol.voxel_size, loaded.voxel_size, source.shape)
    origin = tuple(s.start for s in roi_out)
    shape = tuple(s.stop - s.start for s in roi_out)
    win = tuple(int(w) for w in (window or loaded.patch_size))
    chunks = output_chunks(shape, chunks, block_shape)
    block_shape = tuple(block_shape or default_block_shape(shape, chunks, win, dev.type))
    grid = BlockGrid(shape, block_shape, chunks=chunks, voxel_size=loaded.voxel_size)  # halo: PredictTask.region

    meta = loaded.metadata
    norm_mode = (meta.get("normalization") or {}).get("mode", "zscore")
    from ..data.normalize import statistics_for

    stats = statistics_for(vol, meta.get("normalization"))
    settings = plain({
        "model_sha256": loaded.sha256, "input_shape": vol.shape, "input_voxel_size": vol.voxel_size,
        "input_statistics": stats, "voxel_size": loaded.voxel_size, "roi": [[s.start, s.stop] for s in roi_in],
        "shape": shape, "window": win, "overlap": overlap, "tta": tta, "block_shape": grid.block_shape,
        "chunks": chunks, "output_dtype": output_dtype, "normalization": norm_mode,
    })
    if not run.serial and not Path(loaded.path).is_file():
        raise InputError(f"{loaded.path}: the dask executor loads the model from its file, which is missing")
    out = ResumableOutput(output, task="predict", settings=settings, inputs=[vol, model], overwrite=overwrite,
                          resume=resume)
    if out.complete:
        log.info("%s: already complete, nothing to resume", out.path)
        return out.path
    with out:
        if out.writer is None:
            training = meta.get("training") or {}
            out.create(shape, output_dtype, loaded.voxel_size, chunks=chunks, kind="image", ome_version=ome_version,
                       name="probabilities", attrs={
                           "model": {"path": str(loaded.path), "sha256": loaded.sha256,
                                     **{k: meta[k] for k in ("voxel_size", "patch_size", "head", "classes",
                                                             "normalization", "training") if k in meta}},
                           "config_hash": training.get("config_hash") if isinstance(training, dict) else None,
                           "input": {"path": str(vol.path), "shape": vol.shape, "voxel_size": vol.voxel_size,
                                     "statistics": stats},
                           "tta": tta, "overlap": overlap, "window": win, "roi": settings["roi"],
                           "output_dtype": output_dtype, "scale": 255 if output_dtype == "uint8" else 1,
                           "package_version": __version__})
        pyramid = out.writer.create_block_levels(grid.block_shape)
        if run.serial:
            loaded.network.to(dev).eval()
        task = PredictTask(
            model_path=str(loaded.path), device=str(dev) if device not in (None, "auto") else "auto", source=source,
            origin=origin, shape=shape, output=pyramid, stats=stats, norm_mode=norm_mode, window=win,
            overlap=overlap, sw_batch_size=sw_batch_size, tta=tta, output_dtype=output_dtype,
            model=loaded if run.serial else None, should_stop=run.should_stop if run.serial else None,
        )
        done = out.done("predict")
        chains = _chains(grid, done.done_ids(), None if run.serial else DASK_CHAIN)
        if win[0] <= shape[0]:  # (an axis shorter than the window is padded: one window, nothing to carry)
            task.carried = frozenset(b.index for chain in chains for b in chain[1:])
        run_blockwise(grid, task, done=done, chains=chains, execution=run, desc="predict")
        out.finish()
    return out.path
