"""`claritycore evaluate`: PSNR/SSIM of a model beside the bicubic baseline."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from claritycore.cli.common import MODEL_HELP, PRECISION_HELP
from claritycore.config import EvalOptions
from claritycore.errors import exit_on_user_error
from claritycore.evaluation import evaluate
from claritycore.schema import parse


def evaluate_command(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="Folder of HR validation images."),
    max_images: int | None = typer.Option(None, help="Evaluate only the first N images."),
    tile: int = typer.Option(
        EvalOptions.tile, help="Tile side in LR pixels; 0 = whole image at once."
    ),
    tile_pad: int = typer.Option(EvalOptions.tile_pad, help="Context pixels around each tile."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, …"),
    precision: str = typer.Option(EvalOptions.precision, help=PRECISION_HELP),
    out: Path = typer.Option(Path("eval"), help="Folder for eval.json, per_image.csv, crops."),
) -> None:
    """PSNR/SSIM (Y and RGB) of a model against the bicubic baseline, as papers report them."""
    console = Console()
    with exit_on_user_error("error"):
        options = parse(
            EvalOptions,
            {
                "tile": tile,
                "tile_pad": tile_pad,
                "max_images": max_images,
                "device": device,
                "precision": precision,
            },
            "options",
        )
        evaluate(model, data, out_dir=out, options=options, console=console)
    console.print(f"wrote {out / 'eval.json'}, {out / 'per_image.csv'}, {out / 'comparisons'}/")
