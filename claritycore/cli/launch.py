"""`claritycore torchrun …`: PyTorch's `torchrun`, with a bounded rendezvous and a one-line error.

The arguments are torchrun's own (`--nnodes`, `--node-rank`, `--rdzv-endpoint`, …, then the
program: `-m stages.train`, `-m claritycore.cli rrdbnetx4 …`). Two things differ. The
rendezvous waits at most `RENDEZVOUS_TIMEOUT` seconds, not torchrun's 600 (`--rdzv-conf
join_timeout=N` sets it); and a rendezvous that cannot form (a wrong endpoint, a node that never
comes, a different `--rdzv-id`) ends with one line saying what to check and exit status 2,
instead of a traceback. docs/multi-node.md has the recipe.
"""

from __future__ import annotations

import typer
from rich.console import Console

# Nodes start minutes apart under a scheduler (container start, `dvc pull` of the stores), so
# the wait is generous; a rendezvous that has not formed by then will not.
RENDEZVOUS_TIMEOUT = 300


def _with_join_timeout(rdzv_conf: str) -> str:
    """torchrun's `--rdzv-conf` (k=v,…) with our join_timeout unless it names one."""
    pairs = [pair for pair in rdzv_conf.split(",") if pair.strip()]
    if any(pair.split("=")[0].strip() == "join_timeout" for pair in pairs):
        return rdzv_conf
    return ",".join([*pairs, f"join_timeout={RENDEZVOUS_TIMEOUT}"])


def _join_timeout(rdzv_conf: str) -> str:
    pairs = dict(pair.split("=", 1) for pair in rdzv_conf.split(",") if "=" in pair)
    return pairs["join_timeout"].strip()


def torchrun_command(ctx: typer.Context) -> None:
    """Launch training on this node under torchrun (multi-node DDP; docs/multi-node.md)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import (
        RendezvousConnectionError,
        RendezvousError,
        RendezvousTimeoutError,
    )

    args = torchrun.parse_args(ctx.args)
    args.rdzv_conf = _with_join_timeout(args.rdzv_conf)
    try:
        torchrun.run(args)
    except RendezvousError as error:
        endpoint = args.rdzv_endpoint or f"{args.master_addr}:{args.master_port}"
        if isinstance(error, RendezvousTimeoutError):
            why = f"the {args.nnodes} node(s) did not all join within "
            why += f"{_join_timeout(args.rdzv_conf)} s"
        elif isinstance(error, RendezvousConnectionError):
            why = "its store could not be reached, or was lost (did the node hosting it stop?)"
        else:
            why = f"{type(error).__name__}: {error}"
        Console(stderr=True).print(
            f"[red]rendezvous failed:[/red] at {endpoint}, {why}; check that every node runs "
            "with the same --rdzv-endpoint (reachable from every node), --rdzv-id and "
            "--nnodes, and that all of them were started",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    except ChildFailedError as error:
        # The failing process printed its own error above; end with its exit status.
        raise typer.Exit(next(iter(error.failures.values())).exitcode or 1) from None
