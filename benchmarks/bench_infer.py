"""Peak memory and time of `upscale` on CPU: tile sizes vs whole image, and growing images.

Each setting runs in a fresh subprocess, because a process's peak RSS (`ru_maxrss`) never
goes down and tracemalloc does not see torch's allocations. The model has random weights:
time and memory do not depend on their values.

    python benchmarks/bench_infer.py                      # lite x4, the default table
    python benchmarks/bench_infer.py --preset rrdbnetx4 --tiles 256 --sizes 288x288 --no-grow
    python benchmarks/bench_infer.py --preset rrdbnetx4 --device cuda --precision bf16 \
        --tiles 512,0 --sizes 1020x678 --no-grow     # GPU: images/s at DIV2K x4 LR size
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(
    preset: str, tile: int, tile_pad: int, width: int, height: int, device: str, precision: str
) -> dict:
    """One measurement: peak RSS (CPU) or peak allocated memory (CUDA), and the wall time."""
    import numpy as np
    import torch

    from claritycore.device import resolve_device
    from claritycore.inference import upscale
    from claritycore.models import AutoConfig, AutoModel
    from claritycore.presets import get_preset

    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_dict(get_preset(preset).model)).eval()
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    options = {"tile": tile, "tile_pad": tile_pad, "device": device, "precision": precision}
    upscale(model, image[:64, :64], **options)  # warm-up: allocator and kernel selection
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mib()
    start = time.perf_counter()
    out = upscale(model, image, progress=False, **options)  # returns numpy: already synced
    seconds = time.perf_counter() - start
    gpu = {"cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}
    return gpu | {
        "preset": preset,
        "device": device,
        "precision": precision,
        "images_per_s": 1 / seconds,
        "size": f"{width}x{height}",
        "tile": tile,
        "seconds": seconds,
        "baseline_mib": before,
        "peak_mib": _rss_mib(),
        "output_mib": out.nbytes / 2**20,
        "threads": torch.get_num_threads(),
        # Other work on the machine slows the times (not the memory); the load says how much.
        "load1": os.getloadavg()[0],
    }


@app.command()
def main(
    preset: str = typer.Option("rrdbnet-litex4", help="Model preset (its architecture)."),
    tiles: str = typer.Option("256,512,0", help="Comma-separated tile sizes; 0 = whole image."),
    sizes: str = typer.Option("1020x678", help="Comma-separated LR sizes WxH."),
    grow: bool = typer.Option(True, help="Also run tile 256 on growing images."),
    tile_pad: int = typer.Option(16),
    device: str = typer.Option("cpu", help="cpu, or cuda for the GPU figures."),
    precision: str = typer.Option("auto", help="CUDA autocast: auto, fp16, bf16, fp32."),
    child: bool = typer.Option(False, hidden=True),
) -> None:
    """Run every (size, tile) setting in its own process and print one table."""
    if child:
        width, height = map(int, sizes.split("x"))
        row = _child(preset, int(tiles), tile_pad, width, height, device, precision)
        print(json.dumps(row))
        return
    settings = [(s, int(t)) for s in sizes.split(",") for t in tiles.split(",")]
    if grow:
        settings += [(s, 256) for s in ("255x170", "510x339")]
    table = Table(title=f"upscale on {device}, {preset}, tile_pad {tile_pad}")
    columns = ["LR size", "tile", "seconds", "peak RSS MiB", "Δ RSS MiB", "output MiB"]
    for column in columns + (["CUDA peak MiB"] if device.startswith("cuda") else []):
        table.add_column(column, justify="right")
    rows = []
    for size, tile in settings:
        command = [sys.executable, __file__, "--child", "--preset", preset, "--tiles", str(tile)]
        command += ["--sizes", size, "--tile-pad", str(tile_pad), "--device", device]
        command += ["--precision", precision]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        table.add_row(
            size,
            str(tile) if tile else "whole",
            f"{row['seconds']:.1f}",
            f"{row['peak_mib']:.0f}",
            f"{row['peak_mib'] - row['baseline_mib']:.0f}",
            f"{row['output_mib']:.0f}",
            *([f"{row['cuda_peak_mib']:.0f}"] if "cuda_peak_mib" in row else []),
        )
        Console(stderr=True).print(f"done {size} tile {tile}: {row['seconds']:.1f}s")
    Console().print(table)
    print(json.dumps(rows))


if __name__ == "__main__":
    app()
