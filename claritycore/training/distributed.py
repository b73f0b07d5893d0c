"""DistributedDataParallel setup: one process per device, launched by us or by `torchrun`.

`train(..., options=TrainOptions(devices=N))` spawns N processes with torch.multiprocessing;
`torchrun --nproc-per-node N` (on one node or `--nnodes` of them) sets RANK/WORLD_SIZE/LOCAL_RANK
itself and we only join. NCCL on CUDA, gloo on CPU. Global rank 0 is the main process: it alone
logs and writes files. On resume each node's first process reads its own checkpoint folder and
the newest state found is sent to all, so the nodes of a multi-node run need no shared storage,
even when another node is rank 0 after a restart (docs/multi-node.md).
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
from claritycore.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """Where this process sits: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device
    local_rank: int = 0

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
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"rank {rank} needs cuda:{local_rank} but only {torch.cuda.device_count()} "
                "GPU(s) are visible; use --devices <= the GPU count"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world_size, device=device, local_rank=local_rank)


def teardown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(tensor: torch.Tensor, info: Dist) -> torch.Tensor:
    """`tensor` averaged over all ranks (in place); itself when there is one process."""
    if info.enabled:
        dist.all_reduce(tensor)
        tensor /= info.world_size
    return tensor


def newest_state(read: Callable[[], dict | None], info: Dist) -> dict | None:
    """The newest state `read()` finds on any node, on every rank (None where none has one).

    Each node's first process reads its own folder; the one holding the latest step sends its
    state to all. Rank 0 writes checkpoints, and after a restart rank 0 may be another node
    (torchrun's c10d rendezvous orders nodes by address and process id), so without shared
    storage the newest checkpoint can be on any node.
    """
    if not info.enabled:
        return read()
    state = read() if info.local_rank == 0 else None
    steps: list[Any] = [None] * info.world_size
    dist.all_gather_object(steps, -1 if state is None else state["step"])
    source = max(range(info.world_size), key=lambda rank: (steps[rank], -rank))
    if steps[source] < 0:
        return None
    box = [state if info.rank == source else None]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def require_same_data(run_key: str, store: str, info: Dist) -> None:
    """Every rank must train on the same store (each node reads its own copy): a node with
    other data would silently train a different model. Raised on every rank alike."""
    if not info.enabled:
        return
    keys: list[Any] = [None] * info.world_size
    dist.all_gather_object(keys, (run_key, store, socket.gethostname()))
    for rank, (key, path, host) in enumerate(keys):
        if key != keys[0][0]:
            raise ConfigError(
                f"rank {rank} on {host} trains on {path}, which differs from rank 0's "
                f"{keys[0][1]} on {keys[0][2]} (another config, seed or store index); give "
                "every node the same store, e.g. `dvc pull` on each from one remote"
            )


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
