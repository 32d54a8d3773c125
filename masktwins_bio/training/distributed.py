"""torchrun / DDP setup.

``torchrun --nproc_per_node=N -m masktwins_bio.cli train CONFIG`` (or the ``masktwins-bio`` script) sets RANK,
LOCAL_RANK and WORLD_SIZE; the trainer then initialises a process group (NCCL on GPUs, gloo on CPU), wraps the
student in DistributedDataParallel, keeps the EMA teacher unwrapped (updated from ``student.module``), offsets each
rank's patch indices, and lets rank 0 alone log, validate and write checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


__all__ = ["DistContext"]


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistContext":
        return cls(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                   world_size=int(os.environ.get("WORLD_SIZE", 1)))

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world_size)

    def barrier(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
