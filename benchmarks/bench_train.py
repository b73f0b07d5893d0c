"""Training-step speed: our trainer vs a plain eager fp32 step of the same network.

    python -m benchmarks.bench_train                  # CPU: reduced batch and patch
    python -m benchmarks.bench_train --repeats 2      # a GPU: the presets' batch and patch
    python -m benchmarks.bench_train --compare channels-last --repeats 5   # our trainer with
        # channels_last on vs off (what `auto` picks on a CPU is decided by this)

"Ours" is `claritycore.training.train` itself, as configured for the device (on CUDA: AMP,
channels_last, compile); "plain" is the textbook loop (eager, fp32, default Adam, `.item()`
each step) on the same data loader. Each run is a fresh process doing 2·steps steps; the
first half is warm-up (and compilation), and the figure is the mean step time over the
second half, loading included (ours from its own log). The two loops alternate; the table
gives the median over runs and the median of the per-pair ratios plain/ours.

FLOPs per step are counted from the architecture (conv multiply-adds via forward hooks, ×2
FLOP per MAC, ×3 for forward + backward), so a GPU run reports its model FLOP utilisation: the
fraction of the GPU's dense bf16 peak (`benchmarks.gpu_peaks`; H200: 989.4 TFLOP/s).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.gpu_peaks import bf16_peak_tflops
from claritycore.config import TrainOptions
from claritycore.data.dataset import PairedPatchDataset
from claritycore.data.packing import extract_store
from claritycore.device import cpu_has_native_bf16, resolve_device
from claritycore.experiment import ExperimentConfig, resolve
from claritycore.models import AutoModel
from claritycore.training import checkpoint as ckpt
from claritycore.training import train

PRESETS = ("rrdbnet-litex4", "rrdbnetx4")


def conv_macs(model: nn.Module, lr_side: int, channels: int = 3) -> int:
    """Multiply-adds of every Conv2d in one forward pass of a (1, C, side, side) input."""
    total = 0

    def hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, channels, lr_side, lr_side))
    for handle in handles:
        handle.remove()
    return total


def train_flops_per_step(experiment: ExperimentConfig) -> float:
    """Forward + backward FLOPs of one step: 2 FLOP per MAC, backward ≈ 2× forward."""
    model = AutoModel.from_config(experiment.model)
    lr_side = experiment.training.patch_size // experiment.model.scale
    return 3 * 2 * conv_macs(model, lr_side) * experiment.training.batch_size


def synthetic_store(root: Path, scale: int) -> Path:
    """Four 512² noisy-gradient images packed as a store (the data only has to be realistic
    in size; speed does not depend on content)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        ramp = np.linspace(0, 255, 512)[None, :, None] * np.ones((512, 1, 3))
        pixels = (ramp + rng.normal(0, 20, (512, 512, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
    extract_store(images, root / f"store_x{scale}", scale, workers=1)
    return root / f"store_x{scale}"


def ours_step_ms(
    experiment, store: Path, steps: int, workers: int, channels_last: bool | str = "auto"
) -> float:
    """Mean step time of our trainer over steps [steps, 2·steps), from its own log (written
    once per window, so the device is synchronised once per window, as in training)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        # The final checkpoint holds the log read below, so it must outlive the run.
        options = TrainOptions(
            workers=workers, log_every=steps, save_every=10**9, keep_checkpoints=True,
            channels_last=channels_last,
        )  # fmt: skip
        train(
            experiment,
            train_store=store,
            val_dir=None,
            output=run_dir / "model.pt",
            checkpoints=run_dir / "ckpt",
            options=options,
            resume=False,
        )
        key = ckpt.run_key(experiment, options.seed, store)
        rows = ckpt.load_latest(run_dir / "ckpt" / key, key)["history"]
    # The trainer logs at least ~10 rows, each the mean over the steps since the previous one:
    # weight the windows that start at or after the warm-up by their length.
    measured = [
        (row["step"] - prev["step"], row["train/step_ms"])
        for prev, row in itertools.pairwise(rows)
        if prev["step"] >= steps
    ]
    return sum(n * ms for n, ms in measured) / sum(n for n, _ in measured)


def plain_step_ms(experiment, store: Path, steps: int, workers: int) -> float:
    """The textbook loop: eager fp32, default Adam, L1, `.item()` every step; its mean step
    time over steps [steps, 2·steps), loading included, as for ours."""
    torch.manual_seed(0)
    cfg = experiment.training
    device = resolve_device("auto")
    model = AutoModel.from_config(experiment.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    dataset = PairedPatchDataset(store, patch_size=cfg.patch_size, seed=0, length=10**6)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=workers)
    for step, (lr_images, hr_images) in enumerate(itertools.islice(loader, 2 * steps)):
        if step == steps:
            start = time.perf_counter()
        lr_images, hr_images = (t.to(device).float() / 255 for t in (lr_images, hr_images))
        loss = nn.functional.l1_loss(model(lr_images), hr_images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
    return 1000 * (time.perf_counter() - start) / steps


def channels_last_step_ms(experiment, store: Path, steps: int, workers: int) -> float:
    return ours_step_ms(experiment, store, steps, workers, channels_last=True)


def contiguous_step_ms(experiment, store: Path, steps: int, workers: int) -> float:
    return ours_step_ms(experiment, store, steps, workers, channels_last=False)


# --compare: (label of the first loop, its function, label of the second, its function).
# cl: channels-last; nchw: the default contiguous layout.
COMPARISONS = {
    "plain": ("ours", ours_step_ms, "plain", plain_step_ms),
    "channels-last": ("cl", channels_last_step_ms, "nchw", contiguous_step_ms),
}


def machine() -> dict[str, str]:
    """What a figure was measured on: the CPU model (or GPU), torch version, the date."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return {
        "cpu": f"{cpu} ({os.cpu_count()} CPUs, {native})",
        "device": device,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def load_average() -> float:
    """The 1-minute load average (0 where the OS has none): other jobs slow every figure."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def in_fresh_process(function, *args) -> float:
    """Run one measurement in a new interpreter: a process's heap history (what earlier runs
    allocated and freed) shifts CPU step times by ±15%, which would favour whichever runs first."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main(
    batch_size: int = typer.Option(None, help="Global batch [CPU: 4 lite / 2 full; GPU: preset]."),
    patch_size: int = typer.Option(None, help="HR patch side [CPU: 64; GPU: the preset's]."),
    steps: int = typer.Option(10, help="Measured steps per run (after as many warm-up steps)."),
    repeats: int = typer.Option(4, help="Side-by-side runs of each loop; medians reported."),
    workers: int = typer.Option(1, help="Data loader workers for both loops."),
    presets: list[str] = typer.Option(list(PRESETS), "--preset", help="Presets to measure."),
    compare: str = typer.Option(
        "plain", help="plain: ours vs the textbook loop; channels-last: ours with it on vs off."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures here."),
) -> None:
    """Step time, patches/s and FLOP rate of our training step vs another loop, interleaved."""
    if compare not in COMPARISONS:
        raise typer.BadParameter(f"--compare {compare!r}: use one of {', '.join(COMPARISONS)}")
    first, first_ms, second, second_ms = COMPARISONS[compare]
    # Piped output (a log file) gets a wide table instead of rich's 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 120)
    cuda = torch.cuda.is_available()
    conditions = machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stores: dict[int, Path] = {}
        for name in presets:
            full = not name.startswith("rrdbnet-lite")
            overrides = {"steps": 2 * steps, "scheduler": "constant"}
            if not cuda:
                overrides |= {"batch_size": 2 if full else 4, "patch_size": 64}
            overrides |= {k: v for k, v in (("batch_size", batch_size), ("patch_size", patch_size))
                          if v is not None}  # fmt: skip
            experiment = resolve(name, overrides)
            scale = experiment.model.scale
            if scale not in stores:
                stores[scale] = synthetic_store(root / f"x{scale}", scale)
            times: dict[str, list[float]] = {first: [], second: []}
            loads = [load_average()]
            for repeat in range(repeats):
                # Alternate which loop runs first, so neither always meets a busier machine.
                order = ((first, first_ms), (second, second_ms))[:: 1 - 2 * (repeat % 2)]
                for label, measure in order:
                    step_ms = in_fresh_process(measure, experiment, stores[scale], steps, workers)
                    times[label].append(step_ms)
                    loads.append(load_average())
            flops = train_flops_per_step(experiment)
            ratios = [b / a for a, b in zip(times[first], times[second], strict=True)]
            row = {
                "preset": name,
                **conditions,
                "batch_size": experiment.training.batch_size,
                "patch_size": experiment.training.patch_size,
                "load_average": loads,
                "speedup": statistics.median(ratios),
                "speedup_runs": ratios,
                "tflop_per_step": flops / 1e12,
            }
            for key in (first, second):
                row[f"{key}_step_ms"] = statistics.median(times[key])
                row[f"{key}_runs_ms"] = times[key]
                seconds = row[f"{key}_step_ms"] / 1000
                row[f"{key}_patches_per_s"] = experiment.training.batch_size / seconds
                row[f"{key}_tflops"] = flops / seconds / 1e12
            peak = bf16_peak_tflops(row["device"]) if cuda else None
            row["bf16_peak_tflops"] = peak
            row[f"{first}_mfu"] = row[f"{first}_tflops"] / peak if peak else None
            results.append(row)

    table = Table(
        title=f"training step on {conditions['device']}: {conditions['cpu']}, torch "
        f"{conditions['torch']}, {conditions['date']}"
    )
    for column in ("preset", "batch×patch", f"{first} ms", f"{second} ms", f"{first} patch/s",
                   "TFLOP/step", f"{first} TFLOP/s", f"{second}/{first}", "load"):  # fmt: skip
        table.add_column(column, justify="left" if column == "preset" else "right")
    for row in results:
        table.add_row(
            row["preset"],
            f"{row['batch_size']}×{row['patch_size']}²",
            f"{row[f'{first}_step_ms']:.1f}",
            f"{row[f'{second}_step_ms']:.1f}",
            f"{row[f'{first}_patches_per_s']:.2f}",
            f"{row['tflop_per_step']:.4f}",
            f"{row[f'{first}_tflops']:.4f}",
            f"{row['speedup']:.2f}×",
            f"{min(row['load_average']):.1f}–{max(row['load_average']):.1f}",
        )
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
