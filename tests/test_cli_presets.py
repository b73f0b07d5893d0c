"""`claritycore presets`, `list` and `--version`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from claritycore import __version__
from claritycore.cli import app
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
    x4 = next(row for row in rows if row["name"] == "rrdbnetx4")
    assert x4["params"] == 16_919_555
    assert (x4["scale"], x4["num_feat"], x4["num_block"], x4["num_grow_ch"]) == (4, 64, 23, 32)
    assert (x4["steps"], x4["batch_size"], x4["patch_size"]) == (400_000, 16, 256)
    assert (x4["lr"], x4["loss"], x4["amp"], x4["ema"]) == (2e-4, "l1", True, False)
    lite8 = next(row for row in rows if row["name"] == "rrdbnet-litex8")
    assert (lite8["params"], lite8["steps"], lite8["batch_size"]) == (1_211_235, 250_000, 16)


def test_presets_table_and_list_alias():
    table = runner.invoke(app, ["presets"])
    assert table.exit_code == 0, table.output
    for name in PRESETS:
        assert name in table.output
    assert "16,919,555" in table.output and "1,137,251" in table.output
    assert runner.invoke(app, ["list"]).output == table.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"claritycore {__version__}"
