"""What makes CPU training faster must not change what it computes."""

from __future__ import annotations

import pytest
import torch

from claritycore import device
from claritycore.models.rrdbnet import architecture
from claritycore.models.rrdbnet.architecture import ResidualDenseBlock
from claritycore.training import trainer
from tests.helpers import quick_options, run, tiny_experiment, tiny_store


def block_gradients(block, x: torch.Tensor, dtype: torch.dtype | None) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = block(x)
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [x.grad, *(p.grad for p in block.parameters())]
    block.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
@pytest.mark.parametrize("channels_last", [True, False])
def test_dense_block_gradients_are_those_of_torch_cat(monkeypatch, dtype, channels_last):
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=8, num_grow_ch=4)
    x = torch.randn(2, 8, 6, 6)
    if channels_last:
        block, x = (
            block.to(memory_format=torch.channels_last),
            x.to(memory_format=torch.channels_last),
        )
    ours = block_gradients(block, x, dtype)
    monkeypatch.setattr(architecture, "_dense_cat", lambda features: torch.cat(features, 1))
    reference = block_gradients(block, x, dtype)
    for got, expected in zip(ours, reference, strict=True):
        assert torch.equal(got, expected)


def test_dense_cat_hands_channels_last_inputs_contiguous_gradients():
    pieces = [torch.randn(2, c, 4, 4).to(memory_format=torch.channels_last) for c in (3, 5)]
    pieces = [p.requires_grad_() for p in pieces]
    seen = []
    for piece in pieces:
        piece.register_hook(seen.append)
    joined = architecture._dense_cat(tuple(pieces))
    # The gradient arrives in channels-last, as a convolution's input gradient does.
    weights = torch.arange(joined.numel(), dtype=torch.float32).view_as(joined)
    (joined * weights.contiguous(memory_format=torch.channels_last)).sum().backward()
    assert [g.is_contiguous(memory_format=torch.channels_last) for g in seen] == [True, True]
    for got, expected in zip(
        sorted(seen, key=lambda g: g.shape[1]), weights.split([3, 5], 1), strict=True
    ):
        assert torch.equal(got, expected)


def test_dense_cat_is_plain_cat_without_gradients():
    with torch.no_grad():
        joined = architecture._dense_cat((torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 2, 2)))
    assert joined.grad_fn is None and joined[:, :2].eq(1).all() and joined[:, 2].eq(0).all()


@pytest.mark.parametrize("native", [True, False])
def test_auto_channels_last_on_cpu_is_for_bf16_where_the_cpu_has_native_bf16(
    tmp_path, monkeypatch, native
):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert device.channels_last_auto(cpu, torch.bfloat16) is native
    assert device.channels_last_auto(cpu, None) is False  # fp32: not measured faster
    layouts = []
    build = trainer.AutoModel.from_config

    def spying_build(config):
        model = build(config)
        model.conv_first.register_forward_pre_hook(
            lambda m, x: layouts.append(x[0].is_contiguous())
        )
        return model

    monkeypatch.setattr(trainer.AutoModel, "from_config", spying_build)
    options = quick_options(precision="bf16", channels_last="auto")
    run(tmp_path, tiny_experiment(steps=1), options, tiny_store(tmp_path))
    assert layouts == [not native]  # channels-last input: not contiguous in NCHW
