"""The validation monitors: the label-free score and monitors (what selects checkpoints without target labels) and
the in-training target metrics, which follow the evaluation's definitions (metrics.semantic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from masktwins_bio.metrics.semantic import semantic_metrics
from masktwins_bio.training.monitors import LabelFreeMonitor, TargetEvaluator, dice, label_free_score


@pytest.mark.parametrize("confident, fg, source_fg, expected", [
    (0.9, 0.05, 0.05, 0.9),                    # same foreground as the source: the confidence itself
    (0.9, 0.15, 0.05, 0.9),                    # 3x the source's: still inside the tolerance
    (0.9, 0.05 * 3 * math.e, 0.05, 0.9 / math.e),  # one e-fold beyond the tolerance
    (0.9, 0.05 / (3 * math.e), 0.05, 0.9 / math.e),  # the same below
    (0.99, 0.0, 0.05, 0.0),                    # collapsed to background: confident, but worthless
])
def test_label_free_score_is_confidence_times_a_weak_foreground_prior(confident, fg, source_fg, expected):
    assert label_free_score(confident, fg, source_fg) == pytest.approx(expected)


def test_dice_is_the_metrics_f1():
    a = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[1, 0, 1, 0]], dtype=torch.bool)
    assert dice(a, b) == pytest.approx(semantic_metrics(a.numpy()[None], b.numpy()[None])["whole_volume"]["f1"])
    assert dice(a & False, b & False) == 1.0 and dice(a & False, b & False, empty=0.0) == 0.0


class _Threshold(torch.nn.Module):
    """A fixed 'network': foreground logit = scale * (x - offset), two-class softmax logits."""

    def __init__(self, scale: float = 20.0, offset: float = 0.0):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        fg = self.scale * (x - self.offset)
        return torch.cat([-fg / 2, fg / 2], dim=1)


def _monitor(patches, **kw):
    return LabelFreeMonitor(patches, "softmax", 0.968, (2, 4, 4), source_foreground=0.25, **kw)


def test_label_free_monitor_on_a_known_network():
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(3, 1, 4, 16, 16, generator=gen)
    net = _Threshold()
    out = _monitor(patches)(net, net, "cpu", _no_autocast)
    p = torch.sigmoid(20.0 * patches)
    assert out["confident_fraction"] == pytest.approx((torch.maximum(p, 1 - p) >= 0.968).float().mean().item())
    assert out["foreground_fraction"] == pytest.approx((patches >= 0).float().mean().item())
    assert out["teacher_student_agreement"] == 1.0  # the same network
    assert 0.0 <= out["view_consistency"] <= 1.0
    assert out["label_free_score"] == pytest.approx(label_free_score(out["confident_fraction"],
                                                                     out["foreground_fraction"], 0.25))
    other = _monitor(patches)(net, _Threshold(offset=10.0), "cpu", _no_autocast)  # student predicts nothing
    assert other["teacher_student_agreement"] == 0.0
    assert _monitor(patches)(net, net, "cpu", _no_autocast) == out  # fixed masks: repeatable


def _no_autocast():
    return torch.autocast("cpu", enabled=False)


def test_target_evaluator_follows_the_evaluation_conventions():
    """Per-section means leave out sections empty in both prediction and labels, as `evaluate` does."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(4, 16, 16)).astype(np.float32)
    image[0] = -5.0  # a section the 'network' predicts empty ...
    labels = (image + rng.normal(scale=0.5, size=image.shape) > 0).astype(np.uint8)
    labels[0] = 0  # ... with empty labels: undefined there, left out
    out = TargetEvaluator(image, labels, window=(4, 16, 16), head="softmax")(_Threshold(), "cpu", _no_autocast)
    ref = semantic_metrics(image >= 0, labels)
    assert out["iou"] == pytest.approx(ref["whole_volume"]["iou"])
    assert out["f1"] == pytest.approx(ref["whole_volume"]["f1"])
    assert out["iou_per_section"] == pytest.approx(ref["per_section_mean"]["iou"])
    assert out["f1_per_section"] == pytest.approx(ref["per_section_mean"]["f1"])
    empty = TargetEvaluator(np.full((2, 8, 8), -5, np.float32), np.zeros((2, 8, 8)), (2, 8, 8), "softmax")
    assert empty(_Threshold(), "cpu", _no_autocast) == {"iou": 1.0, "f1": 1.0, "iou_per_section": 1.0,
                                                        "f1_per_section": 1.0}
