"""`claritycore presets`, `list` and `--version`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from claritycore import __version__
from claritycore.cli import app
from claritycore.models import AutoConfig
from claritycore.presets import PRESETS

runner = CliRunner()

KEYS = ["name", "scale", "num_feat", "num_block", "num_grow_ch", "params", "steps"]
KEYS += ["batch_size", "patch_size", "lr", "loss", "amp", "ema"]


def test_presets_json_has_every_preset_with_exact_values():
    result = runner.invoke(app, ["presets", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == list(PRESETS)
    assert all(set(KEYS) <= set(row) for row in rows)
    # The values come from the preset table (pinned against the model document in
    # test_presets.py); the parameter count from the config (checked there against models).
    for row, preset in zip(rows, PRESETS.values(), strict=True):
        model, training = AutoConfig.from_dict(preset.model), preset.training
        assert (row["scale"], row["num_feat"], row["num_block"], row["num_grow_ch"]) == (
            model.scale, model.num_feat, model.num_block, model.num_grow_ch,
        )  # fmt: skip
        assert row["params"] == model.parameter_count()
        assert (row["steps"], row["batch_size"], row["patch_size"]) == (
            training.steps, training.batch_size, training.patch_size,
        )  # fmt: skip
        assert (row["lr"], row["loss"], row["amp"], row["ema"]) == (
            training.lr, training.loss, training.amp, training.ema,
        )  # fmt: skip


def test_presets_table_and_list_alias():
    table = runner.invoke(app, ["presets"])
    assert table.exit_code == 0, table.output
    for name in PRESETS:
        assert name in table.output
    for preset in PRESETS.values():
        assert f"{AutoConfig.from_dict(preset.model).parameter_count():,}" in table.output
    assert runner.invoke(app, ["list"]).output == table.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"claritycore {__version__}"
