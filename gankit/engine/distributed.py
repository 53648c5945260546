"""torch.distributed set-up from torchrun's environment, and the few collectives the engine needs."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Average scalars over ranks (every rank gets the same numbers)."""
        if not self.enabled or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        t /= self.world_size
        return dict(zip(keys, t.tolist(), strict=True))

    def agree_max(self, code: int) -> int:
        """The largest code over ranks: a decision (skip, rollback, stop) taken by any rank is taken by all."""
        if not self.enabled:
            return code
        t = torch.tensor([code], dtype=torch.int64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def broadcast_buffers(self, nets: Mapping[str, torch.nn.Module]) -> None:
        """Every network's buffers (BatchNorm's running statistics, spectral norm's vectors) from rank 0: each rank
        updated its own from its own share of the batch, and what is saved or validated must be one model."""
        if not self.enabled:
            return
        for net in nets.values():
            for buffer in net.buffers():
                if self._comm_device() == buffer.device:
                    dist.broadcast(buffer, src=0)
                else:
                    moved = buffer.to(self._comm_device())
                    dist.broadcast(moved, src=0)
                    buffer.copy_(moved)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(requested_device: str) -> DistContext:
    """Join the process group torchrun describes (NCCL on CUDA, Gloo on CPU); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
