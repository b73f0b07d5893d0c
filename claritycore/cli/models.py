"""`claritycore models`: the published weights files ClarityCore fetches by name."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from claritycore.data.backbones import locate
from claritycore.data.published import PUBLISHED
from claritycore.pretrained import summary


def model_rows() -> list[dict[str, object]]:
    """One dict per published file: name, role, scale, architecture, size, license, what its
    verification checks, and where it is cached here (None: not here)."""
    return [
        {
            "name": name,
            "role": entry.role,
            "scale": entry.scale,
            "architecture": summary(entry.architecture) if entry.architecture else entry.layout,
            "size": entry.size,
            "license": entry.license,
            "checks": entry.checks(),
            "cached": None if (found := locate(name)) is None else str(found),
            "url": entry.url,
        }
        for name, entry in PUBLISHED.items()
    ]


def models_command(
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List the published weights by name (for `upscale -m NAME`, `train.pretrained`,
    `adversarial.pretrained_d`): scale, architecture, size, license, cached here or not."""
    rows = model_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("name", "role", "scale", "architecture", "size", "license", "cached here"):
        table.add_column(header, overflow="fold")
    for row in rows:
        size = "not published" if row["size"] is None else f"{row['size']:,} B"
        table.add_row(
            str(row["name"]), str(row["role"]), "" if row["scale"] is None else f"×{row['scale']}",
            str(row["architecture"]), size, str(row["license"]), str(row["cached"] or "no"),
        )  # fmt: skip
    Console().print(table)
