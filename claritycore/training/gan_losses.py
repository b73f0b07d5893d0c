"""Adversarial losses of ESRGAN (`ragan`, relativistic average) and Real-ESRGAN (`vanilla`),
as BasicSR 1.4.2's `esrgan_model.py` / `realesrgan_model.py` compute them: binary cross-entropy
on logits (real 1, fake 0), averaged over every logit (one per image or one per pixel).

The losses are unweighted: the trainer multiplies the generator's by `gan_weight` (BasicSR's
`loss_weight`, which it applies to the generator only); the discriminator's is never weighted.
Logits are cast to fp32, so a discriminator run under autocast gives an fp32 loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    logits = logits.float()
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return F.binary_cross_entropy_with_logits(logits, target)


def _vanilla_generator(real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(fake), real); `real_logits` is unused."""
    return _bce(fake_logits, real=True)


def _ragan_generator(real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
    """[BCE(D(real) - mean D(fake), fake) + BCE(D(fake) - mean D(real), real)] / 2; D(real) is
    detached, and the gradient reaches the generator through both D(fake) and its mean."""
    if real_logits is None:
        raise ValueError("the ragan loss needs the discriminator's logits on real images")
    real, fake = real_logits.detach().float(), fake_logits.float()
    return (_bce(real - fake.mean(), real=False) + _bce(fake - real.mean(), real=True)) / 2


def _vanilla_discriminator(
    logits: torch.Tensor, reference: torch.Tensor | None, real: bool
) -> torch.Tensor:
    """BCE of D's `logits` against the `real` label (not halved, as Real-ESRGAN)."""
    return _bce(logits, real=real)


def _ragan_discriminator(
    logits: torch.Tensor, reference: torch.Tensor | None, real: bool
) -> torch.Tensor:
    """BCE of D's `logits` minus the mean of the other side's `reference` logits (taken
    without gradient) against the `real` label, halved, as BasicSR's two backward passes."""
    if reference is None:
        side = "fake" if real else "real"
        raise ValueError(f"the ragan loss needs the discriminator's logits on {side} images")
    return _bce(logits.float() - reference.detach().float().mean(), real=real) / 2


@dataclass(frozen=True)
class GanLoss:
    """One GAN loss: the generator's term `generator(real_logits, fake_logits)` and the
    discriminator's term `discriminator(logits, reference, real)` for one side, which BasicSR
    backpropagates on its own (real first, then fake). A `relativistic` loss compares each side
    with the other's mean, so the step runs D once more per side, without gradient, for the
    reference; otherwise the reference is None."""

    relativistic: bool
    generator: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]
    discriminator: Callable[[torch.Tensor, torch.Tensor | None, bool], torch.Tensor]


GAN_LOSSES: dict[str, GanLoss] = {
    "ragan": GanLoss(True, _ragan_generator, _ragan_discriminator),
    "vanilla": GanLoss(False, _vanilla_generator, _vanilla_discriminator),
}
