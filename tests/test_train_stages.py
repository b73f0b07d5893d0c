"""Training on synthesised real-world LR and the adversarial (GAN) stage, with real processes:
SIGKILL after a checkpoint, then resume bit-for-bit; two gloo ranks match one process; each
loss term is logged; a missing VGG19 stops the run before any step."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from claritycore.data import published
from claritycore.errors import UserError
from claritycore.experiment import resolve
from tests.helpers import TINY, latest, quick_options, random_vgg19, run, tiny_images

ROOT = Path(__file__).resolve().parents[1]
# Real-ESRNet's pipeline on 32² HR patches cut from degraded 80² regions of 96² images (Real-
# ESRGAN's 400² would only pad them); a GAN stage of the lite models with a
# small U-Net discriminator (any multiple of 8) and a perceptual loss on a random VGG19.
REALWORLD = ("realesrnet-litex2", {"steps": 8, "batch_size": 4, "patch_size": 32, **TINY}, {})
ADVERSARIAL = {"discriminator": "unet_sn", "d_num_feat": 8, "perceptual_layers": {"conv2_2": 1.0}}
GAN = ("esrgan-litex2", {"steps": 8, "batch_size": 4, "patch_size": 32, **TINY}, ADVERSARIAL)
OPTIONS = {"save_every": 3, "log_every": 1}

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from claritycore.config import TrainOptions
    from claritycore.experiment import resolve
    from claritycore.training import checkpoint
    from tests.helpers import quick_options, run

    spec = json.loads(sys.argv[1])
    if spec["kill"]:
        save = checkpoint.save
        def save_then_die(*args, **kwargs):
            save(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save = save_then_die
    preset, overrides, adversarial = spec["experiment"]
    degradation = {"type": "realesrgan", "crop": 80} if spec["realworld"] else {}
    experiment = resolve(preset, overrides, degradation=degradation, adversarial=adversarial)
    options = quick_options(**spec["options"])
    run(Path(spec["root"]), experiment, options, Path(spec["store"]), pretrained=spec["pretrained"])
    """
)


def _child(root: Path, store: Path, experiment, options, *, kill: bool, realworld=False,
           pretrained=None) -> int:  # fmt: skip
    spec = {"root": str(root), "store": str(store), "experiment": experiment, "kill": kill,
            "options": options, "realworld": realworld, "pretrained": pretrained}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed:\n{result.stdout}\n{result.stderr}")
    return result.returncode


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """An HR-only store is enough for realesrgan; the GAN stage reads the bicubic pairs."""
    from claritycore.data.packing import extract_store

    root = tmp_path_factory.mktemp("stages")
    path = root / "store_x2"
    extract_store(tiny_images(root / "images", count=3, size=96), path, 2, workers=1)
    return path


@pytest.fixture(scope="module")
def vgg(tmp_path_factory) -> Path:
    return random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19.pth")


@pytest.fixture(scope="module")
def psnr_model(tmp_path_factory, store) -> Path:
    """The PSNR stage a GAN stage starts from: a few L1 steps of the same tiny model."""
    root = tmp_path_factory.mktemp("psnr")
    experiment = resolve("rrdbnet-litex2", {"steps": 2, "batch_size": 2, "patch_size": 32, **TINY})
    return run(root, experiment, quick_options(save_every=2), store)


def _assert_same_weights(crashed: Path, straight: Path) -> None:
    resumed = torch.load(crashed / "model.pt", weights_only=True)
    reference = torch.load(straight / "model.pt", weights_only=True)
    assert resumed["step"] == reference["step"] == 8
    for name, tensor in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name


def test_realesrgan_run_resumes_bitwise_after_sigkill(tmp_path, store):
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    assert _child(crashed, store, REALWORLD, OPTIONS, kill=True, realworld=True) == (
        -signal.SIGKILL
    )
    assert latest(crashed / "ckpt")["step"] == 3 and not (crashed / "model.pt").exists()
    assert _child(crashed, store, REALWORLD, OPTIONS, kill=False, realworld=True) == 0
    assert _child(straight, store, REALWORLD, OPTIONS, kill=False, realworld=True) == 0
    _assert_same_weights(crashed, straight)
    # The degraded pairs are not the bicubic ones: the same recipe on bicubic LR ends elsewhere.
    bicubic = tmp_path / "bicubic"
    run(bicubic, resolve(REALWORLD[0], REALWORLD[1], degradation={"type": "bicubic"}),
        quick_options(**OPTIONS), store)  # fmt: skip
    trained = torch.load(straight / "model.pt", weights_only=True)["state_dict"]
    other = torch.load(bicubic / "model.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(trained[k], other[k]) for k in trained)


def test_adversarial_run_resumes_bitwise_after_sigkill(tmp_path, store, vgg, psnr_model):
    options = {**OPTIONS, "vgg_weights": str(vgg)}
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    kwargs = {"pretrained": str(psnr_model)}
    assert _child(crashed, store, GAN, options, kill=True, **kwargs) == -signal.SIGKILL
    state = latest(crashed / "ckpt")
    assert state["step"] == 3 and state["discriminator"] and state["d_optimizer"]["state"]
    assert _child(crashed, store, GAN, options, kill=False, **kwargs) == 0
    assert _child(straight, store, GAN, options, kill=False, **kwargs) == 0
    _assert_same_weights(crashed, straight)
    # The discriminator resumed too: its final weights are the uninterrupted run's.
    finals = [latest(root / "ckpt")["discriminator"] for root in (crashed, straight)]
    for name, tensor in finals[1].items():
        assert torch.equal(finals[0][name], tensor), name
    # model.pt records the VGG19 file the perceptual loss used, and the GAN recipe.
    payload = torch.load(straight / "model.pt", weights_only=True)
    assert payload["vgg19_sha256"] == hashlib.sha256(vgg.read_bytes()).hexdigest()
    assert payload["adversarial"]["discriminator"] == "unet_sn"


def test_run_resumed_in_the_discriminator_only_phase_is_the_unbroken_run(tmp_path, store, vgg,
                                                                         psnr_model):  # fmt: skip
    # Killed after the step-3 checkpoint, two steps before the generator's first update.
    d_only = (GAN[0], GAN[1], {**ADVERSARIAL, "d_init_steps": 5})
    options = {**OPTIONS, "vgg_weights": str(vgg)}
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    kwargs = {"pretrained": str(psnr_model)}
    assert _child(crashed, store, d_only, options, kill=True, **kwargs) == -signal.SIGKILL
    state = latest(crashed / "ckpt")
    assert state["step"] == 3 and state["optimizer"]["state"] == {}  # no generator step yet
    assert _child(crashed, store, d_only, options, kill=False, **kwargs) == 0
    assert _child(straight, store, d_only, options, kill=False, **kwargs) == 0
    _assert_same_weights(crashed, straight)
    finals = [latest(root / "ckpt") for root in (crashed, straight)]
    for name, tensor in finals[1]["discriminator"].items():
        assert torch.equal(finals[0]["discriminator"][name], tensor), name
    # The logged terms too, row by row (timings aside): the generator's from step 6 only.
    logged = [[{k: v for k, v in row.items() if k.startswith(("train/loss", "train/d_"))}
               for row in final["history"]] for final in finals]  # fmt: skip
    assert logged[0] == logged[1] and len(logged[0]) == 8
    assert ["train/loss_gan" in row for row in logged[0]] == [False] * 5 + [True] * 3


def test_d_init_steps_train_the_discriminator_alone_first(tmp_path, store, vgg, psnr_model,
                                                          monkeypatch):  # fmt: skip
    """adversarial.d_init_steps=5: after each of steps 1-5 the generator and its EMA are the
    PSNR model's and its Adam has no state, while the discriminator learns; from step 6 both
    train. The log has no generator term before step 6, and a row at step 5 ends that phase."""
    from claritycore.training import checkpoint

    experiment = resolve(GAN[0], {**GAN[1], "steps": 20},
                         adversarial={**ADVERSARIAL, "d_init_steps": 5})  # fmt: skip
    saved: dict[int, dict] = {}
    save = checkpoint.save

    def recording_save(directory, **kwargs):
        copies = {part: copy.deepcopy(kwargs[part].state_dict()) for part in ("model", "ema")}
        copies["d"] = copy.deepcopy(kwargs["adversary"].discriminator.state_dict())
        copies["g_adam"] = copy.deepcopy(kwargs["optimizer"].state_dict()["state"])
        saved[kwargs["step"]] = copies
        return save(directory, **kwargs)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    run(tmp_path, experiment, quick_options(vgg_weights=str(vgg), save_every=1, log_every=2),
        store, pretrained=psnr_model)  # fmt: skip
    start = torch.load(psnr_model, weights_only=True)["state_dict"]
    for step in range(1, 6):
        assert saved[step]["g_adam"] == {}, step
        for part in ("model", "ema"):
            for name, tensor in start.items():
                assert torch.equal(saved[step][part][name], tensor), (step, part, name)
    learned = [k for k in saved[1]["d"] if not torch.equal(saved[1]["d"][k], saved[5]["d"][k])]
    assert learned  # steps 2-5 moved the discriminator
    assert saved[6]["g_adam"] and any(
        not torch.equal(saved[6]["model"][k], start[k]) for k in start
    )

    rows = latest(tmp_path / "ckpt")["history"]
    assert [row["step"] for row in rows] == [2, 4, 5, *range(6, 21, 2)]
    generator_terms = ("train/loss", "train/loss_pixel", "train/loss_perceptual", "train/loss_gan")
    for row in rows:
        d_only = row["step"] <= 5
        assert all((t in row) != d_only for t in generator_terms), row
        assert (row["train/grad_norm"] == 0.0) == d_only, row
        assert row["train/d_real_minus_fake"] == pytest.approx(
            row["train/d_real"] - row["train/d_fake"], rel=1e-5, abs=1e-6
        )
        # RaGAN's discriminator terms start at ln 2 / 2 = 0.347 each (logits near 0).
        assert row["train/loss_d_real"] == pytest.approx(0.347, abs=0.05)
        assert row["train/loss_d_fake"] == pytest.approx(0.347, abs=0.05)


def test_adversarial_run_logs_every_term_and_starts_from_the_psnr_model(tmp_path, store, vgg,
                                                                        psnr_model):  # fmt: skip
    # Real-ESRGAN's vanilla GAN on its degradations, on the ESRGAN preset's tiny model.
    vanilla = {**ADVERSARIAL, "gan_type": "vanilla", "gan_weight": 0.1, "pixel_weight": 1.0}
    experiment = resolve(GAN[0], {**GAN[1], "steps": 2}, adversarial=vanilla,
                         degradation={"type": "realesrgan", "crop": 80})  # fmt: skip
    root = tmp_path / "run"
    # One step with zero learning rates: the generator must still be the PSNR model's.
    frozen = resolve(experiment.preset, {**GAN[1], "steps": 1, "lr": 1e-30},
                     adversarial={**ADVERSARIAL, "d_lr": 1e-30})  # fmt: skip
    run(tmp_path / "frozen", frozen, quick_options(vgg_weights=str(vgg)), store,
        pretrained=psnr_model)  # fmt: skip
    start = torch.load(psnr_model, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "frozen" / "model.pt", weights_only=True)["state_dict"]
    for name, tensor in start.items():
        torch.testing.assert_close(after[name], tensor, rtol=0, atol=1e-6, msg=name)

    run(root, experiment, quick_options(vgg_weights=str(vgg), log_every=1), store,
        pretrained=psnr_model)  # fmt: skip
    row = latest(root / "ckpt")["history"][-1]
    terms = ("loss", "loss_pixel", "loss_perceptual", "loss_gan", "loss_d_real", "loss_d_fake",
             "d_real", "d_fake", "d_real_minus_fake", "lr", "lr_d")  # fmt: skip
    assert all(f"train/{t}" in row for t in terms), sorted(row)
    total = row["train/loss_pixel"] + row["train/loss_perceptual"] + row["train/loss_gan"]
    assert row["train/loss"] == pytest.approx(total, rel=1e-5)
    margin = row["train/d_real"] - row["train/d_fake"]
    assert row["train/d_real_minus_fake"] == pytest.approx(margin, rel=1e-5, abs=1e-7)
    # Real-ESRGAN's vanilla D loss on logits near 0 is about log 2 for each side.
    assert 0.3 < row["train/loss_d_real"] < 1.5 and 0.3 < row["train/loss_d_fake"] < 1.5


def test_gan_stage_on_two_gloo_ranks_matches_one_process(tmp_path, store, vgg, psnr_model):
    # Vanilla GAN: every term is a mean over samples, so W ranks of B/W average to the batch
    # of B. (RaGAN compares with the mean over each rank's own samples, as BasicSR does.)
    vanilla = {**ADVERSARIAL, "gan_type": "vanilla"}
    experiment = resolve(GAN[0], {**GAN[1], "steps": 2}, adversarial=vanilla)
    options = {"vgg_weights": str(vgg), "save_every": 2}
    run(tmp_path / "one", experiment, quick_options(**options), store, pretrained=psnr_model)
    run(tmp_path / "two", experiment, quick_options(**options, devices=2), store,
        pretrained=psnr_model)  # fmt: skip
    one, two = latest(tmp_path / "one" / "ckpt"), latest(tmp_path / "two" / "ckpt")
    for part in ("model", "discriminator"):
        for name, tensor in one[part].items():
            torch.testing.assert_close(two[part][name], tensor, rtol=0, atol=1e-5, msg=name)


def test_missing_vgg19_stops_before_any_step(tmp_path, store, psnr_model, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    experiment = resolve(GAN[0], GAN[1], adversarial=ADVERSARIAL)
    with pytest.raises(UserError, match=r"^vgg19-dcbb9e9d\.pth not found; get .*574,673,361 "):
        run(tmp_path / "run", experiment, quick_options(), store, pretrained=psnr_model)
    assert not (tmp_path / "run").exists()
    # At perceptual weight 0 no VGG19 is needed.
    no_vgg = resolve(GAN[0], {**GAN[1], "steps": 1},
                     adversarial={**ADVERSARIAL, "perceptual_weight": 0.0})  # fmt: skip
    run(tmp_path / "run", no_vgg, quick_options(), store, pretrained=psnr_model)
    assert "train/loss_perceptual" not in latest(tmp_path / "run" / "ckpt")["history"][-1]


def test_weights_stage_fetches_only_what_the_experiment_needs(tmp_path, monkeypatch):
    """The pipeline's `weights` stage: nothing for an L1 experiment or a GAN stage at perceptual
    weight 0 or with its own VGG19 file; VGG19, verified, for a GAN stage that needs it (here
    copied from torch's hub cache, no network), and offline without it the one-line error."""
    from claritycore.data.backbones import fetch_needed, needed_backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    gan = resolve(GAN[0], GAN[1], adversarial=ADVERSARIAL)
    assert needed_backbones(resolve("rrdbnet-litex2").adversarial, None) == []
    assert needed_backbones(gan.adversarial, tmp_path / "own.pth") == []
    no_vgg = resolve(GAN[0], GAN[1], adversarial={**ADVERSARIAL, "perceptual_weight": 0.0})
    assert needed_backbones(no_vgg.adversarial, None) == [] and needed_backbones(
        gan.adversarial, None
    ) == ["vgg19"]

    dest = tmp_path / "data" / "weights"
    spec = published.PublishedFile("vgg19-dcbb9e9d.pth", "http://127.0.0.1:9/vgg19.pth", 0, "", "x")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    random_vgg19(hub / spec.file)
    data = (hub / spec.file).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(
        published.PUBLISHED,
        "vgg19",
        published.PublishedFile(spec.file, spec.url, len(data), digest, "x"),
    )
    assert fetch_needed(resolve("rrdbnet-litex2").adversarial, None, dest) == [] and dest.is_dir()
    assert fetch_needed(gan.adversarial, None, dest) == [dest / spec.file]
    assert (dest / spec.file).read_bytes() == data
    (dest / spec.file).unlink()
    (hub / spec.file).unlink()
    with pytest.raises(UserError, match=r"vgg19-dcbb9e9d\.pth"):
        fetch_needed(gan.adversarial, None, dest)
