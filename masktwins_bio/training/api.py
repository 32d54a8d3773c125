"""Library entry point for training: :func:`train` (the method ladder is in :mod:`.ladder`)."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from ..config import Config, load_config
from .trainer import Trainer, TrainResult

__all__ = ["train"]


def _as_config(config, overrides=None) -> Config:
    if isinstance(config, Config):
        if overrides:
            from ..config import apply_overrides, config_from_dict

            return config_from_dict(apply_overrides(config.resolved(), overrides), "config (with overrides)")
        return config
    return load_config(config, overrides)


def train(config: Config | str | os.PathLike, overrides: Optional[Sequence[str]] = None, *, resume: bool = False,
          overwrite: bool = False, run_dir=None, progress: bool = True, **kwargs) -> TrainResult:
    """Train (adapt) a model.

    Args:
        config: A :class:`Config` or a YAML path.
        overrides: ``["train.steps=500", ...]``.
        resume: Continue from ``run_dir/last.pt``.
        overwrite: Replace an existing run directory.
        run_dir: Output directory (default from the config).
        progress: Progress bar.
        **kwargs: Passed to :class:`Trainer` (``volumes``, ``callback``, ``should_stop``, ``fork_from``,
            ``snapshot_steps``).

    With ``method.agreement: auto`` (a MaskTwins variant) the adaptation is trained once per agreement and the
    better label-free score kept (:mod:`.choice`).

    Returns:
        A :class:`TrainResult` with the exported ``model.pt``.
    """
    cfg = _as_config(config, overrides)
    from .choice import chooses_agreement, train_choosing_agreement

    if chooses_agreement(cfg):  # two adaptations from one prefix, the better label-free score kept
        return train_choosing_agreement(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=progress,
                                        **kwargs)
    return Trainer(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=progress, **kwargs).run()

