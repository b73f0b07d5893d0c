"""`claritycore train` / `claritycore <preset>`: every documented flag reaches the config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.cli import train as train_cli
from claritycore.cli.common import flagless_help
from claritycore.data.packing import extract_store
from claritycore.models import AutoConfig, AutoModel
from claritycore.pretrained import StartFile
from claritycore.schema import field_help
from claritycore.weights import save_model
from tests.helpers import tiny_images

runner = CliRunner()


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Capture what the commands would train with, without training or extracting."""
    seen = []
    monkeypatch.setattr(train_cli, "train", lambda experiment, **kw: seen.append((experiment, kw)))
    monkeypatch.setattr(train_cli, "ensure_store", lambda data, scale, **kw: data)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets" / "DIV2K" / "train").mkdir(parents=True)
    (tmp_path / "datasets" / "DIV2K" / "valid").mkdir()
    (tmp_path / "data" / "stores" / "x4").mkdir(parents=True)
    return seen


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_preset_command_with_overrides(calls):
    result = invoke("rrdbnetx4", "--batch-size", "8", "--steps", "100000", "--ema")
    assert result.exit_code == 0, result.output
    ((experiment, kw),) = calls
    assert experiment.preset == "rrdbnetx4" and experiment.model.num_block == 23
    training = experiment.training
    assert (training.batch_size, training.steps, training.ema) == (8, 100000, True)
    assert training.patch_size == 256 and training.lr == 2e-4  # untouched preset values
    assert kw["train_store"] == Path("data/stores/x4")
    assert kw["output"] == Path("runs/rrdbnetx4/model.pt")
    assert kw["checkpoints"] == Path("runs/rrdbnetx4/checkpoints")
    assert kw["resume"] is True and kw["pretrained"] is None


def test_train_command_documented_example(calls):
    result = invoke(
        "train", "--model", "rrdbnet", "--scale", "4", "--num-feat", "64", "--num-block", "23",
        "--data", "datasets/DIV2K", "--batch-size", "16", "--steps", "400000", "--lr", "2e-4",
        "--loss", "l1", "--amp", "--name", "my_experiment",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((experiment, kw),) = calls
    assert experiment.preset == "rrdbnetx4"
    model, training = experiment.model, experiment.training
    assert (model.scale, model.num_feat, model.num_block) == (4, 64, 23)
    assert (training.batch_size, training.steps, training.lr) == (16, 400000, 2e-4)
    assert (training.loss, training.amp) == ("l1", True)
    assert kw["train_store"] == Path("datasets/DIV2K/train")
    assert kw["val_dir"] == Path("datasets/DIV2K/valid")
    assert kw["output"] == Path("runs/my_experiment/model.pt")
    assert kw["live_dir"] == Path("runs/my_experiment/dvclive")


def test_train_command_picks_the_lite_preset_and_run_flags(calls, tmp_path):
    # --pretrained is read before any work starts, so it must be a real weights file.
    # It must fit the experiment's model (rrdbnet-litex2's: checked before any work too).
    lite = AutoConfig.from_name("rrdbnet", scale=2, num_feat=32, num_block=6, num_grow_ch=16)
    save_model(tmp_path / "w.pt", AutoModel.from_config(lite))
    result = invoke(
        "train", "--scale", "2", "--num-feat", "32", "--num-block", "6", "--data",
        "datasets/DIV2K/train", "--val-data", "elsewhere", "--output", "out", "--patch-size",
        "64", "--seed", "7", "--workers", "0", "--device", "cpu", "--devices", "2",
        "--save-every", "11", "--val-every", "13", "--val-images", "3", "--log-every", "5",
        "--compile", "--no-channels-last", "--no-resume", "--pretrained", "w.pt",
        "--precision", "bf16", "--no-amp", "--no-ema", "--set", "scheduler=multistep",
        "--set", "milestones=[0.5, 0.8]", "--loss", "charbonnier",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((experiment, kw),) = calls
    assert experiment.preset == "rrdbnet-litex2"
    training = experiment.training
    assert (training.patch_size, training.amp, training.ema) == (64, False, False)
    assert (training.scheduler, training.milestones) == ("multistep", (0.5, 0.8))
    assert training.loss == "charbonnier"
    options = kw["options"]
    assert (options.seed, options.workers, options.device, options.devices) == (7, 0, "cpu", 2)
    assert (options.save_every, options.val_every, options.val_images) == (11, 13, 3)
    assert (options.log_every, options.compile, options.channels_last) == (5, True, False)
    assert options.precision == "bf16"
    assert (kw["resume"], kw["pretrained"]) == (False, StartFile("w.pt", Path("w.pt")))
    assert kw["pretrained_d"] is None
    assert kw["val_dir"] == Path("elsewhere") and kw["output"] == Path("out/model.pt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--preset", "rrdbnetx5"], "unknown preset 'rrdbnetx5'"),
        (["train", "--scale", "5"], "no preset trains 'rrdbnet' at ×5"),
        (["rrdbnetx4", "--loss", "l3"], "expected one of l1, l2, charbonnier"),
        (["rrdbnetx4", "--patch-size", "30"], "not a multiple of scale=4"),
        (["rrdbnetx4", "--steps", "0"], "steps must be a positive integer"),
        (["rrdbnetx4", "--set", "colour=1"], "unknown override 'colour'"),
        (["rrdbnetx4", "--set", "steps"], "is not KEY=VALUE"),
        (["rrdbnetx4", "--set", "lr=1e-4x"], "overrides.lr is '1e-4x'; expected a number"),
        (["rrdbnetx4", "--set", "lr=[1e-4,"], "--set 'lr=[1e-4,' is not valid YAML"),
        (["rrdbnetx4", "--precision", "fp8"], "options.precision is 'fp8'; expected one of auto"),
        (["rrdbnetx4", "--scale", "2"], "No such option: --scale"),
        (["rrdbnetx4", "--data", "missing"], "--data missing is not a folder"),
    ],
)
def test_bad_values_fail_with_a_clear_message(calls, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()), result.output
    assert not calls


def test_set_reads_numbers_as_users_write_them(calls):
    """`1e-4` is a number, as on the command line's --lr (PyYAML alone reads a string)."""
    result = invoke(
        "rrdbnetx4", "--set", "lr=1e-4", "--set", "min_lr=1E-6", "--degradation", "realesrgan",
        "--set", "degradation.blur_sigma=[1e-1,3]",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((experiment, _),) = calls
    assert (experiment.training.lr, experiment.training.min_lr) == (1e-4, 1e-6)
    assert experiment.degradation.blur_sigma == (0.1, 3.0)


def test_unknown_preset_command_is_rejected():
    result = runner.invoke(app, ["rrdbnetx5"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_train_runs_end_to_end_on_a_folder_of_images(tmp_path, monkeypatch):
    """A folder of HR images is extracted into a store beside it once, then trained on."""
    monkeypatch.chdir(tmp_path)
    tiny_images(tmp_path / "set" / "train")
    tiny_images(tmp_path / "set" / "valid", count=1, size=40)
    args = [
        "rrdbnet-litex2", "--num-feat", "8", "--num-block", "1", "--num-grow-ch", "8",
        "--data", "set/train", "--steps", "3", "--batch-size", "2", "--patch-size", "16",
        "--workers", "0", "--device", "cpu", "--log-every", "1", "--val-every", "3",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "set" / "train_x2" / "index.json").exists()
    # The tiny model is not the preset's, so its folder is not named after the preset.
    run = tmp_path / "runs" / "rrdbnet-x2-num_feat8-num_block1-num_grow_ch8"
    saved = torch.load(run / "model.pt", weights_only=True)
    assert (saved["preset"], saved["step"], saved["config"]["scale"]) == ("rrdbnet-litex2", 3, 2)
    assert (run / "dvclive" / "metrics.json").exists()


def test_a_pipeline_store_validates_on_its_sources_valid_images(tmp_path):
    """`--data data/stores/x2` finds data/raw/<source>/valid of the source it was extracted
    from (its train/ holds the store's images), not that of another source."""
    raw = tmp_path / "data" / "raw"
    tiny_images(raw / "other" / "train", count=2)  # img0, img1: not all of the store's images
    (raw / "other" / "valid").mkdir()
    tiny_images(raw / "sample" / "train")
    (raw / "sample" / "valid").mkdir()
    store = tmp_path / "data" / "stores" / "x2"
    extract_store(raw / "sample" / "train", store, 2, workers=1)
    job = train_cli.build_run("rrdbnet-litex2", None, store, None, None, None, {}, {})
    assert job.val_dir == raw / "sample" / "valid"
    shutil.rmtree(raw / "sample")
    job = train_cli.build_run("rrdbnet-litex2", None, store, None, None, None, {}, {})
    assert job.val_dir is None


def test_training_without_validation_images_says_so_in_one_line(calls):
    result = invoke("rrdbnetx4", "--data", "data/stores/x4", "--val-every", "20")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "validates nothing" in line]
    assert len(notes) == 1 and "pass --val-data" in notes[0], result.output
    assert calls[0][1]["val_dir"] is None
    quiet = invoke("rrdbnetx4", "--data", "datasets/DIV2K/train")  # valid/ beside it
    assert "validates nothing" not in quiet.output


def test_a_custom_architecture_is_not_labelled_as_a_preset(calls):
    data = ("--data", "datasets/DIV2K")
    result = invoke("train", "--scale", "2", "--num-feat", "48", "--num-block", "10", *data)
    assert result.exit_code == 0, result.output
    ((experiment, kw),) = calls
    assert experiment.preset == "rrdbnetx2"  # the recipe it starts from
    assert experiment.label == "rrdbnet ×2 num_feat=48 num_block=10 (rrdbnetx2's recipe)"
    assert kw["output"] == Path("runs/rrdbnet-x2-num_feat48-num_block10/model.pt")
    invoke("train", "--scale", "4", "--num-feat", "64", "--num-block", "23", *data)  # rrdbnetx4
    assert calls[1][0].label == "rrdbnetx4"
    assert calls[1][1]["output"] == Path("runs/rrdbnetx4/model.pt")


def test_help_texts_promise_what_the_commands_take():
    wide = {"COLUMNS": "250"}  # one line per option
    train_help = runner.invoke(app, ["train", "--help"], env=wide).output
    assert "any file `claritycore upscale` reads" in train_help  # --pretrained: not only model.pt
    preset_help = runner.invoke(app, ["rrdbnetx4", "--help"], env=wide).output
    assert "--scale" not in preset_help and "--model" not in preset_help  # only conflicts
    assert "--steps" in preset_help and "--keep-checkpoints" in preset_help


def test_every_field_is_a_flag_or_a_set_key(calls):
    """Flags are made from the model, recipe and run fields; `--set` takes any of them."""
    result = invoke(
        "rrdbnetx2", "--data", "datasets/DIV2K", "--upsampler", "nearest", "--no-x2-unshuffle",
        "--ema-decay", "0.99", "--warmup-steps", "5", "--grad-clip", "1.5", "--max-nonfinite",
        "3", "--set", "betas=[0.8, 0.9]", "--set", "seed=5", "--set", "workers=auto",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((experiment, kw),) = calls
    assert (experiment.model.upsampler, experiment.model.x2_unshuffle) == ("nearest", False)
    training = experiment.training
    assert (training.ema_decay, training.warmup_steps, training.grad_clip) == (0.99, 5, 1.5)
    assert training.betas == (0.8, 0.9)
    options = kw["options"]
    assert (options.max_nonfinite, options.seed, options.workers) == (3, 5, "auto")
    repeated = runner.invoke(app, ["rrdbnetx4", "--seed", "1", "--set", "seed=2"])
    assert repeated.exit_code == 2 and "--set seed=... repeats a flag" in repeated.output


def test_train_help_describes_each_field_with_its_help():
    output = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "3000"}).output
    text = " ".join(output.split())
    flagless = flagless_help(*train_cli.FIELD_CLASSES)
    assert sorted(flagless) == ["betas", "milestones"]
    for cls in train_cli.FIELD_CLASSES:
        for name, help_text in field_help(cls).items():
            assert " ".join(help_text.split()) in text, name
            flag = f" --{name.replace('_', '-')} "
            assert (flag in text) is (name not in flagless), name
