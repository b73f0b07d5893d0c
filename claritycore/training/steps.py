"""The training steps, side by side: the pixel-loss (PSNR) step and ESRGAN's adversarial step,
and the discriminator-only step of a GAN stage's first `adversarial.d_init_steps`.

The first two take one batch, compute the generator's loss and backpropagate it; the loop then
clips, checks and applies the generator's update (the same for both). The adversarial step also
updates the discriminator, as BasicSR's `ESRGANModel`/`RealESRGANModel.optimize_parameters` do:
the generator's GAN loss is taken against a frozen discriminator, then the discriminator is
trained on the HR (real) and the detached output (fake). The discriminator-only step is that
second half alone, as BasicSR's steps up to `net_d_init_iters`: the generator gets no gradient,
and the loop does not update it. Each returns its loss terms as device tensors, which the loop
sums and logs without a host sync.

`build_adversary` builds what the GAN step needs from the config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import AdversarialConfig, TrainOptions
from claritycore.models.discriminators import build_discriminator
from claritycore.training.gan_losses import GAN_LOSSES, GanLoss
from claritycore.training.pair_sources import Batch
from claritycore.training.perceptual import PerceptualLoss, resolve_vgg19


def pixel_step(
    generator: nn.Module,
    batch: Batch,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    autocast: contextlib.AbstractContextManager,
    scaler: torch.amp.GradScaler,
) -> dict[str, torch.Tensor]:
    """The PSNR step: the pixel loss (L1, L2 or Charbonnier), backpropagated."""
    with autocast:
        sr = generator(batch.low_res)
    loss = loss_fn(sr.float(), batch.pixel_target)
    scaler.scale(loss).backward()
    return {"loss": loss.detach()}


@dataclass(frozen=True)
class Adversary:
    """What the adversarial step needs besides the generator: the discriminator, the module
    that trains it (DDP-wrapped when distributed, else the same), its optimizer and scaler, the
    perceptual loss (None at weight 0), the GAN loss and the recipe's weights."""

    discriminator: nn.Module
    trained: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    perceptual: nn.Module | None
    gan_loss: GanLoss
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
    cfg, net_d, gan = adversary.config, adversary.discriminator, adversary.gan_loss
    real_reference = None
    # Generator: the discriminator is a fixed function here (no gradients into its weights);
    # the plain module, so DDP all-reduces only the discriminator's own update below. The
    # discriminator runs in BasicSR's order (its BatchNorm statistics and spectral-norm power
    # iterations advance with every forward, so the order is part of the recipe).
    _requires_grad(net_d, False)
    with autocast:
        if gan.relativistic:
            with torch.no_grad():
                real_reference = net_d(batch.real).float()
        fake = generator(batch.low_res)
        fake_logits = net_d(fake).float()
    fake = fake.float()
    terms = {"loss_pixel": cfg.pixel_weight * F.l1_loss(fake, batch.pixel_target)}
    if adversary.perceptual is not None:
        with autocast:
            perceptual = adversary.perceptual(fake, batch.perceptual_target)
        terms["loss_perceptual"] = cfg.perceptual_weight * perceptual.float()
    terms["loss_gan"] = cfg.gan_weight * gan.generator(real_reference, fake_logits)
    loss = cast(torch.Tensor, sum(terms.values()))
    scaler.scale(loss).backward()
    d_terms, _ = _discriminator_update(fake.detach(), batch, adversary, autocast, found_inf)
    terms = {k: v.detach() for k, v in terms.items()}
    return {"loss": loss.detach(), **terms, **d_terms}


def discriminator_step(
    generator: nn.Module,
    batch: Batch,
    *,
    adversary: Adversary,
    autocast: contextlib.AbstractContextManager,
    found_inf: Callable[[list[torch.Tensor]], torch.Tensor],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A step of `adversarial.d_init_steps` (BasicSR's `net_d_init_iters`): the generator's
    output, without gradient, and one discriminator update on it; no generator loss, so the
    generator gets no gradient. Returns the discriminator's terms and its inf/NaN verdict,
    which stands for the step's (there is no generator gradient to judge)."""
    # BasicSR runs no discriminator forward for the generator in these steps: nor does this
    # (its BatchNorm statistics and spectral-norm vectors advance with each forward).
    with torch.no_grad(), autocast:
        fake = generator(batch.low_res)
    return _discriminator_update(fake.float(), batch, adversary, autocast, found_inf)


def _discriminator_update(
    fake: torch.Tensor,
    batch: Batch,
    adversary: Adversary,
    autocast: contextlib.AbstractContextManager,
    found_inf: Callable[[list[torch.Tensor]], torch.Tensor],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One discriminator update on HR (real) and the detached `fake`: its loss terms and mean
    outputs, and its inf/NaN verdict (1.0 when the update was skipped)."""
    net_d, gan = adversary.discriminator, adversary.gan_loss
    # Real and fake in two backward passes, as BasicSR does (RaGAN compares each against the
    # other's mean, taken without gradient).
    _requires_grad(net_d, True)
    with autocast:
        fake_reference = None
        if gan.relativistic:
            with torch.no_grad():
                fake_reference = net_d(fake).float()
        real_logits = adversary.trained(batch.real).float()
    d_real = gan.discriminator(real_logits, fake_reference, True)
    adversary.scaler.scale(d_real).backward()
    with autocast:
        fake_logits = adversary.trained(fake).float()
    d_fake = gan.discriminator(fake_logits, real_logits, False)
    adversary.scaler.scale(d_fake).backward()
    optimizer = adversary.optimizer
    adversary.scaler.unscale_(optimizer)
    skip = found_inf([p.grad for p in net_d.parameters() if p.grad is not None])
    optimizer_step(optimizer, adversary.scaler, skip)
    optimizer.zero_grad(set_to_none=True)
    real_mean, fake_mean = real_logits.detach().mean(), fake_logits.detach().mean()
    terms = {
        "loss_d_real": d_real.detach(),
        "loss_d_fake": d_fake.detach(),
        "d_real": real_mean,
        "d_fake": fake_mean,
        # Under RaGAN the two means drift together; only their difference says what D learned.
        "d_real_minus_fake": real_mean - fake_mean,
    }
    return terms, skip


def optimizer_step(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, found_inf: torch.Tensor
) -> None:
    """Step unless the gradients hold inf/NaN, without a host sync: the fused Adam kernel reads
    `found_inf` on the device (the protocol GradScaler itself uses)."""
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        # Fused Adam reads this attribute (GradScaler's protocol); torch's types omit it.
        optimizer.found_inf = found_inf  # type: ignore[attr-defined]
        optimizer.step()


def build_adversary(
    cfg: AdversarialConfig,
    patch_size: int,
    options: TrainOptions,
    device: torch.device,
    use_scaler: bool,
    wrap: Callable[[nn.Module], nn.Module],
) -> tuple[Adversary, str | None]:
    """The discriminator, its Adam and scaler, and the perceptual loss of a GAN stage, with the
    sha256 of the VGG19 file used (None at perceptual weight 0). A missing or wrong VGG19
    stops here, before any step."""
    perceptual, vgg_sha256 = None, None
    if cfg.perceptual_weight > 0:
        vgg_path, vgg_sha256 = resolve_vgg19(options.vgg_weights)
        perceptual = PerceptualLoss(cfg.perceptual_layers, vgg_path).to(device)
    discriminator = build_discriminator(cfg.discriminator, cfg.d_num_feat, patch_size).to(device)
    optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=cfg.d_lr, betas=cfg.d_betas, fused=True
    )
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    adversary = Adversary(
        discriminator, wrap(discriminator), optimizer, scaler, perceptual,
        GAN_LOSSES[cfg.gan_type], cfg,
    )  # fmt: skip
    return adversary, vgg_sha256


def grads_found_inf(grads: list[torch.Tensor]) -> torch.Tensor:
    """1.0 when any gradient holds inf/NaN, on the device, without a host sync."""
    return (~torch.isfinite(torch.nn.utils.get_total_norm(grads))).float()
