"""PublishedFile weights as verified inputs: where they are looked for, the one-line error when
missing, verification by size and sha256, and a download from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest
import torch

from claritycore.data import backbones
from claritycore.data.backbones import fetch, locate, require, verify
from claritycore.data.download import DownloadPolicy, FetchError, UnreachableError
from claritycore.data.published import PUBLISHED, PublishedFile
from claritycore.errors import ConfigError, UserError
from tests.test_fetch import Server

FAST = DownloadPolicy(timeout=5.0, retries=3, backoff=0.01, connect_retries=1)
PAYLOAD = bytes(range(256)) * 40  # a stand-in for the 548 MB file


@pytest.fixture
def places(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """An empty torch hub cache and pipeline root; returns (hub checkpoints, data/weights)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hub" / "checkpoints", tmp_path / "data" / "weights"


def _fake_entry(monkeypatch, data: bytes, url: str = "http://127.0.0.1:9/x") -> PublishedFile:
    """Point the vgg19 entry at `data` (its size and sha256), keeping the real file name."""
    real = PUBLISHED["vgg19"]
    fake = PublishedFile(real.file, url, len(data), hashlib.sha256(data).hexdigest(), "fake VGG19")
    monkeypatch.setitem(PUBLISHED, "vgg19", fake)
    return fake


def _put(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_table_names_match_their_sha256_prefix():
    for name in ("vgg19", "alexnet"):
        spec = PUBLISHED[name]
        assert spec.file.removesuffix(".pth").rsplit("-", 1)[1] == spec.sha256[:8]
        assert len(spec.sha256) == 64 and spec.url.endswith("/" + spec.file)
    assert PUBLISHED["vgg19"].size == 574_673_361


def test_locate_prefers_the_hub_cache(places):
    hub, weights = places
    file = PUBLISHED["vgg19"].file
    assert locate("vgg19") is None
    in_weights = _put(weights, file, b"b")
    assert locate("vgg19").resolve() == in_weights.resolve()
    in_hub = _put(hub, file, b"a")
    assert locate("vgg19") == in_hub
    with pytest.raises(ConfigError, match="known: vgg19, alexnet"):
        locate("resnet")


def test_missing_file_is_one_line_naming_file_size_hash_places_url(places):
    hub, weights = places
    with pytest.raises(UserError) as error:
        require("vgg19")
    message = str(error.value)
    spec = PUBLISHED["vgg19"]
    assert "\n" not in message
    for part in (spec.file, "574,673,361 bytes", spec.sha256, spec.url, str(hub), str(weights)):
        assert part in message


def test_require_skips_a_wrong_file_and_returns_a_verified_one(places, monkeypatch):
    hub, weights = places
    _fake_entry(monkeypatch, PAYLOAD)
    file = PUBLISHED["vgg19"].file
    _put(hub, file, PAYLOAD[:-1] + b"\x00")  # same size, other bytes
    with pytest.raises(UserError, match=r"hub/checkpoints/vgg19-dcbb9e9d.pth is not the published"):
        require("vgg19")
    good = _put(weights, file, PAYLOAD)
    assert require("vgg19").resolve() == good.resolve()
    with pytest.raises(UserError, match="sha256 is"):
        require("vgg19", hub / file)


def test_verify_checks_size_then_hash_and_sees_a_rewritten_file(tmp_path, monkeypatch):
    _fake_entry(monkeypatch, PAYLOAD)
    path = _put(tmp_path, "w.pth", PAYLOAD)
    assert verify(path, "vgg19") is None
    path.write_bytes(PAYLOAD + b"x")
    assert verify(path, "vgg19") == f"size is {len(PAYLOAD) + 1:,} bytes, expected {len(PAYLOAD):,}"
    # Same size, other bytes, another mtime: the cached verdict must not be reused.
    path.write_bytes(bytes(reversed(PAYLOAD)))
    os.utime(path, ns=(1, 1))
    assert verify(path, "vgg19").startswith("sha256 is ")


def test_fetch_downloads_verifies_and_reuses(tmp_path, monkeypatch, places):
    server = Server({"vgg19-dcbb9e9d.pth": PAYLOAD}, cut_first=1000)
    try:
        _fake_entry(monkeypatch, PAYLOAD, server.url + "vgg19-dcbb9e9d.pth")
        path = fetch("vgg19", tmp_path / "weights", FAST)
        assert path.read_bytes() == PAYLOAD
        assert server.requests[-1] == ("/vgg19-dcbb9e9d.pth", "bytes=1000-")  # resumed
        count = len(server.requests)
        assert fetch("vgg19", tmp_path / "weights", FAST) == path
        assert len(server.requests) == count
    finally:
        server.close()


def test_fetch_refuses_a_corrupt_download(tmp_path, monkeypatch, places):
    served = bytes(reversed(PAYLOAD))
    server = Server({"vgg19-dcbb9e9d.pth": served})
    try:
        _fake_entry(monkeypatch, PAYLOAD, server.url + "vgg19-dcbb9e9d.pth")
        with pytest.raises(FetchError, match="corrupt"):
            fetch("vgg19", tmp_path / "weights", FAST)
        assert list((tmp_path / "weights").iterdir()) == []
    finally:
        server.close()


def test_fetch_offline_says_where_to_put_the_file(tmp_path, monkeypatch, places):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _fake_entry(monkeypatch, PAYLOAD, f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth")
    with pytest.raises(UnreachableError, match=r"cannot reach .*Offline: get vgg19-dcbb9e9d.pth"):
        fetch("vgg19", tmp_path / "weights", FAST)
    assert backbones.locate("vgg19") is None


def test_fetch_copies_a_verified_hub_file_without_network(tmp_path, monkeypatch, places):
    hub, _ = places
    _fake_entry(monkeypatch, PAYLOAD)  # its URL is a closed port: any download would fail
    _put(hub, PUBLISHED["vgg19"].file, PAYLOAD)
    path = fetch("vgg19", tmp_path / "weights", FAST)
    assert path == tmp_path / "weights" / "vgg19-dcbb9e9d.pth" and path.read_bytes() == PAYLOAD
    assert not path.is_symlink() and verify(path, "vgg19") is None
