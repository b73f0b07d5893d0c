"""Which torch device and compute precision a run uses: the one place that reads `auto`."""

from __future__ import annotations

import torch

from claritycore.errors import ConfigError

# Compute precisions by name; None is plain float32 (no autocast).
PRECISION_DTYPES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": None,
}


def cuda_half_dtype() -> torch.dtype:
    """The GPU's autocast dtype for `auto`: bf16 where supported (no loss scaling), else fp16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 autocast pays."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def channels_last_auto(device: torch.device, compute_dtype: torch.dtype | None) -> bool:
    """What `channels_last: auto` picks for training: on for CUDA, and on a CPU that computes
    bf16 natively when the run computes in bf16: oneDNN's bf16 convolutions read channels-last
    directly (AMX Xeon, docs/cpu-speed.md: README command 1's steps 1.49× faster, the full ×4
    model as fast, the weights bit-identical). Off otherwise, where it was not measured."""
    if device.type == "cuda":
        return True
    native = device.type == "cpu" and cpu_has_native_bf16()
    return native and compute_dtype is torch.bfloat16


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None`/"auto" -> CUDA when available, else CPU; anything else as torch parses it.

    Asking for CUDA on a machine without a GPU fails here, with the fix, not deep in a run.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r} asked for CUDA, but torch sees no GPU; use cpu")
    return resolved
