"""`python -m stages.extract --scale S`: data/stores/hr -> data/stores/x{S}.

Packs the ×S LR when build/stores.yaml asks for it (the experiment reads it, or `data.scales`
lists S), else only the index naming the HR images (a few KB). Reads params.yaml
`data.source` (a paired source's LR files) and `extract.workers`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, ExtractOptions, load_params, read_section
from claritycore.data.packing import extract_lr_store
from claritycore.data.store import pipeline_hr_store, pipeline_store, reads_lr
from claritycore.errors import exit_on_user_error

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    scale: int = typer.Option(..., help="Upscaling factor to extract for: 2, 3, 4 or 8."),
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    stores: Path = typer.Option(Path("build/stores.yaml"), help="resolve's LR store plan."),
) -> None:
    """Pack one scale's LR of the HR store (or its index alone, when nothing reads it)."""
    with exit_on_user_error("extract failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "extract", ExtractOptions)
        extract_lr_store(
            pipeline_hr_store(),
            pipeline_store(scale),
            scale,
            pairs_from=Path("data/raw") / data.source / "train",
            pack_lr=reads_lr(scale, stores),
            workers=options.workers,
        )


if __name__ == "__main__":
    app()
