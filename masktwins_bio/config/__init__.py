"""Typed experiment configuration.

A run is described by one YAML file validated into :class:`Config`. Defaults live here, in code; a YAML file only
states what differs. Loading never executes code (``yaml.safe_load``), unknown keys are rejected with the closest valid
key as a suggestion, values are type- and range-checked, and ``--set a.b=c`` overrides any key. Every run and every
output stores the resolved config (:meth:`Config.resolved`) and its hash (:meth:`Config.hash`).

Units: voxel sizes are in nanometres, ordered (z, y, x). Patch, block and mask sizes are in voxels of the training
grid (``data.voxel_size``).

Paths: ``${VAR}`` and ``${VAR:-default}`` expand environment variables in any string. Relative volume paths are
resolved against ``data_root``; a relative ``data_root`` is resolved against the directory the command runs in.
"""

from __future__ import annotations

from ..regions import parse_roi  # noqa: F401  (importable from here before the split; lives in regions)
from .loading import apply_overrides, config_from_dict, expand_env, load_config
from .schema import (
                     METHOD_NAMES,
                     MODEL_NAMES,
                     AugmentConfig,
                     Config,
                     DataConfig,
                     DomainConfig,
                     InferenceConfig,
                     MethodConfig,
                     ModelConfig,
                     SegmentConfig,
                     TargetConfig,
                     TrainConfig,
                     config_hash,
)

__all__ = [
    "Config",
    "DomainConfig",
    "TargetConfig",
    "DataConfig",
    "AugmentConfig",
    "ModelConfig",
    "MethodConfig",
    "TrainConfig",
    "InferenceConfig",
    "SegmentConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "expand_env",
    "config_hash",
    "METHOD_NAMES",
    "MODEL_NAMES",
]
