"""Training: the trainer loop, checkpoints and exact resume, logs, label-free monitors, DDP, and the API."""

from .api import compare, train
from .trainer import Trainer, TrainingVolumes, TrainResult, open_training_volumes

__all__ = ["train", "compare", "Trainer", "TrainResult", "TrainingVolumes", "open_training_volumes"]
