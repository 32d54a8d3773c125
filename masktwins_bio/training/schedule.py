"""Learning-rate schedule: linear warm-up, then polynomial decay to 0."""

from __future__ import annotations

__all__ = ["warmup_poly"]


def warmup_poly(step: int, warmup_steps: int, total_steps: int, power: float = 0.9) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 1.0 - progress) ** power
