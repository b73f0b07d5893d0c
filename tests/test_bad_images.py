"""An unreadable image stops fetch and extract with one line that names the file (exit status 2,
no traceback, the previous outputs kept); validation in train and evaluate, and upscale, name it
and go on without it (evaluate records it in eval.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.data.store import ImageStore
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import save_model
from stages import extract as extract_stage
from stages import extract_hr as extract_hr_stage
from stages import fetch as fetch_stage
from tests.helpers import tiny_images

# Rich wraps at the terminal width: a long temporary path would split the phrases asserted.
WIDE = {"COLUMNS": "1000"}


def truncate(image: Path, dest: Path) -> Path:
    """`dest`: the first half of `image`'s bytes (header intact, pixel data cut)."""
    data = image.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def error_line(result) -> str:
    """The failing command's last line; asserts exit status 2 and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def folder_project(tmp_path, monkeypatch) -> Path:
    """A project folder (cwd) whose params.yaml imports a folder of HR images (128 px: the
    largest x2 patch, so none is skipped)."""
    root = tmp_path / "hr"
    tiny_images(root / "train", count=2, size=128)
    tiny_images(root / "valid", count=1, size=128)
    project = tmp_path / "project"
    project.mkdir()
    data = {"source": "folder", "root": str(root), "url": "unused", "scales": [2]}
    params = {"data": data, "extract": {"workers": 1}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    return root


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_fetch_names_the_unreadable_image_and_keeps_the_last_import(folder_project, suffix):
    runner = CliRunner()
    assert runner.invoke(fetch_stage.app, []).exit_code == 0
    imported = sorted(p.name for p in Path("data/raw/folder/train").iterdir())
    good = folder_project / "train" / "img0.png"
    Image.open(good).save(folder_project / "train" / f"whole{suffix}")
    truncate(folder_project / "train" / f"whole{suffix}", folder_project / "train" / f"cut{suffix}")
    (folder_project / "train" / f"whole{suffix}").unlink()
    line = error_line(runner.invoke(fetch_stage.app, []))
    assert line.startswith("fetch failed:") and f"cut{suffix}" in line, line
    assert sorted(p.name for p in Path("data/raw/folder/train").iterdir()) == imported


def test_extract_names_the_unreadable_image_and_keeps_the_last_store(folder_project):
    runner = CliRunner()
    assert runner.invoke(fetch_stage.app, []).exit_code == 0
    assert runner.invoke(extract_hr_stage.app, []).exit_code == 0
    Path("stores.yaml").write_text("lr: {x2: true}\n")
    assert (
        runner.invoke(extract_stage.app, ["--scale", "2", "--stores", "stores.yaml"]).exit_code == 0
    )
    index = Path("data/stores/hr/index.json").read_bytes()
    truncate(Path("data/raw/folder/train/img0.png"), Path("data/raw/folder/train/img9.png"))
    line = error_line(runner.invoke(extract_hr_stage.app, []))
    assert line.startswith("extract_hr failed:") and "img9.png" in line, line
    assert Path("data/stores/hr/index.json").read_bytes() == index
    assert ImageStore.open(Path("data/stores/x2")).has_lr  # still over the last HR store


def test_train_names_the_unreadable_validation_image_and_skips_it(tmp_path):
    train_dir = tiny_images(tmp_path / "train", count=2)
    valid = tiny_images(tmp_path / "valid", count=1)
    truncate(valid / "img0.png", valid / "cut.png")
    args = ["train", "--data", str(train_dir), "--val-data", str(valid), "--steps", "1"]
    args += ["--batch-size", "1", "--patch-size", "16", "--num-feat", "8", "--num-block", "1"]
    args += ["--set", "num_grow_ch=8", "--workers", "0", "--device", "cpu"]
    args += ["--output", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "skipped cannot read image" in result.output and "cut.png" in result.output


def test_evaluate_names_the_unreadable_image_and_records_it(tmp_path):
    save_model(tmp_path / "model.pt", AutoModel.from_config(AutoConfig.from_name(
        "rrdbnet", scale=2, num_feat=8, num_block=1, num_grow_ch=8)))  # fmt: skip
    valid = tiny_images(tmp_path / "valid", count=1)
    truncate(valid / "img0.png", valid / "img1.png")
    args = ["evaluate", "-m", str(tmp_path / "model.pt"), "--data", str(valid)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "eval")], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "skipped cannot read image" in result.output and "img1.png" in result.output
    skipped = json.loads((tmp_path / "eval" / "eval.json").read_text())["valid"]["skipped"]
    assert len(skipped) == 1 and "img1.png" in skipped[0]


def test_upscale_names_the_unreadable_image_and_goes_on(tmp_path):
    save_model(tmp_path / "model.pt", AutoModel.from_config(AutoConfig.from_name(
        "rrdbnet", scale=2, num_feat=8, num_block=1, num_grow_ch=8)))  # fmt: skip
    inputs = tiny_images(tmp_path / "in", count=1)
    truncate(inputs / "img0.png", inputs / "cut.png")
    args = ["upscale", str(inputs), "-m", str(tmp_path / "model.pt"), "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "1 upscaled, 0 skipped (exist), 1 failed" in result.output
    assert "failed cut.png: image file is truncated" in result.output, result.output
    assert (tmp_path / "o" / "img0.png").exists()
    shutil.rmtree(tmp_path / "o")
