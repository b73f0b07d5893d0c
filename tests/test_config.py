"""params.yaml's sections: one parser, defaults stated once, one-line errors from every stage."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from claritycore import config as config_module
from claritycore.config import (
    SECTIONS,
    AdversarialConfig,
    DataOptions,
    DegradationConfig,
    ExperimentParams,
    TrainingConfig,
    TrainOptions,
    load_params,
    read_experiment_params,
    read_section,
)
from claritycore.errors import ConfigError
from claritycore.schema import as_dict, field_names, load_yaml
from tests.committed import committed_text, committed_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("section", SECTIONS)
def test_params_yaml_documents_every_default(section):
    """params.yaml lists each field of the section with the dataclass default, and no other."""
    params = committed_yaml("params.yaml")
    defaults = as_dict(SECTIONS[section]())
    assert params[section] == defaults


def test_params_yaml_top_level_is_the_default_experiment():
    params = committed_yaml("params.yaml")
    assert read_experiment_params(params).preset == ExperimentParams().preset
    assert set(params) == {
        "preset", "overrides", "degradation", "adversarial", "psnr_overrides", *SECTIONS
    }  # fmt: skip


def test_params_yaml_lists_every_experiment_section_key_as_null():
    """Each key `dvc exp run -S` may set: every degradation field, every adversarial field but
    the preset's base, every training field of the PSNR stage; null keeps the preset's value."""
    params = committed_yaml("params.yaml")
    expected = {
        "degradation": field_names(DegradationConfig),
        "adversarial": [k for k in field_names(AdversarialConfig) if k != "base"],
        "psnr_overrides": field_names(TrainingConfig),
    }
    for section, keys in expected.items():
        assert params[section] == dict.fromkeys(keys), section


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("data", {"source": "web"}, r"data\.source is 'web'; expected one of div2k, df2k, ost"),
        ("data", {"scales": [5]}, "use some of 2, 3, 4, 8"),
        ("data", {"scales": 4}, r"data\.scales is 4; expected a list of integers"),
        ("data", {"source": "folder"}, "needs data.root"),
        ("data", {"mirror": 1}, r"unknown key 'mirror'.*Valid keys: source, root, url"),
        ("train", {"workers": -1}, r"train\.workers must be an integer >= 0"),
        ("train", {"precision": "int8"}, "expected one of auto, bf16, fp16, fp32"),
        ("train", {"compile": "yes"}, "expected true/false or one of auto"),
        ("train", {"val_every": 0}, "positive integer"),
        ("evaluate", {"tile": "big"}, r"evaluate\.tile is 'big'; expected an integer"),
        ("evaluate", {"max_images": 0}, ">= 1 or null"),
        ("extract", {"workers": 0}, ">= 1"),
    ],
)
def test_bad_values_name_the_key_and_the_choices(section, values, message):
    with pytest.raises(ConfigError, match=message):
        read_section({section: values}, section, SECTIONS[section])


def test_parsed_values_get_their_types():
    data = read_section({"data": {"root": "x", "scales": [2, 4]}}, "data", DataOptions)
    assert data.root == Path("x") and data.scales == (2, 4)
    train = read_section({"train": {"compile": False}}, "train", TrainOptions)
    assert train.compile is False and train.channels_last == "auto"
    assert dataclasses.replace(train, seed=1).seed == 1


def test_numbers_read_as_yaml_1_2_reads_them():
    """`2e-4` is a number (PyYAML's YAML 1.1 reads a string); everything else reads as before."""
    text = """
    exponent: [2e-4, 1E5, 1e-05, -1e-3, +2e4, 1.5e3, .5e1, 1.0e-7]
    before: [0.5, 3, 0x1f, 1_000, .inf, true, yes, false, null, ~]
    strings: [1e5x, e5, 1e, '2e-4', "1e-4", fast]
    """
    values = load_yaml(text, "test")
    assert values["exponent"] == [2e-4, 1e5, 1e-5, -1e-3, 2e4, 1500.0, 5.0, 1e-7]
    assert all(type(v) is float for v in values["exponent"])
    assert values["before"] == [0.5, 3, 31, 1000, float("inf"), True, True, False, None, None]
    assert [type(v) for v in values["before"][1:4]] == [int, int, int]
    assert values["strings"] == ["1e5x", "e5", "1e", "2e-4", "1e-4", "fast"]
    # PyYAML itself is unchanged: only this loader reads YAML 1.2 numbers.
    assert yaml.safe_load("lr: 2e-4") == {"lr": "2e-4"}


def test_unreadable_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def _stage(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *args],
        cwd=cwd, capture_output=True, text=True, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "args", "edit", "message"),
    [
        ("fetch", [], {"data": {"source": "web"}}, "fetch failed: data.source is 'web'"),
        ("extract", ["--scale", "4"], {"extract": {"workers": 0}}, "extract failed: extract."),
        ("train", [], {"train": {"precision": "int8"}}, "train failed: train.precision"),
        ("train", [], {}, "train failed: build/psnr.yaml not found"),
        ("adversarial", [], {}, "adversarial failed: build/config.yaml not found"),
        ("adversarial", [], {"train": {"vgg_weights": 3}}, "adversarial failed: train.vgg_"),
        ("evaluate", [], {"evaluate": {"tile": -1}}, "evaluate failed: evaluate.tile"),
        ("resolve", [], {"preset": "rrdbnetx5"}, "resolve failed: unknown preset 'rrdbnetx5'"),
    ],
)
def test_every_stage_reports_bad_params_in_one_line(tmp_path, stage, args, edit, message):
    params = committed_yaml("params.yaml")
    for key, value in edit.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _stage(stage, tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_stale_resolved_config_is_one_line(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    config = committed_yaml("build/config.yaml")
    config["training"]["steps"] = 7
    (tmp_path / "build" / "psnr.yaml").write_text(yaml.safe_dump(config))
    proc = _stage("train", tmp_path)
    assert proc.returncode == 2
    assert "is stale (its config_hash differs); run `dvc repro resolve`" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 2), (3, 3), (64, 4)])
def test_auto_workers_never_exceed_the_available_cpus(monkeypatch, cpus, workers):
    monkeypatch.setattr(config_module, "available_cpus", lambda: cpus)
    assert TrainOptions().loader_workers == workers
    assert TrainOptions(workers=3).loader_workers == 3  # a number is kept as given
