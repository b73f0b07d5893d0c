"""Exports for other tools, and which tools load which export correctly.

`TOOL_SUPPORT` answers, for a model config and an export format, what each tool does with the
file: loads it (and computes what ClarityCore computes), refuses it with an error, or loads
it without error into something else. The answers were measured with spandrel 0.4.2 and
BasicSR 1.4.2's `RRDBNet` (tests/fixtures/README.md has the commands), and an export that
some tool would load wrong, or that no tool loads, is refused unless the caller asks for a
ClarityCore-only file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import torch
from torch import nn

from claritycore.errors import ConfigError, UserError
from claritycore.interop import optional_import
from claritycore.models import BaseConfig, RRDBNetConfig
from claritycore.weights import FORMAT, atomic_torch_save, unwrap, write_atomic

EXPORT_FORMATS = ("basicsr", "safetensors", "onnx")
SPANDREL = "spandrel (chaiNNer)"
BASICSR = "BasicSR/Real-ESRGAN RRDBNet"
ONNXRUNTIME = "onnxruntime (chaiNNer)"
Outcome = Literal["loads", "refused", "wrong"]
INSTEAD = (
    "instead use --format onnx (chaiNNer and onnxruntime run it), or train with "
    "upsampler=nearest and num_grow_ch=32 for files BasicSR/Real-ESRGAN/chaiNNer read "
    "natively; --claritycore-only writes the file anyway, for ClarityCore alone"
)


@dataclass(frozen=True)
class ToolVerdict:
    tool: str
    outcome: Outcome
    why: str


class ExportMismatchError(UserError, RuntimeError):
    """An exported file whose output differs from the PyTorch model's."""


class ExportRefused(UserError, ValueError):
    """The export would load wrong in a tool people use, or in none at all."""


def _spandrel(config: RRDBNetConfig) -> ToolVerdict:
    # spandrel builds growth-32 dense blocks whatever the file holds, so those fail first.
    if config.num_grow_ch != 32:
        return ToolVerdict(SPANDREL, "refused", f"assumes growth 32, not {config.num_grow_ch}")
    if config.upsampler != "nearest":
        return ToolVerdict(
            SPANDREL, "wrong", "loads it as a 1× model (its upsample.* weights are dropped)"
        )
    return ToolVerdict(SPANDREL, "loads", f"reads it as ×{config.scale} ESRGAN")


def _basicsr(config: RRDBNetConfig, format: str) -> ToolVerdict:
    if format != "basicsr":
        return ToolVerdict(BASICSR, "refused", "reads params/params_ema .pth files only")
    if config.upsampler != "nearest":
        return ToolVerdict(BASICSR, "refused", "needs conv_up1/conv_up2, which these lack")
    if config.scale == 8:
        return ToolVerdict(BASICSR, "refused", "has no conv_up3, so no ×8")
    if not config.x2_unshuffle:
        return ToolVerdict(BASICSR, "refused", "its ×2 is Real-ESRGAN's pixel-unshuffled one")
    return ToolVerdict(
        BASICSR,
        "loads",
        f"reads it as RRDBNet(num_in_ch={config.in_channels}, num_out_ch={config.out_channels}, "
        f"scale={config.scale}, num_feat={config.num_feat}, num_block={config.num_block}, "
        f"num_grow_ch={config.num_grow_ch})",
    )


def tool_support(config: RRDBNetConfig, format: str) -> list[ToolVerdict]:
    """What each tool people use does with `config` exported as `format`."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(
            f"format {format!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if format == "onnx":
        return [ToolVerdict(ONNXRUNTIME, "loads", "the traced graph, dynamic sizes")]
    return [_spandrel(config), _basicsr(config, format)]


def check_export(
    config: RRDBNetConfig, format: str, *, claritycore_only: bool = False
) -> list[str]:
    """What each tool does with the file, when some tool does not load it right (empty when
    all do); raises ExportRefused when a tool would load it wrong or none loads it, unless
    `claritycore_only`."""
    verdicts = tool_support(config, format)
    said = {"loads": "", "refused": "refuses this file: ", "wrong": ""}
    notes = [f"{v.tool} {said[v.outcome]}{v.why}" for v in verdicts]
    outcomes = {v.outcome for v in verdicts}
    if outcomes == {"loads"}:
        return []
    if claritycore_only or outcomes == {"loads", "refused"}:
        return notes
    what = f"{config.upsampler} ×{config.scale} growth-{config.num_grow_ch} weights as {format}"
    problems = [n for n, v in zip(notes, verdicts, strict=True) if v.outcome != "loads"]
    raise ExportRefused(f"refusing to write {what}: {'; '.join(problems)}; {INSTEAD}")


def export_weights(
    model: nn.Module,
    path: Path,
    format: str,
    *,
    ema: bool = False,
    metadata: dict | None = None,
    claritycore_only: bool = False,
) -> list[str]:
    """Write `model` as `basicsr` (a `params_ema`/`params` dict), `safetensors` or `onnx`;
    returns notes on the tools that will refuse the file (`check_export`).

    ONNX has dynamic batch, height and width and is checked against PyTorch with onnxruntime
    (within 1e-3) when onnxruntime is installed. `ema` picks BasicSR's key.
    """
    model = unwrap(model).cpu().eval()
    config = cast(RRDBNetConfig, model.config)  # RRDBNet: the one model there is to export
    notes = check_export(config, format, claritycore_only=claritycore_only)
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if format == "basicsr":
        atomic_torch_save({"params_ema" if ema else "params": state}, path)
    elif format == "safetensors":
        # safetensors metadata is str -> str: the config goes in as JSON so it loads exactly.
        info = {"format": FORMAT, "config": json.dumps(config.to_dict())}
        kept = ("preset", "step", "precision")
        info |= {k: str(v) for k, v in (metadata or {}).items() if k in kept and v}
        info["ema"] = "true" if ema else "false"
        save_file = optional_import("safetensors.torch").save_file
        write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata=info))
    else:
        write_atomic(path, lambda tmp: _export_onnx(model, tmp))
    return notes


def _export_onnx(model: nn.Module, path: Path) -> None:
    optional_import("onnx")
    in_channels = cast(BaseConfig, model.config).in_channels
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter warns about traced shape arithmetic, which is what we want.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(1, in_channels, 32, 32),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
            opset_version=17,
        )
    try:
        import onnxruntime
    except ImportError:
        return
    # Odd sizes unlike the traced 32×32 check the dynamic axes as well as the values.
    x = torch.rand(1, in_channels, 19, 27)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.inference_mode():
        expected = model(x).numpy()
    error = float(abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if error > 1e-3:
        raise ExportMismatchError(
            f"ONNX export of {path} differs from PyTorch by {error:.3g} (> 1e-3)"
        )
