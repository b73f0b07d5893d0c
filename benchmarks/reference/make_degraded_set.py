"""Degrade a benchmark set with Real-ESRGAN's own code (reference, not part of ClarityCore).

Runs in a scratch venv that has BasicSR 1.4.2 and Real-ESRGAN 0.3.0 (pip install basicsr
realesrgan torchvision; torchvision >= 0.17 needs the `functional_tensor` stand-in below), never
in the project's: ClarityCore does not import them. Each HR image (mod-cropped to the scale) gets
the kernels `RealESRGANDataset.__getitem__` draws and goes through `RealESRGANModel.feed_data`
with Real-ESRGAN x4plus's options, as a batch of one, with the final random crop and the
training-pair queue switched off. Writes <out>/HR/<name>.png and <out>/LR/<name>.png, the paired
layout `claritycore evaluate --data NAME=<out>` scores on the given LR. `--plain-hr` degrades the
plain HR instead of the unsharp-masked one (feed_data's `gt_usm`), as a camera degrades a scene.

    /work/refvenv/bin/python benchmarks/reference/make_degraded_set.py \
        ../shared/benchmarks/Set14 --scale 2 --seed 1 --out /tmp/Set14-realesrgan-ref
"""

from __future__ import annotations

import argparse
import random
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as tf
from PIL import Image

shim = types.ModuleType("torchvision.transforms.functional_tensor")
shim.rgb_to_grayscale = tf.rgb_to_grayscale
sys.modules["torchvision.transforms.functional_tensor"] = shim

import yaml  # noqa: E402
from basicsr.utils.diffjpeg import DiffJPEG  # noqa: E402
from basicsr.utils.img_process_util import USMSharp  # noqa: E402
from realesrgan.data.realesrgan_dataset import RealESRGANDataset  # noqa: E402
from realesrgan.models import realesrgan_model  # noqa: E402

OPTIONS = """
scale: 4
l1_gt_usm: True
resize_prob: [0.2, 0.7, 0.1]
resize_range: [0.15, 1.5]
gaussian_noise_prob: 0.5
noise_range: [1, 30]
poisson_scale_range: [0.05, 3]
gray_noise_prob: 0.4
jpeg_range: [30, 95]
second_blur_prob: 0.8
resize_prob2: [0.3, 0.4, 0.3]
resize_range2: [0.3, 1.2]
gaussian_noise_prob2: 0.5
noise_range2: [1, 25]
poisson_scale_range2: [0.05, 2.5]
gray_noise_prob2: 0.4
jpeg_range2: [30, 95]
gt_size: 256
queue_size: 180
"""
DATASET = """
blur_kernel_size: 21
kernel_list: [iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso]
kernel_prob: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob: 0.1
blur_sigma: [0.2, 3]
betag_range: [0.5, 4]
betap_range: [1, 2]
blur_kernel_size2: 21
kernel_list2: [iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso]
kernel_prob2: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
sinc_prob2: 0.1
blur_sigma2: [0.2, 1.5]
betag_range2: [0.5, 4]
betap_range2: [1, 2]
final_sinc_prob: 0.8
gt_size: 256
use_hflip: False
use_rot: False
io_backend: {type: disk}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("hr", type=Path, help="folder of HR images (or with HR/, GTmod12/...)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--plain-hr",
        action="store_true",
        help="degrade the plain HR, not the unsharp-masked one feed_data degrades",
    )
    args = parser.parse_args()
    for sub in ("GTmod12", "HR", "GT", "original"):
        if (args.hr / sub).is_dir():
            args.hr = args.hr / sub
            break
    files = sorted(p for p in args.hr.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg"))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    options = yaml.safe_load(OPTIONS) | {"scale": args.scale}
    dataset_options = yaml.safe_load(DATASET) | {"dataroot_gt": str(args.hr), "meta_info": None}
    dataset = RealESRGANDataset.__new__(RealESRGANDataset)  # kernels only: no file list needed
    dataset.opt = dataset_options
    for key in (
        "blur_kernel_size",
        "kernel_list",
        "kernel_prob",
        "blur_sigma",
        "betag_range",
        "betap_range",
        "sinc_prob",
        "blur_kernel_size2",
        "kernel_list2",
        "kernel_prob2",
        "blur_sigma2",
        "betag_range2",
        "betap_range2",
        "sinc_prob2",
        "final_sinc_prob",
    ):
        setattr(dataset, key, dataset_options[key])
    dataset.kernel_range = [2 * v + 1 for v in range(3, 11)]
    dataset.pulse_tensor = torch.zeros(21, 21).float()
    dataset.pulse_tensor[10, 10] = 1
    # __getitem__ reads and crops a file first; give it one tiny stand-in and keep the kernels.
    dataset.file_client = None
    dataset.io_backend_opt = {"type": "disk"}
    dataset.paths = [str(files[0])]

    model = realesrgan_model.RealESRGANModel.__new__(realesrgan_model.RealESRGANModel)
    model.opt, model.is_train, model.device = options, True, torch.device("cpu")
    # feed_data degrades gt_usm = usm_sharpener(gt); the identity makes that the plain HR.
    model.usm_sharpener = (lambda gt: gt) if args.plain_hr else USMSharp()
    model.jpeger = DiffJPEG(differentiable=False)
    model._dequeue_and_enqueue = lambda: None  # the pool mixes batches: off for a fixed set
    realesrgan_model.paired_random_crop = lambda gts, lq, size, scale: (gts, lq)

    (args.out / "HR").mkdir(parents=True, exist_ok=True)
    (args.out / "LR").mkdir(parents=True, exist_ok=True)
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB"))
        h, w = (s - s % args.scale for s in image.shape[:2])
        image = image[:h, :w]
        kernels = dataset[0]
        gt = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        model.feed_data(
            {"gt": gt, **{k: kernels[k][None] for k in ("kernel1", "kernel2", "sinc_kernel")}}
        )
        lq = (model.lq[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(image).save(args.out / "HR" / f"{path.stem}.png")
        Image.fromarray(lq).save(args.out / "LR" / f"{path.stem}.png")
        print(f"{path.name}: HR {w}x{h} -> LR {lq.shape[1]}x{lq.shape[0]}")


if __name__ == "__main__":
    main()
