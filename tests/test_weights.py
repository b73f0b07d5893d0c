"""Weights across the ESRGAN ecosystem: foreign layouts load with the right config and give
the same outputs; pickles are refused; exports round-trip."""

from __future__ import annotations

import collections
import re

import pytest
import torch

from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import export_weights, load_weights, save_model


def tiny(scale: int = 4, upsampler: str = "nearest", **fields) -> torch.nn.Module:
    torch.manual_seed(scale)
    fields = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4, **fields}
    config = AutoConfig.from_name("rrdbnet", scale=scale, upsampler=upsampler, **fields)
    return AutoModel.from_config(config).eval()


def assert_same_model(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    assert loaded.config == original.config
    x = torch.rand(1, original.config.in_channels, 9, 11)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=0)


def esrgan_names(state: dict) -> dict:
    """Our names -> the original ESRGAN repository's RRDBNet_arch.py names."""
    renames = [
        (r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."),
        (r"^conv_body\.", "trunk_conv."),
        (r"^conv_up(\d)\.", r"upconv\1."),
        (r"^conv_hr\.", "HRconv."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, new in renames:
            key = re.sub(pattern, new, key)
        out[key] = value
    return out


def esrgan_old_names(state: dict, num_block: int, num_up: int) -> dict:
    """Our names -> ESRGAN's first `model.N.sub…` Sequential layout."""
    top = {"conv_first": 0, "conv_hr": 3 * num_up + 2, "conv_last": 3 * num_up + 4}
    top |= {f"conv_up{i}": 3 * i for i in range(1, num_up + 1)}
    out = {}
    for key, value in state.items():
        name, kind = key.rsplit(".", 1)
        if m := re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)$", name):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{kind}"] = value
        elif name == "conv_body":
            out[f"model.1.sub.{num_block}.{kind}"] = value
        else:
            out[f"model.{top[name]}.{kind}"] = value
    return out


def test_own_model_pt(tmp_path) -> None:
    model = tiny(4, "pixelshuffle")
    save_model(tmp_path / "model.pt", model, experiment={"preset": "x"}, step=7, ema=True)
    loaded, meta = load_weights(tmp_path / "model.pt")
    assert_same_model(loaded, model)
    assert meta["step"] == 7 and meta["ema"] is True and meta["preset"] == "x"


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(2, "pixelshuffle"), (3, "pixelshuffle"), (8, "pixelshuffle")]
)
def test_plain_state_dict_pixelshuffle_scales(tmp_path, scale, upsampler) -> None:
    model = tiny(scale, upsampler, num_block=3, num_grow_ch=6)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    loaded, meta = load_weights(tmp_path / "w.pth")
    assert_same_model(loaded, model)
    assert meta["scale"] == scale


@pytest.mark.parametrize("key", ["params_ema", "params"])
def test_basicsr_file_with_module_prefix(tmp_path, key) -> None:
    model = tiny(4)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    payload = {key: state}
    if key == "params_ema":
        # Real-ESRGAN files carry both; the EMA weights must win.
        payload["params"] = {k: torch.zeros_like(v) for k, v in state.items()}
    torch.save(payload, tmp_path / "RealESRGAN_x4plus.pth")
    loaded, meta = load_weights(tmp_path / "RealESRGAN_x4plus.pth")
    assert_same_model(loaded, model)
    assert meta["ema"] is (key == "params_ema") and meta["format"] == "basicsr"


def test_real_esrgan_x2_unshuffle_layout(tmp_path) -> None:
    model = tiny(2)
    assert model.conv_first.weight.shape[1] == 12  # 3 channels × 2×2 unshuffle
    torch.save({"params_ema": model.state_dict()}, tmp_path / "RealESRGAN_x2plus.pth")
    loaded, _ = load_weights(tmp_path / "RealESRGAN_x2plus.pth")
    assert loaded.config.scale == 2 and loaded.config.upsampler == "nearest"
    assert_same_model(loaded, model)


def test_x8_nearest_has_three_up_convs(tmp_path) -> None:
    model = tiny(8, num_block=1)
    torch.save({"params": model.state_dict()}, tmp_path / "x8.pth")
    loaded, _ = load_weights(tmp_path / "x8.pth")
    assert loaded.config.scale == 8 and hasattr(loaded, "conv_up3")
    assert_same_model(loaded, model)


@pytest.mark.parametrize("scale", [4, 8])
def test_original_esrgan_names(tmp_path, scale) -> None:
    model = tiny(scale, num_block=3)
    state = esrgan_names(model.state_dict())
    assert "RRDB_trunk.2.RDB3.conv5.weight" in state and "HRconv.bias" in state
    torch.save(state, tmp_path / "RRDB_ESRGAN_x4.pth")
    loaded, meta = load_weights(tmp_path / "RRDB_ESRGAN_x4.pth")
    assert meta["format"] == "esrgan" and loaded.config.num_block == 3
    assert_same_model(loaded, model)


@pytest.mark.parametrize("scale", [4, 8])
def test_old_esrgan_layout(tmp_path, scale) -> None:
    model = tiny(scale, num_block=2, num_grow_ch=5)
    num_up = {4: 2, 8: 3}[scale]
    state = esrgan_old_names(model.state_dict(), num_block=2, num_up=num_up)
    assert "model.1.sub.1.RDB2.conv3.0.weight" in state and "model.1.sub.2.weight" in state
    # torch.save keeps insertion order: shuffle it to show the mapping does not rely on it.
    state = collections.OrderedDict(sorted(state.items(), reverse=True))
    torch.save(state, tmp_path / "RRDB_ESRGAN_x4_old_arch.pth")
    loaded, meta = load_weights(tmp_path / "RRDB_ESRGAN_x4_old_arch.pth")
    assert meta["format"] == "esrgan-old"
    assert loaded.config.num_grow_ch == 5 and loaded.config.scale == scale
    assert_same_model(loaded, model)


class Options:
    """Stands for any pickled object (old checkpoints stored argparse/option objects)."""


def test_pickled_object_is_refused(tmp_path) -> None:
    torch.save({"params": tiny().state_dict(), "opt": Options()}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"pickled Python objects \(.*Options\)"):
        load_weights(tmp_path / "x.pt")


def test_unrelated_state_dict_is_explained(tmp_path) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"missing conv_first\.weight"):
        load_weights(tmp_path / "other.pth")


@pytest.mark.parametrize("ema", [True, False])
def test_export_basicsr_round_trip(tmp_path, ema) -> None:
    model = tiny(4)
    export_weights(model, tmp_path / "x4.pth", "basicsr", ema=ema)
    payload = torch.load(tmp_path / "x4.pth", weights_only=True)
    assert list(payload) == ["params_ema" if ema else "params"]
    loaded, meta = load_weights(tmp_path / "x4.pth")
    assert meta["ema"] is ema
    assert_same_model(loaded, model)


def test_export_safetensors_round_trip(tmp_path) -> None:
    pytest.importorskip("safetensors")
    model = tiny(3, "pixelshuffle")
    export_weights(model, tmp_path / "x3.safetensors", "safetensors", metadata={"step": 5})
    loaded, meta = load_weights(tmp_path / "x3.safetensors")
    assert meta["step"] == 5 and meta["scale"] == 3
    assert_same_model(loaded, model)


def test_foreign_safetensors_is_inferred(tmp_path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    model = tiny(2)
    safetensors.save_file(model.state_dict(), str(tmp_path / "x2.safetensors"))
    loaded, _ = load_weights(tmp_path / "x2.safetensors")
    assert_same_model(loaded, model)


@pytest.mark.parametrize(("scale", "upsampler"), [(4, "pixelshuffle"), (2, "nearest")])
def test_export_onnx_matches_torch(tmp_path, scale, upsampler) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = tiny(scale, upsampler, num_block=1)
    export_weights(model, tmp_path / "m.onnx", "onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 15, 22)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.inference_mode():
        expected = model(x).numpy()
    assert got.shape == (2, 3, 15 * scale, 22 * scale)
    assert abs(got - expected).max() < 1e-3


def test_unknown_export_format(tmp_path) -> None:
    with pytest.raises(ValueError, match="basicsr, safetensors, onnx"):
        export_weights(tiny(), tmp_path / "m.bin", "tflite")
