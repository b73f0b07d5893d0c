"""The learning curve as a benchmark: PSNR-Y and the gain over bicubic for a fixed budget.

    python -m benchmarks.bench_quality                         # lite ×2, 1,500 steps, 3 lrs × EMA
    python -m benchmarks.bench_quality --steps 600 --val-every 200 --lr 1e-3 --no-ema-runs

Trains a lite preset on the bundled sample (`data/sample/train`) with the real trainer, once per
learning rate, without and with EMA, and scores the shipped weights (EMA when on) at every
validation step on the held-out sample images (`data/sample/valid`) and on Set5/Set14 from
`../shared/benchmarks/` when that folder exists. Scores are those of training's validation
(uint8 output, Y channel, `scale` border) against MATLAB bicubic on the same images.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.table import Table

from claritycore.config import RunOptions
from claritycore.data.store import extract_store
from claritycore.experiment import resolve
from claritycore.training import checkpoint, train, trainer
from claritycore.training.validation import ValImage, bicubic_baseline, load_validation, validate

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


def eval_sets(scale: int, names: list[str]) -> dict[str, list[ValImage]]:
    """The held-out sample images, and each of `names` found under ../shared/benchmarks."""
    sets = {"sample": load_validation(SAMPLE / "valid", scale, 100)}
    for name in names:
        if (BENCHMARKS / name).is_dir():
            sets[name] = load_validation(BENCHMARKS / name, scale, 100)
    return sets


@contextlib.contextmanager
def scoring_each_checkpoint(sets: dict[str, list[ValImage]], scale: int, options: RunOptions):
    """While active, every checkpoint the trainer writes is also scored on `sets`: the weights
    it ships (the EMA when kept), as training's own validation does. Yields the rows."""
    rows: list[dict[str, float]] = []
    save = checkpoint.save

    def save_and_score(directory, **state):
        path = save(directory, **state)
        weights = state["ema"] if state["ema"] is not None else state["model"]
        device = next(weights.parameters()).device
        cfg = state["experiment"].training
        dtype, _ = trainer.amp_settings(device, cfg.amp, options.precision)
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
        row = {"step": state["step"]}
        for name, images in sets.items():
            scores, _ = validate(weights, images, scale=scale, device=device, autocast=autocast)
            row[name] = scores["val/psnr_y"]
        rows.append(row)
        return path

    checkpoint.save = save_and_score
    try:
        yield rows
    finally:
        checkpoint.save = save


def main(
    preset: str = typer.Option("rrdbnet-litex2", help="A lite preset (its model and loss)."),
    steps: int = typer.Option(1500, help="Training steps of every run (the budget)."),
    val_every: int = typer.Option(250, help="Score every N steps (and at the last)."),
    lrs: list[float] = typer.Option([2e-4, 5e-4, 1e-3], "--lr", help="Peak learning rates."),
    ema_runs: bool = typer.Option(True, help="Also run each lr with EMA (decay 0.999)."),
    warmup_steps: int = typer.Option(100, help="Linear lr warm-up steps."),
    batch_size: int = typer.Option(8, help="Patches per step."),
    patch_size: int = typer.Option(64, help="HR patch side."),
    sets: list[str] = typer.Option(
        ["Set5", "Set14"], "--set", help="Sets in ../shared/benchmarks."
    ),
    precision: str = typer.Option("auto", help="auto, bf16 or fp32 (auto: as training)."),
    workers: int = typer.Option(1, help="Data loader workers."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures here."),
) -> None:
    """PSNR-Y and the gain over bicubic at every validation, per learning rate and EMA."""
    console = Console(width=None if sys.stdout.isatty() else 140)
    base = resolve(preset, {"steps": steps})
    scale = base.model.scale
    scored = eval_sets(scale, sets)
    bicubic = {name: bicubic_baseline(images, scale)["bicubic/psnr_y"]
               for name, images in scored.items()}  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        store = extract_store(SAMPLE / "train", Path(tmp) / "store", scale, workers=1).path
        for lr in lrs:
            for ema in (False, True) if ema_runs else (False,):
                overrides = {"steps": steps, "lr": lr, "ema": ema, "warmup_steps": warmup_steps,
                             "batch_size": batch_size, "patch_size": patch_size}  # fmt: skip
                experiment = resolve(preset, overrides)
                options = RunOptions(
                    workers=workers, save_every=val_every, val_every=10**9,
                    log_every=val_every, precision=precision,
                )  # fmt: skip
                console.print(f"[bold]lr {lr:g}, EMA {'on' if ema else 'off'}[/]")
                start = time.perf_counter()
                with scoring_each_checkpoint(scored, scale, options) as rows:
                    run_dir = Path(tmp) / f"lr{lr:g}_ema{int(ema)}"
                    train(
                        experiment, train_store=store, val_dir=None, output=run_dir / "model.pt",
                        checkpoints=run_dir / "ckpt", options=options, resume=False,
                    )  # fmt: skip
                runs.append({"lr": lr, "ema": ema, "seconds": time.perf_counter() - start,
                             "rows": rows})  # fmt: skip

    title = (f"{preset}, {steps:,} steps, batch {batch_size}, patch {patch_size}, warm-up "
             f"{warmup_steps}, precision {precision}: PSNR-Y dB (gain over bicubic)")  # fmt: skip
    table = Table(title=title)
    for column in ("lr", "EMA", "step", *scored):
        table.add_column(column, justify="right")
    table.add_row("bicubic", "", "", *(f"{bicubic[name]:.2f}" for name in scored))
    for run in runs:
        for row in run["rows"]:
            cells = [f"{row[name]:.2f} ({row[name] - bicubic[name]:+.2f})" for name in scored]
            table.add_row(f"{run['lr']:g}", "on" if run["ema"] else "off", f"{row['step']:,}",
                          *cells)  # fmt: skip
    console.print(table)
    for run in runs:
        console.print(f"lr {run['lr']:g}, EMA {run['ema']}: {run['seconds']:.0f} s")
    if json_out is not None:
        json_out.write_text(json.dumps({"bicubic": bicubic, "runs": runs}, indent=2))


if __name__ == "__main__":
    typer.run(main)
