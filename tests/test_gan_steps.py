"""The GAN stage's steps: every step logs the discriminator's margin d_real − d_fake."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import AdversarialConfig
from claritycore.models.discriminators import UNetDiscriminatorSN
from claritycore.training.steps import (
    Adversary,
    Batch,
    adversarial_step,
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
    return Adversary(net_d, net_d, _adam(net_d), scaler, None, config)


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
