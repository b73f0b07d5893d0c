"""Real-ESRGAN's own degradation timed per training step: bench_degrade.py's worker.

Runs in the reference interpreter (BasicSR 1.4.2 and Real-ESRGAN 0.3.0 installed; the project
never imports them), started by benchmarks/bench_degrade.py:

    /work/refvenv/bin/python benchmarks/reference/realesrgan_degrade.py

Reads `[batch, scale, crop, patch, step]` JSON lines on stdin; per line it times one training
step's pairs and answers `{"load": s, "degrade": s, "cpu": s, "failed": n}` on stdout:
- `load`: RealESRGANDataset.__getitem__ per sample (its kernel draws; the image read stubbed
  with a decoded crop² region, so its pad to 400 and its crop do nothing), then the stacking
  its DataLoader does: the data loader's share;
- `degrade`: RealESRGANModel.feed_data on the batch (second-order degradation of the whole
  regions, clamp and round, paired_random_crop of the `patch`² HR and LR patches), with
  x4plus's options at `scale`; its training-pair pool (CUDA-only) is left out;
- `cpu`: the process's CPU seconds in `degrade` (on a busy machine, closer to what an idle
  core would take than the wall-clock time);
- `failed`: batches feed_data raised on before this one succeeded (at small regions the
  downscales leave fewer pixels than filter2D's reflect pad needs); each is redrawn, and after
  20 in a row the step answers NaN.

Its regions are crops of the bundled photographs, as ours (bench_degrade.py reads them through
HRRegionDataset).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
# Real-ESRGAN's options/train_realesrnet_x4plus.yml, degradation part (x2plus: the same).
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


def regions(count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` uint8 size² RGB crops of the bundled photographs at seeded positions, images in
    turn; an image smaller than `size` is reflect-padded at the bottom/right first
    (BORDER_REFLECT_101, as RealESRGANDataset and HRRegionDataset pad)."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLE.glob("*/*.png"))]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        pad = [(0, max(0, size - n)) for n in image.shape[:2]] + [(0, 0)]
        image = np.pad(image, pad, mode="reflect")
        top, left = (int(rng.integers(n - size + 1)) for n in image.shape[:2])
        crops.append(image[top : top + size, left : left + size])
    return np.stack(crops)


def main() -> None:
    import random
    import types

    import torch
    import torchvision.transforms.functional as tf

    # basicsr 1.4.2 imports a module torchvision removed in 0.17.
    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = tf.rgb_to_grayscale
    sys.modules["torchvision.transforms.functional_tensor"] = shim
    import basicsr.data.realesrgan_dataset as dataset_module
    import basicsr.models.realesrgan_model as model_module
    from basicsr.utils.diffjpeg import DiffJPEG
    from basicsr.utils.img_process_util import USMSharp

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    dataset = dataset_module.RealESRGANDataset.__new__(dataset_module.RealESRGANDataset)
    with tempfile.TemporaryDirectory() as folder:
        meta = Path(folder) / "meta_info.txt"
        meta.write_text("0.png\n")
        dataset.__init__(
            {**X4PLUS_DATASET, "dataroot_gt": folder, "meta_info": str(meta),
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
        batch, scale, crop, patch, step = json.loads(line)
        model.opt = {**X4PLUS_OPTIONS, "scale": scale, "gt_size": patch}
        # BGR float32, as BasicSR's imfrombytes returns it.
        images = regions(batch, crop, seed=step)[..., ::-1].astype(np.float32) / 255
        failed = 0
        while True:
            with torch.no_grad():
                started = time.perf_counter()
                samples = []
                for image in images:
                    dataset_module.imfrombytes = lambda content, float32, image=image: image.copy()
                    samples.append(dataset[0])
                data = {
                    k: torch.stack([s[k] for s in samples]) for k in samples[0] if k != "gt_path"
                }
                loaded, cpu = time.perf_counter(), time.process_time()
                try:
                    model.feed_data(data)
                except RuntimeError:
                    failed += 1
                    if failed < 20:
                        continue
                    loaded = done = float("nan")  # this size fails every time: no figure
                    break
                done, cpu = time.perf_counter(), time.process_time() - cpu
            break
        answer = {"load": loaded - started, "degrade": done - loaded, "cpu": cpu, "failed": failed}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
