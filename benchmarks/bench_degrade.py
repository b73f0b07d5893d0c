"""Degradation cost per training step, ours against Real-ESRGAN's own code, on the CPU.

    python benchmarks/bench_degrade.py [--cases 2x8x48@400,2x8x48@200,...] [--repeats 3]
        [--threads 1] [--reference-python /work/refvenv/bin/python]

A case SCALExBATCHxPATCH@CROP is one training step: BATCH HR regions of CROP² (Real-ESRGAN's
crop_pad_size; ours `degradation.crop`) are degraded whole at ×SCALE, then the PATCH² training
patch is cut from each. The defaults: command 1's real-world variant (×2, batch 8, patch 48) at
Real-ESRGAN's 400 and smaller crops, and `realesrnetx4`'s (×4, batch 48, 400², 256²).

Per step, two shares, timed apart:
- loading (the data loader's share, in its worker processes during training): ours
  HRRegionDataset.__getitem__ per sample (region crop from the store, orientation,
  `draw_sample`) + `collate_regions`; theirs RealESRGANDataset.__getitem__'s kernel draws per
  sample (the image read stubbed with the decoded region) + the stacking;
- degradation (on the training device, in the step): ours the `realesrgan` pair source's
  make_batch (unsharp masking of the regions, the second-order degradation, the patch cut);
  theirs RealESRGANModel.feed_data (the same, its training-pair pool, CUDA-only, left out).
Theirs runs in benchmarks/reference/realesrgan_degrade.py under the reference interpreter
(BasicSR 1.4.2 and Real-ESRGAN installed; the project never imports them), driven over a pipe.
Repeats are interleaved and medians reported, in ms per step, with the 1-minute load average;
in brackets the degradation's CPU time (process time), which a busy machine inflates less.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
WORKER = ROOT / "benchmarks" / "reference" / "realesrgan_degrade.py"
CASES = "2x8x48@400,2x8x48@200,2x8x48@128,2x8x48@96,4x48x256@400"


class Ours:
    """ClarityCore's training path for one case: HRRegionDataset over a store of data/sample,
    the `realesrgan` pair source's collate and make_batch."""

    def __init__(self, stores: dict[int, Path], scale: int, batch: int, patch: int, crop: int):
        import torch

        from claritycore.config import DegradationConfig
        from claritycore.data.dataset import HRRegionDataset
        from claritycore.training.pair_sources import PAIR_SOURCES, BatchContext

        config = DegradationConfig(type="realesrgan", crop=crop)
        self.dataset = HRRegionDataset(
            stores[scale], patch_size=patch, seed=0, length=10**9, degradation=config
        )
        self.source = PAIR_SOURCES["realesrgan"]
        self.context = BatchContext(config, scale, patch, 0, torch.device("cpu"), False)
        self.batch = batch

    def step(self, step: int) -> tuple[float, float, float]:
        """(loading, degradation, degradation CPU) seconds of training step `step`."""
        import torch

        started = time.perf_counter()
        samples = [self.dataset[step * self.batch + i] for i in range(self.batch)]
        item = self.source.collate(samples)
        loaded, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            self.source.make_batch(self.context, item, step)
        return loaded - started, time.perf_counter() - loaded, time.process_time() - cpu


def stores(folder: Path, scales: set[int]) -> dict[int, Path]:
    """HR-only stores of the bundled photographs, one per scale."""
    from claritycore.data.packing import extract_store

    src = folder / "src"
    src.mkdir()
    for path in SAMPLE.glob("*/*.png"):
        (src / path.name).symlink_to(path)
    return {
        scale: extract_store(src, folder / f"x{scale}", scale, workers=1, hr_only=True).path
        for scale in scales
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=CASES, help="SCALExBATCHxPATCH@CROP, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    parser.add_argument("--reference-python", default="/work/refvenv/bin/python")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cases = []
    for spec in args.cases.split(","):
        sizes, crop = spec.split("@")
        cases.append((*map(int, sizes.split("x")), int(crop)))
    env = {**os.environ, "BENCH_THREADS": str(args.threads)}
    worker = subprocess.Popen(
        [args.reference_python, str(WORKER)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    def theirs(scale: int, batch: int, patch: int, crop: int, step: int) -> dict:
        worker.stdin.write(json.dumps([batch, scale, crop, patch, step]) + "\n")
        worker.stdin.flush()
        return json.loads(worker.stdout.readline())

    reference = json.loads(worker.stdout.readline())
    print(
        f"CPU: {cpu_model()}; ours torch {torch.__version__}, Real-ESRGAN's {reference}; "
        f"{args.threads} thread(s) each; ms per step, median of {args.repeats} interleaved"
    )
    with tempfile.TemporaryDirectory() as folder:
        made = stores(Path(folder), {case[0] for case in cases})
        print(
            "| ×scale, batch × patch | crop | ours: load | ours: degrade (CPU) | Real-ESRGAN: "
            "load | Real-ESRGAN: degrade (CPU) | degrade ratio | Real-ESRGAN failed batches | "
            "load avg |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for scale, batch, patch, crop in cases:
            ours = Ours(made, scale, batch, patch, crop)
            # Warm-up (allocations, first calls) on a small batch: a full one of the ×4 case
            # costs Real-ESRGAN's code minutes.
            small = min(batch, 4)
            Ours(made, scale, small, patch, crop).step(0), theirs(scale, small, patch, crop, 0)
            our_times, their_times, loads, failed = [], [], [], 0
            for step in range(1, args.repeats + 1):
                our_times.append(ours.step(step))
                answer = theirs(scale, batch, patch, crop, step)
                their_times.append((answer["load"], answer["degrade"], answer["cpu"]))
                failed += answer["failed"]
                loads.append(os.getloadavg()[0])
            (our_load, our_degrade, our_cpu), (their_load, their_degrade, their_cpu) = (
                [1000 * statistics.median(t[k] for t in times) for k in (0, 1, 2)]
                for times in (our_times, their_times)
            )
            ratio = their_degrade / our_degrade
            ratio_text = "fails" if math.isnan(ratio) else f"{ratio:.2f}×"
            print(
                f"| ×{scale}, {batch} × {patch}² | {crop}² | {our_load:.0f} | {our_degrade:.0f} "
                f"({our_cpu:.0f}) | {their_load:.0f} | {their_degrade:.0f} ({their_cpu:.0f}) | "
                f"{ratio_text} | {failed} of "
                f"{failed + args.repeats} | {min(loads):.2f}–{max(loads):.2f} |",
                flush=True,
            )
    worker.stdin.close()
    worker.wait()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
