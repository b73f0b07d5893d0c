"""The two training steps, side by side: the L1 (PSNR) step and ESRGAN's adversarial step.

Each takes one batch, computes the generator's loss and backpropagates it; the loop then
clips, checks and applies the generator's update (the same for both). The adversarial step also
updates the discriminator, as BasicSR's `ESRGANModel`/`RealESRGANModel.optimize_parameters` do:
the generator's GAN loss is taken against a frozen discriminator, then the discriminator is
trained on the HR (real) and the detached output (fake). Each returns its loss terms as device
tensors, which the loop sums and logs without a host sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import AdversarialConfig
from claritycore.training.gan_losses import discriminator_gan_loss, generator_gan_loss


@dataclass(frozen=True)
class Batch:
    """One step's images on the device: the LR input and the HR targets each loss compares
    against (the unsharp-masked HR where the degradation's `*_gt_usm` asks for it)."""

    low_res: torch.Tensor
    l1_target: torch.Tensor
    perceptual_target: torch.Tensor
    real: torch.Tensor  # what the discriminator is shown as real


def l1_step(
    generator: nn.Module,
    batch: Batch,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    autocast: contextlib.AbstractContextManager,
    scaler: torch.amp.GradScaler,
) -> dict[str, torch.Tensor]:
    """The PSNR step: the pixel loss, backpropagated."""
    with autocast:
        sr = generator(batch.low_res)
    loss = loss_fn(sr.float(), batch.l1_target)
    scaler.scale(loss).backward()
    return {"loss": loss.detach()}


@dataclass(frozen=True)
class Adversary:
    """What the adversarial step needs besides the generator: the discriminator, the module
    that trains it (DDP-wrapped when distributed, else the same), its optimizer and scaler, the
    perceptual loss (None at weight 0) and the recipe's weights."""

    discriminator: nn.Module
    trained: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    perceptual: nn.Module | None
    config: AdversarialConfig


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def adversarial_step(
    generator: nn.Module,
    batch: Batch,
    *,
    adversary: Adversary,
    autocast: contextlib.AbstractContextManager,
    scaler: torch.amp.GradScaler,
    found_inf: Callable[[list[torch.Tensor]], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """ESRGAN's step: generator loss L1 + perceptual + GAN (backpropagated, not applied), then
    one discriminator update. `found_inf(grads)` is the loop's inf/NaN verdict, so a bad
    discriminator step is skipped as the generator's is."""
    cfg, net_d, kind = adversary.config, adversary.discriminator, adversary.config.gan_type
    # Generator: the discriminator is a fixed function here (no gradients into its weights);
    # the plain module, so DDP all-reduces only the discriminator's own update below.
    _requires_grad(net_d, False)
    with autocast:
        fake = generator(batch.low_res)
        fake_logits = net_d(fake).float()
        with torch.no_grad():
            real_logits = net_d(batch.real).float()
    fake = fake.float()
    pixel = F.l1_loss(fake, batch.l1_target)
    terms = {"loss_pixel": cfg.pixel_weight * pixel}
    if adversary.perceptual is not None:
        with autocast:
            perceptual = adversary.perceptual(fake, batch.perceptual_target)
        terms["loss_perceptual"] = cfg.perceptual_weight * perceptual.float()
    terms["loss_gan"] = cfg.gan_weight * generator_gan_loss(kind, real_logits, fake_logits)
    loss = sum(terms.values())
    scaler.scale(loss).backward()

    # Discriminator: real and fake in two backward passes, as BasicSR does (RaGAN compares
    # each against the other's mean, taken without gradient).
    _requires_grad(net_d, True)
    fake = fake.detach()
    with autocast:
        with torch.no_grad():
            fake_reference = net_d(fake).float()
        real_logits = adversary.trained(batch.real).float()
    d_real = discriminator_gan_loss(kind, real_logits, fake_reference, real=True)
    adversary.scaler.scale(d_real).backward()
    with autocast:
        fake_logits = adversary.trained(fake).float()
    d_fake = discriminator_gan_loss(kind, fake_logits, real_logits.detach(), real=False)
    adversary.scaler.scale(d_fake).backward()
    optimizer = adversary.optimizer
    adversary.scaler.unscale_(optimizer)
    grads = [p.grad for p in net_d.parameters() if p.grad is not None]
    skip = found_inf(grads)
    if adversary.scaler.is_enabled():
        adversary.scaler.step(optimizer)
        adversary.scaler.update()
    else:
        optimizer.found_inf = skip
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    terms = {k: v.detach() for k, v in terms.items()}
    return {
        "loss": loss.detach(),
        **terms,
        "loss_d_real": d_real.detach(),
        "loss_d_fake": d_fake.detach(),
        "d_real": real_logits.detach().mean(),
        "d_fake": fake_logits.detach().mean(),
    }
