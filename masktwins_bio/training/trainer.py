"""The trainer: one loop of hook calls, the same for every method.

The loop (:meth:`Trainer.run`) reads::

    setup -> for each step: next_batch -> train_step -> after_step -> [validate] -> [save_checkpoint] -> finish

Everything else is an overridable method: data (:meth:`build_datasets`), network (:meth:`build_network`), optimiser
and schedule (:meth:`build_optimizer`), logging, checkpoints, export. The method (source-only, mean teacher, MIC,
MaskTwins) only computes the loss of a batch (:mod:`masktwins_bio.methods`); the trainer never knows which one runs.

Outputs in the run directory: ``config.yaml`` (resolved) + ``config_hash``, ``log.csv`` and ``tensorboard/``,
``last.pt`` (checkpoint for ``--resume``), ``model.pt`` (the exported model chosen by the selection rule) and
``summary.json``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .._version import __version__
from ..config import Config
from ..data.dataset import PatchDataset, StepSampler
from ..data.grid import training_voxel_size
from ..data.normalize import (normalization_metadata, normalize, statistics_for, volume_statistics,
                              with_reference)
from ..data.transforms import build_transforms, random_inplane_affine
from ..devices import resolve_device, unwrap
from ..errors import ConfigError, InputError, TrainingDiverged
from ..io import Volume, open_volume
from ..methods import EMATeacher, build_method
from ..models import STARTER, build_network, export_model, fast_activations, load_model, required_divisor
from ..precision import autocast, autocast_dtype
from .checkpoint import FORKABLE_CHANGES, config_differences, load_checkpoint, save_checkpoint
from .distributed import DistContext
from .monitors import LabelFreeMonitor, TargetEvaluator
from .runlog import RunLogger
from .schedule import warmup_poly

__all__ = ["Trainer", "TrainResult", "TrainingVolumes", "open_training_volumes"]

log = logging.getLogger("masktwins_bio.train")


@dataclass
class TrainingVolumes:
    """The volumes of an experiment (lazy)."""

    source_image: Volume
    source_labels: Volume
    target_image: Volume
    eval_image: Optional[Volume] = None
    eval_labels: Optional[Volume] = None


def _check_downloadable(cfg: Config, specs: dict) -> None:
    """Missing volumes that public datasets provide: name them, and the commands that fetch them, in one line."""
    from ..datasets import dataset_providing
    from ..io import split_h5_spec

    missing, needed = [], {}
    for key, spec in specs.items():
        if not spec:
            continue
        rel = split_h5_spec(spec)[0]
        path = Path(split_h5_spec(cfg.resolve_path(spec))[0])
        ds = None if path.exists() or Path(rel).is_absolute() else dataset_providing(rel)
        if ds is not None:
            missing.append(f"{path} ({key})")
            needed[ds.name] = ds
    if needed:
        fetch = " && ".join(f"masktwins-bio download {n} {cfg.data_root}" for n in needed)
        names = ", ".join(ds.title.split(" (")[0] for ds in needed.values())
        raise InputError(f"missing data: {'; '.join(missing)} - part of {names}; fetch with: {fetch}")


def open_training_volumes(cfg: Config) -> TrainingVolumes:
    """Open the volumes named in the config (lazily), applying voxel-size overrides and ROIs."""
    if not cfg.source.labels:
        raise ConfigError("source.labels is missing: the source volume needs labels for training "
                          "(set source.labels to the label volume)")
    e = cfg.target.eval
    _check_downloadable(cfg, {"source.image": cfg.source.image, "source.labels": cfg.source.labels,
                              "target.image": cfg.target.image, "target.eval.image": e and e.image,
                              "target.eval.labels": e and e.labels})
    src = open_volume(cfg.resolve_path(cfg.source.image), cfg.source.voxel_size, "image", cfg.source.roi)
    lab = open_volume(cfg.resolve_path(cfg.source.labels), cfg.source.voxel_size or src.voxel_size, "labels",
                      cfg.source.roi)
    tgt = open_volume(cfg.resolve_path(cfg.target.image), cfg.target.voxel_size, "image", cfg.target.roi)
    ev_img = ev_lab = None
    if cfg.target.eval is not None:
        e = cfg.target.eval
        if not e.labels:
            raise ConfigError("target.eval.labels is missing: evaluation needs target labels (or drop target.eval)")
        ev_img = open_volume(cfg.resolve_path(e.image), e.voxel_size, "image", e.roi)
        ev_lab = open_volume(cfg.resolve_path(e.labels), e.voxel_size or ev_img.voxel_size, "labels", e.roi)
        if ev_lab.shape != ev_img.shape:
            raise InputError(f"{ev_lab.path}: label shape {ev_lab.shape} differs from image shape {ev_img.shape}")
    return TrainingVolumes(src, lab, tgt, ev_img, ev_lab)


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_path: Path
    checkpoint_path: Path
    steps: int
    selected_step: int
    history: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def config_input_paths(c: Config) -> list:
    """The volumes and model files a run of ``c`` reads (its run folder must not be, hold or lie inside one)."""
    domains = [c.source, c.target, c.target.eval]
    specs = [getattr(d, key, None) for d in domains if d is not None for key in ("image", "labels")]
    return [c.resolve_path(s) for s in specs if s] + ([c.train.init] if c.train.init else [])


class Trainer:
    """Trains one method on one source/target pair.

    Args:
        cfg: Validated configuration.
        run_dir: Output directory (default ``cfg.run_dir`` or ``runs/<name>``).
        resume: Continue from ``run_dir/last.pt``.
        overwrite: Replace an existing run directory.
        volumes: Pre-opened volumes (e.g. napari layers); default: open those named in ``cfg``.
        progress: Show a progress bar.
        callback: Called as ``callback(step, logs)`` at every step (``logs = {"progress": {"step", "steps"}}``), log
            step (``{"train": values}``) and validation (``{"val": values}``) - the napari live view.
        should_stop: Polled every step; returning True stops training early (a checkpoint and model are written).
        fork_from: A checkpoint of a run whose first steps this run shares (a two-stage prefix: see
            ``method.adapt_from_step``); training continues from its state, as if this run had computed them.
        snapshot_steps: Steps after which a copy of the checkpoint is kept as ``step<N>.pt`` (a prefix to fork).
        stop_at: Stop after this many steps (a checkpoint, model and summary are written; ``resume`` continues
            exactly as if uninterrupted): ``method.agreement: auto``'s probe.
        keep_process_group: Leave a torchrun process group open at the end, for another run in the same processes
            (``auto``'s candidates: destroying and re-creating the group between runs could hang).
    """

    def __init__(self, cfg: Config, run_dir=None, resume: bool = False, overwrite: bool = False,
                 volumes: Optional[TrainingVolumes] = None, progress: bool = True,
                 callback: Optional[Callable[[int, dict], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None, fork_from=None,
                 snapshot_steps: Sequence[int] = (), stop_at: Optional[int] = None,
                 keep_process_group: bool = False):
        self.cfg = cfg
        self.keep_process_group = keep_process_group
        self.stop_at = cfg.train.steps if stop_at is None else min(int(stop_at), cfg.train.steps)
        self.run_dir = Path(run_dir or cfg.get_run_dir())
        self.resume = resume
        self.fork_from = Path(fork_from) if fork_from else None
        self.snapshot_steps = {int(s) for s in snapshot_steps}
        if resume and fork_from:
            raise ValueError("resume and fork_from exclude each other")
        self.overwrite = overwrite
        self.volumes = volumes
        self.progress = progress
        self.callback = callback
        self.should_stop = should_stop or (lambda: False)
        self.dist = DistContext.from_env()
        self.step = 0
        self.best = {"score": -np.inf, "step": -1}
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        with contextlib.ExitStack() as self.held:  # the run folder's writer lock (prepare_run_dir) until the end
            self.setup()
            for step in range(self.step, self.stop_at):
                batch = self.next_batch(step)
                logs = self.train_step(batch, step)
                self.after_step(step, logs)
                if self.due(step, self.cfg.train.val_every) or step + 1 == self.adapt_start:
                    self.validate(step + 1)
                if self.due(step, self.cfg.train.checkpoint_every) or step + 1 in self.snapshot_steps:
                    self.save_checkpoint(step + 1)
                if self.should_stop() or self.out_of_time():
                    break
                if self.method.adapt_start is None and self.half_time_spent():  # auto under a wall-clock budget
                    self.method.adapt_start = step + 1
                    self.validate(step + 1)  # the source-trained start of the adaptation (logged, not selectable)
            return self.finish()

    # ------------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.train.device, self.dist.local_rank if self.dist.enabled else None,
                                     "train.device", ConfigError)
        self.dist.init(self.device)
        # validate all inputs before anything is written
        self.vols = self.volumes or open_training_volumes(cfg)
        self.patch_size = tuple(cfg.data.patch_size)
        self.voxel_size = self.training_grid()
        self.check_patch_size()
        self.build_datasets()
        self.method = build_method(cfg.method, cfg.model.head, cfg.data.augment, self.patch_size, self.voxel_size,
                                   cfg.train.source_loss, self.source_foreground, cfg.adapt_start_step())
        self.prepare_run_dir()
        self.build_network()
        self.build_optimizer()
        self.autocast_dtype = self.pick_amp()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        if self.resume:
            self.load_checkpoint()  # before the loaders, so the patch streams start at the resumed step
            self.write_run_record()
        elif self.fork_from is not None:
            self.load_fork()
        self.source_iter = self.make_loader(self.source_ds, cfg.train.batch_source)
        self.target_iter = None  # opened at the first adapting step (next_batch), so its stream starts there
        self.build_validation()
        self.generator = torch.Generator(device=self.device)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main,
                                resume_step=self.step if self.resume else None)
        self.bar = self.make_progress()
        self._t_last = time.perf_counter()
        self._step_last = self.step
        self._accum: dict[str, torch.Tensor] = {}
        if self.fork_from is not None and self.step == self.adapt_start:
            self.validate(self.step)  # the shared source-trained start of the adaptation (logged, not selectable)

    def training_grid(self) -> tuple:
        """The training voxel size: ``data.voxel_size``; else a fine-tuned model's own grid; else the default rule of
        :func:`~masktwins_bio.data.grid.training_voxel_size` for the source and target voxel sizes."""
        cfg, v = self.cfg, self.vols
        if cfg.data.voxel_size:
            return tuple(cfg.data.voxel_size)
        if cfg.train.init:
            return tuple(self.init_model.voxel_size)
        if v.source_image.voxel_size is None:
            raise ConfigError(f"{v.source_image.path}: source voxel size unknown; set source.voxel_size "
                              "or data.voxel_size (nm, z, y, x)")
        if v.target_image.voxel_size is None:
            raise ConfigError(f"{v.target_image.path}: target voxel size unknown; set target.voxel_size "
                              "or data.voxel_size (nm, z, y, x)")
        return training_voxel_size(v.source_image.voxel_size, v.target_image.voxel_size, self.patch_size)

    @functools.cached_property
    def init_model(self):
        """The model ``train.init`` names (a path, relative to the config, or the starter), loaded once: it gives
        both the training grid and the start weights."""
        given = self.cfg.train.init
        return load_model(given if Path(given).exists() or given == STARTER else self.cfg.resolve_path(given))

    @property
    def adapt_start(self) -> int:
        """First step with target terms; selection considers the models after it (0 for source-only)."""
        start = self.method.adapt_start if self.method.uses_target else 0
        return self.cfg.train.steps if start is None else start  # not yet decided (time budget): nothing selectable

    def input_paths(self) -> list:
        """The volumes and model files this run reads (the run folder must not be, hold or lie inside one)."""
        return config_input_paths(self.cfg)

    def prepare_run_dir(self) -> None:
        from ..io.guard import (check_not_an_input, check_replaceable, refuse_existing, set_aside, settle_replacement,
                                write_marker)
        from ..io.lock import output_lock

        rd = self.run_dir
        if self.dist.is_main:
            check_not_an_input(rd, self.input_paths())
            rd.parent.mkdir(parents=True, exist_ok=True)
            held = getattr(self, "held", None)  # set by run(); a bare setup() (benchmarks, tests) holds no lock
            if held is not None:
                held.enter_context(output_lock(rd, "train"))
            if self.resume:
                if not (rd / "last.pt").exists():
                    again = "start it again with --overwrite" if rd.exists() else "run without --resume"
                    raise InputError(f"{rd}: no checkpoint (last.pt) to resume from (the run stopped before its "
                                     f"first checkpoint, or never ran); {again}")
            elif rd.exists() and any(rd.iterdir()):
                if not self.overwrite:
                    refuse_existing(rd, "run directory", resumable=(rd / "last.pt").exists(),
                                    other="--set run_dir=another/path")
                check_replaceable(rd, (), "training run folder", "train")
                aside = set_aside(rd)  # the old run stays whole until this one has a checkpoint or fails
                if held is None:
                    shutil.rmtree(aside)
                else:
                    def settle(exc_type, *_):  # at the end of run(): keep the new run or bring the old one back
                        # a diverged run keeps its last good checkpoint (its message says so), as an interrupted one
                        settle_replacement(rd, aside, exc_type, (rd / "last.pt").exists, keep_on=(TrainingDiverged,))
                        return False  # never swallow the exception

                    held.push(settle)
            rd.mkdir(parents=True, exist_ok=True)
            if not self.resume:  # a resume rewrites the record only once its checkpoint accepted this config
                write_marker(rd, "train")
                self.write_run_record()
        self.dist.barrier()

    def write_run_record(self) -> None:
        if self.dist.is_main:
            (self.run_dir / "config.yaml").write_text(self.cfg.to_yaml())
            (self.run_dir / "config_hash").write_text(self.cfg.hash() + "\n")

    def check_patch_size(self) -> None:
        div = required_divisor(self.cfg.model, self.voxel_size, self.patch_size)
        bad = [(a, p, d) for a, p, d in zip("zyx", self.patch_size, div) if p % d]
        if bad:
            fix = [max(d, round(p / d) * d) for p, d in zip(self.patch_size, div)]
            raise ConfigError(f"data.patch_size {list(self.patch_size)} must be a multiple of {list(div)} for "
                              f"model {self.cfg.model.name} with these strides; e.g. use {fix}")

    def build_network(self) -> None:
        torch.manual_seed(self.cfg.seed)
        net = build_network(self.cfg.model, self.voxel_size, self.patch_size)
        if self.cfg.train.init:
            try:
                net.load_state_dict(self.init_model.network.state_dict())
            except RuntimeError:
                raise ConfigError(f"train.init {self.cfg.train.init}: its architecture differs from model "
                                  "(use the same model section as the run that produced it)") from None
        # same values, a cheaper backward (after loading: same keys)
        net = fast_activations(net, cpu=self.device.type == "cpu").to(self.device)
        self.teacher = EMATeacher(net, self.cfg.method.ema_alpha)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DDP(net, device_ids=ids)
        self.student = net

    def build_optimizer(self) -> None:
        t = self.cfg.train
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self._t_start = time.perf_counter()  # before the scheduler: LambdaLR evaluates lr_factor(0) at once
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)

    def lr_factor(self, step: int) -> float:
        """Warm-up then poly decay over the step budget, or over the time budget when ``train.max_minutes`` is set,
        times ``method.adapt_lr_scale`` while adapting."""
        t = self.cfg.train
        # the adaptation's own factor (method.adapt_lr_scale); LambdaLR sets the LR of optimiser step ``step`` from it
        scale = self.cfg.method.adapt_lr_scale if self.method.adapts_at(step) else 1.0
        if t.max_minutes is None or step < t.warmup_steps:
            return scale * warmup_poly(step, t.warmup_steps, t.steps, t.poly_power)
        elapsed = (time.perf_counter() - self._t_start) / (60 * t.max_minutes)
        return scale * max(0.0, 1.0 - min(1.0, max(elapsed, step / t.steps))) ** t.poly_power

    def half_time_spent(self) -> bool:
        t = self.cfg.train
        return t.max_minutes is not None and time.perf_counter() - self._t_start > 30 * t.max_minutes

    def out_of_time(self) -> bool:
        t = self.cfg.train
        return t.max_minutes is not None and time.perf_counter() - self._t_start > 60 * t.max_minutes

    def build_datasets(self) -> None:
        cfg, v = self.cfg, self.vols
        aug = cfg.data.augment
        cache = cfg.data.cache_mb * 2**20
        self.source_stats = volume_statistics(v.source_image, seed=cfg.seed * 1000 + 1)
        self.normalization = normalization_metadata(cfg.data.normalization, self.source_stats)
        self.source_ds = PatchDataset(
            v.source_image, self.patch_size, self.voxel_size, labels=v.source_labels,
            label_threshold=cfg.source.label_threshold, foreground_fraction=cfg.data.foreground_fraction,
            transform=build_transforms(aug, self.voxel_size, self.patch_size, intensity=True),
            normalization=cfg.data.normalization, seed=cfg.seed * 1000 + 1, what="source",
            stats=with_reference(self.source_stats, self.normalization.get("reference")), cache_bytes=cache)
        self.target_ds = PatchDataset(
            v.target_image, self.patch_size, self.voxel_size,
            transform=build_transforms(aug, self.voxel_size, self.patch_size, intensity=False),
            normalization=cfg.data.normalization, seed=cfg.seed * 1000 + 2, what="target",
            stats=with_reference(volume_statistics(v.target_image, seed=cfg.seed * 1000 + 2),
                                 self.normalization.get("reference")), cache_bytes=cache)

    @property
    def source_foreground(self) -> float:
        """Foreground fraction of the source labels (at the training voxel size)."""
        return self.source_ds.foreground_voxels / max(1, self.source_ds.image.size)

    def make_loader(self, ds, batch_size: int, start: Optional[int] = None):
        t = self.cfg.train
        start = self.step if start is None else start
        sampler = StepSampler(start, batch_size, self.dist.rank, self.dist.world_size, t.steps)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=batch_size, sampler=sampler, num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.cfg.data.num_workers > 0,
            prefetch_factor=4 if self.cfg.data.num_workers > 0 else None, drop_last=True)
        return iter(loader)

    def build_validation(self) -> None:
        cfg = self.cfg
        n = cfg.train.val_patches
        base = 10**8  # monitor patches use indices far from the training stream
        patches = torch.stack([self.target_ds.read(self.target_ds._origin(np.random.default_rng([cfg.seed, base + i])))
                               ["image"] for i in range(n)])
        fg_source = self.source_foreground
        self.monitor = LabelFreeMonitor(patches, cfg.model.head, cfg.method.confidence_threshold,
                                        self.method.mask_block, fg_source, batch_size=max(1, cfg.train.batch_target),
                                        seed=cfg.seed)
        self.evaluator = None
        v = self.vols
        if v.eval_image is not None:
            img = v.eval_image.resampled(self.voxel_size) if v.eval_image.voxel_size else v.eval_image
            lab = v.eval_labels.with_voxel_size(v.eval_image.voxel_size)
            lab = lab.resampled(self.voxel_size) if lab.voxel_size else lab
            # a central crop keeps validation cheap (the full evaluation is predict + evaluate after training)
            sl = TargetEvaluator.crop_slices(img.shape, 16_000_000 if self.device.type == "cuda" else 4_000_000)
            stats = statistics_for(v.eval_image, self.normalization, seed=cfg.seed)
            image = normalize(img[sl], stats, cfg.data.normalization)
            labels = lab[sl] >= cfg.target.eval.label_threshold
            self.evaluator = TargetEvaluator(image, labels, self.patch_size, cfg.model.head,
                                             cfg.inference.overlap, cfg.inference.sw_batch_size)
        elif cfg.train.selection == "target_eval":
            raise ConfigError("train.selection=target_eval needs target.eval (target labels); use label_free")

    @property
    def selection(self) -> str:
        """The checkpoint rule in effect: source-only training never sees the target, so there is no adaptation
        drift to guard against and its label-free rule is "last" (masked-view consistency is not meaningful for a
        model never trained on masked inputs)."""
        if self.cfg.train.selection == "label_free" and not self.method.uses_target:
            return "last"
        return self.cfg.train.selection

    def pick_amp(self) -> Optional[torch.dtype]:
        return autocast_dtype(self.device, self.cfg.train.amp)

    def autocast(self):
        return autocast(self.device, self.autocast_dtype)

    def make_progress(self):
        from tqdm.auto import tqdm

        return tqdm(total=self.cfg.train.steps, initial=self.step, desc=f"train {self.cfg.method.name}",
                    disable=not (self.progress and self.dist.is_main), dynamic_ncols=True, leave=False)

    # ------------------------------------------------------------------------------------------------- a step
    def next_batch(self, step: Optional[int] = None) -> dict:
        step = self.step if step is None else step
        src = next(self.source_iter)
        batch = {"source_image": src["image"], "source_label": src["label"]}
        if self.method.adapts_at(step):
            if self.target_iter is None:
                self.target_iter = self.make_loader(self.target_ds, self.cfg.train.batch_target, start=step)
            batch["target_image"] = next(self.target_iter)["image"]
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def step_seed(self, step: int) -> int:
        return int(np.random.SeedSequence([self.cfg.seed, step, self.dist.rank]).generate_state(1)[0])

    def train_step(self, batch: dict, step: int) -> dict:
        self.student.train()
        seed = self.step_seed(step)
        self.generator.manual_seed(seed)
        torch.manual_seed(seed)  # dropout and any other global draws: a function of (seed, step)
        batch["source_image"], batch["source_label"] = random_inplane_affine(
            batch["source_image"], batch["source_label"], self.cfg.data.augment, self.generator)
        with self.autocast():
            loss, logs = self.method.losses(self.student, self.teacher, batch, step, self.generator)
        if not torch.isfinite(loss):
            last = self.run_dir / "last.pt"
            kept = f"{last} (the last good checkpoint) is kept" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"the training loss became {loss.item()} at step {step}; {kept}. Likely causes: train.lr too high "
                f"(now {self.cfg.train.lr:g}; try 10x lower), non-finite voxels in an input volume (masktwins-bio info "
                "shows them), or train.amp overflowing (try train.amp=none)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        logs["ema_alpha"] = torch.tensor(self.teacher.update(self.student, step))
        return logs

    def after_step(self, step: int, logs: dict) -> None:
        self.step = step + 1
        for k, v in logs.items():  # accumulate on device; synchronise only at log steps
            v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            self._accum[k] = self._accum.get(k, 0) + v
        self.bar.update(1)
        if self.callback:  # every step: a GUI's progress and ETA move from the first step, not the first log step
            self.callback(self.step, {"progress": {"step": self.step, "steps": self.cfg.train.steps}})
        if self.due(step, self.cfg.train.log_every) or self.step == self.cfg.train.steps:
            n = self.step - self._step_last
            values = {k: (v / n).item() for k, v in self._accum.items()}
            now = time.perf_counter()
            values["steps_per_s"] = n / max(1e-9, now - self._t_last)
            values["lr"] = self.scheduler.get_last_lr()[0]
            self._accum, self._t_last, self._step_last = {}, now, self.step
            self.logger.log(self.step, values, "train/")
            self.bar.set_postfix(loss=f"{values['loss']:.3f}", it_s=f"{values['steps_per_s']:.2f}")
            if self.callback:
                self.callback(self.step, {"train": values})

    def due(self, step: int, every: int) -> bool:
        return (step + 1) % every == 0

    # ------------------------------------------------------------------------------------------------- validation
    def validate(self, step: int) -> dict:
        if not self.dist.is_main:
            return {}
        teacher = self.teacher.module
        values = self.monitor(teacher, unwrap(self.student), self.device, self.autocast)
        if self.evaluator is not None:
            values.update({f"target_{k}": v for k, v in self.evaluator(teacher, self.device, self.autocast).items()})
        self.logger.log(step, values, "val/")
        self.history.append({"step": step, **values})
        score = {"label_free": values["label_free_score"], "target_eval": values.get("target_iou", np.nan),
                 "last": float(step)}[self.selection]
        if step > self.adapt_start and score >= self.best["score"]:  # candidates: the adaptation's own models
            self.best = {"score": float(score), "step": step}
            self.export(self.run_dir / "model.pt", step)
        if self.callback:
            self.callback(step, {"val": values})
        return values

    # ------------------------------------------------------------------------------------------------- persistence
    def model_metadata(self, step: int) -> dict:
        cfg = self.cfg
        return {
            "voxel_size": list(self.voxel_size),
            "patch_size": list(self.patch_size),
            "normalization": self.normalization,
            "training": {
                "method": cfg.method.name,
                "source": str(self.vols.source_image.path),
                "target": str(self.vols.target_image.path),
                "source_voxel_size": list(self.vols.source_image.voxel_size or []),
                "target_voxel_size": list(self.vols.target_image.voxel_size or []),
                "step": step,
                "steps": cfg.train.steps,
                "seed": cfg.seed,
                "config_hash": cfg.hash(),
                "selection": self.selection,
                "weights": "ema_teacher",
            },
        }

    def export(self, path: Path, step: int) -> Path:
        return export_model(self.teacher.module, path, self.cfg.model, self.model_metadata(step))

    def save_checkpoint(self, step: int) -> None:
        if not self.dist.is_main:
            return
        state = {
            "config": self.cfg.resolved(),
            "config_hash": self.cfg.hash(),
            "version": __version__,
            "step": step,
            "student": {k: v.detach().cpu() for k, v in unwrap(self.student).state_dict().items()},
            "teacher": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "best": dict(self.best),
            "history": self.history,
            "model_metadata": self.model_metadata(step),
            # resolved: a later default must not change a resumed run
            "keep_ratio": self.method.keep_ratio,
            "source_mask_prob": self.method.source_mask_prob,
        }
        save_checkpoint(self.run_dir / "last.pt", state)
        if step in self.snapshot_steps:
            shutil.copyfile(self.run_dir / "last.pt", self.run_dir / f"step{step}.pt")

    def load_checkpoint(self) -> None:
        path = self.run_dir / "last.pt"
        state = load_checkpoint(path)
        diffs = config_differences(state["config"], self.cfg.resolved())
        if diffs:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:3])
            raise InputError(f"{path}: was written by a different config ({shown}); resume with the same config or "
                             "start a new run_dir")
        self._restore(state)
        # a setting the config leaves to the method's default resumes with the value the run started with: stored
        # since it became default-dependent, before that the value every run had (a setting given in the config
        # was already checked against the checkpoint's config above)
        for key, before in (("keep_ratio", self.method.default_keep_ratio), ("source_mask_prob", 0.0)):
            if getattr(self.cfg.method, key) is not None:
                continue
            started_with, today = state.get(key, before), getattr(self.method, key)
            if started_with != today:
                log.warning("%s: resuming with method.%s %g, the default when the run started (today's default is "
                            "%g)", path, key, started_with, today)
                setattr(self.method, key, started_with)
        self.best = dict(state["best"])
        self.history = list(state["history"])
        log.info("resumed %s at step %d", path, self.step)

    def load_fork(self) -> None:
        """Continue from another run's checkpoint taken inside the shared source-only prefix."""
        path = self.fork_from
        state = load_checkpoint(path)
        diffs = config_differences(state["config"], self.cfg.resolved(), FORKABLE_CHANGES)
        step = int(state["step"])
        if diffs:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:3])
            raise InputError(f"{path}: its run differs from this one in more than the adaptation method ({shown}); "
                             "fork only from a run of the same config")
        if step > self.adapt_start:
            raise InputError(f"{path}: is at step {step}, past this run's method.adapt_from_step={self.adapt_start}; "
                             "fork from a checkpoint inside the source-only prefix")
        self._restore(state)
        # the prefix's optimiser holds the source-only schedule's learning rate for this step: set this run's own
        # (method.adapt_lr_scale), as LambdaLR would have, so the fork equals the same run trained from scratch
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self.lr_factor(self.step)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        self.history = [h for h in state["history"] if h["step"] < step]  # selection starts afresh at the fork
        log.info("forked from %s at step %d", path, self.step)

    def _restore(self, state: dict) -> None:
        unwrap(self.student).load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])
        if self.step > self.cfg.train.steps:
            raise InputError(f"checkpoint is at step {self.step}, beyond train.steps={self.cfg.train.steps}")

    def finish(self) -> TrainResult:
        self.bar.close()
        if self.dist.is_main:
            if not self.history or self.history[-1]["step"] != self.step:
                self.validate(self.step)
            if self.selection == "last" or not (self.run_dir / "model.pt").exists():
                self.export(self.run_dir / "model.pt", self.step)
                self.best = {"score": self.best["score"], "step": self.step}
            self.save_checkpoint(self.step)
            summary = {
                "adapt_from_step": self.adapt_start,
                "name": self.cfg.name,
                "method": self.cfg.method.name,
                "steps": self.step,
                "selected_step": self.best["step"],
                "selection": self.selection,
                "selection_score": self.best["score"],
                "config_hash": self.cfg.hash(),
                "device": str(self.device),
                # the arithmetic the steps ran in: bf16 autocast where the CPU has it natively, else fp32, so the
                # same config gives different numerics on different CPUs (tables must not pool them unawares)
                "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32"),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "world_size": self.dist.world_size,
                "history": self.history,
                "version": __version__,
            }
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        else:
            summary = {}
        self.logger.close()
        self.dist.barrier()
        if not self.keep_process_group:
            self.dist.shutdown()
        return TrainResult(self.run_dir, self.run_dir / "model.pt", self.run_dir / "last.pt", self.step,
                           self.best["step"], self.history, summary)


