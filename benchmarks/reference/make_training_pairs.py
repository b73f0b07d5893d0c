"""Real-ESRGAN's own training pairs for a recipe, as a paired folder (reference, not ClarityCore).

Runs in the reference venv (BasicSR 1.4.2 + Real-ESRGAN 0.3.0, see make_degraded_set.py), never
in the project's. For each of `--steps` batches of `--batch` samples it does what a Real-ESRGAN
x4plus training step does, at `--scale`:

- `RealESRGANDataset.__getitem__` (x4plus dataset options: use_hflip true, use_rot false) reads
  an image of the folder, reflect-pads it to 400² where smaller, cuts a random 400² crop and draws
  the three kernels; the images are taken in a shuffled order, reshuffled each epoch, as its
  DataLoader (shuffle, dataset_enlarge_ratio 1) takes them;
- `RealESRGANModel.feed_data` with x4plus's options (scale set to `--scale`, gt_size to `--patch`)
  degrades the batch of 400² crops (its resize, noise-type and interpolation draws are per batch,
  the noise level and JPEG quality per sample), then `paired_random_crop` cuts one aligned
  `--patch`² HR / (`--patch` / scale)² LR position for the whole batch; the pair pool
  (`queue_size`) is off.

Writes <out>/HR/<n>.png (the plain HR patch: the target with l1_gt_usm false), <out>/LR/<n>.png
and <out>/HR_usm/<n>.png (feed_data's `gt_usm`, the USM target with l1_gt_usm true: train on it
by pointing a folder's HR/ at it), n = step * batch + i. `--plain-hr` degrades the plain HR
instead of the unsharp-masked one. Each batch's draws are a function of (seed, step): a run
skips the batches already written, so it resumes, and parts of `--steps` can run side by side
(the last batch's LR file marks a batch done). ClarityCore trains on <out> as a paired folder: with
patch_size equal to `--patch` each image is one crop position, plus its random orientation.

    OMP_NUM_THREADS=2 /work/refvenv/bin/python benchmarks/reference/make_training_pairs.py \
        data/sample/train --scale 2 --steps 1000 --batch 8 --patch 48 --seed 0 \
        --out /tmp/realesrgan-pairs-x2
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
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
from basicsr.utils import imfrombytes, img_process_util  # noqa: E402
from basicsr.utils.diffjpeg import DiffJPEG  # noqa: E402
from basicsr.utils.img_process_util import USMSharp  # noqa: E402
from realesrgan.data import realesrgan_dataset  # noqa: E402
from realesrgan.models import realesrgan_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from make_degraded_set import DATASET, OPTIONS  # noqa: E402


class _CachedFiles:
    """The disk file client, reading each file once (the images are decoded once too, below)."""

    def get(self, path: str, client_key: str = "default") -> str:
        return path


_decoded: dict[str, np.ndarray] = {}


def _imfrombytes(path: str, flag: str = "color", float32: bool = False) -> np.ndarray:
    if path not in _decoded:
        _decoded[path] = imfrombytes(Path(path).read_bytes(), flag=flag, float32=float32)
    return _decoded[path].copy()  # augment flips in place


_filter2d = img_process_util.filter2D


def _filter2d_separable(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """filter2D for USMSharp's one 51x51 Gaussian (the outer product of cv2's 1-D kernel): the
    same reflect padding and the same sums, as two 1-D passes (float rounding apart), ~25x less
    work on a 400² crop on the CPU. Any other kernel goes to BasicSR's filter2D."""
    if kernel.size(0) != 1:
        return _filter2d(img, kernel)
    k = kernel.size(-1)
    column = kernel[0].sum(dim=1)  # the 1-D kernel: rows of the outer product sum to it
    b, c, h, w = img.shape
    padded = torch.nn.functional.pad(img, (k // 2,) * 4, mode="reflect")
    padded = padded.reshape(b * c, 1, h + k - 1, w + k - 1)
    out = torch.nn.functional.conv2d(padded, column.view(1, 1, k, 1))
    out = torch.nn.functional.conv2d(out, column.view(1, 1, 1, k))
    return out.reshape(b, c, h, w)


img_process_util.filter2D = _filter2d_separable  # USMSharp.forward looks it up here


def _save(tensor: torch.Tensor, path: Path) -> None:
    array = (tensor.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path, compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("hr", type=Path, help="folder of training HR images")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=48, help="HR patch side (gt_size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-hr", action="store_true", help="degrade the plain HR, not USM")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    files = sorted(p.name for p in args.hr.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    meta = Path(tempfile.mkdtemp()) / "meta_info.txt"
    meta.write_text("".join(f"{name}\n" for name in files))
    dataset_options = yaml.safe_load(DATASET) | {
        "dataroot_gt": str(args.hr),
        "meta_info": str(meta),
        "use_hflip": True,  # x4plus's train_realesrnet_x4plus.yml
        "use_rot": False,
    }
    realesrgan_dataset.imfrombytes = _imfrombytes
    dataset = realesrgan_dataset.RealESRGANDataset(dataset_options)
    dataset.file_client = _CachedFiles()

    options = yaml.safe_load(OPTIONS) | {"scale": args.scale, "gt_size": args.patch}
    model = realesrgan_model.RealESRGANModel.__new__(realesrgan_model.RealESRGANModel)
    model.opt, model.is_train, model.device = options, True, torch.device("cpu")
    usm = USMSharp()
    # feed_data degrades gt_usm = usm_sharpener(gt), then sharpens the cut patch again for the
    # target; with --plain-hr the degradation sees the plain HR, the USM target stays.
    model.usm_sharpener = (lambda gt: gt) if args.plain_hr else usm
    jpeger = DiffJPEG(differentiable=False)
    # DiffJPEG returns a channels-last tensor; torch 2.14's reflect pad keeps that layout and
    # filter2D's view then fails for batches > 1 (BasicSR 1.4.2 predates it): made contiguous,
    # the same values.
    model.jpeger = lambda image, quality: jpeger(image, quality=quality).contiguous()
    model._dequeue_and_enqueue = lambda: None

    for sub in ("HR", "LR", "HR_usm"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    degrade_s, done = 0.0, 0
    for step in range(args.steps):
        last = args.out / "LR" / f"{step * args.batch + args.batch - 1:05d}.png"
        if last.exists():  # written by an earlier run: resume after it
            continue
        # Each batch's draws come from (seed, step) alone, so runs resume, or split into parts.
        random.seed(args.seed * 1_000_003 + step)
        np.random.seed((args.seed * 1_000_003 + step) % 2**32)
        torch.manual_seed(args.seed * 1_000_003 + step)
        samples = []
        for i in range(args.batch):
            n = step * args.batch + i  # the DataLoader's shuffled epochs over the images
            epoch, at = divmod(n, len(dataset))
            order = list(range(len(dataset)))
            random.Random(args.seed * 1_000_003 + epoch).shuffle(order)
            samples.append(dataset[order[at]])
        keys = ("gt", "kernel1", "kernel2", "sinc_kernel")
        data = {k: torch.stack([s[k] for s in samples]) for k in keys}
        t0 = time.perf_counter()
        model.feed_data(data)
        if args.plain_hr:
            model.gt_usm = usm(model.gt)
        degrade_s += time.perf_counter() - t0
        for i in range(args.batch):
            n = step * args.batch + i
            _save(model.gt[i], args.out / "HR" / f"{n:05d}.png")
            _save(model.gt_usm[i], args.out / "HR_usm" / f"{n:05d}.png")
            _save(model.lq[i], args.out / "LR" / f"{n:05d}.png")
        done += 1
        if done % 10 == 0 or step + 1 == args.steps:
            total = time.perf_counter() - start
            print(
                f"step {step + 1}/{args.steps}: {done} batches in {total:.0f} s "
                f"({total / done:.2f} s/batch, feed_data {degrade_s / done:.2f}), "
                f"CPU {time.process_time() / done:.2f} s/batch",
                flush=True,
            )


if __name__ == "__main__":
    main()
