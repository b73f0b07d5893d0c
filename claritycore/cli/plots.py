"""`claritycore plots`: the pipeline's DVC charts as PNG files, rendered without a network.

DVC fills each chart's Vega-Lite spec (`dvc plots show/diff --json`); vl-convert, which bundles
Vega in its own JavaScript engine, draws it. For a page to open in a browser instead, use
`dvc plots show` / `dvc plots diff`: their page embeds Vega too (plots/template.html).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer


class PlotsError(RuntimeError):
    """DVC could not give the charts, or they cannot be drawn; the message says why."""


def chart_specs(revisions: list[str], cwd: Path = Path(".")) -> dict[str, list[dict[str, Any]]]:
    """{title: DVC's entries} of `dvc plots show` (no revisions) or `dvc plots diff REVS`."""
    args = ["diff", *revisions] if revisions else ["show"]
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise PlotsError(f"`dvc plots {' '.join(args)}` failed in {cwd.resolve()}: {last}")
    result = json.loads(proc.stdout)
    errors = result.get("errors")
    if errors:
        missing = sorted({e.get("name", "?") + f" ({e.get('rev', '?')})" for e in errors})
        typer.secho(f"not drawn (no data): {', '.join(missing)}", err=True, fg="yellow")
    return result.get("data") or {}


def file_name(title: str) -> str:
    """A file name for the chart called `title` ("Validation PSNR (Y)" -> validation_psnr_y)."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "chart"


def render(revisions: list[str], out: Path, scale: float, cwd: Path = Path(".")) -> list[Path]:
    """Write one PNG per chart (and a copy of each image) into `out`; returns the files."""
    try:
        import vl_convert
    except ImportError:
        raise PlotsError(
            "drawing charts needs vl-convert-python: pip install 'claritycore[plots]'"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for title, entries in chart_specs(revisions, cwd).items():
        for entry in entries:
            if entry["type"] == "vega":
                path = out / f"{file_name(title)}.png"
                path.write_bytes(vl_convert.vegalite_to_png(entry["content"], scale=scale))
            elif entry["type"] == "image":
                # DVC has copied it to dvc_plots/ as <revision>_<path>.png.
                path = out / Path(entry["url"]).name
                shutil.copyfile(cwd / entry["url"], path)
            else:
                continue
            written.append(path)
    if not written:
        raise PlotsError(
            "DVC lists no charts with data here; run the pipeline first (dvc exp run) "
            "and call this from the repository root"
        )
    return written


def plots_command(
    revisions: list[str] = typer.Argument(
        None, help="Experiments or git revisions to compare (default: the workspace)."
    ),
    out: Path = typer.Option(Path("dvc_plots/png"), "--out", "-o", help="Folder for the PNGs."),
    scale: float = typer.Option(2.0, help="Pixels per chart unit (2: sharp on HiDPI screens)."),
) -> None:
    """Draw the pipeline's charts (loss, PSNR, per-image bars, ...) as PNG files, offline."""
    try:
        written = render(revisions or [], out, scale)
    except PlotsError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        raise typer.Exit(2) from None
    typer.echo(f"{len(written)} files in {out}: " + ", ".join(p.name for p in written))
