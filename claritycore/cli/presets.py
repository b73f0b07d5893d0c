"""`claritycore presets`: the preset table, as rich text or JSON."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from claritycore.models import AutoConfig
from claritycore.presets import PRESETS


def preset_rows() -> list[dict[str, Any]]:
    """One dict per preset with the values the table shows; `params` is computed from the
    model config (no model is built)."""
    rows = []
    for preset in PRESETS.values():
        model_config, training = AutoConfig.from_dict(preset.model), preset.training
        rows.append(
            {
                "name": preset.name,
                "model": model_config.model_type,
                "scale": model_config.scale,
                "num_feat": getattr(model_config, "num_feat", None),
                "num_block": getattr(model_config, "num_block", None),
                "num_grow_ch": getattr(model_config, "num_grow_ch", None),
                "params": model_config.parameter_count(),
                "steps": training.steps,
                "batch_size": training.batch_size,
                "patch_size": training.patch_size,
                "lr": training.lr,
                "loss": training.loss,
                "amp": training.amp,
                "ema": training.ema,
            }
        )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The preset table as Markdown: README.md embeds it, and a test keeps the two equal."""
    lines = [
        "| preset | scale | features | blocks | growth | params | steps | batch | patch | lr "
        "| loss | AMP | EMA |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [f"`{row['name']}`", f"{row['scale']}×", row["num_feat"], row["num_block"]]
        cells += [row["num_grow_ch"], f"{row['params']:,}", f"{row['steps']:,}"]
        cells += [row["batch_size"], f"{row['patch_size']}²", f"{row['lr']:g}"]
        cells += [row["loss"].upper(), "✓" if row["amp"] else "✗", "✓" if row["ema"] else "✗"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def presets_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    as_markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
) -> None:
    """List the training presets with their exact parameter counts."""
    rows = preset_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if as_markdown:
        typer.echo(markdown_table(rows))
        return
    table = Table(title="ClarityCore presets", box=box.SIMPLE_HEAD)
    columns = ["preset", "model", "scale", "features", "blocks", "growth", "params"]
    columns += ["steps", "batch", "patch", "lr", "loss", "AMP", "EMA"]
    for column in columns:
        justify = "left" if column in ("preset", "model", "loss") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    for row in rows:
        table.add_row(
            row["name"],
            row["model"],
            f"{row['scale']}×",
            str(row["num_feat"]),
            str(row["num_block"]),
            str(row["num_grow_ch"]),
            f"{row['params']:,}",
            f"{row['steps']:,}",
            str(row["batch_size"]),
            str(row["patch_size"]),
            f"{row['lr']:g}",
            row["loss"].upper(),
            "✓" if row["amp"] else "✗",
            "✓" if row["ema"] else "✗",
        )
    # Piped output defaults to 80 columns, too narrow for fourteen columns (~130 wide).
    console = Console()
    Console(width=max(console.width, 140)).print(table)
