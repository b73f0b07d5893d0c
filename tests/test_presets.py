"""The eight presets against the model document's tables, and override resolution."""

from __future__ import annotations

import pytest

from claritycore.errors import ConfigError
from claritycore.experiment import ExperimentConfig, override_keys, psnr_stage, resolve
from claritycore.models import AutoConfig, AutoModel
from claritycore.presets import PRESETS, find_preset, get_preset, largest_patch

# The one pin of the presets' values: name -> (scale, features, blocks, growth, steps, batch,
# patch), from claritycore-models.md; growth 16 for the lite presets gives their ~1M parameters.
DOCUMENTED = {
    "rrdbnetx2": (2, 64, 23, 32, 400_000, 16, 128),
    "rrdbnetx3": (3, 64, 23, 32, 400_000, 16, 192),
    "rrdbnetx4": (4, 64, 23, 32, 400_000, 16, 256),
    "rrdbnetx8": (8, 64, 23, 32, 500_000, 8, 512),
    "rrdbnet-litex2": (2, 32, 6, 16, 200_000, 32, 128),
    "rrdbnet-litex3": (3, 32, 6, 16, 200_000, 32, 192),
    "rrdbnet-litex4": (4, 32, 6, 16, 200_000, 32, 256),
    "rrdbnet-litex8": (8, 32, 6, 16, 250_000, 16, 512),
}


def test_the_documented_presets_come_first_and_the_rest_are_new_rows():
    assert list(PRESETS)[: len(DOCUMENTED)] == list(DOCUMENTED)
    others = list(PRESETS)[len(DOCUMENTED) :]
    assert all(n.startswith(("realesrnet", "esrgan", "realesrgan", "finetune_")) for n in others)
    assert len(others) == 19


@pytest.mark.parametrize("name", DOCUMENTED)
def test_preset_values_equal_the_document(name):
    preset = get_preset(name)
    m, t = AutoConfig.from_dict(preset.model), preset.training
    actual = (m.scale, m.num_feat, m.num_block, m.num_grow_ch, t.steps, t.batch_size, t.patch_size)
    assert actual == DOCUMENTED[name]
    assert (t.lr, t.loss, t.amp, t.ema) == (2e-4, "l1", True, False)
    assert m.model_type == "rrdbnet" and m.upsampler == "pixelshuffle"


@pytest.mark.parametrize(
    ("name", "upsampler"),
    [("rrdbnetx4", "pixelshuffle"), ("rrdbnet-litex3", "pixelshuffle"), ("rrdbnetx2", "nearest"),
     ("rrdbnet-litex8", "nearest")],
)  # fmt: skip
def test_parameter_count_from_config_equals_the_built_model(name, upsampler):
    config = AutoConfig.from_dict(get_preset(name).model).replace(upsampler=upsampler)
    model = AutoModel.from_config(config)
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())


def test_full_is_about_16_7m_and_lite_about_1m():
    counts = {n: AutoConfig.from_dict(p.model).parameter_count() for n, p in PRESETS.items()}
    assert all(16.5e6 < counts[n] < 17.1e6 for n in counts if "lite" not in n), counts
    assert all(1.0e6 < counts[n] < 1.25e6 for n in counts if "lite" in n), counts
    nearest_x4 = AutoConfig.from_dict({**PRESETS["rrdbnetx4"].model, "upsampler": "nearest"})
    assert nearest_x4.parameter_count() == 16_697_987  # ESRGAN's published RRDB_ESRGAN_x4


def test_find_preset_and_largest_patch_read_the_table():
    assert find_preset("rrdbnet", 4, {}).name == "rrdbnetx4"
    assert find_preset("rrdbnet", 2, {"num_feat": 32, "num_block": 6}).name == "rrdbnet-litex2"
    with pytest.raises(ConfigError, match="no preset trains 'edsr'"):
        find_preset("edsr", 4, {})
    assert largest_patch((2, 4)) == max(
        DOCUMENTED[n][6] for n in DOCUMENTED if DOCUMENTED[n][0] in (2, 4)
    )


def test_lookup_ignores_case_and_spaces():
    assert get_preset("  RRDBNet-LiteX4 ").name == "rrdbnet-litex4"


def test_unknown_preset_lists_close_matches():
    with pytest.raises(ConfigError, match=r"'rrdbnetx5'. Did you mean .*rrdbnetx4"):
        get_preset("rrdbnetx5")
    with pytest.raises(ConfigError, match=r"'rrdbnet-lite4'. Did you mean rrdbnet-litex4"):
        get_preset("rrdbnet-lite4")


def test_resolve_applies_overrides_and_ignores_nulls():
    config = resolve(
        "rrdbnet-litex2", {"steps": 10, "batch_size": None, "num_feat": 16, "ema": True}
    )
    assert config.training.steps == 10
    assert config.training.batch_size == 32
    assert config.training.ema is True
    assert config.model.num_feat == 16 and config.model.num_block == 6
    assert resolve("rrdbnetx4") == resolve("rrdbnetx4", dict.fromkeys(override_keys("rrdbnetx4")))


def test_override_typo_lists_valid_keys():
    with pytest.raises(
        ConfigError, match=r"unknown override 'step'. Did you mean steps\?.*batch_size"
    ):
        resolve("rrdbnetx4", {"step": 3})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", "many", r"overrides\.steps is 'many'; expected an integer"),
        ("steps", 1.5, "expected an integer"),
        ("amp", 1, "expected true/false"),
        ("loss", "huber", "expected one of l1, l2, charbonnier"),
        ("scheduler", "step", "expected one of cosine, multistep, constant"),
        ("betas", [0.9], "expected a list of 2 numbers"),
        ("scale", 5, "choose one of 2, 3, 4, 8"),
        ("steps", 0, "positive integer"),
        ("lr", -1.0, "positive number"),
        ("patch_size", 130, "not a multiple of scale=4"),
    ],
)
def test_bad_override_values_fail_clearly(key, value, message):
    with pytest.raises(ConfigError, match=message):
        resolve("rrdbnetx4", {key: value})


def test_integer_lr_is_accepted_as_float():
    assert resolve("rrdbnetx4", {"lr": 1}).training.lr == 1.0


def test_experiment_config_round_trips_and_hash_tracks_content():
    config = resolve("rrdbnet-litex8", {"milestones": [0.5, 0.8], "grad_clip": 1})
    again = ExperimentConfig.from_dict(config.to_dict())
    assert again == config
    assert again.config_hash() == config.config_hash()
    assert len(config.config_hash()) == 16
    assert resolve("rrdbnet-litex8").config_hash() != config.config_hash()
    assert resolve("rrdbnet-litex8", {"steps": 250_000}).config_hash() == (
        resolve("rrdbnet-litex8").config_hash()
    )


# Every preset's config hash and its PSNR stage's, as of 2e8f336 (before the code-health
# refactor): the run key, the run cache and `dvc exp show` rows all hang on them, so a change
# that moves one is a change to what an existing preset trains. The real-world rows moved
# once, on purpose (issue 31): they now degrade Real-ESRGAN's 400² region before cutting the
# patch (`degradation.crop`, `usm_input`).
PINNED_HASHES = {
    "rrdbnetx2": ("98a747ed02873ebc", "98a747ed02873ebc"),
    "rrdbnetx3": ("6b9c15e75ce33ed8", "6b9c15e75ce33ed8"),
    "rrdbnetx4": ("cdc4f1e5f54c9240", "cdc4f1e5f54c9240"),
    "rrdbnetx8": ("12271a01eb3d9337", "12271a01eb3d9337"),
    "rrdbnet-litex2": ("a6dafe97c6bbf112", "a6dafe97c6bbf112"),
    "rrdbnet-litex3": ("43facbb11248365b", "43facbb11248365b"),
    "rrdbnet-litex4": ("d309231228ec1253", "d309231228ec1253"),
    "rrdbnet-litex8": ("d23539136eea14d3", "d23539136eea14d3"),
    "realesrnetx4": ("298f8e00100ed16d", "298f8e00100ed16d"),
    "realesrnetx2": ("1c9a4e4c9d4dcd49", "1c9a4e4c9d4dcd49"),
    "realesrnet-litex4": ("c945a33a5d21e432", "c945a33a5d21e432"),
    "realesrnet-litex2": ("59d1898f55037cbf", "59d1898f55037cbf"),
    "esrganx2": ("78db2b0345bd2fe9", "98a747ed02873ebc"),
    "esrganx3": ("6f7ca95b227459ec", "6b9c15e75ce33ed8"),
    "esrganx4": ("21de2b0d70c07f2f", "cdc4f1e5f54c9240"),
    "esrganx8": ("2220dee7e278c98e", "12271a01eb3d9337"),
    "esrgan-litex2": ("67896494534de807", "a6dafe97c6bbf112"),
    "esrgan-litex3": ("17922030961b2272", "43facbb11248365b"),
    "esrgan-litex4": ("c6e387c1aa8f6a49", "d309231228ec1253"),
    "esrgan-litex8": ("35bfc7b1280cfe7e", "d23539136eea14d3"),
    "realesrganx4": ("85915fe25fb9420b", "298f8e00100ed16d"),
    "realesrganx2": ("5cce967a069326f8", "1c9a4e4c9d4dcd49"),
    "realesrgan-litex4": ("a244b2b3bb985e5c", "c945a33a5d21e432"),
    "realesrgan-litex2": ("2e6fef119129311f", "59d1898f55037cbf"),
    "finetune_realesrgan_x4plus": ("3c5a3efd94bd563c", "298f8e00100ed16d"),
    "finetune_realesrgan_x4plus_pairdata": ("d84d512c784ebb50", "79f648d6e8d77fc6"),
    "finetune_realesrnet_x4plus": ("73b76ce261fbcf03", "73b76ce261fbcf03"),
}


def test_no_preset_config_hash_moves():
    assert set(PINNED_HASHES) == set(PRESETS)
    moved = {
        name: (resolve(name).config_hash(), psnr_stage(resolve(name)).config_hash())
        for name in PRESETS
    }
    assert moved == PINNED_HASHES
