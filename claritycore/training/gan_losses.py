"""Adversarial losses of ESRGAN (`ragan`, relativistic average) and Real-ESRGAN (`vanilla`),
as BasicSR 1.4.2's `esrgan_model.py` / `realesrgan_model.py` compute them: binary cross-entropy
on logits (real 1, fake 0), averaged over every logit (one per image or one per pixel).

The losses are unweighted: the trainer multiplies the generator's by `gan_weight` (BasicSR's
`loss_weight`, which it applies to the generator only); the discriminator's is never weighted.
Logits are cast to fp32, so a discriminator run under autocast gives an fp32 loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_TYPES = ("ragan", "vanilla")


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return F.binary_cross_entropy_with_logits(logits, target)


def _check(kind: str) -> None:
    if kind not in GAN_TYPES:
        raise ValueError(f"unknown GAN loss {kind!r}; use {' or '.join(GAN_TYPES)}")


def generator_gan_loss(
    kind: str, real_logits: torch.Tensor | None, fake_logits: torch.Tensor
) -> torch.Tensor:
    """The generator's adversarial loss (before `gan_weight`).

    vanilla: BCE(D(fake), real). ragan: [BCE(D(real) - mean D(fake), fake) +
    BCE(D(fake) - mean D(real), real)] / 2; D(real) is detached, and the gradient reaches the
    generator through both D(fake) and its mean. `real_logits` is unused by vanilla.
    """
    _check(kind)
    fake = fake_logits.float()
    if kind == "vanilla":
        return _bce(fake, real=True)
    if real_logits is None:
        raise ValueError("the ragan loss needs the discriminator's logits on real images")
    real = real_logits.detach().float()
    return (_bce(real - fake.mean(), real=False) + _bce(fake - real.mean(), real=True)) / 2


def _discriminator_term(
    kind: str, logits: torch.Tensor, reference: torch.Tensor | None, real: bool
) -> torch.Tensor:
    """BCE of D's `logits` against the `real` label; ragan: relative to the mean of the other
    side's `reference` logits (no gradient), halved, as BasicSR's two backward passes."""
    _check(kind)
    logits = logits.float()
    if kind == "vanilla":
        return _bce(logits, real=real)
    if reference is None:
        side = "fake" if real else "real"
        raise ValueError(f"the ragan loss needs the discriminator's logits on {side} images")
    return _bce(logits - reference.detach().float().mean(), real=real) / 2


def discriminator_real_loss(
    kind: str, real_logits: torch.Tensor, fake_reference: torch.Tensor | None
) -> torch.Tensor:
    """The discriminator's loss on real images: vanilla BCE(D(real), real); ragan
    BCE(D(real) - mean D(fake), real) / 2 with `fake_reference` (D on the detached fake) taken
    without gradient. BasicSR backpropagates it on its own, before the fake term."""
    return _discriminator_term(kind, real_logits, fake_reference, real=True)


def discriminator_fake_loss(
    kind: str, fake_logits: torch.Tensor, real_reference: torch.Tensor | None
) -> torch.Tensor:
    """The discriminator's loss on the detached generator output: vanilla BCE(D(fake), fake)
    (not halved, as Real-ESRGAN); ragan BCE(D(fake) - mean D(real), fake) / 2 with
    `real_reference` taken without gradient."""
    return _discriminator_term(kind, fake_logits, real_reference, real=False)
