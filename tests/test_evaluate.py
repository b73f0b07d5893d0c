"""`evaluate` on a tiny model and two small images: every output, and metrics that match a
direct computation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from claritycore.config import EvalOptions
from claritycore.evaluation import evaluate
from claritycore.inference import upscale
from claritycore.metrics import psnr, ssim
from claritycore.models import AutoConfig, AutoModel
from claritycore.resize import imresize, modcrop
from claritycore.weights import save_model

KEYS = {
    "psnr_y",
    "ssim_y",
    "psnr_rgb",
    "ssim_rgb",
    "bicubic_psnr_y",
    "bicubic_ssim_y",
    "gain_psnr_y",
    "images",
    "seconds",
    "max_images",
    "scale",
    "preset",
    "step",
}


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus texture: bicubic does well but not perfectly on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=2) * 200
    texture = 40 * np.sin(x[..., None] * rng.uniform(0.3, 0.9, 3) + y[..., None] * 0.5)
    return np.clip(base + texture + 8, 0, 255).astype(np.uint8)


@pytest.fixture
def setup(tmp_path):
    valid = tmp_path / "valid"
    valid.mkdir()
    images = {"0801": _image(50, 43, 0), "0802": _image(37, 61, 1)}  # not multiples of 4
    for name, pixels in images.items():
        Image.fromarray(pixels).save(valid / f"{name}.png")
    torch.manual_seed(0)
    config = AutoConfig.from_name("rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    model = AutoModel.from_config(config).eval()
    save_model(tmp_path / "model.pt", model, experiment={"preset": "tiny"}, step=3, ema=True)
    return tmp_path, images, model


def test_evaluate_writes_every_output_and_exact_metrics(setup) -> None:
    tmp_path, images, model = setup
    out = tmp_path / "metrics"
    result = evaluate(
        tmp_path / "model.pt",
        tmp_path / "valid",
        out_dir=out,
        options=EvalOptions(tile=16, tile_pad=8),
    )

    assert set(result) >= KEYS
    assert json.loads((out / "eval.json").read_text()) == result
    assert result["images"] == 2 and result["scale"] == 4 and result["max_images"] is None
    assert result["preset"] == "tiny" and result["step"] == 3

    expected = {"bicubic_psnr_y": [], "bicubic_ssim_y": [], "psnr_y": [], "ssim_rgb": []}
    for pixels in images.values():
        hr = modcrop(pixels, 4)
        lr = imresize(hr, 1 / 4)
        bicubic = imresize(lr, 4)
        sr = upscale(model, lr, tile=0)
        expected["bicubic_psnr_y"].append(psnr(bicubic, hr, crop_border=4, y_channel=True))
        expected["bicubic_ssim_y"].append(ssim(bicubic, hr, crop_border=4, y_channel=True))
        expected["psnr_y"].append(psnr(sr, hr, crop_border=4, y_channel=True))
        expected["ssim_rgb"].append(ssim(sr, hr, crop_border=4))
    for key, values in expected.items():
        # Bicubic is deterministic; the model's tiles may differ from whole-image by 1 level.
        tolerance = 1e-9 if key.startswith("bicubic") else 0.05
        assert result[key] == pytest.approx(np.mean(values), abs=tolerance), key
    assert result["gain_psnr_y"] == pytest.approx(result["psnr_y"] - result["bicubic_psnr_y"])

    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["0801", "0802"]
    assert float(rows[1]["bicubic_psnr_y"]) == pytest.approx(expected["bicubic_psnr_y"][1])

    crops = sorted(p.name for p in (out / "comparisons").glob("*.png"))
    assert len(crops) == 2 and crops[0].startswith("best1_") and crops[1].startswith("worst1_")
    strip = np.asarray(Image.open(out / "comparisons" / crops[0]))
    side = min(modcrop(images[crops[0][6:10]], 4).shape[:2])
    assert strip.shape == (side, 3 * side + 2 * 4, 3)


def test_max_images_limits_and_is_recorded(setup) -> None:
    tmp_path, _, _ = setup
    out = tmp_path / "quick"
    result = evaluate(
        tmp_path / "model.pt", tmp_path / "valid", out_dir=out, options=EvalOptions(max_images=1)
    )
    assert result["images"] == 1 and result["max_images"] == 1
    with open(out / "per_image.csv") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_empty_folder_is_explained(setup) -> None:
    tmp_path, _, _ = setup
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        evaluate(tmp_path / "model.pt", tmp_path / "empty", out_dir=tmp_path / "m")
