"""Throughput and peak memory of `upscale`: presets × scales × tiling × precision.

Each setting runs in a fresh subprocess, because a process's peak RSS (`ru_maxrss`) never
goes down and tracemalloc does not see torch's allocations. The models have random weights:
time and memory do not depend on their values. Reports images/s, megapixels/s of output and
peak memory, one row per setting.

    python benchmarks/bench_infer.py                                   # ~3 min on 2 cores
    python benchmarks/bench_infer.py --presets rrdbnet-litex2,rrdbnet-litex4 \
        --sizes 1280x720 --tiles 0 --repeats 3                         # video frames/s
    python benchmarks/bench_infer.py --presets rrdbnetx4 --device cuda --sizes 1020x678 \
        --tiles 512,0 --precisions bf16,fp32 --repeats 5               # GPU
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from itertools import product

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    preset: str,
    size: str,
    tile: int,
    precision: str,
    *,
    tile_pad: int = 16,
    device: str = "cpu",
    repeats: int = 1,
) -> dict:
    """One setting: median seconds of `repeats` runs after a warm-up, rates and peak memory."""
    import numpy as np
    import torch

    from claritycore.device import resolve_device
    from claritycore.inference import inference_precision, model_input_pixels, upscale
    from claritycore.models import AutoConfig, AutoModel
    from claritycore.presets import get_preset

    width, height = map(int, size.split("x"))
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_dict(get_preset(preset).model)).eval()
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    dev = resolve_device(device)
    options = {"tile": tile, "tile_pad": tile_pad, "device": dev, "precision": precision}
    upscale(model, image[:64, :64], **options)  # warm-up: allocator and kernel selection
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mib()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = upscale(model, image, progress=False, **options)  # numpy: already synced
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    gpu = {"cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20} if dev.type == "cuda" else {}
    align = getattr(model, "unshuffle", 1)
    return gpu | {
        "preset": preset,
        "device": str(dev),
        "precision": inference_precision(dev) if precision == "auto" else precision,
        "size": size,
        "tile": tile,
        "tile_pad": tile_pad,
        "seconds": median,
        "repeats": repeats,
        "images_per_s": 1 / median,
        "output_mp_per_s": out.shape[0] * out.shape[1] / median / 1e6,
        "input_pixels_computed": model_input_pixels(height, width, tile, tile_pad, align),
        "baseline_mib": before,
        "peak_mib": _rss_mib(),
        "output_mib": out.nbytes / 2**20,
        "threads": torch.get_num_threads(),
        # Other work on the machine slows the times (not the memory); the load says how much.
        "load1": os.getloadavg()[0],
    }


def _table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    columns = ["preset", "LR size", "tile", "precision", "s/image", "images/s", "out MP/s"]
    columns += ["peak RSS MiB", "Δ RSS MiB", "load"]
    cuda = any("cuda_peak_mib" in row for row in rows)
    for column in columns + (["CUDA peak MiB"] if cuda else []):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for row in rows:
        table.add_row(
            row["preset"],
            row["size"],
            str(row["tile"]) if row["tile"] else "whole",
            row["precision"],
            f"{row['seconds']:.2f}",
            f"{row['images_per_s']:.3f}",
            f"{row['output_mp_per_s']:.2f}",
            f"{row['peak_mib']:.0f}",
            f"{row['peak_mib'] - row['baseline_mib']:.0f}",
            f"{row['load1']:.1f}",
            *([f"{row['cuda_peak_mib']:.0f}"] if cuda else []),
        )
    return table


@app.command()
def main(
    presets: str = typer.Option(
        "rrdbnet-litex2,rrdbnet-litex4,rrdbnetx2,rrdbnetx4", help="Comma-separated presets."
    ),
    sizes: str = typer.Option("160x120", help="Comma-separated LR sizes WxH."),
    tiles: str = typer.Option("64,0", help="Comma-separated tile sizes; 0 = whole image."),
    precisions: str = typer.Option("fp32,bf16", help="Comma-separated: auto, fp32, bf16, fp16."),
    tile_pad: int = typer.Option(16),
    repeats: int = typer.Option(1, help="Timed runs per setting (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu, or cuda for the GPU figures."),
    child: str = typer.Option("", hidden=True),
) -> None:
    """Run every (preset, size, tile, precision) setting in its own process; print one table."""
    if child:
        preset, size, tile, precision = child.split(",")
        row = measure(
            preset, size, int(tile), precision, tile_pad=tile_pad, device=device, repeats=repeats
        )
        print(json.dumps(row))
        return
    settings = list(
        product(presets.split(","), sizes.split(","), tiles.split(","), precisions.split(","))
    )
    rows = []
    for setting in settings:
        command = [sys.executable, __file__, "--child", ",".join(setting), "--device", device]
        command += ["--tile-pad", str(tile_pad), "--repeats", str(repeats)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        Console(stderr=True).print(f"done {' '.join(setting)}: {row['seconds']:.2f}s")
    Console().print(_table(rows, f"upscale on {device}, tile_pad {tile_pad}, {repeats} run(s)"))
    print(json.dumps(rows))


if __name__ == "__main__":
    app()
