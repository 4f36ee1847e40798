"""torchrun / DDP plumbing: one process per device, gloo on CPU, nccl on GPU."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from repro.errors import ReproError


@dataclass(frozen=True)
class Processes:
    rank: int
    world_size: int
    device: torch.device
    joined_here: bool = False  # start() created the process group, so stop() destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any rank (e.g. a stop request)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ReproError(f"--device {choice}: no CUDA device is available on this machine")
    return device


def start(choice: str = "auto") -> Processes:
    """Joins the process group when launched by torchrun (one process too: NCCL/gloo start the
    same way as on several)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(choice)
    if world_size == 1 and "TORCHELASTIC_RUN_ID" not in os.environ:  # a plain process, not torchrun
        return Processes(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    joined_here = not dist.is_initialized()
    if joined_here:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), device, joined_here)


def stop(processes: Processes) -> None:
    """Leaves the process group that start() created, one process too: NCCL asks each
    process to destroy its group before exit, else it warns that pending work may be lost.
    A group the caller created stays theirs."""
    if processes.joined_here and dist.is_initialized():
        dist.destroy_process_group()
