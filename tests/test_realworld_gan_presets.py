"""The real-world and GAN presets against their published recipes, and how params.yaml's
`degradation`, `adversarial` and `psnr_overrides` sections resolve."""

from __future__ import annotations

import pytest

from claritycore.config import DegradationConfig
from claritycore.errors import ConfigError
from claritycore.experiment import ExperimentConfig, psnr_stage, resolve
from claritycore.models import AutoConfig
from claritycore.presets import PRESETS, get_preset
from claritycore.schema import parse


def test_realesrnet_is_real_esrgans_first_stage():
    preset = get_preset("realesrnetx4")
    model, t = AutoConfig.from_dict(preset.model), preset.training
    assert (model.num_feat, model.num_block, model.num_grow_ch) == (64, 23, 32)
    # Nearest upsampler: the file loads in Real-ESRGAN and chaiNNer as it is.
    assert model.upsampler == "nearest" and model.scale == 4
    assert (t.batch_size, t.patch_size, t.lr, t.loss, t.ema, t.ema_decay) == (
        48, 256, 2e-4, "l1", True, 0.999
    )  # fmt: skip
    assert preset.degradation == DegradationConfig(type="realesrgan")
    assert preset.adversarial is None and "pretrained" in preset.notes
    x2 = AutoConfig.from_dict(get_preset("realesrnetx2").model)
    assert x2.upsampler == "nearest" and x2.x2_unshuffle and x2.scale == 2


def test_esrgan_is_the_published_second_stage():
    preset = get_preset("esrganx4")
    t, a = preset.training, preset.adversarial
    assert preset.model == get_preset("rrdbnetx4").model and a.base == "rrdbnetx4"
    assert (a.pixel_weight, a.perceptual_weight, a.perceptual_layers) == (
        1e-2,
        1.0,
        {"conv5_4": 1.0},
    )
    assert (a.gan_type, a.gan_weight, a.discriminator, a.d_lr, a.d_betas) == (
        "ragan", 5e-3, "vgg128", 1e-4, (0.9, 0.99)
    )  # fmt: skip
    assert (t.lr, t.betas, t.scheduler, t.lr_gamma, t.steps) == (
        1e-4, (0.9, 0.99), "multistep", 0.5, 400_000
    )  # fmt: skip
    assert [round(m * t.steps) for m in t.milestones] == [50_000, 100_000, 200_000, 300_000]
    assert (t.batch_size, t.patch_size, t.ema, t.ema_decay) == (16, 128, True, 0.999)
    assert preset.degradation.type == "bicubic"
    # Every PSNR preset has its GAN stage; x3 cannot use the 128² VGG discriminator.
    for name in ("esrganx2", "esrganx8", "esrgan-litex2", "esrgan-litex4", "esrgan-litex8"):
        assert get_preset(name).adversarial.discriminator == "vgg128"
    assert get_preset("esrgan-litex3").adversarial.discriminator == "unet_sn"
    assert get_preset("esrganx3").training.patch_size % 3 == 0


def test_realesrgan_is_real_esrgans_second_stage():
    preset = get_preset("realesrganx4")
    a, t = preset.adversarial, preset.training
    assert a.base == "realesrnetx4" and preset.model == get_preset("realesrnetx4").model
    assert a.perceptual_layers == {
        "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0
    }  # fmt: skip
    assert (a.pixel_weight, a.perceptual_weight, a.gan_type, a.gan_weight, a.discriminator) == (
        1.0, 1.0, "vanilla", 0.1, "unet_sn"
    )  # fmt: skip
    assert (t.lr, t.steps, t.batch_size, t.patch_size, t.ema) == (1e-4, 400_000, 48, 256, True)
    assert preset.degradation == DegradationConfig(type="realesrgan")
    d = preset.degradation  # Real-ESRGAN x4plus's option file, value by value
    assert (d.resize_prob, d.resize_range, d.noise_range, d.jpeg_range) == (
        (0.2, 0.7, 0.1), (0.15, 1.5), (1, 30), (30, 95)
    )  # fmt: skip
    assert (d.resize_prob2, d.resize_range2, d.noise_range2, d.poisson_scale_range2) == (
        (0.3, 0.4, 0.3), (0.3, 1.2), (1, 25), (0.05, 2.5)
    )  # fmt: skip
    assert (d.second_blur_prob, d.final_sinc_prob, d.blur_sigma, d.blur_sigma2) == (
        0.8, 0.8, (0.2, 3), (0.2, 1.5)
    )  # fmt: skip
    assert (d.l1_gt_usm, d.percep_gt_usm, d.gan_gt_usm) == (True, True, False)


def test_sections_resolve_and_round_trip():
    experiment = resolve(
        "esrgan-litex2",
        {"steps": 10, "num_block": 4},
        degradation={"type": "realesrgan", "jpeg_range": [60, 90], "noise_range": None},
        adversarial={"perceptual_weight": 0.0, "gan_type": "vanilla"},
    )
    assert experiment.degradation.jpeg_range == (60, 90)
    assert experiment.degradation.noise_range == (1, 30)
    assert experiment.adversarial.perceptual_weight == 0.0
    assert experiment.adversarial.gan_type == "vanilla"
    again = ExperimentConfig.from_dict(experiment.to_dict())
    assert again == experiment and again.config_hash() == experiment.config_hash()


def test_bicubic_experiments_keep_their_config_and_hash():
    # No degradation or adversarial section for an L1 bicubic preset: its config (and so its
    # run key and DVC run cache) is what it was before those sections existed.
    values = resolve("rrdbnetx4").to_dict()
    assert set(values) == {"preset", "model", "training"}
    assert resolve("rrdbnetx4").config_hash() == "cdc4f1e5f54c9240"
    assert resolve("rrdbnetx4", degradation={"jpeg_range": [50, 60]}).config_hash() == (
        "cdc4f1e5f54c9240"
    )


def test_d_init_steps_parses_and_leaves_the_gan_presets_hashes_as_they_were():
    # At its default 0 the field is not written: each GAN preset's config, and so its run key
    # and DVC run cache, is what it was before the field existed (hashes from before it).
    assert resolve("esrganx4").config_hash() == "21de2b0d70c07f2f"
    assert resolve("realesrgan-litex2").config_hash() == "2e6fef119129311f"  # issue 31 moved it
    assert "d_init_steps" not in resolve("esrganx4").to_dict()["adversarial"]
    experiment = resolve("esrgan-litex2", {"steps": 10}, adversarial={"d_init_steps": 4})
    assert experiment.adversarial.d_init_steps == 4
    assert experiment.to_dict()["adversarial"]["d_init_steps"] == 4
    again = ExperimentConfig.from_dict(experiment.to_dict())
    assert again == experiment and again.config_hash() == experiment.config_hash()
    assert experiment.config_hash() != resolve("esrgan-litex2", {"steps": 10}).config_hash()
    # Set to 0 it is the preset's own config.
    assert resolve("esrganx4", adversarial={"d_init_steps": 0}).config_hash() == (
        "21de2b0d70c07f2f"
    )


def test_psnr_stage_is_the_psnr_presets_own_experiment():
    experiment = resolve("esrgan-litex2", {"steps": 10, "num_block": 4})
    stage = psnr_stage(experiment, {"steps": 20, "lr": 1e-3})
    # Exactly what an experiment of the PSNR preset with those values resolves to.
    assert stage == resolve("rrdbnet-litex2", {"num_block": 4, "steps": 20, "lr": 1e-3})
    assert (
        stage.config_hash()
        == resolve("rrdbnet-litex2", {"num_block": 4, "steps": 20, "lr": 1e-3}).config_hash()
    )
    real = resolve("realesrgan-litex2", degradation={"jpeg_range": [50, 95]})
    real_stage = psnr_stage(real)
    assert real_stage.preset == "realesrnet-litex2" and real_stage.degradation.jpeg_range == (
        50,
        95,
    )
    plain = resolve("rrdbnet-litex2")
    assert psnr_stage(plain) is plain


# A fine-tuning preset's GAN stage starts from a published generator: it has no PSNR stage.
@pytest.mark.parametrize(
    "name", [n for n, p in PRESETS.items() if p.adversarial is not None and p.pretrained is None]
)
def test_every_gan_preset_derives_the_stage_its_psnr_preset_resolves_to(name):
    """The PSNR stage is derived from the experiment, not resolved again: that holds only while
    a GAN preset's model and degradation are its PSNR preset's, with any changes applied."""
    gan = PRESETS[name]
    changes = {"num_block": 2, "steps": 7}
    degradation = {"jpeg_range": [40, 90]} if not gan.degradation.reads_store_lr else None
    experiment = resolve(name, changes, degradation=degradation)
    stage = psnr_stage(experiment, {"lr": 3e-4})
    expected = resolve(gan.adversarial.base, {"num_block": 2, "lr": 3e-4}, degradation=degradation)
    assert stage.to_dict() == expected.to_dict()
    assert stage.config_hash() == expected.config_hash()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve("rrdbnetx4", adversarial={"gan_weight": 0.1}),
         r"rrdbnetx4 has no adversarial stage, so adversarial.gan_weight cannot apply"),
        (lambda: psnr_stage(resolve("rrdbnetx4"), {"steps": 3}),
         r"psnr_overrides.steps is set, but rrdbnetx4 has no PSNR stage"),
        (lambda: psnr_stage(resolve("esrganx4"), {"num_feat": 3}),
         r"psnr_overrides.num_feat: only training fields apply"),
        (lambda: resolve("esrganx4", {"patch_size": 96}),
         r"discriminator vgg128 \(ESRGAN's\) takes 128² HR patches, not patch_size=96; set "
         r"patch_size 128 or adversarial.discriminator unet_sn \(any multiple of 8\)$"),
        (lambda: resolve("esrganx4", adversarial={"perceptual_layers": {"conv6_1": 1.0}}),
         r"perceptual_layers names 'conv6_1'; use VGG19 layers: conv1_1"),
        (lambda: resolve("esrganx4", adversarial={"gan_type": "wgan"}),
         r"adversarial.gan_type is 'wgan'; expected one of ragan, vanilla"),
        (lambda: resolve("esrganx4", adversarial={"gan_weight": -1}),
         r"adversarial.gan_weight is -1.0; a loss weight must be >= 0"),
        (lambda: resolve("esrganx4", adversarial={"d_init_steps": -1}),
         r"^adversarial.d_init_steps is -1; use an integer >= 0$"),
        (lambda: resolve("esrganx4", adversarial={"d_init_steps": 2.5}),
         r"^adversarial.d_init_steps is 2.5; expected an integer$"),
        (lambda: resolve("esrgan-litex2", {"steps": 400}, adversarial={"d_init_steps": 400}),
         r"^adversarial.d_init_steps is 400, but the run has only 400 steps, so the generator "
         r"would never train; use fewer$"),
        (lambda: resolve("esrgan-litex3", {"patch_size": 60}),
         r"^discriminator unet_sn takes patch sides that are multiples of 8, not "
         r"patch_size=60; use e.g. 48$"),
        (lambda: resolve("esrganx4", {"patch_size": 100}, adversarial={"discriminator":
                                                                        "unet_sn"}),
         r"^discriminator unet_sn takes patch sides that are multiples of 8, not "
         r"patch_size=100; use e.g. 96$"),
        # Real-ESRGAN's filters need each side above half the kernel after every resize.
        (lambda: resolve("realesrnet-litex2", {"patch_size": 48}, degradation={"crop": 64}),
         r"^degradation.crop=64 is too small at ×2: after the first resize \(down to ×0.15\) "
         r"or at the LR size its sides no longer take the 21-tap blur or the 21-tap sinc; use "
         r"crop >= 74$"),
        (lambda: resolve("realesrnetx4", degradation={"crop": 398}),
         r"^degradation.crop=398 must be a multiple of the scale 4 and hold the 256px patch; "
         r"use e.g. 400$"),
        (lambda: resolve("realesrnetx4", degradation={"crop": 200}),
         r"^degradation.crop=200 must be a multiple of the scale 4 and hold the 256px patch"),
        (lambda: resolve("rrdbnet-litex8", {"patch_size": 64},
                         degradation={"type": "realesrgan", "crop": 80}),
         r"^degradation.crop=80 is too small at ×8: .* use crop >= 88$"),
    ],
)  # fmt: skip
def test_bad_section_values_fail_in_one_line(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kernel_prob": [0.5, 0.4, 0.0, 0.0, 0.0, 0.0]}, r"kernel_prob is .* sums to 0.9; the "
         "probabilities must sum to 1"),
        ({"kernel_list": ["iso", "box"], "kernel_prob": [0.5, 0.5]},
         r"kernel_list is \['iso', 'box'\]; expected a list of values from iso, aniso"),
        ({"kernel_prob": [1.0]}, r"kernel_prob has 1 probabilities for 6 kernels"),
        ({"blur_sigma": [-0.1, 3]}, r"blur_sigma is \[-0.1, 3.0\]; use \[min, max\] with 0"),
        ({"blur_sigma2": [0, 3]}, r"blur_sigma2 starts at 0; a Gaussian sigma must be > 0"),
        ({"jpeg_range": [30, 101]}, r"jpeg_range is \[30.0, 101.0\]; use \[min, max\] with 1 <="),
        ({"jpeg_range2": [0, 95]}, r"jpeg_range2 is .* with 1 <= min <= max <= 100"),
        ({"resize_prob": [0.2, 0.7, 0.2]}, r"resize_prob is .* sums to 1.1"),
        ({"sinc_prob": 1.5}, r"degradation.sinc_prob is 1.5; a probability lies in \[0, 1\]"),
        ({"blur_kernel_size": 20}, r"blur_kernel_size is 20; use an odd size from 7 to 21"),
        ({"noise_range": [30, 1]}, r"noise_range is \[30.0, 1.0\]; use \[min, max\]"),
        ({"type": "gaussian"}, r"degradation.type is 'gaussian'; expected one of bicubic, "
         "realesrgan"),
    ],
)  # fmt: skip
def test_bad_degradation_values_name_key_value_and_range(values, message):
    with pytest.raises(ConfigError, match=message):
        parse(DegradationConfig, values, "degradation")


def test_every_gan_preset_names_an_existing_psnr_preset_of_its_model():
    for preset in PRESETS.values():
        if preset.adversarial is not None:
            base = get_preset(preset.adversarial.base)
            assert base.adversarial is None and base.model == preset.model
            # A fine-tuning preset has no PSNR stage (a published generator takes its place).
            assert preset.pretrained is not None or base.degradation == preset.degradation


@pytest.mark.parametrize("preset", ["realesrnet-litex2", "esrganx4", "realesrgan-litex4"])
def test_resolved_file_round_trips_every_section(tmp_path, preset):
    from claritycore.experiment import read_resolved, write_resolved

    experiment = resolve(preset, degradation={"jpeg_range": [40, 90]})
    write_resolved(experiment, tmp_path / "config.yaml")
    assert read_resolved(tmp_path / "config.yaml") == experiment


def test_one_line_error_keeps_the_brackets_it_quotes(capsys):
    """The valid range "[min, max]" is text, not rich markup: it reaches the user whole."""
    import typer

    from claritycore.errors import exit_on_user_error

    with pytest.raises(typer.Exit), exit_on_user_error("error"):
        parse(DegradationConfig, {"jpeg_range": [0, 95]}, "degradation")
    err = capsys.readouterr().err
    assert "use [min, max] with 1 <= min <= max <= 100" in err and err.count("\n") == 1


@pytest.mark.parametrize(("preset", "region"), [
    ("realesrnetx4", 400), ("realesrnet-litex2", 400), ("rrdbnetx3", 402), ("rrdbnetx8", 512),
])  # fmt: skip
def test_the_default_region_is_realesrgans_400_fitted_to_the_scale_and_patch(preset, region):
    experiment = resolve(preset, degradation={"type": "realesrgan"})
    training, scale = experiment.training, experiment.model.scale
    assert experiment.degradation.crop is None
    assert experiment.degradation.region(scale, training.patch_size) == region
