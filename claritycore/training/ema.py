"""Exponential moving average of the weights: a frozen copy that trails the trained model.

The decay warms up: update number `step` (0-based) uses `min(decay, (1 + step) / (10 + step))`,
TensorFlow's `ExponentialMovingAverage(num_updates=...)` rule. Until it reaches `decay` the
average spans about the last tenth of the steps taken so far (1 − d = 9 / (10 + step)), so the
random initialisation is forgotten within a few dozen steps and a short run's EMA is never
dominated by early weights; 0.999 is reached at step 8,990, so long runs get the configured
decay. The decay is a pure function of the step, so resuming needs only the step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` in eval mode, to be updated by `ema_updater`."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


def ema_decay_at(step: int, decay: float) -> float:
    """The decay of update number `step` (0 for the first): the warm-up, capped at `decay`."""
    return min(decay, (1 + step) / (10 + step))


def ema_updater(ema: nn.Module, model: nn.Module, decay: float) -> Callable[[int], None]:
    """A function of the step that moves `ema` towards `model`:
    ema = d · ema + (1 − d) · model with d = `ema_decay_at(step, decay)`.

    One fused kernel for all parameters and no host sync; the tensor lists are built here
    once, not on every step (listing ~700 tensors costs host time the GPU would wait for).
    `model` must be the plain module (not DDP or compiled), so the parameters line up.
    """
    ema_params: list[torch.Tensor] = list(ema.parameters())
    model_params: list[torch.Tensor] = list(model.parameters())
    buffers = list(zip(ema.buffers(), model.buffers(), strict=True))

    @torch.no_grad()
    def update(step: int) -> None:
        torch._foreach_lerp_(ema_params, model_params, 1.0 - ema_decay_at(step, decay))
        for ema_buffer, buffer in buffers:
            ema_buffer.copy_(buffer)

    return update
