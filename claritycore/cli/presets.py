"""`claritycore presets`: the preset table, as rich text or JSON."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from claritycore.models import AutoConfig
from claritycore.presets import PRESETS, Preset


def objective(preset: Preset) -> str:
    """What a preset's training minimises, in short: `L1`, or a GAN stage's weighted terms."""
    adversarial = preset.adversarial
    if adversarial is None:
        return preset.training.loss.upper()
    terms = [f"L1 {adversarial.pixel_weight:g}"]
    if adversarial.perceptual_weight:
        terms.append(f"VGG {adversarial.perceptual_weight:g}")
    gan = {"ragan": "RaGAN", "vanilla": "GAN"}[adversarial.gan_type]
    terms.append(f"{gan} {adversarial.gan_weight:g}")
    return " + ".join(terms)


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
                "objective": objective(preset),
                "amp": training.amp,
                "ema": training.ema,
                "degradation": preset.degradation.type,
                "discriminator": preset.adversarial and preset.adversarial.discriminator,
                "from": preset.pretrained or (preset.adversarial and preset.adversarial.base),
                "notes": preset.notes,
            }
        )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The preset table as Markdown: README.md embeds it, and a test keeps the two equal."""
    lines = [
        "| preset | scale | features | blocks | growth | params | steps | batch | patch | lr "
        "| loss | AMP | EMA | LR made by | from |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: dict[str, list[str]] = {}  # note -> the presets it is about, in table order
    for row in rows:
        cells = [f"`{row['name']}`", f"{row['scale']}×", row["num_feat"], row["num_block"]]
        cells += [row["num_grow_ch"], f"{row['params']:,}", f"{row['steps']:,}"]
        cells += [row["batch_size"], f"{row['patch_size']}²", f"{row['lr']:g}"]
        cells += [row["objective"], "✓" if row["amp"] else "✗", "✓" if row["ema"] else "✗"]
        cells += [row["degradation"], f"`{row['from']}`" if row["from"] else ""]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
        if row["notes"]:
            notes.setdefault(row["notes"], []).append(f"`{row['name']}`")
    notes_lines = [f"- {', '.join(names)}: {note}." for note, names in notes.items()]
    return "\n".join(lines + (["", *notes_lines] if notes_lines else []))


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
    columns += ["steps", "batch", "patch", "lr", "loss", "AMP", "EMA", "LR", "from"]
    for column in columns:
        justify: JustifyMethod = "left" if column in ("preset", "model", "loss") else "right"
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
            row["objective"],
            "✓" if row["amp"] else "✗",
            "✓" if row["ema"] else "✗",
            row["degradation"],
            row["from"] or "",
        )
    # Piped output defaults to 80 columns, too narrow for sixteen columns (over 200 wide): print
    # at the table's full width rather than cut names.
    full_width = Console(width=1000).measure(table).maximum
    Console(width=max(Console().width, full_width)).print(table)
