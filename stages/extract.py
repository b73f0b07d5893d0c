"""`python -m stages.extract --scale S`: data/raw/<data.source>/train -> data/stores/x{S}.

Reads params.yaml `data.source` and `extract.workers`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, ExtractOptions, load_params, read_section
from claritycore.data.store import extract_store, pipeline_store
from claritycore.errors import exit_on_user_error

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    scale: int = typer.Option(..., help="Upscaling factor to extract for: 2, 3, 4 or 8."),
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
) -> None:
    """Pack the training images with their bicubic LR for one scale."""
    with exit_on_user_error("extract failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "extract", ExtractOptions)
        extract_store(
            Path("data/raw") / data.source / "train",
            pipeline_store(scale),
            scale,
            workers=options.workers,
        )


if __name__ == "__main__":
    app()
