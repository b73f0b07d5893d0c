"""`evaluate` on a tiny model and small image sets: every output, metrics that match a direct
computation, the bad-input cases, and the trainer's validation giving evaluate's figures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from claritycore.config import EvaluateOptions
from claritycore.data import backbones
from claritycore.data.benchmark_sets import BenchmarkSetError
from claritycore.evaluation import NoUsableImages, evaluate
from claritycore.inference import upscale
from claritycore.metrics import psnr, ssim
from claritycore.models import AutoConfig, AutoModel
from claritycore.resize import imresize, modcrop
from claritycore.scoring import LABEL_HEIGHT
from claritycore.weights import save_model
from tests.helpers import history, quick_options, run, tiny_experiment, tiny_images, tiny_store

SET_KEYS = {
    "psnr_y",
    "ssim_y",
    "psnr_rgb",
    "ssim_rgb",
    "bicubic_psnr_y",
    "bicubic_ssim_y",
    "gain_psnr_y",
    "images",
}


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus texture: bicubic does well but not perfectly on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=2) * 200
    texture = 40 * np.sin(x[..., None] * rng.uniform(0.3, 0.9, 3) + y[..., None] * 0.5)
    return np.clip(base + texture + 8, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def no_alexnet_weights(tmp_path, monkeypatch):
    """LPIPS skipped whatever this machine holds: its torch hub cache is not consulted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(backbones, "PIPELINE_WEIGHTS", tmp_path / "weights")


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
    sets = {"valid": tmp_path / "valid"}
    result = evaluate(tmp_path / "model.pt", sets, out_dir=out, options=EvaluateOptions(tile=16))

    assert json.loads((out / "eval.json").read_text()) == result
    assert set(result) == {"model", "scale", "step", "ema", "valid"}
    assert result["scale"] == 4 and result["step"] == 3 and result["ema"] is True
    # No training config in the file: the architecture names what was scored.
    assert result["model"] == "rrdbnet"
    scores = result["valid"]
    assert set(scores) == SET_KEYS and scores["images"] == 2

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
        assert scores[key] == pytest.approx(np.mean(values), abs=tolerance), key
    assert scores["gain_psnr_y"] == pytest.approx(scores["psnr_y"] - scores["bicubic_psnr_y"])

    with open(out / "per_image" / "valid.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["0801", "0802"]
    assert float(rows[1]["bicubic_psnr_y"]) == pytest.approx(expected["bicubic_psnr_y"][1])

    crops = sorted(p.name for p in (out / "comparisons" / "valid").iterdir())
    assert crops == ["0801.png", "0802.png"]
    strip = np.asarray(Image.open(out / "comparisons" / "valid" / "0802.png"))
    side = min(modcrop(images["0802"], 4).shape[:2])
    assert strip.shape == (side + LABEL_HEIGHT, 3 * side + 2 * 4, 3)
    # The HR panel holds HR pixels; the label band above the panels holds dark text.
    hr_panel = strip[LABEL_HEIGHT:, 2 * (side + 4) :]
    assert (strip[:LABEL_HEIGHT] < 100).any()
    window = modcrop(images["0802"], 4)
    assert any(
        np.array_equal(hr_panel, window[t : t + side, c : c + side])
        for t in range(window.shape[0] - side + 1)
        for c in range(window.shape[1] - side + 1)
    )


def test_each_set_gets_its_section_csv_and_crops_at_fixed_places(setup) -> None:
    tmp_path, images, _ = setup
    other = tmp_path / "Set5" / "GTmod12"
    other.mkdir(parents=True)
    Image.fromarray(images["0801"]).save(other / "bird.png")
    sets = {"valid": tmp_path / "valid", "Set5": tmp_path / "Set5"}
    first = evaluate(tmp_path / "model.pt", sets, out_dir=tmp_path / "a")
    assert first["Set5"]["images"] == 1 and first["valid"]["images"] == 2
    assert first["Set5"]["psnr_y"] == pytest.approx(
        json.loads((tmp_path / "a" / "eval.json").read_text())["Set5"]["psnr_y"]
    )
    assert (tmp_path / "a" / "per_image" / "Set5.csv").is_file()

    # Another model: the same crop file names, and the same HR and bicubic panels.
    torch.manual_seed(1)
    config = AutoConfig.from_name("rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    save_model(tmp_path / "other.pt", AutoModel.from_config(config), experiment={}, step=1)
    evaluate(tmp_path / "other.pt", sets, out_dir=tmp_path / "b")
    for name in ("valid/0801.png", "valid/0802.png", "Set5/bird.png"):
        a = np.asarray(Image.open(tmp_path / "a" / "comparisons" / name))
        b = np.asarray(Image.open(tmp_path / "b" / "comparisons" / name))
        side = (a.shape[1] - 8) // 3
        for panel in (0, 2):  # bicubic and HR
            cols = slice(panel * (side + 4), panel * (side + 4) + side)
            np.testing.assert_array_equal(a[LABEL_HEIGHT:, cols], b[LABEL_HEIGHT:, cols])
        assert not np.array_equal(a[LABEL_HEIGHT:], b[LABEL_HEIGHT:])  # the model panel differs


def test_max_images_limits_each_set(setup) -> None:
    tmp_path, _, _ = setup
    out = tmp_path / "quick"
    sets = {"valid": tmp_path / "valid"}
    result = evaluate(
        tmp_path / "model.pt", sets, out_dir=out, options=EvaluateOptions(max_images=1)
    )
    assert result["valid"]["images"] == 1
    with open(out / "per_image" / "valid.csv") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_missing_or_empty_set_fails_before_any_work(setup) -> None:
    tmp_path, _, _ = setup
    (tmp_path / "empty").mkdir()
    out = tmp_path / "m"
    with pytest.raises(BenchmarkSetError, match=r"no HR images .* in .*empty"):
        evaluate(
            tmp_path / "model.pt",
            {"valid": tmp_path / "valid", "E": tmp_path / "empty"},
            out_dir=out,
        )
    with pytest.raises(BenchmarkSetError, match="Set14 does not exist: put the set's HR images"):
        evaluate(tmp_path / "model.pt", {"Set14": tmp_path / "Set14"}, out_dir=out)
    assert not out.exists()


def test_corrupt_and_tiny_images_are_named_skipped_and_recorded(setup) -> None:
    tmp_path, _, _ = setup
    valid = tmp_path / "valid"
    (valid / "0900.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(_image(18, 40, 2)).save(valid / "0901.png")  # 16 - 2*4 < 11 rows for SSIM
    result = evaluate(tmp_path / "model.pt", {"valid": valid}, out_dir=tmp_path / "m")
    assert result["valid"]["images"] == 2
    skipped = result["valid"]["skipped"]
    assert len(skipped) == 2
    assert "0900.png" in skipped[0] and "cannot read image" in skipped[0]
    assert "0901.png" in skipped[1] and "too small for ×4" in skipped[1]


def test_a_set_with_no_usable_image_is_an_error(setup) -> None:
    tmp_path, _, _ = setup
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"garbage")
    out = tmp_path / "m"
    evaluate(tmp_path / "model.pt", {"valid": tmp_path / "valid"}, out_dir=out)
    before = (out / "eval.json").read_text()
    sets = {"valid": tmp_path / "valid", "bad": bad}
    with pytest.raises(NoUsableImages, match=r"set 'bad' .* has no usable image at ×4: .*a\.png"):
        evaluate(tmp_path / "model.pt", sets, out_dir=out)
    # Nothing written: the previous results stay whole.
    assert (out / "eval.json").read_text() == before
    assert sorted(p.name for p in (out / "per_image").iterdir()) == ["valid.csv"]


def test_a_greyscale_image_is_scored_on_its_own_channel(setup) -> None:
    tmp_path, images, model = setup
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(images["0801"]).convert("L").save(grey / "g.png")
    result = evaluate(tmp_path / "model.pt", {"grey": grey}, out_dir=tmp_path / "m")["grey"]

    hr = modcrop(np.asarray(Image.open(grey / "g.png"))[..., None], 4)
    lr = imresize(hr, 1 / 4)
    bicubic = imresize(lr, 4)
    assert result["bicubic_psnr_y"] == pytest.approx(psnr(bicubic, hr, crop_border=4))
    assert result["psnr_y"] == result["psnr_rgb"]  # one channel: Y is it
    # The model sees replicated RGB; its output is reduced to grey as `upscale` saves it.
    sr = np.asarray(upscale(model, Image.fromarray(lr[..., 0]), tile=0))[..., None]
    assert result["psnr_y"] == pytest.approx(psnr(sr, hr, crop_border=4), abs=0.05)


def test_self_ensemble_is_recorded_in_the_figures(setup) -> None:
    tmp_path, _, _ = setup
    sets = {"valid": tmp_path / "valid"}
    plain = evaluate(tmp_path / "model.pt", sets, out_dir=tmp_path / "p")["valid"]
    options = EvaluateOptions(self_ensemble=True)
    ensembled = evaluate(tmp_path / "model.pt", sets, out_dir=tmp_path / "e", options=options)
    assert ensembled["valid"]["bicubic_psnr_y"] == plain["bicubic_psnr_y"]
    assert ensembled["valid"]["psnr_y"] != plain["psnr_y"]


def test_trainer_validation_equals_evaluate(tmp_path) -> None:
    """The trainer's last validation figure is evaluate's for the same weights and images."""
    valid = tiny_images(tmp_path / "valid", count=2, size=48)
    store = tiny_store(tmp_path)
    experiment = tiny_experiment(steps=4, ema=True)
    options = quick_options(val_every=4, val_images=2)
    out = run(tmp_path, experiment, options, store, val_dir=valid)
    last = [row for row in history(tmp_path / "ckpt") if "val/psnr_y" in row][-1]
    result = evaluate(
        out, {"valid": valid}, out_dir=tmp_path / "m", options=EvaluateOptions(device="cpu")
    )
    assert last["val/psnr_y"] == result["valid"]["psnr_y"]
    assert last["val/ssim_y"] == result["valid"]["ssim_y"]
