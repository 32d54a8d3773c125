"""Training: the trainer loop, checkpoints and exact resume, logs, label-free monitors, DDP, and the API."""

from .api import train
from .trainer import Trainer, TrainingVolumes, TrainResult, open_training_volumes

__all__ = ["train", "Trainer", "TrainResult", "TrainingVolumes", "open_training_volumes"]

_MOVED = {"compare", "format_comparison"}  # to masktwins_bio.experiments (orchestration sits above training)


def __getattr__(name: str):
    if name in _MOVED:
        import warnings

        from ..experiments import compare, format_comparison  # deprecated path only (allowed by the layer test)

        warnings.warn(f"masktwins_bio.training.{name} moved to masktwins_bio.experiments.{name}; import from there "
                      "(this alias will be removed in a later release)", DeprecationWarning, stacklevel=2)
        return {"compare": compare, "format_comparison": format_comparison}[name]
    raise AttributeError(f"module 'masktwins_bio.training' has no attribute {name!r}")
