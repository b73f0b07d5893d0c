"""`python -m stages.evaluate`: PSNR/SSIM of models/model.pt on the validation images.

Reads params.yaml (`evaluate.*`, `data.source`), models/model.pt and data/raw/<source>/valid;
writes metrics/eval.json, metrics/per_image.csv and metrics/comparisons/*.png.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataParams, EvalOptions, load_params, read_section
from claritycore.errors import exit_on_user_error
from claritycore.evaluation import evaluate

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file.")) -> None:
    """Evaluate the trained model beside the bicubic baseline."""
    with exit_on_user_error("evaluate failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataParams)
        options = read_section(settings, "evaluate", EvalOptions)
        evaluate(
            Path("models/model.pt"),
            Path("data/raw") / data.source / "valid",
            out_dir=Path("metrics"),
            options=options,
        )


if __name__ == "__main__":
    app()
