"""The discriminators against BasicSR 1.4.2's on seeded random weights: same state-dict keys and
shapes, same outputs in eval and train mode, same gradients and updated buffers; and the sizes
each one takes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from claritycore.errors import ConfigError
from claritycore.models.discriminators import (
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    build_discriminator,
)
from tests.fixtures.seeded_weights import checksum, seeded_images, seeded_state

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = np.load(FIXTURES / "discriminator_reference.npz")
BASICSR_KEYS = json.loads((FIXTURES / "discriminator_keys.json").read_text())
CASES = {
    "vgg128": (lambda nf: VGGStyleDiscriminator(3, nf, 128), (2, 3, 128, 128)),
    "vgg256": (lambda nf: VGGStyleDiscriminator(3, nf, 256), (2, 3, 256, 256)),
    "unet": (lambda nf: UNetDiscriminatorSN(3, nf), (2, 3, 64, 48)),
}


def _close(actual: torch.Tensor, key: str) -> None:
    expected = REFERENCE[key]
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("name", CASES)
def test_state_dict_keys_and_shapes_are_basicsrs(name):
    build, _ = CASES[name]
    ours = [[k, list(v.shape)] for k, v in build(64).state_dict().items()]
    assert ours == BASICSR_KEYS[name]


@pytest.mark.parametrize("name", CASES)
def test_outputs_gradients_and_buffers_match_basicsr(name):
    build, shape = CASES[name]
    net = build(int(REFERENCE["num_feat"]))
    state = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, 7)
    images = seeded_images(shape, 3)
    assert checksum({**state, "images": images}) == pytest.approx(
        float(REFERENCE[f"{name}_checksum"]), rel=1e-12
    )
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    with torch.no_grad():
        _close(net.eval()(torch.from_numpy(images)), f"{name}_eval")
    out = net.train()(torch.from_numpy(images))
    out.mean().backward()
    _close(out, f"{name}_train")
    params, buffers = dict(net.named_parameters()), net.state_dict()
    recorded = [k for k in REFERENCE.files if k.startswith(f"{name}_grad_")]
    assert recorded
    for key in recorded:
        _close(params[key.removeprefix(f"{name}_grad_")].grad, key)
    for key in (k for k in REFERENCE.files if k.startswith(f"{name}_after_")):
        _close(buffers[key.removeprefix(f"{name}_after_")], key)


def test_sizes_each_discriminator_takes():
    vgg = build_discriminator("vgg128", 8, 128)
    assert vgg(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match=r"takes 128×128 patches, got 96×96; .* unet_sn"):
        vgg(torch.rand(2, 3, 96, 96))
    with pytest.raises(ConfigError, match=r"takes 128² HR patches, not patch_size=192"):
        build_discriminator("vgg128", 8, 192)
    unet = build_discriminator("unet_sn", 8, 192)
    assert unet(torch.rand(1, 3, 40, 72)).shape == (1, 1, 40, 72)
    with pytest.raises(ValueError, match=r"multiples of 8, got 60×64"):
        unet(torch.rand(1, 3, 60, 64))
    with pytest.raises(ConfigError, match=r"multiples of 8, not patch_size=100; use e\.g\. 96"):
        build_discriminator("unet_sn", 8, 100)


@pytest.mark.parametrize("kind, size", [("vgg128", 128), ("unet_sn", 64)])
def test_bf16_autocast_is_close_to_fp32(kind, size):
    torch.manual_seed(0)
    net = build_discriminator(kind, 8, size).eval()
    images = torch.rand(2, 3, size, size)
    with torch.no_grad():
        full = net(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(images)
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    assert (half.float() - full).abs().max() <= 0.05 * full.abs().max() + 1e-3
