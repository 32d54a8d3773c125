"""Probabilities to instances: threshold, connected components or seeded watershed, size filter, blockwise with a
global relabel across block faces (:mod:`.instances`, :mod:`.relabel`)."""

from __future__ import annotations

from .instances import METHODS, label_components, segment
from .relabel import face_pairs, merge_lut

__all__ = ["segment", "label_components", "METHODS", "face_pairs", "merge_lut"]
