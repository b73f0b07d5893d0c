"""Verified, resumable HTTP downloads and safe zip extraction (standard library only).

A download lands in `<name>.part`, resumes with a Range request after an interruption, and
becomes `<name>` only once its size and sha256 match the published values. Zips are unpacked
only after every entry is checked, into a temporary folder renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from claritycore import __version__
from claritycore.data.images import staged_dir
from claritycore.errors import UserError

console = Console(stderr=True)


@dataclass(frozen=True)
class Archive:
    """A published file: its exact size and sha256, and for a zip the split its images belong
    to. For a file whose size is not published `size` is None; where only the first hex digits
    of its sha256 are published, `sha256` is that prefix ("" where none is)."""

    size: int | None
    sha256: str
    split: str


@dataclass(frozen=True)
class DownloadPolicy:
    """Network patience: a silent socket is dropped after `timeout` s; a cut transfer is resumed
    up to `retries` times (waiting `backoff`·2^k s); an unreachable host is retried only
    `connect_retries` times, so an offline machine fails within seconds."""

    timeout: float = 20.0
    retries: int = 5
    backoff: float = 2.0
    connect_retries: int = 1


class FetchError(UserError, RuntimeError):
    """A download, verification or extraction failed; the message says what to do."""


class UnsafeArchiveError(FetchError):
    """A zip entry would land outside the destination (absolute path, `..`, or a link)."""


class UnreachableError(FetchError):
    """The server could not be reached at all; the message lists the offline alternatives."""


class _Unreachable(Exception):
    """No response from the server at all (DNS, refused, connect timeout)."""


class _Interrupted(Exception):
    """The transfer started but broke off; resuming may help."""


def progress_bar() -> Progress:
    """Bytes done, rate and time left: for downloads, checksums and unpacking."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    """Hex sha256 of a file, read in 8 MiB blocks (with a progress bar when given one)."""
    digest = hashlib.sha256()
    task = progress.add_task(f"verify {path.name}", total=path.stat().st_size) if progress else None
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
            if progress is not None and task is not None:
                progress.advance(task, len(block))
    return digest.hexdigest()


def verify(path: Path, spec: Archive, progress: Progress) -> str | None:
    """None if `path` has what is published of its size and sha256, else what is wrong."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"size is {size:,} bytes, expected {spec.size:,}"
    if not spec.sha256:
        return None
    digest = sha256_file(path, progress)
    if not digest.startswith(spec.sha256):
        return f"sha256 is {digest}, expected {spec.sha256}"
    return None


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


def _transfer(
    url: str, part: Path, spec: Archive, policy: DownloadPolicy, progress: Progress, task: TaskID
) -> None:
    """Append the missing bytes of `url` to `part` (restarting if the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    if spec.size is not None and have >= spec.size:
        return
    headers = {"User-Agent": f"claritycore/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=policy.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # our partial file is not a prefix the server knows: start over
            part.unlink()
            raise _Interrupted(
                f"server refused the range (HTTP 416); restarting {part.name}"
            ) from exc
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise FetchError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Unreachable(str(getattr(exc, "reason", exc))) from exc
    with response:
        resumed = have and response.status == 206
        if resumed and _content_range_start(response.headers.get("Content-Range")) != have:
            raise FetchError(f"{url} answered a Range request with the wrong bytes")
        if not resumed:
            have = 0  # a 200 answer is the whole file: the server ignored Range
        length = response.headers.get("Content-Length")
        # Without a published size, the server's length is what a complete transfer has.
        expected = spec.size if spec.size is not None or length is None else have + int(length)
        if length is not None and have + int(length) != expected:
            raise FetchError(
                f"{url} serves {have + int(length):,} bytes but {part.name[:-5]} should have "
                f"{spec.size:,}; data.url may point at a different file"
            )
        progress.update(task, completed=have)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise _Interrupted(str(exc)) from exc
    if expected is not None and part.stat().st_size < expected:
        raise _Interrupted(f"connection closed at {part.stat().st_size:,} of {expected:,} bytes")


def download(
    url: str, target: Path, spec: Archive, policy: DownloadPolicy, progress: Progress
) -> None:
    """Download `url` to `target` via `target.part`, resuming and retrying per `policy`.

    `target` appears only once its size and sha256 match `spec`; a bad file is deleted.
    """
    part = target.with_name(target.name + ".part")
    if part.exists() and spec.size is not None and part.stat().st_size > spec.size:
        part.unlink()
    task = progress.add_task(f"download {target.name}", total=spec.size)
    interrupted = unreachable = 0
    while True:
        try:
            _transfer(url, part, spec, policy, progress, task)
            break
        except _Unreachable as exc:
            unreachable += 1
            if unreachable > policy.connect_retries:
                raise UnreachableError(f"cannot reach {url}: {exc}") from None
            time.sleep(min(1.0, policy.backoff))
        except _Interrupted as exc:
            interrupted += 1
            if interrupted > policy.retries:
                raise FetchError(
                    f"download of {url} kept failing ({exc}); {part} is kept and the next run "
                    "resumes from it"
                ) from None
            wait = policy.backoff * 2 ** (interrupted - 1)
            console.print(f"[yellow]{target.name}: {exc}; retry {interrupted} in {wait:.0f} s")
            time.sleep(wait)
    problem = verify(part, spec, progress)
    if problem:
        part.unlink()
        raise FetchError(
            f"downloaded {target.name} is corrupt ({problem}); the file was deleted. Run again "
            f"to download it afresh, or check that data.url serves the official files"
        )
    part.replace(target)


def _member_name(info: zipfile.ZipInfo, archive: Path) -> str:
    """The entry's name if it stays inside the destination, else UnsafeArchiveError."""
    name = info.filename.replace("\\", "/")  # zips made on Windows may use backslashes
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive} holds an absolute path {info.filename!r}; refused")
    if ".." in PurePosixPath(name).parts:
        raise UnsafeArchiveError(f"{archive} holds an entry escaping with '..': {info.filename!r}")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive} holds a symbolic link {info.filename!r}; refused")
    return name


def extract_images(archives: list[Path], dest: Path) -> int:
    """Unpack the image files of verified `archives` flat into `dest`, atomically.

    Every entry is checked before anything is written; one unsafe entry refuses the archive.
    """
    plans = []
    for archive in archives:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
        names = [_member_name(info, archive) for info in infos]
        images = [
            (info, PurePosixPath(n).name)
            for info, n in zip(infos, names, strict=True)
            if not info.is_dir() and PurePosixPath(n).suffix.lower() == ".png"
        ]
        plans.append((archive, images))
    seen: dict[str, Path] = {}
    for archive, images in plans:
        for _, name in images:
            if name in seen:
                raise FetchError(f"{name} appears twice (in {seen[name]} and {archive})")
            seen[name] = archive
    if not seen:
        raise FetchError(f"no PNG images in {', '.join(map(str, archives))}")
    total = sum(info.file_size for _, images in plans for info, _ in images)
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < total:
        raise FetchError(
            f"unpacking needs {total / 1e9:.1f} GB in {dest.parent}, {free / 1e9:.1f} free"
        )
    with progress_bar() as progress, staged_dir(dest) as tmp:
        task = progress.add_task(f"unpack {dest.name}", total=total)
        for archive, images in plans:
            with zipfile.ZipFile(archive) as zf:
                for info, name in images:
                    with zf.open(info) as src, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)  # zipfile checks each CRC
                    progress.advance(task, info.file_size)
    return len(seen)
