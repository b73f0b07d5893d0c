"""Pixel losses, one table, looked up by the `loss` name of the training config."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# Charbonnier's epsilon: the usual 1e-3 on [0, 1] images keeps the gradient finite at zero error.
CHARBONNIER_EPS = 1e-3


def charbonnier_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of sqrt(diff² + eps²): L1-like for large errors, smooth near zero."""
    return torch.sqrt((prediction - target).square() + CHARBONNIER_EPS**2).mean()


PIXEL_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,
    "l2": F.mse_loss,
    "charbonnier": charbonnier_loss,
}
