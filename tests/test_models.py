"""RRDBNet architecture and the model registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from claritycore.errors import ConfigError
from claritycore.models import (
    AutoConfig,
    AutoModel,
    BaseConfig,
    RRDBNetConfig,
    auto,
    register_config,
    register_model,
    registered_models,
)
from claritycore.models.rrdbnet.architecture import RRDB, ResidualDenseBlock


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize(("num_feat", "num_block", "num_grow_ch"), [(64, 23, 32), (32, 6, 16)])
def test_output_is_exactly_scale_times_input_on_odd_sizes(scale, num_feat, num_block, num_grow_ch):
    config = AutoConfig.from_name(
        "rrdbnet", scale=scale, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch
    )
    model = AutoModel.from_config(config).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 17, 23))
    assert out.shape == (1, 3, 17 * scale, 23 * scale)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_nearest_upsampler_output_size(scale):
    config = RRDBNetConfig(scale=scale, num_feat=8, num_block=1, num_grow_ch=4, upsampler="nearest")
    model = AutoModel.from_config(config).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 9, 7))
    assert out.shape == (2, 3, 9 * scale, 7 * scale)


def test_nearest_x4_matches_esrgan_parameter_count_and_keys():
    # BasicSR's RRDBNet (ESRGAN's generator, x4) has 16,697,987 parameters.
    model = AutoModel.from_config(RRDBNetConfig(scale=4, upsampler="nearest"))
    assert count_params(model) == 16_697_987
    keys = set(model.state_dict())
    assert {"conv_up1.weight", "conv_up2.weight"} <= keys
    assert "conv_up3.weight" not in keys


def test_nearest_x2_unshuffles_input_like_real_esrgan():
    model = AutoModel.from_config(RRDBNetConfig(scale=2, upsampler="nearest"))
    assert model.conv_first.in_channels == 12
    assert {"conv_up1.weight", "conv_up2.weight"} <= set(model.state_dict())


def test_trunk_keys_follow_basicsr_names():
    model = AutoModel.from_config(RRDBNetConfig(scale=4, num_feat=8, num_block=2, num_grow_ch=4))
    keys = list(model.state_dict())
    assert keys[:2] == ["conv_first.weight", "conv_first.bias"]
    for name in ["body.1.rdb3.conv5.weight", "conv_body.weight", "conv_hr.weight"]:
        assert name in keys
    assert keys[-2:] == ["conv_last.weight", "conv_last.bias"]
    assert [k for k in keys if k.startswith("upsample")] == [
        "upsample.0.weight",
        "upsample.0.bias",
        "upsample.2.weight",
        "upsample.2.bias",
    ]


def test_no_batch_norm_and_esrgan_init():
    torch.manual_seed(0)
    model = AutoModel.from_config(RRDBNetConfig(scale=4, num_feat=64, num_block=2))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    conv = model.body[0].rdb1.conv1
    # Kaiming-normal std is sqrt(2 / fan_in); ESRGAN scales it by 0.1.
    expected_std = 0.1 * (2 / (64 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.1)
    assert torch.count_nonzero(conv.bias) == 0
    # Outside the dense blocks PyTorch's default init stays: far larger weights.
    assert model.conv_first.weight.std().item() > 3 * expected_std


def test_dense_block_and_rrdb_use_residual_scaling():
    block = ResidualDenseBlock(num_feat=4, num_grow_ch=2)
    for conv in [block.conv1, block.conv2, block.conv3, block.conv4, block.conv5]:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    nn.init.constant_(block.conv5.bias, 1.0)
    x = torch.rand(1, 4, 5, 5)
    # With every conv zero except conv5's bias of 1, the block adds exactly 0.2.
    torch.testing.assert_close(block(x), x + 0.2)
    rrdb = RRDB(num_feat=4, num_grow_ch=2)
    for module in [rrdb.rdb1, rrdb.rdb2, rrdb.rdb3]:
        for p in module.parameters():
            nn.init.zeros_(p)
    torch.testing.assert_close(rrdb(x), x * 1.2)


def test_config_round_trips_through_dict():
    config = AutoConfig.from_name("rrdbnet", scale=8, num_feat=32, num_block=6, num_grow_ch=16)
    as_dict = config.to_dict()
    assert as_dict["model_type"] == "rrdbnet"
    assert all(isinstance(v, (int, str)) for v in as_dict.values())
    assert AutoConfig.from_dict(as_dict) == config
    assert RRDBNetConfig.from_dict(as_dict) == config


def test_defaults_are_the_documented_full_model():
    config = AutoConfig.from_name("rrdbnet")
    assert (config.scale, config.in_channels, config.out_channels) == (4, 3, 3)
    assert (config.num_feat, config.num_block, config.num_grow_ch) == (64, 23, 32)


def test_unknown_model_lists_registered_models():
    with pytest.raises(ConfigError, match=r"unknown model 'rrdbnt'.*rrdbnet"):
        AutoConfig.from_name("rrdbnt")


def test_unknown_field_lists_valid_fields():
    with pytest.raises(ConfigError, match=r"'num_feats'. Did you mean num_feat\?.*Valid keys"):
        AutoConfig.from_name("rrdbnet", num_feats=32)


@pytest.mark.parametrize("scale", [1, 5, 16])
def test_unsupported_scale_names_the_valid_scales(scale):
    with pytest.raises(ConfigError, match=r"choose one of 2, 3, 4, 8"):
        AutoConfig.from_name("rrdbnet", scale=scale)


def test_bad_upsampler_and_nearest_x3_are_rejected():
    with pytest.raises(ConfigError, match="expected one of pixelshuffle, nearest"):
        AutoConfig.from_name("rrdbnet", upsampler="bilinear")
    with pytest.raises(ConfigError, match="no ×3 step"):
        RRDBNetConfig(scale=3, upsampler="nearest")


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as it is, restored after the test: a toy model must not leak into others."""
    monkeypatch.setattr(auto, "_CONFIGS", dict(auto._CONFIGS))
    monkeypatch.setattr(auto, "_MODELS", dict(auto._MODELS))


def test_a_new_model_is_a_config_and_a_module_plus_registration(scratch_registry):
    @register_config("toynet_test")
    @dataclass(frozen=True)
    class ToyConfig(BaseConfig):
        width: int = 4

    @register_model("toynet_test")
    class ToyNet(nn.Module):
        def __init__(self, config: ToyConfig) -> None:
            super().__init__()
            self.config = config
            self.conv = nn.Conv2d(3, 3 * config.scale**2, 3, padding=1)
            self.shuffle = nn.PixelShuffle(config.scale)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shuffle(self.conv(x))

    config = AutoConfig.from_name("toynet_test", scale=2, width=9)
    assert isinstance(config, ToyConfig) and config.width == 9
    assert "toynet_test" in registered_models()
    model = AutoModel.from_config(config)
    assert model(torch.rand(1, 3, 5, 5)).shape == (1, 3, 10, 10)
    assert AutoConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="already registered"):
        register_config("toynet_test")(ToyConfig)


def test_the_toy_model_did_not_leak_into_the_registry():
    assert "toynet_test" not in registered_models()
