"""Streamed evaluation metrics.

* :func:`evaluate` - prediction vs ground truth, block by block, writes summary.json (``masktwins-bio evaluate``).
* :mod:`.semantic` - DA-ISC pixel metrics (pixel AP, F1, MCC, foreground IoU) plus Dice, precision, recall,
  accuracy, per section and whole volume, from confusion counts and score histograms.
* :mod:`.instance` - MitoEM-style 3D AP at IoU 0.5/0.75, one-to-one P/R/F1, merges/splits, VOI and ARAND from a
  streamed overlap table.
* :mod:`.summary` - conventions, JSON writing and :func:`format_summary`.
"""

from __future__ import annotations

from .evaluate import MAX_LABEL_VOXELS, default_block_shape, evaluate
from .instance import (
    ContingencyAccumulator,
    ContingencyTable,
    average_precision,
    contingency_table,
    instance_metrics,
    match_counts,
    merges_and_splits,
    voi_arand,
)
from .semantic import SemanticAccumulator, average_precision_from_histogram, confusion_metrics, semantic_metrics
from .summary import CONVENTIONS, format_summary, write_summary

__all__ = [
    "evaluate",
    "format_summary",
    "write_summary",
    "CONVENTIONS",
    "default_block_shape",
    "MAX_LABEL_VOXELS",
    "SemanticAccumulator",
    "semantic_metrics",
    "average_precision_from_histogram",
    "confusion_metrics",
    "ContingencyAccumulator",
    "ContingencyTable",
    "contingency_table",
    "average_precision",
    "match_counts",
    "merges_and_splits",
    "voi_arand",
    "instance_metrics",
]
