"""One command for the day a GPU is lent: CUDA tests, training step speed and MFU, tiled inference.

    python -m benchmarks.device_check                 # on the GPU machine: at most ~9.5 minutes
    python -m benchmarks.device_check --steps 2       # CPU fallback: a dry run of every part

1. `tests/test_cuda.py` (pytest, pass/fail/skip counts);
2. training steps of `rrdbnetx4` and `rrdbnet-litex4` through our trainer with the CUDA defaults
   (AMP, channels_last, compile) at the preset's batch and patch, timed after as many warm-up
   (and compilation) steps, with the model FLOP utilisation against the GPU's bf16 peak;
3. tiled inference of `rrdbnetx4` on a DIV2K-sized ×4 LR image (images/s, peak GPU memory);
4. Real-ESRGAN's degradation as training does it (the `realesrgan` pair source's make_batch:
   400² HR regions to the device, unsharp masking, `degrade`, the patch cut) at the
   realesrnetx4 batch and patch (48×256²) and at rrdbnetx4's, as a share of rrdbnetx4's step
   from part 2.

Each part runs in its own process with a time limit, so one that hangs or fails is reported and
the rest still run. Writes one JSON file (`$OUT/device_check.json` when `$OUT` is set, else
`./device_check.json`) and prints a table. On a CPU the batch, patch and image are reduced
(the presets' would take hours), so the figures only show that every part runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.gpu_peaks import bf16_peak_tflops

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PRESETS = ("rrdbnetx4", "rrdbnet-litex4")


def _child_json(command: list[str], timeout: float) -> dict:
    """Run `command`; its last stdout line is a JSON object. Failures come back as errors."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1]) | {"wall_s": time.perf_counter() - start}


def cuda_tests(timeout: float) -> dict:
    """`pytest tests/test_cuda.py`: counts from its JUnit report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-q",
                   "-p", "no:cacheprovider", f"--junitxml={report}"]  # fmt: skip
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if not report.exists():
            return {"error": f"pytest exit {proc.returncode}: {proc.stdout[-300:]}"}
        suite = ElementTree.parse(report).getroot().find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        failed = [case.get("name") for case in suite.iter("testcase")
                  if {child.tag for child in case} & {"failure", "error"}]  # fmt: skip
        return counts | {"failed": failed, "exit": proc.returncode,
                         "wall_s": time.perf_counter() - start}  # fmt: skip


def train_child(preset: str, steps: int, cpu_batch: int, cpu_patch: int) -> dict:
    """Our trainer's mean step time over steps [steps, 2·steps) of `preset`, in this process."""
    from benchmarks.bench_train import ours_step_ms, synthetic_store, train_flops_per_step
    from claritycore.experiment import resolve

    overrides = {"steps": 2 * steps, "scheduler": "constant"}
    if not torch.cuda.is_available():
        overrides |= {"batch_size": cpu_batch, "patch_size": cpu_patch}
    experiment = resolve(preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), experiment.model.scale)
        step_ms = ours_step_ms(
            experiment, store, steps, workers=4 if torch.cuda.is_available() else 0
        )
    cfg = experiment.training
    return {
        "preset": preset,
        "batch_size": cfg.batch_size,
        "patch_size": cfg.patch_size,
        "step_ms": step_ms,
        "patches_per_s": 1000 * cfg.batch_size / step_ms,
        "tflop_per_step": train_flops_per_step(experiment) / 1e12,
    }


def degrade_child(batch: int, patch: int, crop: int, steps: int) -> dict:
    """Median time of one batch's degradation on the device as the training step makes it:
    the `realesrgan` pair source's make_batch on crop² uint8 regions (draws made beforehand,
    as the data loader does)."""
    from claritycore.config import DegradationConfig
    from claritycore.degradation import collate_draws, draw_sample
    from claritycore.training.pair_sources import PAIR_SOURCES, BatchContext

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = DegradationConfig(type="realesrgan", crop=crop)
    context = BatchContext(config, 4, patch, 0, device, device.type == "cuda")
    regions = torch.randint(0, 256, (batch, 3, crop, crop), dtype=torch.uint8)
    places = torch.randint(0, (crop - patch) // 4 + 1, (batch, 2))
    times = []
    for step in range(2 * steps):  # the first half warms up (kernels, allocator)
        draws = collate_draws([draw_sample(config, 0, step * batch + i) for i in range(batch)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        PAIR_SOURCES["realesrgan"].make_batch(context, (regions, draws, places), step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = sorted(times[steps:])[steps // 2] * 1000
    return {"batch_size": batch, "patch_size": patch, "crop": crop, "degrade_ms": median}


def main(
    steps: int = typer.Option(20, help="Timed training steps (after as many warm-up steps)."),
    peak_tflops: float | None = typer.Option(None, help="bf16 peak, if the name is not known."),
    # 150 + 2 × 135 + 60 + 2 × 45 s: the whole check fits in 9.5 minutes, compilation included.
    test_timeout: float = typer.Option(150, help="Seconds for tests/test_cuda.py."),
    train_timeout: float = typer.Option(135, help="Seconds for each training measurement."),
    infer_timeout: float = typer.Option(60, help="Seconds for the inference measurement."),
    degrade_timeout: float = typer.Option(45, help="Seconds for each degradation measurement."),
    child_train: str | None = typer.Option(None, hidden=True),
    child_degrade: str | None = typer.Option(None, hidden=True),
) -> None:
    """Run every check, print a table and write device_check.json."""
    if child_train is not None:
        print(json.dumps(train_child(child_train, steps, cpu_batch=2, cpu_patch=64)))
        return
    if child_degrade is not None:
        sizes, crop = child_degrade.split("@")
        batch, patch = map(int, sizes.split("x"))
        print(json.dumps(degrade_child(batch, patch, int(crop), steps)))
        return
    console = Console(width=None if sys.stdout.isatty() else 120)
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_tflops or (bf16_peak_tflops(name) if cuda else None)
    result: dict = {"device": name, "torch": torch.__version__, "bf16_peak_tflops": peak,
                    "load1": os.getloadavg()[0]}  # fmt: skip
    start = time.perf_counter()

    console.print("[bold]1/4[/] tests/test_cuda.py")
    result["cuda_tests"] = cuda_tests(test_timeout)
    result["training"] = []
    for i, preset in enumerate(TRAIN_PRESETS):
        console.print(f"[bold]2/4[/] training steps of {preset} ({i + 1}/{len(TRAIN_PRESETS)})")
        command = [sys.executable, "-m", "benchmarks.device_check", "--child-train", preset,
                   "--steps", str(steps)]  # fmt: skip
        row = {"preset": preset} | _child_json(command, train_timeout)
        if "step_ms" in row:
            row["tflops"] = row["tflop_per_step"] / (row["step_ms"] / 1000)
            row["mfu"] = row["tflops"] / peak if peak else None
        result["training"].append(row)
    console.print("[bold]3/4[/] tiled inference")
    infer = ("rrdbnetx4", "1020x678", "512") if cuda else ("rrdbnet-litex4", "128x96", "64")
    command = [sys.executable, "benchmarks/bench_infer.py", "--child", "--preset", infer[0],
               "--sizes", infer[1], "--tiles", infer[2],
               "--device", "cuda" if cuda else "cpu"]  # fmt: skip
    result["inference"] = _child_json(command, infer_timeout)
    console.print("[bold]4/4[/] Real-ESRGAN degradation")
    step_ms = next((r["step_ms"] for r in result["training"] if "step_ms" in r), None)
    result["degradation"] = []
    for shape in ("48x256@400", "16x128@400") if cuda else ("2x64@128",):
        command = [sys.executable, "-m", "benchmarks.device_check", "--child-degrade", shape,
                   "--steps", "10"]  # fmt: skip
        row = _child_json(command, degrade_timeout)
        if step_ms and "degrade_ms" in row:
            row["share_of_rrdbnetx4_step"] = row["degrade_ms"] / step_ms
        result["degradation"].append(row)
    result["total_s"] = time.perf_counter() - start

    out = Path(os.environ.get("OUT") or ".") / "device_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = Table(
        title=f"device check on {name} (torch {torch.__version__}), {result['total_s']:.0f} s"
    )
    table.add_column("check")
    table.add_column("result", justify="right")
    tests = result["cuda_tests"]
    table.add_row("tests/test_cuda.py", tests.get("error") or (
        f"{tests['tests'] - tests['failures'] - tests['errors'] - tests['skipped']} passed, "
        f"{tests['failures'] + tests['errors']} failed, {tests['skipped']} skipped"))  # fmt: skip
    for row in result["training"]:
        label = f"train {row['preset']}"
        if "error" in row:
            table.add_row(label, row["error"])
            continue
        mfu = f", MFU {row['mfu']:.1%}" if row.get("mfu") else ""
        speed = f"{row['step_ms']:.1f} ms/step, {row['tflops']:.2f} TFLOP/s{mfu}"
        table.add_row(f"{label} {row['batch_size']}×{row['patch_size']}²", speed)
    inf = result["inference"]
    memory = f", peak {inf['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in inf else (
        f", peak RSS {inf['peak_mib']:.0f} MiB" if "peak_mib" in inf else "")  # fmt: skip
    table.add_row(f"upscale {infer[0]} {infer[1]} tile {infer[2]}",
                  inf.get("error") or f"{inf['images_per_s']:.2f} images/s{memory}")  # fmt: skip
    for row in result["degradation"]:
        if "error" in row:
            table.add_row("degrade", row["error"])
            continue
        share = row.get("share_of_rrdbnetx4_step")
        share = f" ({share:.0%} of an rrdbnetx4 step)" if share else ""
        table.add_row(f"degrade {row['batch_size']}×{row['patch_size']}² of {row['crop']}²",
                      f"{row['degrade_ms']:.1f} ms/batch{share}")  # fmt: skip
    console.print(table)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
