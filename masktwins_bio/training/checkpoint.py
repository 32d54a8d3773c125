"""Training checkpoints: atomic writes, safe loads, and a config-compatibility check for ``--resume``.

A checkpoint is a plain dict (tensors, numbers, strings, lists) loaded with ``torch.load(weights_only=True)``: the
resolved config, step, student and teacher weights, optimiser/scheduler/grad-scaler states, torch RNG states, the
best label-free score so far and the metadata of the exported model. Per-step randomness is derived from
``(seed, step)``, so these states suffice for an exact resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..files import atomic_file

__all__ = ["save_checkpoint", "load_checkpoint", "config_differences", "CHECKPOINT_FORMAT", "RESUMABLE_CHANGES",
           "FORKABLE_CHANGES"]

CHECKPOINT_FORMAT = "masktwins-bio-checkpoint"
# keys that may differ between the run being resumed and the resumed run (data.cache_mb: where patches are read
# from, not their values; runs written before it existed lack it)
RESUMABLE_CHANGES = {
    "train.steps", "train.log_every", "train.val_every", "train.checkpoint_every", "train.device", "run_dir",
    "data.num_workers", "data.cache_mb", "data_root", "name",
}
# what a run forked from another run's source-only prefix may change besides those: the adaptation method and the
# settings that act only from method.adapt_from_step on (the teacher's decay acts from step 0, so it must match)
FORKABLE_CHANGES = RESUMABLE_CHANGES | {"train.selection"}
FORK_FIXED_METHOD_KEYS = {"method.ema_alpha"}
# options added after runs were already written with this checkpoint format, each with the value that reproduces
# what those runs did: a checkpoint whose config lacks the key compares as if it held that value (a default resolved
# per method, e.g. source_mask_prob, is restored by the trainer from the checkpoint itself)
ADDED_KEYS = {"method.cm_rampup_steps": 0, "method.agreement": "symmetric", "method.mask_fill": "zero",
              "method.source_mask_prob": None, "method.adapt_lr_scale": 1.0,
              "method.pseudo_voxels": "all", "method.agreement_probe": None}


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no checkpoint to resume from; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot be loaded as a checkpoint ({type(exc).__name__}); it may be corrupt") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: is not a masktwins-bio training checkpoint")
    return state


def _flatten(d: Any, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_differences(old: dict, new: dict, allowed: set = RESUMABLE_CHANGES) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two resolved configs, ignoring those in ``allowed`` (a resume's changes;
    :data:`FORKABLE_CHANGES` also allows every ``method.*`` key except the teacher decay)."""
    a, b = _flatten(old), _flatten(new)
    diffs = []
    forking = allowed is FORKABLE_CHANGES
    for key in sorted(set(a) | set(b)):
        if key in allowed or (forking and key.startswith("method.") and key not in FORK_FIXED_METHOD_KEYS):
            continue
        old_value = a[key] if key in a else ADDED_KEYS.get(key)
        if old_value != b.get(key):
            diffs.append((key, old_value, b.get(key)))
    return diffs
