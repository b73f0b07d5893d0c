"""Our model.pt (current and older format versions), file modes, and every kind of unreadable
weights file through every command that takes one: one line, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.export import export_weights
from claritycore.interop import load_weights
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import FORMAT_VERSION, WeightsError, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]


def tiny(scale: int = 4, upsampler: str = "nearest", **fields) -> torch.nn.Module:
    torch.manual_seed(scale)
    fields = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, **fields}
    config = AutoConfig.from_name("rrdbnet", scale=scale, upsampler=upsampler, **fields)
    return AutoModel.from_config(config).eval()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(1, 3, 7, 6)
    with torch.inference_mode():
        return a.config == b.config and torch.equal(a(x), b(x))


EXPERIMENT_TRAINING = {"steps": 3, "batch_size": 2}


def test_model_pt_stores_each_fact_once_and_round_trips(tmp_path) -> None:
    model = tiny(4, "pixelshuffle")
    experiment = {"preset": "x", "model": model.config.to_dict(), "training": EXPERIMENT_TRAINING}
    save_model(
        tmp_path / "model.pt", model, experiment=experiment, step=7, ema=True, precision="bf16"
    )
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(payload) == {
        "format", "format_version", "config", "preset", "training", "step", "ema", "precision",
        "state_dict",
    }  # fmt: skip
    assert payload["format_version"] == FORMAT_VERSION == 2
    for loader in (load_model, load_weights):
        loaded, meta = loader(tmp_path / "model.pt")
        assert same_outputs(loaded, model)
        assert (meta["step"], meta["ema"], meta["preset"], meta["scale"]) == (7, True, "x", 4)
        assert meta["precision"] == "bf16"
        assert meta["experiment"] == experiment and meta["model_type"] == "rrdbnet"


def test_save_model_refuses_an_experiment_of_another_model(tmp_path) -> None:
    other = tiny(2).config.to_dict()
    with pytest.raises(ValueError, match="is not"):
        save_model(tmp_path / "model.pt", tiny(4), experiment={"preset": "x", "model": other})


def test_format_version_1_model_pt_reads_unchanged(tmp_path) -> None:
    """The layout save_model wrote before version 2: scale, model_type and preset at the top
    level as well, the model config inside `experiment` as well."""
    model = tiny(2)
    config = model.config.to_dict()
    del config["x2_unshuffle"]  # version 1 configs predate the field
    experiment = {"preset": "rrdbnet-litex2", "model": config, "training": EXPERIMENT_TRAINING}
    torch.save(
        {
            "format": "claritycore", "format_version": 1, "model_type": "rrdbnet",
            "config": config, "scale": 2, "preset": "rrdbnet-litex2", "experiment": experiment,
            "step": 11, "ema": False, "state_dict": model.state_dict(),
        },
        tmp_path / "model.pt",
    )  # fmt: skip
    loaded, meta = load_weights(tmp_path / "model.pt")
    assert same_outputs(loaded, model)
    assert (meta["scale"], meta["preset"], meta["step"], meta["experiment"]) == (
        2, "rrdbnet-litex2", 11, experiment
    )  # fmt: skip


def test_legacy_torch_save_format_reads(tmp_path) -> None:
    model = tiny(4)
    path = tmp_path / "old.pth"
    torch.save({"params": model.state_dict()}, path, _use_new_zipfile_serialization=False)
    assert same_outputs(load_weights(path)[0], model)


def test_newer_format_version_is_refused(tmp_path) -> None:
    save_model(tmp_path / "model.pt", tiny())
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match="newer than this ClarityCore reads"):
        load_model(tmp_path / "model.pt")


def test_every_written_file_has_normal_permissions(tmp_path) -> None:
    pytest.importorskip("safetensors")
    pytest.importorskip("onnx")
    old = os.umask(0o022)
    try:
        model = tiny(4)
        save_model(tmp_path / "model.pt", model)
        for fmt, name in [
            ("basicsr", "m.pth"),
            ("safetensors", "m.safetensors"),
            ("onnx", "m.onnx"),
        ]:
            export_weights(model, tmp_path / name, fmt, claritycore_only=True)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["model.pt", "m.pth", "m.safetensors", "m.onnx"], 0o644)


# ---- Broken files -----------------------------------------------------------------------------


def _broken(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A broken weights file of kind `case` and a phrase its error message must contain."""
    good = tmp_path / "good.pt"
    save_model(good, tiny())
    if case == "random-bytes":
        path = tmp_path / "model.pt"
        path.write_bytes(bytes(range(7, 256)) * 40)
        return path, "not a PyTorch file"
    if case == "truncated-zip":
        path = tmp_path / "model.pt"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return path, "truncated or corrupt zip archive"
    if case == "empty-safetensors":
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"")
        return path, "is empty (0 bytes)"
    if case == "bad-safetensors-header":
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{not json")
        return path, "not a valid .safetensors file"
    if case == "unknown-layout":
        path = tmp_path / "model.pth"
        torch.save({"encoder.weight": torch.zeros(2, 2), "head.bias": torch.zeros(2)}, path)
        return path, "unknown layout (found encoder.weight, head.bias (2 keys))"
    if case == "unbuildable":
        # Four nearest ×2 steps: a ×16 RRDBNet, which ClarityCore has no config for.
        state = tiny(8).state_dict()
        state |= {
            "conv_up4.weight": state["conv_up3.weight"],
            "conv_up4.bias": state["conv_up3.bias"],
        }
        path = tmp_path / "x16.pth"
        torch.save(state, path)
        return path, "describes an RRDBNet ClarityCore cannot build: scale=16"
    if case == "pickled-object":
        path = tmp_path / "model.pt"
        torch.save({"params": tiny().state_dict(), "opt": Options()}, path)
        return path, "pickled Python objects"
    raise AssertionError(case)


class Options:
    """Stands for any pickled object (old checkpoints stored argparse/option objects)."""


CASES = [
    "random-bytes", "truncated-zip", "empty-safetensors", "bad-safetensors-header",
    "unknown-layout", "unbuildable", "pickled-object",
]  # fmt: skip


def _assert_one_line_error(output: str, code: int, phrase: str, path: Path) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert phrase in output and str(path) in output, output


def test_random_bytes_are_not_called_a_pickle(tmp_path) -> None:
    path, _ = _broken(tmp_path, "random-bytes")
    with pytest.raises(WeightsError) as error:
        load_weights(path)
    assert "pickle" not in str(error.value)


@pytest.mark.parametrize("case", CASES)
def test_broken_file_is_one_line_in_upscale_evaluate_export(tmp_path, case) -> None:
    path, phrase = _broken(tmp_path, case)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16), (90, 30, 200)).save(images / "a.png")
    commands = {
        "upscale": ["upscale", str(images), "-m", str(path), "-o", str(tmp_path / "out")],
        "evaluate": ["evaluate", "-m", str(path), "--data", str(images), "--out", str(tmp_path)],
        "export": ["export", "-m", str(path), "--format", "onnx", "-o", str(tmp_path / "m.onnx")],
    }
    for args in commands.values():
        result = CliRunner().invoke(app, args)
        _assert_one_line_error(result.output, result.exit_code, phrase, path)
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("case", ["truncated-zip", "unknown-layout"])
def test_broken_pretrained_is_one_line_in_train(tmp_path, case) -> None:
    path, phrase = _broken(tmp_path, case)
    data = tmp_path / "hr"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(data / f"{i}.png")
    args = [
        "rrdbnet-litex2", "--num-feat", "8", "--num-block", "1", "--num-grow-ch", "4",
        "--data", str(data), "--steps", "1", "--batch-size", "1", "--patch-size", "16",
        "--workers", "0", "--device", "cpu", "--output", str(tmp_path / "run"),
        "--pretrained", str(path),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    _assert_one_line_error(result.output, result.exit_code, phrase, path)


def test_broken_model_is_one_line_in_the_evaluate_stage(tmp_path) -> None:
    path, phrase = _broken(tmp_path, "truncated-zip")
    (tmp_path / "models").mkdir()
    path.rename(tmp_path / "models" / "model.pt")
    valid = tmp_path / "data" / "raw" / "sample" / "valid"
    valid.mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(valid / "a.png")
    (tmp_path / "params.yaml").write_text("data: {source: sample}\nevaluate: {max_images: 1}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "stages.evaluate"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    _assert_one_line_error(output, result.returncode, phrase, Path("models/model.pt"))
