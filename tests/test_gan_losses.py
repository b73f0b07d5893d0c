"""GAN losses against hand-computed values and gradients, and BasicSR's two-backward
discriminator step reproduced by one backward of our two terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import GanType
from claritycore.schema import choices
from claritycore.training.gan_losses import GAN_LOSSES


def generator_gan_loss(kind, real, fake):
    return GAN_LOSSES[kind].generator(real, fake)


def discriminator_terms(kind, real, fake):
    term = GAN_LOSSES[kind].discriminator
    return term(real, fake, True), term(fake, real, False)


def test_the_table_has_one_entry_per_gan_type():
    assert set(GAN_LOSSES) == set(choices(GanType))
    assert [kind for kind, loss in GAN_LOSSES.items() if loss.relativistic] == ["ragan"]


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# BCE with logits by hand: target 1 -> softplus(-x), target 0 -> softplus(x).
REAL, FAKE = [1.0, 3.0, -0.5], [0.0, -2.0, 0.5]
MEAN_REAL, MEAN_FAKE = _mean(REAL), _mean(FAKE)


def _logits(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_vanilla_by_hand():
    real, fake = _logits(REAL), _logits(FAKE)
    assert generator_gan_loss("vanilla", None, fake).item() == pytest.approx(
        _mean(_softplus(-f) for f in FAKE)
    )
    real_term, fake_term = discriminator_terms("vanilla", real, fake)
    assert real_term.item() == pytest.approx(_mean(_softplus(-r) for r in REAL))
    assert fake_term.item() == pytest.approx(_mean(_softplus(f) for f in FAKE))
    assert generator_gan_loss("vanilla", None, torch.zeros(4, 1, 8, 8)).item() == pytest.approx(
        math.log(2)
    )


def test_ragan_generator_by_hand_with_gradient_through_both_fake_terms():
    real, fake = _logits(REAL), _logits(FAKE)
    loss = generator_gan_loss("ragan", real, fake)
    expected = (
        _mean(_softplus(r - MEAN_FAKE) for r in REAL)
        + _mean(_softplus(-(f - MEAN_REAL)) for f in FAKE)
    ) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert real.grad is None  # D(real) is detached
    n = len(FAKE)
    # d/df_i: through mean(fake) in the first term, and directly in the second.
    through_mean = -_mean(_sigmoid(r - MEAN_FAKE) for r in REAL) / n / 2
    direct = [-_sigmoid(-(f - MEAN_REAL)) / n / 2 for f in FAKE]
    assert fake.grad.tolist() == pytest.approx([through_mean + d for d in direct])


def test_ragan_discriminator_terms_by_hand_each_with_its_own_gradient():
    real, fake = _logits(REAL), _logits(FAKE)
    real_term, fake_term = discriminator_terms("ragan", real, fake)
    assert real_term.item() == pytest.approx(_mean(_softplus(-(r - MEAN_FAKE)) for r in REAL) / 2)
    assert fake_term.item() == pytest.approx(_mean(_softplus(f - MEAN_REAL) for f in FAKE) / 2)
    real_term.backward()
    assert fake.grad is None
    fake_term.backward()
    n = len(REAL)
    assert real.grad.tolist() == pytest.approx([-_sigmoid(-(r - MEAN_FAKE)) / n / 2 for r in REAL])
    assert fake.grad.tolist() == pytest.approx([_sigmoid(f - MEAN_REAL) / n / 2 for f in FAKE])


def test_bf16_logits_give_an_fp32_loss():
    fake = torch.tensor([0.5, -1.0], dtype=torch.bfloat16)
    assert generator_gan_loss("ragan", fake, fake).dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in discriminator_terms("vanilla", fake, fake))


def _tiny_discriminator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 1))  # fmt: skip


def test_one_backward_equals_basicsrs_ragan_discriminator_step():
    gt, output = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    # BasicSR esrgan_model.py: three forwards, two backward passes.
    theirs = _tiny_discriminator()
    fake_d_pred = theirs(output).detach()
    real_d_pred = theirs(gt)
    bce = F.binary_cross_entropy_with_logits
    l_d_real = bce(real_d_pred - fake_d_pred.mean(), torch.ones_like(real_d_pred)) * 0.5
    l_d_real.backward()
    fake_d_pred = theirs(output.detach())
    l_d_fake = bce(fake_d_pred - real_d_pred.detach().mean(), torch.zeros_like(fake_d_pred)) * 0.5
    l_d_fake.backward()
    # Ours: two forwards, one backward of the sum.
    ours = _tiny_discriminator()
    real_term, fake_term = discriminator_terms("ragan", ours(gt), ours(output.detach()))
    (real_term + fake_term).backward()
    assert real_term.item() == pytest.approx(l_d_real.item(), rel=1e-6)
    assert fake_term.item() == pytest.approx(l_d_fake.item(), rel=1e-6)
    for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-5, atol=1e-7)
