"""ESRGAN's perceptual loss: L1 between VGG19 features of the output and of the target, taken
before the ReLU of each named convolution, weighted per layer (BasicSR's `PerceptualLoss` with
`use_input_norm=True`, `range_norm=False`, `criterion='l1'`).

VGG19 is defined here rather than imported from torchvision: PyPI's torchvision does not import
beside the CPU torch build we pin, and the 19 layers are a few lines. The module names follow
torchvision's `features.N` so its ImageNet file (`vgg19-dcbb9e9d.pth`) loads as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from claritycore.config import VGG19_LAYERS
from claritycore.data import backbones
from claritycore.data.published import published
from claritycore.errors import UserError

# Output channels of each convolution, "M" a 2×2 max-pool: torchvision's configuration "E".
VGG19_PLAN: tuple[int | Literal["M"], ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
VGG19_PLAN += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# ImageNet statistics of [0, 1] RGB, as torchvision's weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_indices() -> dict[str, int]:
    """BasicSR's layer name (conv1_1 ... conv5_4) -> index of that conv in `features`, where
    each conv is followed by its ReLU and each "M" is one max-pool."""
    indices, index = [], 0
    for step in VGG19_PLAN:
        if step != "M":
            indices.append(index)
        index += 1 if step == "M" else 2
    return dict(zip(VGG19_LAYERS, indices, strict=True))


CONV_INDEX = _conv_indices()


class VGG19Features(nn.Module):
    """torchvision's `vgg19().features` (16 3×3 convs, ReLUs, 5 max-pools), same key names."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for step in VGG19_PLAN:
            if step == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, step, kernel_size=3, padding=1), nn.ReLU()]
                channels = step
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Outputs of the named convolutions (before their ReLU); stops after the deepest."""
        wanted = {CONV_INDEX[name]: name for name in layers}
        out = {}
        # torch types Sequential[...] as Sequential | Module; a slice is a Sequential.
        used = cast(nn.Sequential, self.features[: max(wanted) + 1])
        for index, module in enumerate(used):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def load_vgg19_state(path: Path) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a VGG19 file in torchvision's layout (extra keys such as
    `classifier.*` are ignored), or a one-line UserError naming the first wrong key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike: the file is unusable
        message = f"{path} is not a torch weights file ({error})".replace("\n", " ")
        raise UserError(message) from None
    if not isinstance(state, Mapping):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of VGG19")
    with torch.device("meta"):  # shapes only: skip initialising 20M weights
        expected = VGG19Features().state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise UserError(
                f"{path} is not VGG19 in torchvision's layout: key {key} is missing "
                f"(it has {', '.join(list(state)[:3])}...)"
            )
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise UserError(
                f"{path} is not VGG19 in torchvision's layout: {key} has shape {shape}, "
                f"expected {tuple(tensor.shape)}"
            )
    return {key: state[key].float() for key in expected}


def resolve_vgg19(vgg_weights: Path | None) -> tuple[Path, str]:
    """The VGG19 file to use and its sha256 (for model.pt): torchvision's verified file when
    `vgg_weights` is None, else that file once its keys and shapes are VGG19's."""
    if vgg_weights is None:
        return backbones.require("vgg19"), published("vgg19").sha256
    load_vgg19_state(vgg_weights)
    return Path(vgg_weights), backbones.file_sha256(vgg_weights)


class PerceptualLoss(nn.Module):
    """Σ weight · L1(VGG19 features of output, of target) over `layer_weights`.

    Inputs are [0, 1] RGB; VGG19 is frozen in eval mode and run only up to the deepest named
    layer. Under autocast the features are computed in the autocast dtype, the L1 in fp32.
    """

    # Buffers (register_buffer), typed for the checker.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layer_weights: Mapping[str, float], weights_path: Path) -> None:
        super().__init__()
        unknown = [name for name in layer_weights if name not in CONV_INDEX]
        if unknown or not layer_weights:
            raise UserError(
                f"perceptual layers {unknown or '{}'} are not VGG19 convolutions; use some of "
                + ", ".join(VGG19_LAYERS)
            )
        # VGG order: the sum runs over layers in the order BasicSR's does.
        self.layer_weights = {
            n: float(layer_weights[n]) for n in VGG19_LAYERS if n in layer_weights
        }
        with torch.device("meta"):  # every tensor comes from the file
            self.vgg = VGG19Features()
        self.vgg.load_state_dict(load_vgg19_state(weights_path), assign=True)
        self.vgg.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Stays in eval mode: VGG19 is a fixed measuring instrument."""
        return super().train(False)

    def _features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg((images - self.mean) / self.std, list(self.layer_weights))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted sum of per-layer L1 distances, a scalar in fp32."""
        out_features = self._features(output)
        with torch.no_grad():
            target_features = self._features(target)
        loss = torch.zeros((), device=output.device)
        for name, weight in self.layer_weights.items():
            distance = F.l1_loss(out_features[name].float(), target_features[name].float())
            loss = loss + distance * weight
        return loss
