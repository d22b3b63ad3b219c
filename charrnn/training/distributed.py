"""Data-parallel training under torchrun: the process group and the few collectives the trainer uses.

With WORLD_SIZE unset (a plain `charrnn train`) everything here is a no-op for a single process, so
the trainer has one code path. Under torchrun each rank reads its own share of the batch streams;
DDP averages the gradients; the decisions that end a run are agreed by all ranks so they stop on the
same step; only rank 0 writes files.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collective tensors live (CUDA for NCCL)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Join torchrun's process group (NCCL on CUDA, Gloo on CPU), or a single process without one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(device=device)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, *values: float) -> list[float]:
        """The sum over ranks of each value (one collective for them all)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def max(self, value: int) -> int:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def share(self, obj: object) -> object:
        """Rank 0's `obj` on every rank (a picklable value)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of `t` (same shape on all ranks), on the CPU, in rank order."""
        if not self.enabled:
            return [t.detach().cpu()]
        parts = [torch.empty_like(t, device=self.device) for _ in range(self.world)]
        dist.all_gather(parts, t.detach().to(self.device))
        return [p.cpu() for p in parts]

    def gather_streams(self, t: torch.Tensor) -> torch.Tensor:
        """A hidden state (layers, local batch, hidden) as the global one: rank r holds streams r, r+world, ..."""
        parts = self.gather(t)
        return torch.stack(parts, dim=2).flatten(1, 2)

    def close(self) -> None:
        """Leave the process group together: no rank tears down its connections while another still uses them."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End a torchrun rank's process now, with its output flushed and its run saved.

    DDP keeps the Gloo process group alive past destroy_process_group (torch 2.13 holds a reference to it
    once a DDP module was made, even after the module is gone), so Gloo's threads still run while the
    interpreter tears down its static objects, and a rank sometimes aborts there: "terminate called without
    an active exception" (1 run in 42 here, beside two busy processes; CI saw it twice). Leaving with
    `os._exit` skips that teardown; nothing of the run is left to write, and the run lock is a flock the
    kernel drops."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
