"""df2k, ost and data.mix against a real HTTP server on 127.0.0.1 (tests/test_fetch.py's)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from claritycore.config import DataOptions
from claritycore.data import fetch as fetch_module
from claritycore.data.download import Archive, FetchError, UnreachableError, UnsafeArchiveError
from claritycore.data.fetch import SOURCE_FILES, fetch
from claritycore.errors import ConfigError
from tests.test_fetch import FAST, Server, _div2k_like, _png, _zip


def _tar(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    return buf.getvalue()


def _flickr2k_like() -> bytes:
    # The HR folder, and LR folders beside it that must not be unpacked as HR images.
    hr = {f"Flickr2K/Flickr2K_HR/{i:06d}.png": _png(10 + i) for i in range(1, 3)}
    lr = {"Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png": _png(99, (10, 12))}
    return _tar({**hr, **lr})


def _ost_like() -> bytes:
    train = {
        "OST/OutdoorSceneTrain_v2/animal/0001.png": _png(20),
        "OST/OutdoorSceneTrain_v2/sky/0001.png": _png(21),  # same file name, other category
    }
    return _zip({**train, "OST/OutdoorSceneTest300/OST_001.png": _png(22)})


@pytest.fixture
def mirror(monkeypatch):
    """Every source's archives served from 127.0.0.1, the tables pointing there (sizes and
    sha256 as published: DIV2K's exact, Flickr2K's and OST's unpublished, as in fetch.py)."""
    files = {**_div2k_like(), "Flickr2K.tar": _flickr2k_like(), "OST_dataset.zip": _ost_like()}
    server = Server(files)

    def local(name: str, spec: Archive) -> Archive:
        if not spec.sha256:
            return replace(spec, url=server.url + name)
        data = files[name]
        return replace(spec, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    tables = {
        source: {name: local(name, spec) for name, spec in table.items()}
        for source, table in SOURCE_FILES.items()
    }
    monkeypatch.setattr(fetch_module, "SOURCE_FILES", tables)
    yield server
    server.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fetch(tmp_path: Path, server: Server, source: str, **data) -> Path:
    options = DataOptions(source=source, url=server.url, **data)  # type: ignore[arg-type]
    return fetch(options, tmp_path / "raw" / source, downloads=tmp_path / "dl", policy=FAST)


def test_df2k_is_div2k_and_flickr2ks_hr_images(tmp_path, mirror):
    dest = _fetch(tmp_path, mirror, "df2k")
    train = ["000001.png", "000002.png", "0001.png", "0002.png", "0003.png"]
    assert _names(dest / "train") == train
    assert (dest / "train" / "000002.png").read_bytes() == _png(12)
    assert _names(dest / "valid") == ["0004.png", "0005.png"]  # DIV2K's validation images
    # No published size: asked of the server first (HEAD), then downloaded and kept.
    assert ("HEAD /Flickr2K.tar", None) in mirror.requests
    assert (tmp_path / "dl" / "Flickr2K.tar").read_bytes() == mirror.files["Flickr2K.tar"]


def test_ost_takes_the_training_folder_named_by_category(tmp_path, mirror, capsys):
    dest = _fetch(tmp_path, mirror, "ost")
    assert _names(dest / "train") == ["animal_0001.png", "sky_0001.png"]
    assert (dest / "train" / "sky_0001.png").read_bytes() == _png(21)
    assert _names(dest / "valid") == ["0004.png", "0005.png"]
    digest = hashlib.sha256(mirror.files["OST_dataset.zip"]).hexdigest()
    assert f"sha256 {digest}" in capsys.readouterr().err.replace("\n", "")  # to pin it


def test_mix_adds_a_source_and_a_folder_with_their_names(tmp_path, mirror):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "0001.png").write_bytes(_png(30))
    dest = _fetch(tmp_path, mirror, "div2k", mix=("ost", str(mine)))
    assert _names(dest / "train") == [
        "0001.png", "0002.png", "0003.png", "ost_animal_0001.png", "ost_sky_0001.png",
        "photos_0001.png",
    ]  # fmt: skip
    assert (dest / "train" / "photos_0001.png").read_bytes() == _png(30)
    assert not list((tmp_path / "raw" / "div2k").glob(".mix-*"))
    with pytest.raises(ConfigError, match=r"data\.mix entry 'nowhere' is neither a source"):
        _fetch(tmp_path, mirror, "div2k", mix=("nowhere",))


def test_offline_names_the_missing_file_in_one_line(tmp_path, mirror, monkeypatch):
    tables = dict(fetch_module.SOURCE_FILES)
    tables["df2k"] = {
        **tables["df2k"],
        "Flickr2K.tar": replace(tables["df2k"]["Flickr2K.tar"], url="http://127.0.0.1:9/x.tar"),
    }
    monkeypatch.setattr(fetch_module, "SOURCE_FILES", tables)
    with pytest.raises(UnreachableError) as error:
        _fetch(tmp_path, mirror, "df2k")
    message = str(error.value)
    assert "\n" not in message and "place Flickr2K.tar in" in message
    assert "DIV2K_train_HR.zip" not in message.split("place")[1]  # fetched: not named


def test_a_tar_with_a_link_is_refused(tmp_path, mirror, monkeypatch):
    mirror.files["Flickr2K.tar"] = _tar({"Flickr2K/Flickr2K_HR/1.png": _png(1)}, ("evil.png",))
    with pytest.raises(UnsafeArchiveError, match=r"holds a link 'evil\.png'"):
        _fetch(tmp_path, mirror, "df2k")
    assert not (tmp_path / "raw" / "df2k" / "train").exists()


def test_a_tar_without_the_hr_folder_says_so(tmp_path, mirror):
    mirror.files["Flickr2K.tar"] = _tar({"other/1.png": _png(1)})
    with pytest.raises(FetchError, match=r"holds no PNG images below a Flickr2K_HR/ folder"):
        _fetch(tmp_path, mirror, "df2k")
