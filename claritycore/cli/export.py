"""`claritycore export`: weights for other tools (BasicSR/Real-ESRGAN .pth, safetensors, ONNX)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from claritycore.cli.common import MODEL_HELP
from claritycore.errors import UserError, exit_on_user_error
from claritycore.export import EXPORT_FORMATS, export_weights
from claritycore.interop import load_weights


def export_command(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(..., "--format", help=f"One of {', '.join(EXPORT_FORMATS)}."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    claritycore_only: bool = typer.Option(
        False, help="Write a basicsr/safetensors file that other tools would load wrong."
    ),
) -> None:
    """Export weights for other tools: BasicSR/Real-ESRGAN .pth, safetensors or ONNX.

    A file that spandrel (chaiNNer) or BasicSR would load into a different model, or that
    neither loads, is refused with what to do instead; docs/interop.md's table lists
    every case."""
    console = Console()
    with exit_on_user_error("error"):
        if format not in EXPORT_FORMATS:
            raise UserError(
                f"--format {format!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}"
            )
        net, meta = load_weights(model)
        notes = export_weights(
            net, output, format, ema=bool(meta["ema"]), metadata=meta,
            claritycore_only=claritycore_only,
        )  # fmt: skip
    for note in notes:
        console.print(f"[yellow]note[/yellow] {escape(note)}", soft_wrap=True, highlight=False)
    console.print(f"wrote {output} ({format}, ×{meta['scale']}, ema={meta['ema']})")
