"""The EMA teacher.

``teacher <- a_t * teacher + (1 - a_t) * student`` after every optimiser step, with the warm-up
``a_t = min(1 - 1 / (t + 1), alpha)`` of the reference code (the teacher follows the student closely at first, then
ever more slowly). Parameters are averaged; buffers (e.g. BatchNorm statistics) are copied. The teacher never
receives gradients, always runs in eval mode, and under DDP it stays an unwrapped module updated from
``student.module``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..devices import unwrap

__all__ = ["EMATeacher", "ema_alpha"]


def ema_alpha(step: int, alpha: float) -> float:
    """EMA decay at optimiser step ``step`` (0-based) with warm-up."""
    return min(1.0 - 1.0 / (step + 1), alpha)


class EMATeacher:
    """An exponential moving average of a student network.

    Args:
        student: The student module (or a DDP wrapper; its ``.module`` is used).
        alpha: Final EMA decay (0.999 in the paper).
    """

    def __init__(self, student: nn.Module, alpha: float = 0.999):
        self.alpha = alpha
        self.module = copy.deepcopy(unwrap(student)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """Blend the student into the teacher; returns the decay used."""
        a = ema_alpha(step, self.alpha)
        src = unwrap(student)
        t_params = list(self.module.parameters())
        s_params = [p.detach() for p in src.parameters()]
        torch._foreach_mul_(t_params, a)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - a)
        for tb, sb in zip(self.module.buffers(), src.buffers()):
            tb.copy_(sb)
        return a

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        return self.module(x)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)

    def to(self, device) -> "EMATeacher":
        self.module.to(device)
        return self

