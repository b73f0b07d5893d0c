"""The GAN stage's steps against BasicSR 1.4.2's `optimize_parameters`: the discriminator-only
step of `adversarial.d_init_steps` (BasicSR's iterations up to `net_d_init_iters`) leaves the
generator as it is and updates the discriminator as BasicSR does, and every step logs the
discriminator's margin d_real − d_fake."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import AdversarialConfig
from claritycore.models.discriminators import UNetDiscriminatorSN
from claritycore.training.gan_losses import GAN_LOSSES
from claritycore.training.pair_sources import Batch
from claritycore.training.steps import (
    Adversary,
    adversarial_step,
    discriminator_step,
    grads_found_inf,
)


def _generator() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))


def _discriminator() -> nn.Module:
    # The U-Net with spectral norm: each forward advances its power iteration, so an extra or
    # missing forward would show in its weights' `_u` vectors.
    torch.manual_seed(2)
    return UNetDiscriminatorSN(3, 8)


def _adam(module: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)


def _batch() -> Batch:
    torch.manual_seed(3)
    high_res = torch.rand(4, 3, 32, 32)
    low_res = F.interpolate(high_res, scale_factor=0.5, mode="bilinear", antialias=True)
    return Batch(low_res, high_res, high_res, high_res)


def _adversary(kind: str) -> Adversary:
    config = AdversarialConfig(base="rrdbnet-litex2", gan_type=kind, perceptual_weight=0.0,
                               discriminator="unet_sn", d_num_feat=8)  # fmt: skip
    net_d = _discriminator()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return Adversary(net_d, net_d, _adam(net_d), scaler, None, GAN_LOSSES[config.gan_type], config)


def _basicsr_discriminator_only_iteration(
    net_g: nn.Module, net_d: nn.Module, optimizer_d: torch.optim.Optimizer, batch: Batch, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESRGANModel (ragan) / RealESRGANModel (vanilla) `optimize_parameters` at
    `current_iter <= net_d_init_iters`: the generator's forward, then only the discriminator's
    half (the optimizer is the fused Adam ClarityCore uses, so the step is what differs)."""
    output = net_g(batch.low_res)
    for p in net_d.parameters():
        p.requires_grad = True
    optimizer_d.zero_grad()
    bce = F.binary_cross_entropy_with_logits
    if kind == "ragan":
        fake_d_pred = net_d(output).detach()
        real_d_pred = net_d(batch.real)
        l_d_real = bce(real_d_pred - torch.mean(fake_d_pred), torch.ones_like(real_d_pred)) * 0.5
        l_d_real.backward()
        fake_d_pred = net_d(output.detach())
        target = torch.zeros_like(fake_d_pred)
        l_d_fake = bce(fake_d_pred - torch.mean(real_d_pred.detach()), target) * 0.5
    else:
        real_d_pred = net_d(batch.real)
        l_d_real = bce(real_d_pred, torch.ones_like(real_d_pred))
        l_d_real.backward()
        fake_d_pred = net_d(output.detach().clone())
        l_d_fake = bce(fake_d_pred, torch.zeros_like(fake_d_pred))
    l_d_fake.backward()
    optimizer_d.step()
    return torch.mean(real_d_pred.detach()), torch.mean(fake_d_pred.detach())


@pytest.mark.parametrize("kind", ["ragan", "vanilla"])
def test_discriminator_only_step_is_basicsrs_and_leaves_the_generator(kind):
    generator, adversary, batch = _generator(), _adversary(kind), _batch()
    start = copy.deepcopy(generator.state_dict())
    reference_d = copy.deepcopy(adversary.discriminator)
    reference_opt = _adam(reference_d)
    d_start = copy.deepcopy(reference_d.state_dict())
    for _ in range(3):
        terms, skip = discriminator_step(generator, batch, adversary=adversary,
                                         autocast=contextlib.nullcontext(),
                                         found_inf=grads_found_inf)  # fmt: skip
        real_mean, fake_mean = _basicsr_discriminator_only_iteration(
            _generator(), reference_d, reference_opt, batch, kind
        )
    # No generator term and no gradient: the loop has nothing to apply to the generator.
    assert set(terms) == {"loss_d_real", "loss_d_fake", "d_real", "d_fake", "d_real_minus_fake"}
    assert skip.item() == 0.0
    assert all(p.grad is None for p in generator.parameters())
    for name, tensor in start.items():
        assert torch.equal(generator.state_dict()[name], tensor), name
    # The discriminator learned, exactly as BasicSR's (weights, spectral-norm vectors).
    ours = adversary.discriminator.state_dict()
    assert any(not torch.equal(ours[k], d_start[k]) for k in ours)
    for name, tensor in reference_d.state_dict().items():
        assert torch.equal(ours[name], tensor), name
    assert terms["d_real"].item() == real_mean.item()
    assert terms["d_fake"].item() == fake_mean.item()
    assert terms["d_real_minus_fake"].item() == (real_mean - fake_mean).item()


def test_adversarial_step_logs_the_margin_of_its_discriminator_means():
    generator, adversary, batch = _generator(), _adversary("ragan"), _batch()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    terms = adversarial_step(generator, batch, adversary=adversary,
                             autocast=contextlib.nullcontext(), scaler=scaler,
                             found_inf=grads_found_inf)  # fmt: skip
    assert {"loss", "loss_pixel", "loss_gan", "d_real_minus_fake"} <= set(terms)
    margin = terms["d_real_minus_fake"]
    assert margin.item() == (terms["d_real"] - terms["d_fake"]).item()
    assert margin.item() != 0.0
    # The generator's gradient waits for the loop to apply it.
    assert all(p.grad is not None for p in generator.parameters())
