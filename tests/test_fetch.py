"""Fetch against a real HTTP server on 127.0.0.1: download, resume, verify, unpack safely."""

from __future__ import annotations

import hashlib
import io
import socket
import stat
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from claritycore.config import DataOptions
from claritycore.data.download import (
    Archive,
    DownloadPolicy,
    FetchError,
    UnreachableError,
    UnsafeArchiveError,
)
from claritycore.data.fetch import SAMPLE_DIR, fetch, fetch_archives, import_folder
from claritycore.data.images import ImageReadError
from claritycore.errors import ConfigError

FAST = DownloadPolicy(timeout=5.0, retries=3, backoff=0.01, connect_retries=1)


def _png(seed: int, size: tuple[int, int] = (20, 24)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _div2k_like() -> dict[str, bytes]:
    train = {f"DIV2K_train_HR/{i:04d}.png": _png(i) for i in range(1, 4)}
    valid = {f"DIV2K_valid_HR/{i:04d}.png": _png(i) for i in range(4, 6)}
    return {
        "DIV2K_train_HR.zip": _zip({"DIV2K_train_HR/": b"", **train}),
        "DIV2K_valid_HR.zip": _zip(valid),
    }


def _table(files: dict[str, bytes]) -> dict[str, Archive]:
    return {
        name: Archive(len(data), hashlib.sha256(data).hexdigest(), name.split("_")[1])
        for name, data in files.items()
    }


class Server:
    """Serves `files` at /<name>; records each request's path and Range header.

    `cut_first`: the first GET of each file stops after that many bytes (connection dropped).
    `ignore_range`: answer every request with the whole file (HTTP 200).
    """

    def __init__(self, files: dict[str, bytes], cut_first: int = 0, ignore_range=False):
        self.files, self.cut_first, self.ignore_range = files, cut_first, ignore_range
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                server.requests.append((f"HEAD {self.path}", None))
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                first = all(p != self.path for p, _ in server.requests)
                server.requests.append((self.path, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if first and server.cut_first:
                    self.wfile.write(body[: server.cut_first])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(files, **kwargs):
        servers.append(Server(files, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_clean_download_verifies_and_unpacks_flat(tmp_path, serve):
    files = _div2k_like()
    server = serve(files)
    dest = fetch_archives(
        tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl", policy=FAST
    )
    assert _names(dest / "train") == ["0001.png", "0002.png", "0003.png"]
    assert _names(dest / "valid") == ["0004.png", "0005.png"]
    assert (dest / "train" / "0002.png").read_bytes() == _png(2)
    assert _names(tmp_path / "dl") == ["DIV2K_train_HR.zip", "DIV2K_valid_HR.zip"]
    assert all(r is None for _, r in server.requests) and len(server.requests) == 2
    # Verified zips already present are not fetched again.
    fetch_archives(tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl")
    assert len(server.requests) == 2


def test_cut_download_resumes_with_range(tmp_path, serve):
    files = _div2k_like()
    name = "DIV2K_train_HR.zip"
    cut = len(files[name]) // 3
    server = serve(files, cut_first=cut)
    no_retry = DownloadPolicy(timeout=5.0, retries=0, backoff=0.01)
    with pytest.raises(FetchError, match="resumes"):
        fetch_archives(tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl",
                    policy=no_retry)  # fmt: skip
    part = tmp_path / "dl" / (name + ".part")
    assert part.stat().st_size == cut and not (tmp_path / "raw").exists()
    fetch_archives(
        tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl", policy=FAST
    )
    assert (f"/{name}", f"bytes={cut}-") in server.requests
    data = (tmp_path / "dl" / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(files[name]).hexdigest()
    assert not part.exists() and len(_names(tmp_path / "raw" / "train")) == 3


def test_retry_within_one_run_resumes(tmp_path, serve):
    files = _div2k_like()
    server = serve(files, cut_first=100)
    fetch_archives(
        tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl", policy=FAST
    )
    ranges = [r for _, r in server.requests if r]
    assert ranges == ["bytes=100-", "bytes=100-"]  # one resume per zip
    assert len(_names(tmp_path / "raw" / "valid")) == 2


def test_server_ignoring_range_restarts_cleanly(tmp_path, serve):
    files = _div2k_like()
    name = "DIV2K_valid_HR.zip"
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / (name + ".part")).write_bytes(b"garbage that is not a prefix")
    server = serve(files, ignore_range=True)
    fetch_archives(
        tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl", policy=FAST
    )
    assert (f"/{name}", "bytes=28-") in server.requests
    assert (tmp_path / "dl" / name).read_bytes() == files[name]


def test_wrong_checksum_deletes_file_and_extracts_nothing(tmp_path, serve):
    files = _div2k_like()
    table = _table(files)
    table["DIV2K_train_HR.zip"] = Archive(len(files["DIV2K_train_HR.zip"]), "0" * 64, "train")
    server = serve(files)
    with pytest.raises(FetchError, match=r"corrupt.*deleted"):
        fetch_archives(tmp_path / "raw", server.url, table, downloads=tmp_path / "dl", policy=FAST)
    assert not (tmp_path / "dl" / "DIV2K_train_HR.zip").exists()
    assert not (tmp_path / "dl" / "DIV2K_train_HR.zip.part").exists()
    assert not (tmp_path / "raw").exists()


def test_corrupt_zip_placed_by_hand_is_replaced(tmp_path, serve):
    files = _div2k_like()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "DIV2K_valid_HR.zip").write_bytes(b"not the zip")
    server = serve(files)
    fetch_archives(
        tmp_path / "raw", server.url, _table(files), downloads=tmp_path / "dl", policy=FAST
    )
    assert (tmp_path / "dl" / "DIV2K_valid_HR.zip").read_bytes() == files["DIV2K_valid_HR.zip"]


@pytest.mark.parametrize(
    "entries, links",
    [
        ({"DIV2K_train_HR/0001.png": _png(1), "DIV2K_train_HR/../../evil.png": _png(2)}, None),
        ({"DIV2K_train_HR/0001.png": _png(1), "/ABSOLUTE/evil.png": _png(2)}, None),
        ({"DIV2K_train_HR/0001.png": _png(1)}, {"DIV2K_train_HR/0002.png": "/etc/passwd"}),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unsafe_zip_entries_are_refused(tmp_path, serve, entries, links):
    files = {"DIV2K_train_HR.zip": _zip(entries, links)}
    server = serve(files)
    root = tmp_path / "a" / "b"
    with pytest.raises(UnsafeArchiveError, match=r"refused|escaping"):
        fetch_archives(root / "raw", server.url, _table(files), downloads=root / "dl", policy=FAST)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == ["a", "a/b", "a/b/dl", "a/b/dl/DIV2K_train_HR.zip"]


def test_offline_fails_fast_naming_url_and_alternatives(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    url = f"http://127.0.0.1:{port}/mirror/"
    files = _div2k_like()
    started = time.perf_counter()
    with pytest.raises(UnreachableError) as info:
        fetch_archives(tmp_path / "raw", url, _table(files), downloads=tmp_path / "dl")
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert f"{url}DIV2K_train_HR.zip" in message
    for hint in ("data.source: sample", "data.source: folder", "data.url", "by hand"):
        assert hint in message


def test_missing_file_on_server_is_not_retried(tmp_path, serve):
    server = serve({})
    table = {"DIV2K_valid_HR.zip": Archive(10, "0" * 64, "valid")}
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_archives(tmp_path / "raw", server.url, table, downloads=tmp_path / "dl", policy=FAST)
    assert len(server.requests) == 1


def test_sample_source_copies_bundled_images(tmp_path):
    dest = fetch(DataOptions(source="sample"), tmp_path / "sample", downloads=tmp_path / "dl")
    for split in ("train", "valid"):
        expected = sorted(p.name for p in (SAMPLE_DIR / split).glob("*.png"))
        assert _names(dest / split) == expected and expected
    assert (dest / "valid" / "chelsea.png").read_bytes() == (
        SAMPLE_DIR / "valid" / "chelsea.png"
    ).read_bytes()


def _user_folder(root: Path) -> None:
    (root / "train").mkdir(parents=True)
    (root / "valid").mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "train" / "plain.png")
    Image.fromarray(rgb).convert("L").save(root / "train" / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(root / "train" / "alpha.png")
    Image.fromarray(rgb).save(root / "train" / "photo.jpg", quality=95)
    Image.fromarray(rgb[:10, :10]).save(root / "train" / "tiny.png")
    Image.fromarray(rgb).convert("P").save(root / "valid" / "palette.png")


def test_folder_source_converts_and_skips_small(tmp_path):
    _user_folder(tmp_path / "mine")
    dest = import_folder(tmp_path / "mine", tmp_path / "out", min_size=32)
    assert _names(dest / "train") == ["alpha.png", "gray.png", "photo.png", "plain.png"]
    assert _names(dest / "valid") == ["palette.png"]
    assert (dest / "train" / "plain.png").read_bytes() == (
        tmp_path / "mine" / "train" / "plain.png"
    ).read_bytes()
    for name in ("alpha.png", "gray.png", "photo.png"):
        with Image.open(dest / "train" / name) as img:
            assert img.mode == "RGB" and img.size == (48, 40)


def test_folder_source_names_unreadable_files(tmp_path):
    _user_folder(tmp_path / "mine")
    (tmp_path / "mine" / "train" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        fetch(
            DataOptions(source="folder", root=tmp_path / "mine"),
            tmp_path / "out",
            downloads=tmp_path,
        )
    assert not (tmp_path / "out" / "train").exists()


def test_folder_without_train_split_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train/"):
        fetch(DataOptions(source="folder", root=tmp_path), tmp_path / "o", downloads=tmp_path)


def test_folder_source_drops_images_below_the_largest_preset_patch(tmp_path):
    """fetch itself takes the minimum size from the preset table (x2 presets: 128 px)."""
    _user_folder(tmp_path / "mine")
    big = np.random.default_rng(1).integers(0, 256, (130, 140, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "mine" / "train" / "big.png")
    data = DataOptions(source="folder", root=tmp_path / "mine", scales=(2,))
    dest = fetch(data, tmp_path / "out", downloads=tmp_path)
    assert _names(dest / "train") == ["big.png"]
