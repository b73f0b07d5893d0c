"""`claritycore export`: weights for other tools (BasicSR/Real-ESRGAN .pth, safetensors, ONNX)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from claritycore.cli.common import MODEL_HELP, load_model
from claritycore.errors import UserError, exit_on_user_error
from claritycore.weights import EXPORT_FORMATS, export_weights


def export_command(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(..., "--format", help=f"One of {', '.join(EXPORT_FORMATS)}."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
) -> None:
    """Export weights for other tools: BasicSR/Real-ESRGAN .pth, safetensors or ONNX."""
    console = Console()
    with exit_on_user_error("error"):
        net, meta = load_model(model)
    if format == "basicsr" and net.config.upsampler != "nearest":
        console.print(
            "[yellow]note[/yellow] pixel-shuffle upsampler: Real-ESRGAN/spandrel expect "
            "conv_up (upsampler=nearest); ClarityCore loads this file either way"
        )
    with exit_on_user_error("error"):
        try:
            export_weights(net, output, format, ema=bool(meta["ema"]), metadata=meta)
        except (ValueError, ImportError, RuntimeError) as error:
            raise UserError(str(error)) from None
    console.print(f"wrote {output} ({format}, ×{meta['scale']}, ema={meta['ema']})")
