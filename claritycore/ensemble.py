"""Self-ensemble (EDSR's "+"): the mean of the model's outputs over the 8 flips and rotations.

`SelfEnsemble(model)` is itself a model: tiled inference calls it on every window, so the
ensemble is tiled and stitched exactly as plain inference is. It costs 8 forward passes.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from claritycore.inference import model_scale

# (transpose H and W, flip H, flip W): with the identity these are the 8 symmetries of a square.
_BOTH = (False, True)
TRANSFORMS = tuple((t, fh, fw) for t in _BOTH for fh in _BOTH for fw in _BOTH)


def _apply(x: torch.Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> torch.Tensor:
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    x = x.flip(dims) if dims else x
    return x.transpose(-2, -1) if transpose else x


def _invert(y: torch.Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> torch.Tensor:
    y = y.transpose(-2, -1) if transpose else y
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    return y.flip(dims) if dims else y


class SelfEnsemble(nn.Module):
    """`model` averaged over the 8 dihedral transforms of its input (outputs mapped back)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.scale = model_scale(model)
        # Real-ESRGAN x2 pixel-unshuffles its input: tiling must keep its 2-pixel grid.
        self.unshuffle = getattr(model, "unshuffle", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for transform in TRANSFORMS:
            y = _invert(self.model(_apply(x, *transform)), *transform).float()
            total = y if total is None else total.add_(y)
        return cast(torch.Tensor, total) / len(TRANSFORMS)  # TRANSFORMS is not empty
