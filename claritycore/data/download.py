"""Verified, resumable HTTP downloads and safe zip extraction (standard library only).

A download lands in `<name>.part`, resumes with a Range request after an interruption, and
becomes `<name>` only once its size and sha256 match the published values. Zips are unpacked
only after every entry is checked, into a temporary folder renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
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
# Hex digits of a whole sha256: a published value with fewer is a prefix.
_SHA256_HEX = hashlib.sha256().digest_size * 2


@dataclass(frozen=True)
class Archive:
    """A published file: its exact size (None where none is published: the server's length is
    then taken) and sha256 (where only its first hex digits are published, that prefix; "" where
    none is: the download's sha256 is then printed, to pin), for a zip or tar the split its
    images belong to, its own `url` (None: the source's base URL + its name) and the folder
    inside it whose PNGs are the images (None: every PNG)."""

    size: int | None
    sha256: str
    split: str
    url: str | None = None
    members: str | None = None


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


def mismatch(path: Path, size: int | None, sha256: str, digest: Callable[[], str]) -> str | None:
    """What differs between `path` and what is published of its size and sha256 (a published
    prefix of the sha256 is checked as a prefix, "" checks none), or None. `digest()` gives the
    file's sha256; it is called only once the size matches."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size is {actual:,} bytes, expected {size:,}"
    if sha256 and not (hexdigest := digest()).startswith(sha256):
        published = "" if len(sha256) == _SHA256_HEX else " (the published prefix)"
        return f"sha256 is {hexdigest}, expected {sha256}{published}"
    return None


def verify(path: Path, spec: Archive, progress: Progress) -> str | None:
    """`mismatch` against the archive's published values; a file whose full sha256 is not
    published has its digest printed, to pin."""
    digest = functools.cache(lambda: sha256_file(path, progress))
    problem = mismatch(path, spec.size, spec.sha256, digest)
    if problem is None and len(spec.sha256) < _SHA256_HEX:
        checked = f"its sha256 starts {spec.sha256}" if spec.sha256 else "no published sha256"
        console.print(
            f"[yellow]{path.name}: {checked} (not fully verified); it is "
            f"{path.stat().st_size:,} bytes, sha256 {digest()}"
        )
    return problem


def served_size(url: str, policy: DownloadPolicy) -> int:
    """The length the server gives for `url` (a HEAD request): the size of a file with no
    published size, so that a cut transfer still resumes and ends where it should."""
    request = urllib.request.Request(
        url, method="HEAD", headers={"User-Agent": f"claritycore/{__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise UnreachableError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    if length is None:
        raise FetchError(f"{url} does not say its length; download it by hand")
    return int(length)


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


def _transfer(
    url: str, part: Path, size: int, policy: DownloadPolicy, progress: Progress, task: TaskID
) -> None:
    """Append the missing bytes of `url` to `part` (restarting if the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= size:
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
        if length is not None and have + int(length) != size:
            raise FetchError(
                f"{url} serves {have + int(length):,} bytes but {part.name[:-5]} should have "
                f"{size:,}; data.url may point at a different file"
            )
        progress.update(task, completed=have)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise _Interrupted(str(exc)) from exc
    if part.stat().st_size < size:
        raise _Interrupted(f"connection closed at {part.stat().st_size:,} of {size:,} bytes")


def download(
    url: str, target: Path, spec: Archive, policy: DownloadPolicy, progress: Progress
) -> None:
    """Download `url` to `target` via `target.part`, resuming and retrying per `policy`.

    `target` appears only once its size and sha256 match `spec`; a bad file is deleted.
    """
    size = spec.size if spec.size is not None else served_size(url, policy)
    part = target.with_name(target.name + ".part")
    if part.exists() and part.stat().st_size > size:
        part.unlink()
    task = progress.add_task(f"download {target.name}", total=size)
    interrupted = unreachable = 0
    while True:
        try:
            _transfer(url, part, size, policy, progress, task)
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


def _safe_name(name: str, archive: Path, is_link: bool) -> str:
    """The entry's name if it stays inside the destination, else UnsafeArchiveError."""
    name = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive} holds an absolute path {name!r}; refused")
    if ".." in PurePosixPath(name).parts:
        raise UnsafeArchiveError(f"{archive} holds an entry escaping with '..': {name!r}")
    if is_link:
        raise UnsafeArchiveError(f"{archive} holds a link {name!r}; refused")
    return name


def _image_name(path: str, members: str | None) -> str | None:
    """The flat name of a PNG entry, or None for an entry that is no image of the archive: with
    `members`, only PNGs below a folder of that name, named by their path below it (`a/b.png`
    -> `a_b.png`: categories that reuse file names stay apart); else every PNG, by file name."""
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).suffix.lower() != ".png":
        return None
    if members is None:
        return parts[-1]
    if members not in parts[:-1]:
        return None
    return "_".join(parts[parts.index(members) + 1 :])


def _entries(archive: Path, members: str | None) -> list[tuple[str, str]]:
    """(entry name, flat image name) of every image in a zip or tar, each entry checked first."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = [
                (_safe_name(i.filename, archive, stat.S_ISLNK(i.external_attr >> 16)), i.is_dir())
                for i in zf.infolist()
            ]
    else:
        try:
            with tarfile.open(archive) as tf:
                infos = [
                    (_safe_name(m.name, archive, m.issym() or m.islnk()), not m.isfile())
                    for m in tf.getmembers()
                ]
        except tarfile.TarError as exc:
            raise FetchError(f"{archive} is neither a zip nor a tar ({exc}); delete it") from None
    found = [(name, _image_name(name, members)) for name, is_dir in infos if not is_dir]
    return [(name, flat) for name, flat in found if flat is not None]


def _copy_out(
    archive: Path, wanted: dict[str, str], tmp: Path, advance: Callable[[int], None]
) -> None:
    """Copy the entries `wanted` names (entry -> flat name) out of `archive` into `tmp`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = wanted.get(info.filename.replace("\\", "/"))
                if name is not None:
                    with zf.open(info) as src, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)  # zipfile checks each CRC
                    advance(info.file_size)
        return
    with tarfile.open(archive) as tf:
        for member in tf:  # in archive order: a tar is read once, front to back
            if member.name in wanted:
                source = tf.extractfile(member)
                if source is None:
                    continue
                with source, open(tmp / wanted[member.name], "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                advance(member.size)


def extract_images(archives: list[tuple[Path, str | None]], dest: Path) -> int:
    """Unpack the image files of verified `archives` (each with its images' folder, or None for
    every PNG) flat into `dest`, atomically.

    Every entry is checked before anything is written; one unsafe entry refuses the archive.
    """
    plans = [(archive, dict(_entries(archive, members))) for archive, members in archives]
    for (archive, wanted), (_, members) in zip(plans, archives, strict=True):
        if not wanted:
            where = f" below a {members}/ folder" if members else ""
            raise FetchError(
                f"{archive} holds no PNG images{where}: not the published file? Delete it to "
                "download it again"
            )
    seen: dict[str, Path] = {}
    for archive, wanted in plans:
        for name in wanted.values():
            if name in seen:
                raise FetchError(f"{name} appears twice (in {seen[name]} and {archive})")
            seen[name] = archive
    total = sum(archive.stat().st_size for archive, _ in plans)
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < total:
        raise FetchError(
            f"unpacking needs up to {total / 1e9:.1f} GB in {dest.parent}, {free / 1e9:.1f} free"
        )
    with progress_bar() as progress, staged_dir(dest) as tmp:
        task = progress.add_task(f"unpack {dest.name}", total=total)
        for archive, wanted in plans:
            _copy_out(archive, wanted, tmp, lambda n: progress.advance(task, n))
    return len(seen)
