"""Real-world data and the two-stage pipeline with DVC for real: `degradation.type=realesrgan`
on the sample data; a GAN preset takes its PSNR model from DVC's run cache, and a changed
adversarial value re-runs only the `adversarial` stage and evaluate.

Runs in the worker's shared repository, after tests/test_pipeline_e2e.py where the same worker
ran it (tests/conftest.py):
its experiment `first` trained rrdbnet-litex2 with the tiny recipe, the PSNR stage of
esrgan-litex2 with the same values.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import random_vgg19
from tests.pipeline_repo import TINY, Repo, metric, set_args

# The tiny recipe's values for the PSNR stage too, so it is `first`'s; a small U-Net
# discriminator takes the tiny 32² patches (ESRGAN's VGG one needs 128²).
GAN = {
    "preset": "esrgan-litex2",
    **{key.replace("overrides.", "psnr_overrides."): v for key, v in TINY.items()
       if key.startswith("overrides.")},
    "adversarial.discriminator": "unet_sn",
    "adversarial.d_num_feat": 8,
    "adversarial.perceptual_weight": 0.0,
    # `-S` values stay in params.yaml after a run: undo test_realesrgan_degradation's.
    "degradation.type": "null",
    "degradation.crop": "null",
}  # fmt: skip


def _args(values: dict) -> list[str]:
    return set_args(**{key.replace(".", "__"): value for key, value in values.items()})


def _ran(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


@pytest.fixture(scope="module")
def first(repo: Repo) -> str:
    """test_pipeline_e2e's `first` (rrdbnet-litex2, tiny recipe), or made here when run alone."""
    if "first" not in repo.experiments():
        repo.dvc("exp", "run", "-n", "first", "-S", "preset=rrdbnet-litex2", *set_args())
    return "first"


@pytest.mark.e2e
def test_realesrgan_degradation_trains_on_the_sample_data(repo: Repo, first: str):
    out = repo.dvc("exp", "run", "-n", "real", *_args({"degradation.type": "realesrgan",
                                                       "degradation.crop": 96,
                                                       "preset": "rrdbnet-litex2"}))  # fmt: skip
    # Other training data: train runs; extract@2 keeps only its index (no LR is read; it runs
    # or not depending on whether the workspace's last experiment packed ×2 LR, which another
    # test module's may not have), and the HR store is the one every experiment shares.
    assert {"resolve", "train", "adversarial", "evaluate"} <= set(_ran(out)), out
    assert "extract_hr" not in _ran(out)
    assert (repo.path / "data/stores/x2/index.json").exists()
    assert not (repo.path / "data/stores/x2/lr.u8").exists()
    real = repo.experiments()["real"]
    assert real["params"]["build/config.yaml"]["data"]["degradation"]["type"] == "realesrgan"
    psnr = metric(real, "metrics/eval.json", "valid/psnr_y")
    assert psnr != metric(repo.experiments()[first], "metrics/eval.json", "valid/psnr_y")


@pytest.mark.e2e
def test_gan_preset_takes_its_psnr_stage_from_the_run_cache(repo: Repo, first: str):
    out = repo.dvc("exp", "run", "-n", "gan", *_args(GAN))
    # Its PSNR stage is `first`'s: restored from the run cache, not trained again.
    assert "Stage 'train' is cached - skipping run" in out, out
    assert "train" not in _ran(out) and {"adversarial", "evaluate"} <= set(_ran(out)), out
    runs = repo.experiments()
    gan, psnr = runs["gan"], runs[first]
    # The charted curves are the GAN stage's: each loss term, D's outputs and their margin.
    logged = gan["metrics"]["dvclive/metrics.json"]["data"]["train"]
    terms = {"loss_pixel", "loss_gan", "loss_d_real", "loss_d_fake", "d_real", "d_fake"}
    assert terms | {"d_real_minus_fake"} <= set(logged)
    assert (repo.path / "dvclive/plots/metrics/train/d_real_minus_fake.tsv").is_file()
    # dvc exp show says which model was scored.
    assert gan["metrics"]["metrics/eval.json"]["data"]["model"] == (
        "esrgan-litex2 (GAN stage from rrdbnet-litex2)"
    )
    assert psnr["metrics"]["metrics/eval.json"]["data"]["model"] == "rrdbnet-litex2"
    assert gan["params"]["build/config.yaml"]["data"]["adversarial"]["base"] == "rrdbnet-litex2"


@pytest.mark.e2e
def test_changed_adversarial_value_reruns_only_that_stage_and_evaluate(repo: Repo, first: str):
    vgg = random_vgg19(repo.path / "vgg19-random.pth")
    changes = {**GAN, "adversarial.perceptual_weight": 0.5, "train.vgg_weights": str(vgg)}
    out = repo.dvc("exp", "run", "-n", "gan-vgg", *_args(changes))
    # (`weights` checks the experiment's backbones first: none here, train.vgg_weights is set.)
    assert _ran(out) == ["resolve", "weights", "adversarial", "evaluate"], out
    logged = repo.experiments()["gan-vgg"]["metrics"]["dvclive/metrics.json"]
    assert "loss_perceptual" in logged["data"]["train"]


@pytest.mark.e2e
def test_l1_preset_passes_its_model_through(repo: Repo, first: str):
    """An L1 experiment's `adversarial` stage copies the PSNR model: models/model.pt is
    models/psnr.pt, and the charted curves are its training's."""
    repo.dvc("exp", "apply", first)
    assert (repo.path / "models" / "model.pt").read_bytes() == (
        repo.path / "models" / "psnr.pt"
    ).read_bytes()
    assert (repo.path / "dvclive" / "metrics.json").read_bytes() == (
        repo.path / "dvclive-psnr" / "metrics.json"
    ).read_bytes()
