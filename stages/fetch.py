"""`python -m stages.fetch`: HR images into data/raw/<data.source>/{train,valid}/*.png.

Reads params.yaml `data.*`. DIV2K zips are kept in data/downloads/ (outside DVC), so a re-run
reuses them once verified.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, load_params, read_section
from claritycore.data.fetch import fetch
from claritycore.errors import exit_on_user_error

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file.")) -> None:
    """Download and verify DIV2K, copy the bundled sample, or import a folder of HR images."""
    with exit_on_user_error("fetch failed"):
        data = read_section(load_params(params), "data", DataOptions)
        fetch(data, Path("data/raw") / data.source, downloads=Path("data/downloads"))


if __name__ == "__main__":
    app()
