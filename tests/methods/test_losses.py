"""Losses on tiny hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from masktwins_bio.methods.losses import build_source_loss, consistency_mse, pseudo_labels, weighted_ce


def logits_for(p_fg: list[float]) -> torch.Tensor:
    """Two-class logits (0, log(p/(1-p))) -> softmax foreground probability p; shape (1, 2, 1, 1, N)."""
    lg = torch.tensor([math.log(p / (1 - p)) for p in p_fg])
    return torch.stack([torch.zeros_like(lg), lg]).view(1, 2, 1, 1, -1)


def test_pseudo_labels_scalar_weight():
    labels, weight, frac = pseudo_labels(logits_for([0.99, 0.6, 0.01, 0.3]), "softmax", 0.968, "scalar")
    assert labels.flatten().tolist() == [1, 1, 0, 0]
    assert weight.item() == pytest.approx(0.5) and frac.item() == pytest.approx(0.5)  # 0.99 and 0.01 confident


def test_pseudo_labels_voxel_weight_and_sigmoid_head():
    lg = torch.tensor([4.0, 0.1, -4.0]).view(1, 1, 1, 1, 3)
    labels, weight, _ = pseudo_labels(lg, "sigmoid", 0.9, "voxel")
    assert labels.flatten().tolist() == [1, 1, 0]
    assert weight.flatten().tolist() == [1.0, 0.0, 1.0]


def test_weighted_ce_hand_computed():
    lg = logits_for([0.8, 0.25])
    labels = torch.tensor([1, 0]).view(1, 1, 1, 2)
    expected = 0.5 * (-math.log(0.8) - math.log(0.75)) * 0.5
    assert weighted_ce(lg, labels, torch.tensor(0.5), "softmax").item() == pytest.approx(expected, rel=1e-5)
    w = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    assert weighted_ce(lg, labels, w, "softmax").item() == pytest.approx(-math.log(0.8) / 2, rel=1e-5)


def test_weighted_bce_for_sigmoid_head():
    lg = torch.tensor([0.0, 2.0]).view(1, 1, 1, 1, 2)
    labels = torch.tensor([1, 0]).view(1, 1, 1, 2)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert weighted_ce(lg, labels, 1.0, "sigmoid").item() == pytest.approx(expected, rel=1e-5)


def test_consistency_mse_hand_computed_and_two_sided_gradient():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = torch.tensor([1.0, 0.0, 3.0, 0.0], requires_grad=True)
    loss = consistency_mse(a, b)
    assert loss.item() == pytest.approx((4 + 16) / 4)
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0  # no stop-gradient on either view


@pytest.mark.parametrize("kind", ["ce", "dice_ce"])
@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_source_loss_lower_for_right_answer(kind, head):
    label = torch.zeros(1, 1, 2, 4, 4)
    label[..., :2] = 1
    fn = build_source_loss(kind, head)
    sign = label * 2 - 1
    right = (torch.cat([-sign, sign], 1) if head == "softmax" else sign) * 5
    assert fn(right, label).item() < fn(-right, label).item()
    if kind == "ce" and head == "softmax":
        assert fn(torch.zeros(1, 2, 2, 4, 4), label).item() == pytest.approx(math.log(2))


def test_weighted_dice_hand_computed():
    from masktwins_bio.methods.losses import pseudo_label_loss, weighted_dice

    lg = logits_for([0.8, 0.25])  # foreground probabilities 0.8 and 0.25
    labels = torch.tensor([1, 0]).view(1, 1, 1, 2)
    expected = 1 - (2 * 0.8 + 1) / (0.8 + 0.25 + 1 + 1)  # smooth = 1
    assert weighted_dice(lg, labels, torch.tensor(1.0), "softmax").item() == pytest.approx(expected, rel=1e-5)
    assert weighted_dice(lg, labels, torch.tensor(0.5), "softmax").item() == pytest.approx(expected / 2, rel=1e-5)
    w = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)  # voxel weights mask the second voxel out
    masked = 1 - (2 * 0.8 + 1) / (0.8 + 1 + 1)
    assert weighted_dice(lg, labels, w, "softmax").item() == pytest.approx(masked, rel=1e-5)
    ce = weighted_ce(lg, labels, torch.tensor(1.0), "softmax")
    total = pseudo_label_loss(lg, labels, torch.tensor(1.0), "softmax", "dice_ce")
    assert total.item() == pytest.approx(ce.item() + expected, rel=1e-5)
    assert pseudo_label_loss(lg, labels, torch.tensor(1.0), "softmax", "ce").item() == pytest.approx(ce.item())
