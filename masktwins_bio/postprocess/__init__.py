"""Probabilities to instances: threshold, connected components or seeded watershed, size filter, blockwise with a
global relabel across block faces (:mod:`.instances`, :mod:`.relabel`); per-instance morphology (:mod:`.measure`); proofreading with undo (:mod:`.proofread`)."""

from __future__ import annotations

from .instances import METHODS, label_components, segment
from .measure import Measurements, measure
from .proofread import Proofreader
from .relabel import face_pairs, merge_lut

__all__ = ["segment", "label_components", "measure", "Measurements", "Proofreader", "METHODS", "face_pairs", "merge_lut"]
