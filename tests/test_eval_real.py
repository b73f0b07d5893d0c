"""Scoring real-world inputs: sets with their own LR are scored on it (bicubic baseline from the
same LR), and `evaluate.degrade` scores each set on a reproducible, cached degraded copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.config import DegradationConfig, EvaluateOptions
from claritycore.data import degraded
from claritycore.data.benchmark_sets import set_images
from claritycore.data.degraded import degraded_key, degraded_set
from claritycore.data.pairs import ImagePair, PairingError
from claritycore.degradation import degrade_image
from claritycore.errors import ConfigError
from claritycore.evaluation import evaluate
from claritycore.inference import upscale
from claritycore.metrics import psnr
from claritycore.models import AutoConfig, AutoModel
from claritycore.resize import imresize, modcrop
from claritycore.scoring import load_reference
from claritycore.weights import save_model

SCALE = 4
REALESRGAN = DegradationConfig(type="realesrgan")


def _image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=2) * 200
    texture = 40 * np.sin(x[..., None] * rng.uniform(0.3, 0.9, 3) + y[..., None] * 0.5)
    return np.clip(base + texture + 8, 0, 255).astype(np.uint8)


def _save(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _nearest(hr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(modcrop(hr, SCALE)[::SCALE, ::SCALE])


@pytest.fixture
def model(tmp_path) -> torch.nn.Module:
    """A tiny ×4 RRDBNet, saved as tmp_path/model.pt."""
    torch.manual_seed(0)
    config = AutoConfig.from_name("rrdbnet", scale=SCALE, num_feat=8, num_block=1, num_grow_ch=4)
    network = AutoModel.from_config(config).eval()
    save_model(tmp_path / "model.pt", network, experiment={"preset": "tiny"}, step=1, ema=False)
    return network


@pytest.fixture
def hr_set(tmp_path) -> dict[str, np.ndarray]:
    """Set3: three HR images, none a multiple of 4."""
    images = {"a": _image(50, 43, 0), "b": _image(37, 61, 1), "c": _image(44, 45, 2)}
    for name, pixels in images.items():
        _save(pixels, tmp_path / "Set3" / f"{name}.png")
    return images


def _expected(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Mean model and bicubic PSNR-Y over (HR, LR) pairs, computed directly."""
    model_psnr, bicubic_psnr = [], []
    for hr, lr in pairs:
        hr = modcrop(hr, SCALE)
        sr = upscale(model, lr, tile=0)
        model_psnr.append(psnr(sr, hr, crop_border=SCALE, y_channel=True))
        bicubic_psnr.append(psnr(imresize(lr, SCALE), hr, crop_border=SCALE, y_channel=True))
    return {"psnr_y": np.mean(model_psnr), "bicubic_psnr_y": np.mean(bicubic_psnr)}


def test_a_realsr_test_folder_is_scored_on_its_own_lr(tmp_path, model):
    """RealSR's layout (one LR per scale beside each HR): the ×4 LR is the input, and the
    baseline is bicubic upscaling of that LR, not of a bicubic downscale of the HR."""
    folder = tmp_path / "RealSR"
    images = {"Nikon_001": _image(50, 43, 0), "Nikon_002": _image(37, 61, 1)}
    for stem, hr in images.items():
        _save(hr, folder / f"{stem}_HR.png")
        _save(_nearest(hr), folder / f"{stem}_LR4.png")
        _save(np.ascontiguousarray(hr[::2, ::2]), folder / f"{stem}_LR2.png")
    assert [(p.hr.name, p.lr.name) for p in set_images(folder, SCALE)] == [
        ("Nikon_001_HR.png", "Nikon_001_LR4.png"),
        ("Nikon_002_HR.png", "Nikon_002_LR4.png"),
    ]
    result = evaluate(tmp_path / "model.pt", {"RealSR": folder}, out_dir=tmp_path / "out")
    scores = result["RealSR"]
    expected = _expected(model, [(hr, _nearest(hr)) for hr in images.values()])
    assert scores["images"] == 2
    assert scores["psnr_y"] == pytest.approx(expected["psnr_y"], abs=1e-6)
    assert scores["bicubic_psnr_y"] == pytest.approx(expected["bicubic_psnr_y"], abs=1e-6)
    # The HR files alone are scored on their bicubic downscale, with another baseline: the
    # figures above can tell which LR was read.
    for stem, hr in images.items():
        _save(hr, tmp_path / "hr_only" / f"{stem}_HR.png")
    clean = evaluate(tmp_path / "model.pt", {"hr": tmp_path / "hr_only"}, out_dir=tmp_path / "c")
    assert clean["hr"]["images"] == 2
    assert abs(clean["hr"]["bicubic_psnr_y"] - scores["bicubic_psnr_y"]) > 0.5


def test_a_gt_lq_set_with_a_wrong_lr_fails_before_scoring(tmp_path, hr_set, model):
    for name, hr in hr_set.items():
        _save(hr, tmp_path / "pairs" / "GT" / f"{name}.png")
        _save(
            np.ascontiguousarray(modcrop(hr, 3)[::3, ::3]),
            tmp_path / "pairs" / "LQ" / f"{name}.png",
        )
    with pytest.raises(PairingError, match=r"3 problems at ×4.*the LR sizes fit ×3"):
        evaluate(tmp_path / "model.pt", {"pairs": tmp_path / "pairs"}, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_degraded_copies_are_made_once_and_scored_as_their_own_set(tmp_path, hr_set, model,
                                                                   monkeypatch):  # fmt: skip
    cache = tmp_path / "cache"
    options = EvaluateOptions(degrade="realesrgan", degrade_seed=7)
    result = evaluate(
        tmp_path / "model.pt", {"Set3": tmp_path / "Set3"}, out_dir=tmp_path / "m",
        options=options, degraded_cache=cache,
    )  # fmt: skip
    assert list(result)[-2:] == ["Set3", "Set3-realesrgan"]
    folder = cache / f"Set3-{degraded_key(REALESRGAN, 7, SCALE)}"
    lrs = []
    for index, (name, hr) in enumerate(sorted(hr_set.items())):
        lr = np.asarray(Image.open(folder / f"{name}.png"))
        expected = degrade_image(modcrop(hr, SCALE), REALESRGAN, scale=SCALE, seed=7, index=index)
        np.testing.assert_array_equal(lr, expected)
        lrs.append((hr, lr))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["scale"] == SCALE
    assert manifest["degradation"] == REALESRGAN.to_dict() and len(manifest["images"]) == 3
    expected = _expected(model, lrs)
    scores = result["Set3-realesrgan"]
    assert scores["psnr_y"] == pytest.approx(expected["psnr_y"], abs=1e-6)
    assert scores["bicubic_psnr_y"] == pytest.approx(expected["bicubic_psnr_y"], abs=1e-6)
    # Degraded inputs are harder than the clean set's bicubic LR.
    assert scores["bicubic_psnr_y"] < result["Set3"]["bicubic_psnr_y"] - 0.5
    assert (tmp_path / "m" / "per_image" / "Set3-realesrgan.csv").is_file()

    # Cached: a second evaluate degrades nothing and gives the same figures.
    def refuse(*args, **kwargs):
        raise AssertionError("degraded again")

    monkeypatch.setattr(degraded, "degrade_image", refuse)
    again = evaluate(
        tmp_path / "model.pt", {"Set3": tmp_path / "Set3"}, out_dir=tmp_path / "m2",
        options=options, degraded_cache=cache,
    )  # fmt: skip
    assert again["Set3-realesrgan"] == scores


def test_only_a_changed_hr_is_degraded_again(tmp_path, hr_set, monkeypatch):
    images = set_images(tmp_path / "Set3", SCALE)
    cache = tmp_path / "cache"
    made: list[str] = []
    first = degraded_set("Set3", images, scale=SCALE, seed=1, cache=cache, on_make=made.append)
    assert made == ["a.png", "b.png", "c.png"]
    _save(_image(48, 40, 9), tmp_path / "Set3" / "b.png")
    made.clear()
    second = degraded_set("Set3", images, scale=SCALE, seed=1, cache=cache, on_make=made.append)
    assert made == ["b.png"] and [p.lr for p in second] == [p.lr for p in first]
    assert np.asarray(Image.open(second[1].lr)).shape == (12, 10, 3)
    # Another seed is another cache folder with other pixels.
    other = degraded_set("Set3", images, scale=SCALE, seed=2, cache=cache)
    assert other[0].lr.parent != first[0].lr.parent
    a1, a2 = (np.asarray(Image.open(p[0].lr)) for p in (first, other))
    assert not np.array_equal(a1, a2)


def test_evaluate_command_takes_degrade_and_seed(tmp_path, hr_set, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "-m", "model.pt", "--data", "Set3", "--out", "e", "--tile", "0"]
    result = CliRunner().invoke(app, [*args, "--degrade", "realesrgan", "--seed", "3"])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert set(scores) >= {"Set3", "Set3-realesrgan"}
    assert (tmp_path / "data" / "degraded" / f"Set3-{degraded_key(REALESRGAN, 3, 4)}").is_dir()
    result = CliRunner().invoke(app, [*args, "--degrade", "bicubic"])
    assert result.exit_code == 2 and "use realesrgan or null" in result.output


def test_evaluate_degrade_bicubic_is_refused():
    with pytest.raises(ConfigError, match=r"evaluate\.degrade: bicubic"):
        EvaluateOptions(degrade="bicubic")


def test_a_grey_image_keeps_a_grey_degraded_lr(tmp_path):
    grey = _image(48, 52, 4)[..., 1]
    Image.fromarray(grey).save(tmp_path / "g.png")
    cache = tmp_path / "c"
    (pair,) = degraded_set("G", [ImagePair(tmp_path / "g.png")], scale=SCALE, seed=0, cache=cache)
    lr = Image.open(pair.lr)
    rgb = degrade_image(np.repeat(grey[..., None], 3, 2), REALESRGAN, scale=SCALE, seed=0, index=0)
    assert lr.mode == "L"
    np.testing.assert_array_equal(np.asarray(lr), np.asarray(Image.fromarray(rgb).convert("L")))
    assert load_reference(pair, SCALE).lr.shape == (12, 13, 1)


def test_unusable_images_are_skipped_in_the_degraded_copy_too(tmp_path, hr_set, model):
    _save(_image(12, 40, 5), tmp_path / "Set3" / "d_small.png")
    (tmp_path / "Set3" / "e_cut.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    options = EvaluateOptions(degrade="realesrgan")
    result = evaluate(tmp_path / "model.pt", {"Set3": tmp_path / "Set3"}, out_dir=tmp_path / "m",
                      options=options, degraded_cache=tmp_path / "c")  # fmt: skip
    for name in ("Set3", "Set3-realesrgan"):
        assert result[name]["images"] == 3 and len(result[name]["skipped"]) == 2
