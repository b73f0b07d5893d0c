"""`python -m stages.extract_hr`: data/raw/<data.source>/train -> data/stores/hr.

The HR images packed once, for every scale (each extract@S packs only its LR beside them).
Reads params.yaml `data.source`, `data.multiscale`, `extract.workers` and `extract.hr_format`
(raw, or lossless shards).
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, ExtractOptions, load_params, read_section
from claritycore.data.packing import extract_hr_store
from claritycore.data.store import pipeline_hr_store
from claritycore.errors import exit_on_user_error

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file.")) -> None:
    """Pack the training HR images (with Real-ESRGAN's multi-scale copies if asked) once."""
    with exit_on_user_error("extract_hr failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "extract", ExtractOptions)
        extract_hr_store(
            Path("data/raw") / data.source / "train",
            pipeline_hr_store(),
            workers=options.workers,
            multiscale=data.multiscale,
            hr_format=options.hr_format,
        )


if __name__ == "__main__":
    app()
