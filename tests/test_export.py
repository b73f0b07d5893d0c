"""Exports: what spandrel 0.4.2 and BasicSR 1.4.2 computed from them (golden outputs made by
those tools: tests/fixtures/README.md); refusals of what a tool would load wrong, as measured;
docs/interop.md's table is the measured one; round trips of every format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.export import ExportRefused, check_export, export_weights, tool_support
from claritycore.interop import load_weights
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import save_model
from tests.test_interop import assert_same_model, formula_state, tiny

FIXTURES = Path(__file__).parent / "fixtures"
INTEROP_PAGE = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
MEASURED = json.loads((FIXTURES / "interop_measured.json").read_text())

GOLDEN = np.load(FIXTURES / "tools_golden.npz")


@pytest.mark.parametrize("tag", ["x2", "x2plain", "x4", "x8"])
def test_exports_compute_what_spandrel_and_basicsr_computed(tmp_path, tag) -> None:
    fields = {"x2": {"scale": 2}, "x2plain": {"scale": 2, "x2_unshuffle": False}}
    fields |= {"x4": {"scale": 4}, "x8": {"scale": 8}}
    config = AutoConfig.from_name(
        "rrdbnet", num_feat=4, num_block=1, num_grow_ch=32, upsampler="nearest", **fields[tag]
    )
    model = AutoModel.from_config(config).eval()
    model.load_state_dict(formula_state({k: v.shape for k, v in model.state_dict().items()}, 0))
    export_weights(model, tmp_path / "m.pth", "basicsr")
    loaded, _ = load_weights(tmp_path / "m.pth")
    x = torch.from_numpy(GOLDEN["x"])
    x = x[:, :, :2, :2] if tag == "x8" else x
    with torch.inference_mode():
        got = loaded(x).numpy()
    for tool in ("spandrel", "basicsr"):
        if f"{tool}_{tag}" in GOLDEN:
            np.testing.assert_allclose(got, GOLDEN[f"{tool}_{tag}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("row", MEASURED, ids=lambda r: f"{r['case']}-{r['format']}")
def test_tool_support_is_what_was_measured(row) -> None:
    config = AutoConfig.from_dict(row["config"])
    outcomes = [v.outcome for v in tool_support(config, row["format"])]
    assert outcomes == [row["spandrel"][0], row["basicsr"][0]]


@pytest.mark.parametrize("row", MEASURED, ids=lambda r: f"{r['case']}-{r['format']}")
def test_export_refuses_what_a_tool_loads_wrong_or_none_loads(row) -> None:
    config = AutoConfig.from_dict(row["config"])
    outcomes = {row["spandrel"][0], row["basicsr"][0]}
    if "wrong" in outcomes or "loads" not in outcomes:
        with pytest.raises(ExportRefused) as error:
            check_export(config, row["format"])
        message = str(error.value)
        assert "\n" not in message and "--format onnx" in message
        assert "--claritycore-only" in message
    else:
        check_export(config, row["format"])
    check_export(config, row["format"], claritycore_only=True)


def _cell(measured: list[str]) -> str:
    outcome, detail = measured
    if outcome == "wrong":
        as_scale = re.search(r"loads as x(\d+)", detail).group(1)
        return f"**loads wrong** (as ×{as_scale})"
    return {"loads": "loads", "refused": "refused (error)"}[outcome]


def interop_table() -> str:
    """docs/interop.md's table, from the measurements and `check_export`."""
    lines = [
        "| preset / config | format | spandrel 0.4.2 (chaiNNer) | BasicSR 1.4.2 RRDBNet "
        "(Real-ESRGAN) | `claritycore export` |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in MEASURED:
        try:
            notes = check_export(AutoConfig.from_dict(row["config"]), row["format"])
            export = "writes, with a note" if notes else "writes"
        except ExportRefused:
            export = "refuses (`--claritycore-only` forces)"
        cells = [row["case"], row["format"], _cell(row["spandrel"]), _cell(row["basicsr"]), export]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_interop_page_table_is_the_measured_one() -> None:
    markers = r"<!-- interop-table[^>]*-->\n(.*?)\n<!-- /interop-table -->"
    match = re.search(markers, INTEROP_PAGE, re.S)
    assert match, "docs/interop.md lost its interop-table markers"
    assert match.group(1) == interop_table(), "docs/interop.md's interop table is stale"


# ---- Exports ----------------------------------------------------------------------------------


def test_export_cli_refuses_a_file_spandrel_would_load_wrong(tmp_path) -> None:
    save_model(tmp_path / "model.pt", tiny(4, "pixelshuffle", num_grow_ch=32, num_block=1))
    args = ["export", "-m", str(tmp_path / "model.pt"), "--format", "basicsr"]
    refused = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "x4.pth")])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "spandrel (chaiNNer) loads it as a 1× model" in refused.output
    assert not (tmp_path / "x4.pth").exists()
    forced = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "x4.pth"), "--claritycore-only"])
    assert forced.exit_code == 0, forced.output
    assert "note" in forced.output and "1× model" in forced.output
    assert load_weights(tmp_path / "x4.pth")[0].config.upsampler == "pixelshuffle"


def test_export_cli_says_which_tool_refuses_x8_nearest(tmp_path) -> None:
    save_model(tmp_path / "model.pt", tiny(8, num_grow_ch=32, num_block=1), ema=True)
    target = tmp_path / "x8.pth"
    args = ["export", "-m", str(tmp_path / "model.pt"), "--format", "basicsr", "-o", str(target)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "spandrel (chaiNNer) reads it as ×8 ESRGAN" in result.output
    assert "BasicSR/Real-ESRGAN RRDBNet refuses this file: has no conv_up3" in result.output
    assert list(torch.load(target, weights_only=True)) == ["params_ema"]


@pytest.mark.parametrize("ema", [True, False])
def test_export_basicsr_round_trip(tmp_path, ema) -> None:
    model = tiny(4, num_grow_ch=32)
    export_weights(model, tmp_path / "x4.pth", "basicsr", ema=ema)
    payload = torch.load(tmp_path / "x4.pth", weights_only=True)
    assert list(payload) == ["params_ema" if ema else "params"]
    loaded, meta = load_weights(tmp_path / "x4.pth")
    assert meta["ema"] is ema
    assert_same_model(loaded, model)


def test_export_safetensors_round_trip(tmp_path) -> None:
    pytest.importorskip("safetensors")
    model = tiny(3, "pixelshuffle")
    path = tmp_path / "x3.safetensors"
    metadata = {"step": 5, "precision": "bf16"}
    export_weights(model, path, "safetensors", metadata=metadata, claritycore_only=True)
    loaded, meta = load_weights(path)
    assert (meta["step"], meta["scale"], meta["precision"]) == (5, 3, "bf16")
    assert_same_model(loaded, model)


def test_foreign_safetensors_is_inferred(tmp_path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    model = tiny(2)
    safetensors.save_file(model.state_dict(), str(tmp_path / "x2.safetensors"))
    loaded, _ = load_weights(tmp_path / "x2.safetensors")
    assert_same_model(loaded, model)


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "pixelshuffle"), (2, "nearest"), (3, "nearest_noact")]
)
def test_export_onnx_matches_torch(tmp_path, scale, upsampler) -> None:
    """Every config exports to ONNX, and onnxruntime computes what PyTorch does."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = tiny(scale, upsampler, num_block=1)
    assert export_weights(model, tmp_path / "m.onnx", "onnx") == []
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


def test_export_cli_unknown_format_is_one_line(tmp_path) -> None:
    save_model(tmp_path / "model.pt", tiny())
    args = ["export", "-m", str(tmp_path / "model.pt"), "--format", "tflite", "-o", "m.tfl"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "choose one of basicsr, safetensors, onnx" in result.output
