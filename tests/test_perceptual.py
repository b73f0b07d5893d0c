"""The perceptual loss against BasicSR 1.4.2's on a seeded random VGG19 (no download), the
checks on a VGG19 file of another origin, and how it runs: frozen, only as deep as needed, bf16."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from claritycore.data import published
from claritycore.errors import UserError
from claritycore.training.perceptual import (
    CONV_INDEX,
    PerceptualLoss,
    VGG19Features,
    load_vgg19_state,
    resolve_vgg19,
)
from tests.fixtures.seeded_weights import checksum, seeded_images, seeded_state

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = np.load(FIXTURES / "perceptual_reference.npz")
ESRGAN = {"conv5_4": 1.0}
REALESRGAN = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
SHAPE = (2, 3, 36, 44)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """The fixture script's seeded VGG19 in torchvision's layout, with a classifier key too."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in VGG19Features().state_dict().items()}
    state = seeded_state(shapes, int(REFERENCE["seed"]))
    assert checksum(state) == pytest.approx(float(REFERENCE["weights_checksum"]), rel=1e-12)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    torch.save({**tensors, "classifier.6.bias": torch.zeros(1000)}, path)
    return path


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    output, target = seeded_images(SHAPE, 1), seeded_images(SHAPE, 2)
    assert checksum({"o": output, "t": target}) == pytest.approx(
        float(REFERENCE["inputs_checksum"]), rel=1e-12
    )
    return torch.from_numpy(output), torch.from_numpy(target)


@pytest.mark.parametrize("name, layers", [("esrgan", ESRGAN), ("realesrgan", REALESRGAN)])
def test_loss_and_gradient_match_basicsr(vgg_file, name, layers):
    output, target = _images()
    output.requires_grad_(True)
    loss = PerceptualLoss(layers, vgg_file)(output, target)
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(float(REFERENCE[f"loss_{name}"]), rel=1e-5)
    expected = REFERENCE[f"grad_{name}"]
    np.testing.assert_allclose(
        output.grad.numpy(), expected, rtol=1e-4, atol=1e-6 * abs(expected).max()
    )


def test_frozen_eval_and_stops_at_the_deepest_layer(vgg_file):
    loss_fn = PerceptualLoss({"conv2_1": 1.0, "conv1_1": 0.5}, vgg_file).train()
    assert not loss_fn.training and not loss_fn.vgg.training
    assert not any(p.requires_grad for p in loss_fn.parameters())
    ran = []
    for index, module in enumerate(loss_fn.vgg.features):
        module.register_forward_hook(lambda *_, index=index: ran.append(index))
    output, target = _images()
    loss = loss_fn(output.requires_grad_(True), target)
    loss.backward()
    assert sorted(set(ran)) == list(
        range(CONV_INDEX["conv2_1"] + 1)
    )  # up to conv2_1, no ReLU after
    assert output.grad is not None and all(p.grad is None for p in loss_fn.parameters())
    # Identical images are at distance 0.
    assert loss_fn(target, target).item() == 0.0


def test_bf16_autocast_runs_vgg_in_bf16_and_the_loss_in_fp32(vgg_file):
    loss_fn = PerceptualLoss(REALESRGAN, vgg_file)
    dtypes = []
    loss_fn.vgg.features[0].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    output, target = _images()
    full = loss_fn(output, target).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = loss_fn(output, target)
    assert dtypes == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full, rel=0.03)


def test_torchvision_layout_is_required_naming_the_first_wrong_key(vgg_file, tmp_path):
    assert set(load_vgg19_state(vgg_file)) == set(VGG19Features().state_dict())
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGG19Features().state_dict().items()}
    # Right up to features.10.weight (the first conv of block 3), which has a 1×1 kernel.
    state = {k: torch.zeros(shape) for k, shape in list(shapes.items())[:8]}
    wrong = tmp_path / "wrong.pth"
    torch.save({**state, "features.10.weight": torch.zeros(256, 128, 1, 1)}, wrong)
    with pytest.raises(UserError, match=r"features.10.weight has shape \(256, 128, 1, 1\), "
                                        r"expected \(256, 128, 3, 3\)"):  # fmt: skip
        load_vgg19_state(wrong)
    torch.save({k.replace("features.", ""): v for k, v in state.items()}, wrong)
    with pytest.raises(UserError, match=r"key features\.0\.weight is missing"):
        load_vgg19_state(wrong)
    wrong.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not a torch weights file"):
        load_vgg19_state(wrong)
    torch.save([1, 2], wrong)
    with pytest.raises(UserError, match="holds a list"):
        load_vgg19_state(wrong)
    with pytest.raises(UserError, match="conv5_5"):
        PerceptualLoss({"conv5_5": 1.0}, vgg_file)


def test_resolve_reports_the_file_and_its_sha256(vgg_file, tmp_path, monkeypatch):
    path, digest = resolve_vgg19(vgg_file)
    assert path == vgg_file and digest == hashlib.sha256(vgg_file.read_bytes()).hexdigest()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"vgg19-dcbb9e9d\.pth not found"):
        resolve_vgg19(None)
    data = vgg_file.read_bytes()
    official = published.PublishedFile("vgg19-dcbb9e9d.pth", "u", len(data), digest, "fake")
    monkeypatch.setitem(published.PUBLISHED, "vgg19", official)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    placed = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    placed.symlink_to(vgg_file)
    assert resolve_vgg19(None) == (placed, digest)
