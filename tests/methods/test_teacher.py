"""EMA teacher: warm-up schedule and update rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from masktwins_bio.methods import EMATeacher, ema_alpha


def test_warmup_schedule():
    assert ema_alpha(0, 0.999) == 0.0
    assert ema_alpha(1, 0.999) == 0.5
    assert ema_alpha(9, 0.999) == pytest.approx(0.9)
    assert ema_alpha(10**6, 0.999) == 0.999


def test_update_rule_hand_computed():
    student = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        student.weight.fill_(1.0)
    teacher = EMATeacher(student, alpha=0.9)
    assert not any(p.requires_grad for p in teacher.module.parameters())
    with torch.no_grad():
        student.weight.fill_(3.0)
    assert teacher.update(student, step=0) == 0.0  # alpha_0 = 0: the teacher copies the student
    assert teacher.module.weight.item() == 3.0
    with torch.no_grad():
        student.weight.fill_(5.0)
    a = teacher.update(student, step=20)  # min(1 - 1/21, 0.9) = 0.9
    assert a == 0.9 and teacher.module.weight.item() == pytest.approx(0.9 * 3 + 0.1 * 5)


def test_buffers_copied_and_teacher_in_eval_mode():
    student = nn.Sequential(nn.Conv3d(1, 2, 1), nn.BatchNorm3d(2))
    teacher = EMATeacher(student, 0.99)
    student.train()
    student(torch.randn(2, 1, 2, 2, 2))
    teacher.update(student, 5)
    assert torch.equal(teacher.module[1].running_mean, student[1].running_mean)
    teacher(torch.randn(1, 1, 2, 2, 2))
    assert not teacher.module.training
