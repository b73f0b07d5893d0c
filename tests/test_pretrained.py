"""Start files and published weights by name: each published layout read at a small width, the
table's rows fetched from a server on 127.0.0.1 (resumed, verified), a wrong file refused, the
hub cache picked up, prefix-only verification, the resolve stage's one-line mismatch, and the
non-strict ×4 → ×2 load."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from claritycore import pretrained
from claritycore.cli import app
from claritycore.data import backbones
from claritycore.data.download import UnreachableError
from claritycore.data.published import PUBLISHED, PublishedFile
from claritycore.errors import ConfigError, UserError
from claritycore.experiment import resolve
from claritycore.models import AutoConfig, AutoModel
from claritycore.pretrained import StartFile
from claritycore.weights import load_model
from stages.resolve import app as resolve_stage
from tests.test_fetch import Server

# Real-ESRGAN's architecture at a tenth of the width: only the shapes differ from the real file.
SMALL_X4 = {"model_type": "rrdbnet", "scale": 4, "num_feat": 8, "num_block": 2,
            "num_grow_ch": 4, "upsampler": "nearest"}  # fmt: skip
_ESRGAN_NAMES = {"conv_body": "trunk_conv", "conv_hr": "HRconv", "conv_up": "upconv"}


def _model(fields: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AutoModel.from_config(AutoConfig.from_dict(fields))


def _esrgan_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our key names as ESRGAN's repository saved them (RRDB_trunk.N.RDBk, trunk_conv, …)."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", key)
        for ours, theirs in _ESRGAN_NAMES.items():
            key = re.sub(rf"^{ours}", theirs, key)
        out[key] = value
    return out


def _layout_bytes(layout: str, state: dict[str, torch.Tensor]) -> bytes:
    payload = {
        "params_ema": {"params_ema": state, "params": {k: v * 0 for k, v in state.items()}},
        "params": {"params": state},
        "esrgan": _esrgan_keys(state),
    }[layout]
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.fixture
def places(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """An empty torch hub cache and pipeline root; returns (hub checkpoints, data/weights)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hub" / "checkpoints", tmp_path / "data" / "weights"


def _publish(monkeypatch, name: str, data: bytes, url: str, **changes) -> PublishedFile:
    """Point the row `name` at `data` (its size and sha256) served at `url`, small width."""
    real = PUBLISHED[name]
    fields = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "url": url}
    fields |= {"architecture": SMALL_X4} if real.role == "generator" else {}
    row = PublishedFile(**{**real.__dict__, **fields, **changes})
    monkeypatch.setitem(PUBLISHED, name, row)
    return row


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("layout", ["params_ema", "params", "esrgan"])
def test_each_published_layout_loads_strictly(tmp_path, layout):
    source = _model(SMALL_X4, seed=1)
    path = tmp_path / f"{layout}.pth"
    path.write_bytes(_layout_bytes(layout, source.state_dict()))
    network = _model(SMALL_X4, seed=2)
    assert pretrained.file_shapes(path, "generator") == pretrained.generator_shapes(network.config)
    fit = pretrained.load(network, StartFile("x", path), "generator")
    assert fit.fresh == [] and fit.unused == []
    for key, value in source.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key  # params_ema, not params


def test_a_published_name_downloads_resumes_and_is_reused(places, monkeypatch):
    hub, _ = places
    data = _layout_bytes("params_ema", _model(SMALL_X4).state_dict())
    server = Server({"RealESRGAN_x4plus.pth": data}, cut_first=1000)
    try:
        _publish(monkeypatch, "RealESRGAN_x4plus", data, server.url + "RealESRGAN_x4plus.pth")
        path = pretrained.weights_path("RealESRGAN_x4plus")
        assert path == hub / "RealESRGAN_x4plus.pth" and path.read_bytes() == data
        assert server.requests[-1] == ("/RealESRGAN_x4plus.pth", "bytes=1000-")  # resumed
        count = len(server.requests)
        assert pretrained.weights_path("RealESRGAN_x4plus") == path
        assert len(server.requests) == count  # the cached, verified file
    finally:
        server.close()
    result = CliRunner().invoke(app, ["models", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["RealESRGAN_x4plus"]["cached"] == str(path)
    assert rows["RealESRNet_x4plus"]["cached"] is None


def test_a_cached_file_with_a_wrong_hash_is_refused_in_one_line(places, monkeypatch):
    hub, _ = places
    data = _layout_bytes("params_ema", _model(SMALL_X4).state_dict())
    row = _publish(monkeypatch, "RealESRGAN_x4plus", data, f"http://127.0.0.1:{_closed_port()}/x")
    hub.mkdir(parents=True)
    (hub / row.file).write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(UserError) as error:
        pretrained.weights_path("RealESRGAN_x4plus")
    message = str(error.value)
    assert "\n" not in message and "is not the published file (sha256 is" in message
    assert row.sha256 in message and row.url in message
    Image.new("RGB", (8, 8)).save("x.png")
    result = CliRunner().invoke(app, ["upscale", "-m", "RealESRGAN_x4plus", "x.png", "-o", "o"])
    assert result.exit_code == 2 and "is not the published file (sha256 is" in result.output


def test_offline_and_missing_names_file_size_hash_url_and_place(places, monkeypatch):
    hub, _ = places
    url = f"http://127.0.0.1:{_closed_port()}/RealESRGAN_x4plus.pth"
    row = _publish(monkeypatch, "RealESRGAN_x4plus", b"abc" * 100, url)
    with pytest.raises(UnreachableError) as error:
        pretrained.weights_path("RealESRGAN_x4plus")
    message = str(error.value)
    assert "\n" not in message
    for part in (row.file, "300 bytes", row.sha256, url, str(hub.resolve())):
        assert part in message, part


def test_prefix_only_verification_checks_size_and_prefix(places, monkeypatch):
    data = b"weights" * 50
    digest = hashlib.sha256(data).hexdigest()
    row = _publish(monkeypatch, "ESRGAN_SRx4_DF2KOST_official", data, "u", sha256=digest[:8])
    assert (
        row.checks()
        == f"size and the sha256 prefix {digest[:8]} (the full sha256 is not published)"
    )
    good = places[0].parent / "good.pth"
    good.parent.mkdir(parents=True, exist_ok=True)
    good.write_bytes(data)
    assert backbones.verify(good, "ESRGAN_SRx4_DF2KOST_official") is None
    good.write_bytes(bytes(reversed(data)))
    assert backbones.verify(good, "ESRGAN_SRx4_DF2KOST_official").startswith("sha256 is ")
    assert PUBLISHED["RealESRGAN_x4plus_netD"].checks().startswith("nothing")


def test_the_pipeline_copies_from_the_hub_cache_and_records_the_file(places, monkeypatch):
    hub, weights = places
    data = _layout_bytes("params_ema", _model(SMALL_X4).state_dict())
    row = _publish(monkeypatch, "RealESRGAN_x4plus", data, f"http://127.0.0.1:{_closed_port()}/x")
    hub.mkdir(parents=True)
    (hub / row.file).write_bytes(data)  # no server: only the hub cache can provide it
    experiment = resolve("rrdbnet-litex4", {k: SMALL_X4[k] for k in ("num_feat", "num_block",
                                            "num_grow_ch", "upsampler")})  # fmt: skip
    records = {"generator": Path("g.yaml"), "discriminator": Path("d_d.yaml")}
    starts = pretrained.place_starts(
        experiment, "RealESRGAN_x4plus", strict=True, dest_dir=weights, records=records
    )
    assert starts["generator"].path == weights / row.file
    assert (weights / row.file).read_bytes() == data
    record = yaml.safe_load(Path("g.yaml").read_text())
    assert record == {"name": "RealESRGAN_x4plus", "file": str(weights / row.file),
                      "sha256": row.sha256, "strict": True}  # fmt: skip
    assert yaml.safe_load(Path("d_d.yaml").read_text()) == {}
    assert pretrained.read_record(Path("g.yaml")) == starts["generator"]


def test_resolve_stage_refuses_a_mismatch_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = tmp_path / "x4.pth"
    start.write_bytes(_layout_bytes("params", _model(SMALL_X4).state_dict()))
    params = {"preset": "rrdbnet-litex2", "train": {"pretrained": str(start)}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(resolve_stage, [])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert re.search(
        r"train\.pretrained: .*x4\.pth does not fit the experiment's model \(rrdbnet ×2, .*\): "
        r"conv_first\.weight is \(32, 3, 3, 3\) in the model and \(8, 3, 3, 3\) in the file",
        result.output.replace("\n", ""),
    ), result.output
    assert not Path("build/config.yaml").exists()


def test_a_published_name_is_checked_by_its_row_before_any_download():
    experiment = resolve("realesrnetx2")
    with pytest.raises(ConfigError) as error:
        pretrained.check_starts(experiment, "RealESRGAN_x4plus", strict=True)
    assert "RealESRGAN_x4plus (rrdbnet ×4, num_feat 64" in str(error.value)
    assert "conv_first.weight is (64, 12, 3, 3) in the model and (64, 3, 3, 3)" in str(error.value)
    fits = pretrained.check_starts(experiment, "RealESRGAN_x4plus", strict=False)
    assert fits["generator"].fresh == ["conv_first.weight"]
    with pytest.raises(ConfigError, match="is a published discriminator, not a generator"):
        pretrained.check_starts(experiment, "RealESRGAN_x4plus_netD", strict=True)


def test_not_strict_a_x4_file_starts_a_x2_model_with_its_body(tmp_path):
    source = _model(SMALL_X4, seed=1)
    path = tmp_path / "x4.pth"
    path.write_bytes(_layout_bytes("params_ema", source.state_dict()))
    x2 = {**SMALL_X4, "scale": 2, "upsampler": "pixelshuffle"}
    with pytest.raises(ConfigError, match="does not fit the generator: "):
        pretrained.load(_model(x2, seed=3), StartFile("x4", path), "generator")
    network, untouched = _model(x2, seed=3), _model(x2, seed=3)
    fit = pretrained.load(network, StartFile("x4", path, strict=False), "generator")
    assert fit.fresh and all(not k.startswith(("body.", "conv_first")) for k in fit.fresh)
    assert any(k.startswith("conv_up") for k in fit.unused)
    state, before, file = network.state_dict(), untouched.state_dict(), source.state_dict()
    for key in state:
        expected = before[key] if key in fit.fresh else file[key]
        assert torch.equal(state[key], expected), key


def test_a_fine_tuning_run_resumes_bitwise_and_records_its_start(tmp_path):
    """Not strict, from a ×4 file: killed after step 3 and resumed, the run ends on the weights
    of the run that was not interrupted; model.pt names the file, its sha256 and what started
    fresh."""
    from tests.helpers import checkpoint_files, quick_options, run, tiny_experiment, tiny_store

    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=6)
    x4 = {**experiment.model.to_dict(), "scale": 4, "upsampler": "nearest"}
    source = tmp_path / "x4.pth"
    source.write_bytes(_layout_bytes("params_ema", _model(x4, seed=5).state_dict()))
    start = StartFile("x4", source, strict=False)
    options = quick_options()
    run(tmp_path / "whole", experiment, options, store, pretrained=start)
    run(tmp_path / "resumed", experiment, options, store, pretrained=start)
    checkpoint_files(tmp_path / "resumed" / "ckpt")[-1].unlink()  # killed after step 3
    run(tmp_path / "resumed", experiment, options, store, pretrained=start)
    whole, meta = load_model(tmp_path / "whole" / "model.pt")
    resumed = load_model(tmp_path / "resumed" / "model.pt")[0].state_dict()
    for name, tensor in whole.state_dict().items():
        assert torch.equal(resumed[name], tensor), name
    record = meta["pretrained"]["generator"]
    assert (
        record["name"] == "x4"
        and record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert record["strict"] is False and record["fresh"] and record["unused"]
    assert all(not key.startswith("body.") for key in record["fresh"])


def test_models_lists_every_published_file_and_what_is_cached_here(places):
    hub, _ = places
    hub.mkdir(parents=True)
    (hub / PUBLISHED["RealESRGAN_x2plus"].file).write_bytes(b"stand-in")
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == set(PUBLISHED) and {"RealESRGAN_x4plus", "vgg19"} <= set(rows)
    x4plus = rows["RealESRGAN_x4plus"]
    assert (x4plus["scale"], x4plus["size"], x4plus["cached"]) == (4, 67040989, None)
    assert x4plus["url"].endswith("/RealESRGAN_x4plus.pth") and x4plus["license"]
    assert rows["RealESRGAN_x2plus"]["cached"] == str(hub / "RealESRGAN_x2plus.pth")
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "120"}).output
    line = next(line for line in table.splitlines() if "RealESRGAN_x2plus " in line)
    assert line.split()[1:] == ["×2", "RRDBNet", "64·23·32", "nearest+unshuffle", "67.1", "MB",
                                "BSD-3-Clause", "yes"]  # fmt: skip
    line = next(line for line in table.splitlines() if "RealESRGAN_x4plus_netD" in line)
    assert line.split()[1:] == ["netD", "unet_sn", "64", "–", "BSD-3-Clause", "no"]


def test_a_gan_trained_whole_in_train_records_its_vgg_weights_file(places):
    """`train` does not depend on train.vgg_weights (only a GAN's second stage reads it), so a
    GAN experiment started from a generator file, trained whole in `train`, has the VGG file
    and its sha256 in the generator record that `train` depends on; an L1 experiment not."""
    _, weights = places
    start = Path("x4.pth")
    start.write_bytes(_layout_bytes("params", _model(SMALL_X4).state_dict()))
    vgg = Path("vgg.pth")
    vgg.write_bytes(b"any vgg file")
    small = {k: SMALL_X4[k] for k in ("num_feat", "num_block", "num_grow_ch", "upsampler")}
    records = {"generator": Path("g.yaml"), "discriminator": Path("d.yaml")}
    for preset, recorded in (("realesrgan-litex4", True), ("rrdbnet-litex4", False)):
        pretrained.place_starts(resolve(preset, small), str(start), strict=True,
                                dest_dir=weights, records=records, vgg_weights=vgg)  # fmt: skip
        record = yaml.safe_load(Path("g.yaml").read_text())
        assert record["sha256"] == hashlib.sha256(start.read_bytes()).hexdigest()
        expected = {"vgg_weights": str(vgg),
                    "vgg_weights_sha256": hashlib.sha256(b"any vgg file").hexdigest()}  # fmt: skip
        assert (expected.items() <= record.items()) is recorded
        assert ("vgg_weights" in record) is recorded


def test_evaluate_by_name_scores_the_published_file(places, monkeypatch):
    """`evaluate -m NAME` scores the file the table names (here from the hub cache) exactly as
    `evaluate -m PATH` scores that file."""
    hub, _ = places
    data = _layout_bytes("params_ema", _model(SMALL_X4, seed=3).state_dict())
    row = _publish(monkeypatch, "RealESRGAN_x4plus", data, f"http://127.0.0.1:{_closed_port()}/x")
    hub.mkdir(parents=True)
    (hub / row.file).write_bytes(data)
    images = Path("set")
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
    scores = []
    for model in ("RealESRGAN_x4plus", str(hub / row.file)):
        out = Path(f"eval-{len(scores)}")
        args = ["evaluate", "-m", model, "--data", f"set={images}", "--out", str(out),
                "--no-perceptual", "--device", "cpu"]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        scores.append(json.loads((out / "eval.json").read_text())["set"])
    assert scores[0] == scores[1] and scores[0]["images"] == 2 and scores[0]["psnr_y"] > 0
