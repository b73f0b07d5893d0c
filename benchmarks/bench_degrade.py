"""Degradation throughput: ours against Real-ESRGAN's own code, on the CPU, in one run.

    python benchmarks/bench_degrade.py [--sizes 48x256,16x128] [--repeats 3] [--threads 1]
        [--reference-python /work/refvenv/bin/python]

Per batch, both make the degraded LR and the unsharp-masked target from uint8 HR patches:
ours `draw_sample` per patch (the data loader's share) + `usm_sharp` + `degrade`; theirs
RealESRGANDataset.__getitem__'s kernel draws per patch (its image read stubbed with the
decoded patch) + RealESRGANModel.feed_data (its training-pair pool, CUDA-only, left out).
Theirs runs in a worker process of the reference interpreter (BasicSR 1.4.2 and Real-ESRGAN
installed; the project never imports them), driven over a pipe; repeats are interleaved and
medians reported, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
X4PLUS_OPTIONS = {
    "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95], "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2], "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5], "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95],
}  # fmt: skip
KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
X4PLUS_DATASET = {
    "blur_kernel_size": 21, "kernel_list": KERNELS,
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3], "betag_range": [0.5, 4], "betap_range": [1, 2],
    "blur_kernel_size2": 21, "kernel_list2": KERNELS,
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5], "betag_range2": [0.5, 4], "betap_range2": [1, 2],
    "final_sinc_prob": 0.8, "use_hflip": False, "use_rot": False,
}  # fmt: skip


def patches(count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` uint8 size² RGB crops of the bundled photographs at seeded positions."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLE.glob("*/*.png"))]
    images = [i for i in images if min(i.shape[:2]) >= size]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        top, left = (int(rng.integers(n - size + 1)) for n in image.shape[:2])
        crops.append(image[top : top + size, left : left + size])
    return np.stack(crops)


def reference_worker() -> None:
    """Runs in the reference interpreter: reads `[batch, patch, step]` lines, times one batch
    of Real-ESRGAN's degradation, answers the seconds."""
    import random
    import types

    import torch
    import torchvision.transforms.functional as tf

    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = tf.rgb_to_grayscale
    sys.modules["torchvision.transforms.functional_tensor"] = shim
    import basicsr.data.realesrgan_dataset as dataset_module
    import basicsr.models.realesrgan_model as model_module
    from basicsr.utils.diffjpeg import DiffJPEG
    from basicsr.utils.img_process_util import USMSharp

    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    # Patches are already cut: no read (the decoded patch is returned), no pad to 400 px.
    dataset_module.cv2 = types.SimpleNamespace(
        copyMakeBorder=lambda image, *args: image, BORDER_REFLECT_101=None
    )
    dataset = dataset_module.RealESRGANDataset.__new__(dataset_module.RealESRGANDataset)
    meta = Path(os.environ["BENCH_TMP"]) / "meta_info.txt"
    meta.write_text("0.png\n")
    dataset.__init__(
        {**X4PLUS_DATASET, "dataroot_gt": str(meta.parent), "meta_info": str(meta),
         "io_backend": {"type": "disk"}}
    )  # fmt: skip
    dataset.file_client = types.SimpleNamespace(get=lambda path, key: b"")
    model = model_module.RealESRGANModel.__new__(model_module.RealESRGANModel)
    model.is_train, model.device = True, torch.device("cpu")
    jpeger = DiffJPEG(differentiable=False)
    # DiffJPEG returns a cropped view, which filter2D's `view` rejects on the CPU.
    model.jpeger = lambda image, quality: jpeger(image, quality=quality).contiguous()
    model.usm_sharpener, model._dequeue_and_enqueue = USMSharp(), lambda: None
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    print(json.dumps(f"torch {torch.__version__}"), flush=True)
    for line in sys.stdin:
        batch, size, step = json.loads(line)
        model.opt = {**X4PLUS_OPTIONS, "scale": 4, "gt_size": size}
        # BGR float32, as BasicSR's imfrombytes returns it.
        images = patches(batch, size, seed=step)[..., ::-1].astype(np.float32) / 255
        with torch.no_grad():
            started = time.perf_counter()
            samples = []
            for image in images:
                dataset_module.imfrombytes = lambda content, float32, image=image: image.copy()
                samples.append(dataset[0])
            data = {k: torch.stack([s[k] for s in samples]) for k in samples[0] if k != "gt_path"}
            model.feed_data(data)
            elapsed = time.perf_counter() - started
        print(json.dumps(elapsed), flush=True)


def time_ours(batch: int, size: int, step: int) -> float:
    import torch

    from claritycore.config import DegradationConfig
    from claritycore.degradation import collate_draws, degrade, draw_sample, usm_sharp

    config = DegradationConfig(type="realesrgan")
    hr = torch.from_numpy(patches(batch, size, seed=step)).permute(0, 3, 1, 2)
    started = time.perf_counter()
    draws = collate_draws([draw_sample(config, 0, step * batch + i) for i in range(batch)])
    image = hr.float() / 255
    target = usm_sharp(image)
    degrade(image, draws, config, scale=4, seed=0, step=step, hr_usm=target)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="48x256,16x128", help="BATCHxPATCH, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    parser.add_argument("--reference-python", default="/work/refvenv/bin/python")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    env = {**os.environ, "BENCH_THREADS": str(args.threads), "BENCH_TMP": "/tmp"}
    worker = subprocess.Popen(
        [args.reference_python, __file__, "--reference-worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    def time_theirs(batch: int, size: int, step: int) -> float:
        worker.stdin.write(json.dumps([batch, size, step]) + "\n")
        worker.stdin.flush()
        return json.loads(worker.stdout.readline())

    reference = json.loads(worker.stdout.readline())
    print(
        f"CPU: {cpu_model()}; ours torch {torch.__version__}, Real-ESRGAN's {reference}; "
        f"{args.threads} thread(s) each"
    )
    for spec in args.sizes.split(","):
        batch, size = map(int, spec.split("x"))
        time_ours(batch, size, 0), time_theirs(batch, size, 0)  # warm-up: allocations, JIT
        ours, theirs, loads = [], [], []
        for step in range(1, args.repeats + 1):
            ours.append(time_ours(batch, size, step))
            theirs.append(time_theirs(batch, size, step))
            loads.append(os.getloadavg()[0])
        rate_ours, rate_theirs = (batch / statistics.median(t) for t in (ours, theirs))
        print(
            f"RESULT degrade {batch}x{size}²: ours {rate_ours:.1f} patches/s, Real-ESRGAN "
            f"{rate_theirs:.1f} patches/s, ratio {rate_ours / rate_theirs:.1f}x (median of "
            f"{args.repeats} interleaved; load {min(loads):.2f}-{max(loads):.2f})"
        )
    worker.stdin.close()
    worker.wait()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    if "--reference-worker" in sys.argv:
        reference_worker()
    else:
        main()
