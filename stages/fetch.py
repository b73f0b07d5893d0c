"""`python -m stages.fetch`: HR images into data/raw/<data.source>/{train,valid}/*.png.

Reads params.yaml `data.*`. DIV2K zips are kept in data/downloads/ (outside DVC), so a re-run
reuses them once verified.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from claritycore.config import ConfigError
from claritycore.data.download import FetchError, console
from claritycore.data.fetch import DataParams, fetch, largest_patch
from claritycore.data.images import ImageReadError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file.")) -> None:
    """Download and verify DIV2K, copy the bundled sample, or import a folder of HR images."""
    try:
        data = DataParams.from_dict(yaml.safe_load(params.read_text())["data"])
        fetch(
            data.source,
            Path("data/raw") / data.source,
            root=data.root,
            url=data.url,
            downloads=Path("data/downloads"),
            min_size=largest_patch(data.scales) if data.source == "folder" else 0,
        )
    except (ConfigError, FetchError, ImageReadError, OSError) as err:
        console.print(f"[red]fetch failed:[/red] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


if __name__ == "__main__":
    app()
