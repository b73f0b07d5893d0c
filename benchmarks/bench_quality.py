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
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from claritycore.config import EvaluateOptions, TrainOptions
from claritycore.data.benchmark_sets import set_images
from claritycore.data.packing import extract_store
from claritycore.experiment import resolve
from claritycore.scoring import Reference, load_references, score_set
from claritycore.training import checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


def eval_sets(scale: int, names: list[str]) -> dict[str, list[Reference]]:
    """The held-out sample images, and each of `names` found under ../shared/benchmarks."""
    folders = {"sample": SAMPLE / "valid"}
    folders |= {name: BENCHMARKS / name for name in names if (BENCHMARKS / name).is_dir()}
    return {
        name: list(load_references(set_images(folder, scale), scale, on_skip=print))
        for name, folder in folders.items()
    }


@contextlib.contextmanager
def scoring_each_checkpoint(sets: dict[str, list[Reference]], scale: int):
    """While active, every checkpoint the trainer writes is also scored on `sets`: the weights
    it ships (the EMA when kept), with training's own validation protocol. Yields the rows."""
    rows: list[dict[str, float]] = []
    save = checkpoint.save

    def save_and_score(directory, **state):
        path = save(directory, **state)
        weights = state["ema"] if state["ema"] is not None else state["model"]
        options = EvaluateOptions(device=str(next(weights.parameters()).device))
        row = {"step": state["step"]}
        for name, references in sets.items():
            # A copy: inference switches the weights' memory format and mode.
            scored = score_set(copy.deepcopy(weights), references, scale=scale, options=options)
            row[name] = scored.means()["psnr_y"]
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
    bicubic = {name: float(np.mean([ref.bicubic_scores[0] for ref in references]))
               for name, references in scored.items()}  # fmt: skip
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        store = extract_store(SAMPLE / "train", Path(tmp) / "store", scale, workers=1).path
        for lr in lrs:
            for ema in (False, True) if ema_runs else (False,):
                overrides = {"steps": steps, "lr": lr, "ema": ema, "warmup_steps": warmup_steps,
                             "batch_size": batch_size, "patch_size": patch_size}  # fmt: skip
                experiment = resolve(preset, overrides)
                options = TrainOptions(
                    workers=workers, save_every=val_every, val_every=10**9,
                    log_every=val_every, precision=precision,
                )  # fmt: skip
                console.print(f"[bold]lr {lr:g}, EMA {'on' if ema else 'off'}[/]")
                start = time.perf_counter()
                with scoring_each_checkpoint(scored, scale) as rows:
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
