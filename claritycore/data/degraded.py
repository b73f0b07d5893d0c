"""Degraded copies of evaluation sets: each HR image's LR made by Real-ESRGAN's pipeline
(`claritycore.degradation.degrade_image`) with a fixed seed, so `<set>-realesrgan` scores are
comparable between experiments and runs.

Image i of a set (its position in the sorted set) gets the choices of sample i under `seed`.
The LR PNGs are written once into `<cache>/<set>-<key>/`, where the key hashes the degradation
parameters, the seed and the scale; `manifest.json` there records them and a digest of each
HR file, so an image whose HR changed is made again and nothing else is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from claritycore.config import DegradationConfig
from claritycore.data.download import sha256_file
from claritycore.data.images import ImageReadError, load_channels, save_png
from claritycore.data.pairs import ImagePair
from claritycore.degradation import degrade_image
from claritycore.metrics import min_side
from claritycore.resize import modcrop

# Beside data/benchmarks; outside DVC: a cache whose content is a pure function of its key.
DEGRADED_DIR = Path("data/degraded")
MANIFEST = "manifest.json"
REALESRGAN = DegradationConfig(type="realesrgan")


def degraded_key(config: DegradationConfig, seed: int, scale: int) -> str:
    """What a degraded copy depends on besides the HR pixels, as 12 hex digits."""
    text = json.dumps(
        {"degradation": config.to_dict(), "seed": seed, "scale": scale}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _degrade_file(
    path: Path, config: DegradationConfig, *, scale: int, seed: int, index: int
) -> np.ndarray | None:
    """The degraded LR of the HR file `path`, grey for a grey HR (scored on its own channel);
    None when the file is unreadable or too small to score."""
    try:
        hr = modcrop(load_channels(path), scale)
    except ImageReadError:
        return None
    if min(hr.shape[:2]) < min_side(scale):
        return None
    rgb = np.repeat(hr, 3 // hr.shape[2], axis=2)
    lr = degrade_image(rgb, config, scale=scale, seed=seed, index=index)
    return np.asarray(Image.fromarray(lr).convert("L"))[..., None] if hr.shape[2] == 1 else lr


def degraded_set(
    name: str,
    images: list[ImagePair],
    *,
    scale: int,
    seed: int,
    config: DegradationConfig = REALESRGAN,
    cache: Path = DEGRADED_DIR,
    on_make: Callable[[str], None] | None = None,
) -> list[ImagePair]:
    """`images` (a set, sorted) with each HR paired with its degraded LR in the cache, made
    now where missing or stale (`on_make(image name)` each time). An HR that is unreadable or
    too small to score keeps no LR: scoring skips it, as it does in the clean set."""
    folder = Path(cache) / f"{name}-{degraded_key(config, seed, scale)}"
    manifest_path = folder / MANIFEST
    made: dict[str, str] = (
        json.loads(manifest_path.read_text())["images"] if manifest_path.is_file() else {}
    )
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, image in enumerate(images):
        lr_path = folder / f"{image.hr.stem}.png"
        digest = sha256_file(image.hr)
        if made.get(lr_path.name) != digest or not lr_path.is_file():
            lr = _degrade_file(image.hr, config, scale=scale, seed=seed, index=index)
            if lr is None:
                pairs.append(ImagePair(image.hr))
                continue
            if on_make is not None:
                on_make(image.name)
            partial = lr_path.with_name(f".{lr_path.name}.partial")
            save_png(lr, partial)
            partial.replace(lr_path)
            made[lr_path.name] = digest
        pairs.append(ImagePair(image.hr, lr_path))
    record = {"degradation": config.to_dict(), "seed": seed, "scale": scale, "images": made}
    manifest_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return pairs
