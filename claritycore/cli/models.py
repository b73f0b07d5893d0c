"""`claritycore models`: the published weights files ClarityCore fetches by name."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from claritycore.data.backbones import locate
from claritycore.data.published import PUBLISHED, PublishedFile
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
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("name", "scale", "what", "size", "license", "here"):
        table.add_column(header, no_wrap=True)
    for row in rows:
        entry = PUBLISHED[str(row["name"])]
        size = "–" if entry.size is None else f"{entry.size / 1e6:.1f} MB"
        table.add_row(
            str(row["name"]),
            "" if entry.scale is None else f"×{entry.scale}", _what(entry),
            size, entry.license.split(" (")[0], "yes" if row["cached"] else "no",
        )  # fmt: skip
    Console().print(table)
    Console(stderr=True).print("`claritycore models --json`: URLs, checks and cache paths.")


def _what(entry: PublishedFile) -> str:
    """A table cell for a file: "RRDBNet 64·23·32 nearest", "netD unet_sn 64" or the backbone's
    layout."""
    values = dict(entry.architecture)
    if "num_feat" in values:
        unshuffle = "+unshuffle" if values.get("x2_unshuffle") else ""
        return (
            f"RRDBNet {values['num_feat']}·{values['num_block']}·{values['num_grow_ch']} "
            f"{values.get('upsampler', '')}{unshuffle}"
        )
    if "discriminator" in values:
        return f"netD {values['discriminator']} {values.get('d_num_feat', '')}".strip()
    return f"{entry.role} ({entry.layout})" if entry.layout else entry.role
