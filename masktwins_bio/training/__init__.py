"""Training: the trainer loop, checkpoints and exact resume, logs, label-free monitors, DDP, and the API."""

from .api import train
from .ladder import compare, format_comparison
from .trainer import Trainer, TrainingVolumes, TrainResult, open_training_volumes

__all__ = ["train", "compare", "format_comparison", "Trainer", "TrainResult", "TrainingVolumes",
           "open_training_volumes"]
