"""Exponential moving average of the weights: a frozen copy that trails the trained model."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` in eval mode, to be updated with `ema_update`."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


def ema_updater(ema: nn.Module, model: nn.Module, decay: float) -> Callable[[], None]:
    """A function that moves `ema` towards `model`: ema = decay · ema + (1 − decay) · model.

    One fused kernel for all parameters and no host sync; the tensor lists are built here
    once, not on every step (listing ~700 tensors costs host time the GPU would wait for).
    `model` must be the plain module (not DDP or compiled), so the parameters line up.
    """
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    buffers = list(zip(ema.buffers(), model.buffers(), strict=True))

    @torch.no_grad()
    def update() -> None:
        torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)
        for ema_buffer, buffer in buffers:
            ema_buffer.copy_(buffer)

    return update
