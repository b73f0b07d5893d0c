"""`python -m stages.evaluate`: PSNR/SSIM of models/model.pt on the validation images.

Reads params.yaml (`evaluate.*`, `data.source`), models/model.pt and data/raw/<source>/valid;
writes metrics/eval.json, metrics/per_image.csv and metrics/comparisons/*.png.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
import yaml

from claritycore.config import check_fields
from claritycore.evaluation import EvalOptions, evaluate

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"))) -> None:
    """Evaluate the trained model beside the bicubic baseline."""
    settings = yaml.safe_load(params.read_text())
    check_fields(EvalOptions, settings["evaluate"])
    options = EvalOptions(**settings["evaluate"])
    evaluate(
        Path("models/model.pt"),
        Path(f"data/raw/{settings['data']['source']}/valid"),
        out_dir=Path("metrics"),
        **asdict(options),
    )


if __name__ == "__main__":
    app()
