"""Which torch device a run uses: the one place that reads `device: auto`."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/"auto" -> CUDA when available, else CPU; anything else as torch parses it.

    Asking for CUDA on a machine without a GPU fails here, with the fix, not deep in a run.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} asked for CUDA, but torch sees no GPU; use cpu")
    return resolved
