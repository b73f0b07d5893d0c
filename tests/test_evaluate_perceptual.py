"""`evaluate`'s NIQE and LPIPS: per set in eval.json, per image in the CSV, in the printed table;
equal to a direct computation; LPIPS skipped with one line when AlexNet's weights are absent;
nothing of it when `perceptual` is off."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from claritycore.config import EvaluateOptions
from claritycore.data import backbones, published
from claritycore.data.download import sha256_file
from claritycore.evaluation import evaluate
from claritycore.inference import upscale_array
from claritycore.lpips import load_lpips, lpips_distance
from claritycore.models import AutoConfig, AutoModel
from claritycore.niqe import niqe
from claritycore.resize import imresize, lr_hr_pair
from claritycore.weights import save_model
from tests.fixtures.lpips_inputs import seeded_alexnet_features

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "valid"
ALEXNET = published.PUBLISHED["alexnet"].file


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A tiny ×4 model, two natural crops big enough for NIQE and one too small, and no AlexNet
    weights anywhere `backbones` looks (this machine's caches are not consulted)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(backbones, "PIPELINE_WEIGHTS", tmp_path / "weights")
    valid = tmp_path / "valid"
    valid.mkdir()
    cat = np.asarray(Image.open(SAMPLE / "chelsea.png").convert("RGB"))
    rocket = np.asarray(Image.open(SAMPLE / "rocket.png").convert("RGB"))
    images = {"a": cat[:212, 20:232], "b": rocket[100:310, 200:510], "c": cat[:60, :60]}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(valid / f"{name}.png")
    torch.manual_seed(0)
    config = AutoConfig.from_name("rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    model = AutoModel.from_config(config).eval()
    save_model(tmp_path / "model.pt", model, experiment={}, step=1)
    return tmp_path, images, model


def install_seeded_alexnet(tmp_path: Path, monkeypatch) -> Path:
    """Seeded AlexNet weights in torch's hub cache, and the table entry made to match them: the
    real lookup and verification run, on a file of 10 MB instead of 233 MB."""
    path = tmp_path / "torch" / "hub" / "checkpoints" / ALEXNET
    path.parent.mkdir(parents=True)
    torch.save(seeded_alexnet_features(), path)
    spec = published.PUBLISHED["alexnet"]
    seeded = published.PublishedFile(
        spec.file, spec.url, path.stat().st_size, sha256_file(path), spec.description
    )
    monkeypatch.setitem(published.PUBLISHED, "alexnet", seeded)
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_niqe_and_lpips_per_set_and_image(setup, monkeypatch) -> None:
    tmp_path, images, model = setup
    alexnet = install_seeded_alexnet(tmp_path, monkeypatch)
    console = Console(file=io.StringIO(), width=200)
    options = EvaluateOptions(tile=0, device="cpu")
    out = tmp_path / "m"
    result = evaluate(
        tmp_path / "model.pt", {"valid": tmp_path / "valid"}, out_dir=out, options=options,
        console=console,
    )  # fmt: skip
    metric = load_lpips(alexnet)
    expected: dict[str, dict[str, float]] = {}
    for name, pixels in images.items():
        lr, hr = lr_hr_pair(pixels, 4)
        sr = upscale_array(model, lr, tile=0, device="cpu", progress=False)
        expected[name] = {
            "niqe": niqe(sr, crop_border=4),
            "bicubic_niqe": niqe(imresize(lr, 4), crop_border=4),
            "lpips": lpips_distance(metric, sr, hr, crop_border=4),
        }
    assert math.isnan(expected["c"]["niqe"])  # 52×52 after the crop: not two 96×96 blocks
    scores = result["valid"]
    for key in ("niqe", "bicubic_niqe"):
        # The set's NIQE is over the images that have one.
        assert scores[key] == pytest.approx((expected["a"][key] + expected["b"][key]) / 2)
    assert scores["lpips"] == pytest.approx(np.mean([e["lpips"] for e in expected.values()]))
    # A random model's output is less natural than bicubic's.
    assert scores["niqe"] > scores["bicubic_niqe"]

    rows = {row["name"]: row for row in _csv(out / "per_image" / "valid.csv")}
    for name, figures in expected.items():
        for key, value in figures.items():
            got = float(rows[name][key])
            assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value)
    printed = console.file.getvalue()
    assert "NIQE" in printed and "bicubic NIQE" in printed and "LPIPS" in printed
    assert f"{scores['niqe']:.3f}" in printed and "skipped" not in printed


def test_lpips_is_skipped_with_one_line_without_alexnet(setup) -> None:
    tmp_path, _, _ = setup
    console = Console(file=io.StringIO(), width=400)
    out = tmp_path / "m"
    result = evaluate(
        tmp_path / "model.pt", {"valid": tmp_path / "valid"}, out_dir=out, console=console
    )
    assert "lpips" not in result["valid"] and result["valid"]["niqe"] > 0
    lines = [line for line in console.file.getvalue().splitlines() if "LPIPS skipped" in line]
    assert len(lines) == 1
    assert ALEXNET in lines[0] and str(tmp_path / "weights") in lines[0]
    columns = list(_csv(out / "per_image" / "valid.csv")[0])
    assert "niqe" in columns and "bicubic_niqe" in columns and "lpips" not in columns


def test_perceptual_off_scores_psnr_ssim_only(setup, monkeypatch) -> None:
    tmp_path, _, _ = setup
    install_seeded_alexnet(tmp_path, monkeypatch)
    console = Console(file=io.StringIO(), width=200)
    out = tmp_path / "m"
    options = EvaluateOptions(perceptual=False)
    result = evaluate(
        tmp_path / "model.pt", {"valid": tmp_path / "valid"}, out_dir=out, options=options,
        console=console,
    )  # fmt: skip
    assert not {"niqe", "bicubic_niqe", "lpips"} & set(result["valid"])
    assert not {"niqe", "bicubic_niqe", "lpips"} & set(_csv(out / "per_image" / "valid.csv")[0])
    assert "NIQE" not in console.file.getvalue()
