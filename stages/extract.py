"""`python -m stages.extract --scale S`: data/raw/<data.source>/train -> data/patches/x{S}.

Reads params.yaml `data.source` and `extract.workers`.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from claritycore.config import ConfigError
from claritycore.data.images import ImageReadError
from claritycore.data.patches import ExtractParams, console, extract_store

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    scale: int = typer.Option(..., help="Upscaling factor to extract for: 2, 3, 4 or 8."),
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
) -> None:
    """Pack the training images with their bicubic LR for one scale."""
    settings = yaml.safe_load(params.read_text())
    try:
        options = ExtractParams.from_dict(settings["extract"])
        extract_store(
            Path("data/raw") / settings["data"]["source"] / "train",
            Path("data/patches") / f"x{scale}",
            scale,
            workers=options.workers,
        )
    except (ConfigError, ImageReadError, OSError, ValueError) as err:
        console.print(f"[red]extract failed:[/red] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


if __name__ == "__main__":
    app()
