"""DistributedDataParallel setup: one process per device, launched by us or by `torchrun`.

`train(..., options=RunOptions(devices=N))` spawns N processes with torch.multiprocessing;
`torchrun --nproc-per-node N` sets RANK/WORLD_SIZE/LOCAL_RANK itself and we only join. NCCL
on CUDA, gloo on CPU. Rank 0 is the main process: it alone logs and writes files.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from claritycore.device import resolve_device


@dataclass(frozen=True)
class Dist:
    """Where this process sits: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """True inside a process started by `spawn` or `torchrun` (the env names the world)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str) -> Dist:
    """Join the process group when launched as one of several processes; pick this rank's device."""
    device = resolve_device(device_name)
    if not launched():
        return Dist(rank=0, world_size=1, device=device)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"rank {rank} needs cuda:{local_rank} but only {torch.cuda.device_count()} "
                "GPU(s) are visible; use --devices <= the GPU count"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world_size, device=device)


def teardown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(tensor: torch.Tensor, info: Dist) -> torch.Tensor:
    """`tensor` averaged over all ranks (in place); itself when there is one process."""
    if info.enabled:
        dist.all_reduce(tensor)
        tensor /= info.world_size
    return tensor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    fn(*args)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple, *, cpu: bool) -> None:
    """Run `fn(*args)` in `nprocs` fresh processes that form one process group."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    if cpu:
        # As torchrun does: N processes each using every core would oversubscribe the CPU.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nprocs))
    # Children inherit the environment at spawn; put the parent's back afterwards.
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update({key: os.environ.get(key) or value for key, value in env.items()})
    try:
        mp.spawn(_worker, args=(nprocs, fn, args), nprocs=nprocs, join=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
