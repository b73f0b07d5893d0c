"""The `resolve` stage and params.yaml: the file train reads, and the errors a typo gets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from claritycore.experiment import HASH_COMMENT, ExperimentConfig, override_keys, resolve
from claritycore.presets import PRESETS
from stages.resolve import app
from tests.committed import committed_text, committed_yaml
from tests.pipeline_repo import make_repo

ROOT = Path(__file__).resolve().parents[1]


def write_params(folder: Path, preset: str, **overrides: object) -> Path:
    """params.yaml of the repo with `preset` and `overrides` set, written into `folder`."""
    params = committed_yaml("params.yaml")
    params["preset"] = preset
    params["overrides"].update(overrides)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def resolve_args(params: Path, build: Path) -> list[str]:
    """The stage's arguments with its outputs under `build`: its defaults are relative to the
    working directory, the repository's own build/ when pytest runs there."""
    return ["--params", str(params), "--output", str(build / "config.yaml"),
            "--psnr", str(build / "psnr.yaml"), "--stores", str(build / "stores.yaml")]  # fmt: skip


def run_resolve(tmp_path: Path, preset: str, **overrides: object):
    params = write_params(tmp_path, preset, **overrides)
    result = CliRunner().invoke(app, resolve_args(params, tmp_path / "build"))
    return result, tmp_path / "build" / "config.yaml"


def written_hash(text: str) -> str:
    """The hash in build/config.yaml's comment (not a key: DVC shows keys as params)."""
    return HASH_COMMENT.search(text).group(1)


def test_writes_resolved_config_with_hash(tmp_path):
    result, output = run_resolve(tmp_path, "rrdbnet-litex2", steps=4, batch_size=2, lr=1e-3)
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(output.read_text())
    assert written["preset"] == "rrdbnet-litex2"
    assert written["model"]["scale"] == 2
    assert written["model"]["num_feat"] == 32
    assert written["training"]["steps"] == 4
    assert written["training"]["batch_size"] == 2
    assert written["training"]["lr"] == pytest.approx(1e-3)
    # Untouched fields keep the preset's values; the file round-trips to the same config.
    assert written["training"]["patch_size"] == PRESETS["rrdbnet-litex2"].training.patch_size
    experiment = ExperimentConfig.from_dict(written)
    assert experiment == resolve("rrdbnet-litex2", {"steps": 4, "batch_size": 2, "lr": 1e-3})
    assert written_hash(output.read_text()) == experiment.config_hash()
    assert "config_hash" not in written  # what `dvc exp show` reads as params


def test_different_overrides_give_different_hashes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first = run_resolve(tmp_path / "a", "rrdbnet-litex4", steps=4)
    _, second = run_resolve(tmp_path / "b", "rrdbnet-litex4", steps=5)
    hashes = {written_hash(p.read_text()) for p in (first, second)}
    assert len(hashes) == 2


def test_typo_in_override_lists_valid_keys(tmp_path):
    result, output = run_resolve(tmp_path, "rrdbnetx4", stepz=3)
    assert result.exit_code == 2
    assert "unknown override 'stepz'" in result.output
    assert "Did you mean steps?" in result.output
    assert "batch_size" in result.output and "num_block" in result.output
    assert not output.exists()


def test_unknown_preset_lists_presets(tmp_path):
    result, _ = run_resolve(tmp_path, "rrdbnetx5")
    assert result.exit_code == 2
    assert "unknown preset 'rrdbnetx5'" in result.output
    assert all(name in result.output for name in PRESETS)


def test_invalid_value_names_choices(tmp_path):
    result, _ = run_resolve(tmp_path, "rrdbnetx4", loss="l3")
    assert result.exit_code == 2
    assert "l1, l2, charbonnier" in result.output


@pytest.mark.parametrize(
    ("preset", "scales", "packed"),
    [
        ("rrdbnet-litex4", [], {4}),  # params.yaml's default: the experiment's scale alone
        ("rrdbnet-litex8", [2, 4], {2, 4, 8}),  # data.scales asks for more
        ("realesrnet-litex4", [], set()),  # degrades its HR on the fly: no LR at all
        ("realesrnet-litex4", [3], {3}),
    ],
)
def test_resolve_plans_only_the_lr_stores_the_experiment_needs(tmp_path, preset, scales, packed):
    params = write_params(tmp_path, preset)
    values = yaml.safe_load(params.read_text())
    values["data"]["scales"] = scales
    params.write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(app, resolve_args(params, tmp_path / "build"))
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load((tmp_path / "build" / "stores.yaml").read_text())
    assert plan == {"lr": {f"x{s}": s in packed for s in (2, 3, 4, 8)}}


def test_error_exits_without_traceback(tmp_path):
    params = write_params(tmp_path, "rrdbnet-litex4", patch_size=30)
    proc = subprocess.run(
        [sys.executable, "-m", "stages.resolve", *resolve_args(params, tmp_path / "build")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "not a multiple of scale=4" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def edit_params(folder: Path, **values: str) -> Path:
    """params.yaml of the repo with the first `key: null` line of each key set to the text
    given, as a user edits it (yaml.safe_dump would write `2e-4` as `0.0002`)."""
    text = committed_text("params.yaml")
    for key, value in values.items():
        text, found = re.subn(rf"^( +{key}): null", rf"\1: {value}", text, count=1, flags=re.M)
        assert found, key
    path = folder / "params.yaml"
    path.write_text(text)
    return path


def resolve_params(params: Path):
    """stages.resolve of `params`, writing into its folder."""
    build = params.parent / "build"
    args = ["--params", str(params), "--output", str(build / "config.yaml")]
    return CliRunner().invoke(app, [*args, "--psnr", str(build / "psnr.yaml")])


def test_numbers_as_users_write_them(tmp_path):
    """params.yaml's own example, `lr: 2e-4`, and `[1e-1, 3]` for a range (YAML 1.1 strings)."""
    params = edit_params(
        tmp_path, lr="1e-3", min_lr="1E-6", type="realesrgan", blur_sigma="[1e-1, 3]"
    )
    result = resolve_params(params)
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "build" / "config.yaml").read_text())
    assert (written["training"]["lr"], written["training"]["min_lr"]) == (1e-3, 1e-6)
    assert written["degradation"]["blur_sigma"] == [0.1, 3.0]
    # The preset's own lr written as 2e-4 is the preset: the same config and hash.
    result = resolve_params(edit_params(tmp_path, lr="2e-4"))
    assert result.exit_code == 0, result.output
    assert written_hash((tmp_path / "build" / "config.yaml").read_text()) == "cdc4f1e5f54c9240"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "fast", "overrides.lr is 'fast'; expected a number"),
        ("lr", "'2e-4'", "overrides.lr is '2e-4'; expected a number"),  # quoted: a string
        ("steps", "1e3", "overrides.steps is 1000.0; expected an integer"),
        ("amp", "1e0", "overrides.amp is 1.0; expected true/false"),
        ("blur_sigma", "[1e-1, x]", "degradation.blur_sigma is [0.1, 'x']; expected a list"),
    ],
)
def test_a_value_that_is_no_number_is_one_line(tmp_path, key, value, message):
    result = resolve_params(edit_params(tmp_path, **{key: value}))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "build" / "config.yaml").exists()


@pytest.mark.e2e
def test_dvc_exp_run_set_numbers_resolve(tmp_path):
    """`dvc exp run -S overrides.lr=1e-5`: DVC writes YAML 1.2's `1e-05` into params.yaml
    (`2e-4` it writes as `0.0002`), which resolve reads as the number it is."""
    repo = make_repo(tmp_path / "repo")
    args = ["-S", "overrides.lr=1e-5", "-S", "overrides.min_lr=1e-7"]
    out = repo.dvc("exp", "run", "-n", "small-lr", *args, "resolve")  # resolve only: seconds
    assert re.findall(r"Running stage '([^']+)'", out) == ["resolve"], out
    assert re.search(r"^  lr: 1e-05 ", (repo.path / "params.yaml").read_text(), re.M)
    training = repo.read_yaml("build/config.yaml")["training"]
    assert (training["lr"], training["min_lr"]) == (1e-5, 1e-7)


def test_params_list_every_override_key_as_null():
    params = committed_yaml("params.yaml")
    keys = {key for name in PRESETS for key in override_keys(name)}
    assert set(params["overrides"]) == keys
    assert all(value is None for value in params["overrides"].values())
    assert params["preset"] == "rrdbnetx4"
    assert params["data"]["source"] == "div2k"


def test_committed_config_matches_params():
    """build/config.yaml in git is what resolve makes of params.yaml (else it is stale)."""
    params = committed_yaml("params.yaml")
    committed = committed_text("build/config.yaml")
    experiment = resolve(params["preset"], params["overrides"])
    assert yaml.safe_load(committed) == experiment.to_dict()
    assert written_hash(committed) == experiment.config_hash()


def test_committed_build_files_are_what_resolve_writes(tmp_path):
    """Both files in git, byte for byte, as the stage writes them from params.yaml in git."""
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    result = CliRunner().invoke(app, resolve_args(tmp_path / "params.yaml", tmp_path / "build"))
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "psnr.yaml"):
        assert (tmp_path / "build" / name).read_text() == committed_text(f"build/{name}"), name
