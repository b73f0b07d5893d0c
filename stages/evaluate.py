"""`python -m stages.evaluate`: PSNR/SSIM of models/model.pt on the validation images and on
every benchmark set listed in `evaluate.benchmarks` (folders under data/benchmarks/).

Reads params.yaml (`evaluate.*`, `data.source`), models/model.pt, data/raw/<source>/valid and
data/benchmarks/<name>/; writes metrics/eval.json, metrics/per_image/ and metrics/comparisons/.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, EvaluateOptions, load_params, read_section
from claritycore.data.benchmark_sets import BENCHMARKS_DIR
from claritycore.errors import exit_on_user_error
from claritycore.evaluation import evaluate

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file.")) -> None:
    """Evaluate the trained model beside the bicubic baseline."""
    with exit_on_user_error("evaluate failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "evaluate", EvaluateOptions)
        sets = {"valid": Path("data/raw") / data.source / "valid"}
        sets |= {name: BENCHMARKS_DIR / name for name in options.benchmarks}
        evaluate(Path("models/model.pt"), sets, out_dir=Path("metrics"), options=options)


if __name__ == "__main__":
    app()
