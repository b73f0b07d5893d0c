"""Weights across the ESRGAN family: every layout loads with the right config and computes what
the tool that wrote it computed (claritycore 0.0.5's golden outputs come from the 0.0.5 package
itself: tests/fixtures/README.md)."""

from __future__ import annotations

import collections
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.interop import load_weights
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import WeightsError

FIXTURES = Path(__file__).parent / "fixtures"


def formula_state(shapes: dict, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights, no RNG: the fixtures' tools computed with these same tensors."""
    out = {}
    for i, key in enumerate(sorted(shapes)):
        shape = tuple(shapes[key])
        n = math.prod(shape)
        wave = torch.sin(torch.arange(n, dtype=torch.float64) * 0.618 + 1.7 * i + seed)
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 10
        out[key] = (wave / math.sqrt(fan_in)).reshape(shape).float()
    return out


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


# ---- Layouts of the ESRGAN family --------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 8])
def test_plain_state_dict_pixelshuffle_scales(tmp_path, scale) -> None:
    model = tiny(scale, "pixelshuffle", num_block=3, num_grow_ch=6)
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
    assert loaded.config.x2_unshuffle and loaded.config.upsampler == "nearest"
    assert_same_model(loaded, model)


def test_x8_nearest_has_three_up_convs(tmp_path) -> None:
    model = tiny(8, num_block=1)
    torch.save({"params": model.state_dict()}, tmp_path / "x8.pth")
    loaded, _ = load_weights(tmp_path / "x8.pth")
    assert loaded.config.scale == 8 and hasattr(loaded, "conv_up3")
    assert_same_model(loaded, model)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_original_esrgan_names(tmp_path, scale) -> None:
    model = tiny(scale, num_block=3, x2_unshuffle=scale != 2)
    state = esrgan_names(model.state_dict())
    assert "RRDB_trunk.2.RDB3.conv5.weight" in state and "HRconv.bias" in state
    torch.save(state, tmp_path / "RRDB_ESRGAN.pth")
    loaded, meta = load_weights(tmp_path / "RRDB_ESRGAN.pth")
    assert meta["format"] == "esrgan" and loaded.config.num_block == 3
    assert_same_model(loaded, model)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_old_esrgan_layout(tmp_path, scale) -> None:
    model = tiny(scale, num_block=2, num_grow_ch=5, x2_unshuffle=scale != 2)
    num_up = {2: 1, 4: 2, 8: 3}[scale]
    state = esrgan_old_names(model.state_dict(), num_block=2, num_up=num_up)
    assert "model.1.sub.1.RDB2.conv3.0.weight" in state and "model.1.sub.2.weight" in state
    # torch.save keeps insertion order: shuffle it to show the mapping does not rely on it.
    state = collections.OrderedDict(sorted(state.items(), reverse=True))
    torch.save(state, tmp_path / "RRDB_ESRGAN_old_arch.pth")
    loaded, meta = load_weights(tmp_path / "RRDB_ESRGAN_old_arch.pth")
    assert meta["format"] == "esrgan-old"
    assert loaded.config.num_grow_ch == 5 and loaded.config.scale == scale
    assert_same_model(loaded, model)


@pytest.mark.parametrize("names", ["ours", "esrgan", "esrgan-old"])
def test_plain_x2_esrgan_safetensors(tmp_path, names) -> None:
    """The original ESRGAN's ×2: 3-channel input and one nearest + conv step."""
    safetensors = pytest.importorskip("safetensors.torch")
    model = tiny(2, x2_unshuffle=False)
    assert model.conv_first.weight.shape[1] == 3 and not hasattr(model, "conv_up2")
    state = model.state_dict()
    state = {"ours": state, "esrgan": esrgan_names(state)}.get(names) or esrgan_old_names(
        state, num_block=2, num_up=1
    )
    safetensors.save_file(state, str(tmp_path / "2x_ESRGAN.safetensors"))
    loaded, _ = load_weights(tmp_path / "2x_ESRGAN.safetensors")
    assert loaded.config.scale == 2 and not loaded.config.x2_unshuffle
    assert_same_model(loaded, model)
    x = torch.rand(1, 3, 5, 7)
    with torch.inference_mode():
        assert loaded(x).shape == (1, 3, 10, 14)


def test_unrelated_state_dict_lists_its_keys(tmp_path) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match=r"unknown layout \(found fc\.weight \(1 keys\)\)"):
        load_weights(tmp_path / "other.pth")


def test_tensors_that_do_not_fit_are_one_line(tmp_path) -> None:
    state = tiny(4).state_dict()
    state["body.0.rdb1.conv2.weight"] = torch.zeros(1, 1, 3, 3)
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(WeightsError, match=r"wrong shape body\.0\.rdb1\.conv2\.weight") as error:
        load_weights(tmp_path / "damaged.pth")
    assert "\n" not in str(error.value)


# ---- claritycore 0.0.5 ----------------------------------------------------------------------

V005 = np.load(FIXTURES / "claritycore005_reference.npz")


def v005_weights(scale: int) -> tuple[dict, dict, dict]:
    """The recorded layout of a 0.0.5 model and its net / net_ema tensors (formula weights)."""
    layout = json.loads(str(V005[f"layout_x{scale}"]))
    net, ema = formula_state(layout["shapes"], 0), formula_state(layout["shapes"], 1)
    return layout, net, ema


def write_v005_folder(folder: Path, scale: int, *, with_ema: bool = True) -> Path:
    """What 0.0.5's `save_pretrained(folder)` wrote: model.pt {net, net_ema} + config.json."""
    layout, net, ema = v005_weights(scale)
    assert list(layout["model_pt_keys"]) == ["net", "net_ema"]
    payload = {"net": {k: net[k] for k in layout["model_pt_keys"]["net"]}}
    if with_ema:
        payload["net_ema"] = {k: ema[k] for k in layout["model_pt_keys"]["net_ema"]}
    folder.mkdir()
    torch.save(payload, folder / "model.pt")
    (folder / "config.json").write_text(layout["config_json"])
    return folder


def v005_input(scale: int) -> torch.Tensor:
    x = torch.from_numpy(V005["x"])
    return x[:, :, :2, :2] if scale == 8 else x


@pytest.mark.parametrize("scale", [3, 4, 8])
def test_claritycore_005_folder_computes_what_005_computed(tmp_path, scale) -> None:
    folder = write_v005_folder(tmp_path / "run", scale)
    for path in (folder, folder / "model.pt"):
        model, meta = load_weights(path)
        assert model.config.upsampler == "nearest_noact" and model.config.scale == scale
        assert meta["ema"] is True and meta["format"] == "claritycore-0.0.5"
        with torch.inference_mode():
            got = model(v005_input(scale)).numpy()
        np.testing.assert_allclose(got, V005[f"ema_x{scale}"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [4, 8])
def test_claritycore_005_training_checkpoint_prefers_ema(tmp_path, scale) -> None:
    layout, net, ema = v005_weights(scale)
    weights = {"net.": net, "net_ema.": ema}
    state = {k: weights[k[: k.index(".") + 1]][k.split(".", 1)[1]] for k in
             layout["checkpoint_model_state_dict_keys"]}  # fmt: skip
    payload = {
        "global_step": 5000, "current_epoch": 3, "model_state_dict": state,
        "best_metric": 27.5, "optimizer_state_dict": {"state": {}, "param_groups": []},
    }  # fmt: skip
    torch.save(payload, tmp_path / "best.pt")
    model, meta = load_weights(tmp_path / "best.pt")
    assert meta["ema"] is True
    with torch.inference_mode():
        got = model(v005_input(scale)).numpy()
    np.testing.assert_allclose(got, V005[f"ema_x{scale}"], rtol=0, atol=1e-6)


def test_claritycore_005_without_ema_uses_net(tmp_path) -> None:
    folder = write_v005_folder(tmp_path / "run", 4, with_ema=False)
    model, meta = load_weights(folder)
    assert meta["ema"] is False
    with torch.inference_mode():
        got = model(v005_input(4)).numpy()
    np.testing.assert_allclose(got, V005["net_x4"], rtol=0, atol=1e-6)
    assert not np.allclose(V005["net_x4"], V005["ema_x4"])


def test_claritycore_005_x2_is_refused_with_the_reason(tmp_path) -> None:
    # 0.0.5's own ×2 output had the input's size: the fixture shows it.
    assert V005["ema_x2"].shape == V005["x"].shape
    folder = write_v005_folder(tmp_path / "run", 2)
    args = ["export", "-m", str(folder), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "claritycore 0.0.5 ×2" in result.output and "did not upscale" in result.output


def test_claritycore_005_config_json_must_match_the_tensors(tmp_path) -> None:
    folder = write_v005_folder(tmp_path / "run", 4)
    (folder / "config.json").write_text(json.loads(str(V005["layout_x8"]))["config_json"])
    with pytest.raises(WeightsError, match="says scale=8 but the tensors"):
        load_weights(folder)


@pytest.mark.parametrize(
    "fields",
    [{"scale": 3, "upsampler": "nearest_noact"}, {"scale": 8, "upsampler": "nearest_noact"},
     {"scale": 2, "upsampler": "nearest", "x2_unshuffle": False}],
)  # fmt: skip
def test_parameter_count_of_the_new_upsampler_configs(fields) -> None:
    config = AutoConfig.from_name("rrdbnet", num_feat=8, num_block=1, num_grow_ch=4, **fields)
    model = AutoModel.from_config(config)
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())


def test_x2_unshuffle_false_only_where_it_means_something() -> None:
    with pytest.raises(ValueError, match="x2_unshuffle=False applies only"):
        AutoConfig.from_name("rrdbnet", scale=4, upsampler="nearest", x2_unshuffle=False)
    with pytest.raises(ValueError, match="has no ×2"):
        AutoConfig.from_name("rrdbnet", scale=2, upsampler="nearest_noact")
