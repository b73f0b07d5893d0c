"""HR images into `<dest>/{train,valid}/*.png`: verified DIV2K zips, the bundled sample, a folder.

Downloads resume with HTTP Range requests, are checked against a published size and sha256,
and are unpacked only once verified, into a temporary folder renamed into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from claritycore import __version__
from claritycore.config import ConfigError, check_fields
from claritycore.data.images import ImageReadError, image_size, list_images, read_rgb, save_png

SOURCES = ("div2k", "sample", "folder")
SPLITS = ("train", "valid")
DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# The repository's bundled images (data/sample/{train,valid}); stage code runs from a checkout.
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"

console = Console(stderr=True)


@dataclass(frozen=True)
class Archive:
    """A published zip: its exact size, sha256, and the split its images belong to."""

    size: int
    sha256: str
    split: str


DIV2K_FILES: dict[str, Archive] = {
    "DIV2K_train_HR.zip": Archive(
        3_530_603_713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "train"
    ),
    "DIV2K_valid_HR.zip": Archive(
        448_993_893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "valid"
    ),
}


@dataclass(frozen=True)
class DownloadPolicy:
    """Network patience: a silent socket is dropped after `timeout` s; a cut transfer is resumed
    up to `retries` times (waiting `backoff`·2^k s); an unreachable host is retried only
    `connect_retries` times, so an offline machine fails within seconds."""

    timeout: float = 20.0
    retries: int = 5
    backoff: float = 2.0
    connect_retries: int = 1


@dataclass(frozen=True)
class DataParams:
    """params.yaml's `data` section, validated once where a stage reads it."""

    source: str
    root: Path | None
    url: str
    scales: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source is {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.source == "folder" and self.root is None:
            raise ConfigError(
                "data.source: folder needs data.root, a folder holding train/ and valid/"
            )
        if not self.scales or any(s not in (2, 3, 4, 8) for s in self.scales):
            raise ConfigError(f"data.scales is {list(self.scales)}; use some of 2, 3, 4, 8")

    @classmethod
    def from_dict(cls, values: Mapping) -> DataParams:
        check_fields(cls, dict(values))
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values]
        if missing:
            raise ConfigError(f"params.yaml `data` lacks {', '.join(missing)}")
        root = values["root"]
        return cls(
            source=values["source"],
            root=None if root is None else Path(root),
            url=values["url"],
            scales=tuple(values["scales"]),
        )


def largest_patch(scales: tuple[int, ...]) -> int:
    """The largest HR patch side of any preset at one of `scales` (images below it are dropped
    from a `folder` source: no preset could crop them)."""
    from claritycore.presets import PRESETS  # imports torch; only the folder source needs it

    sizes = [p.training.patch_size for p in PRESETS.values() if p.model.scale in scales]
    return max(sizes, default=0)


class FetchError(RuntimeError):
    """A download, verification or extraction failed; the message says what to do."""


class UnsafeArchiveError(FetchError):
    """A zip entry would land outside the destination (absolute path, `..`, or a link)."""


class UnreachableError(FetchError):
    """The server could not be reached at all; the message lists the offline alternatives."""


class _Unreachable(Exception):
    """No response from the server at all (DNS, refused, connect timeout)."""


class _Interrupted(Exception):
    """The transfer started but broke off; resuming may help."""


def _offline_help(url: str, names: list[str], downloads: Path) -> str:
    return (
        f"Offline alternatives: `data.source: sample` (the bundled images), "
        f"`data.source: folder` with `data.root` (your own HR images in train/ and valid/), "
        f"a mirror in `data.url` (now {url}), or place {', '.join(names)} in {downloads} by hand."
    )


def _progress() -> Progress:
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


def _verify(path: Path, spec: Archive, progress: Progress) -> str | None:
    """None if `path` has the published size and sha256, else what is wrong."""
    size = path.stat().st_size
    if size != spec.size:
        return f"size is {size:,} bytes, expected {spec.size:,}"
    digest = sha256_file(path, progress)
    if digest != spec.sha256:
        return f"sha256 is {digest}, expected {spec.sha256}"
    return None


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


def _transfer(url: str, part: Path, spec: Archive, policy: DownloadPolicy, progress, task) -> None:
    """Append the missing bytes of `url` to `part` (restarting if the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= spec.size:
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
        if length is not None and have + int(length) != spec.size:
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
    if part.stat().st_size < spec.size:
        raise _Interrupted(f"connection closed at {part.stat().st_size:,} of {spec.size:,} bytes")


def download(url: str, target: Path, spec: Archive, policy: DownloadPolicy, progress) -> None:
    """Download `url` to `target` via `target.part`, resuming and retrying per `policy`.

    `target` appears only once its size and sha256 match `spec`; a bad file is deleted.
    """
    part = target.with_name(target.name + ".part")
    if part.exists() and part.stat().st_size > spec.size:
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
    problem = _verify(part, spec, progress)
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


@contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A temporary folder beside `dest` that replaces `dest` only if the block succeeds."""
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


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
    with _progress() as progress, staged_dir(dest) as tmp:
        task = progress.add_task(f"unpack {dest.name}", total=total)
        for archive, images in plans:
            with zipfile.ZipFile(archive) as zf:
                for info, name in images:
                    with zf.open(info) as src, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)  # zipfile checks each CRC
                    progress.advance(task, info.file_size)
    return len(seen)


def fetch_div2k(
    dest: Path,
    base_url: str,
    files: Mapping[str, Archive],
    *,
    downloads: Path,
    policy: DownloadPolicy = DownloadPolicy(),
) -> Path:
    """Download (or reuse) the verified `files` from `base_url` into `downloads`, then unpack each
    split's images into `dest/<split>/`. Returns `dest`."""
    dest, downloads = Path(dest), Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    by_split: dict[str, list[Path]] = defaultdict(list)
    with _progress() as progress:
        for name, spec in files.items():
            target = downloads / name
            if target.exists():
                problem = _verify(target, spec, progress)
                if problem is None:
                    by_split[spec.split].append(target)
                    continue
                target.unlink()
                console.print(f"[yellow]{target} is not the published file ({problem}); deleted")
            part = target.with_name(name + ".part")
            needed = spec.size - (part.stat().st_size if part.exists() else 0)
            free = shutil.disk_usage(downloads).free
            if free < needed:
                raise FetchError(
                    f"{name} needs {needed / 1e9:.1f} GB in {downloads}; {free / 1e9:.1f} free"
                )
            try:
                download(base + name, target, spec, policy, progress)
            except UnreachableError as exc:
                help_text = _offline_help(base, list(files), downloads)
                raise UnreachableError(f"{exc}. {help_text}") from None
            by_split[spec.split].append(target)
    for split, archives in sorted(by_split.items()):
        count = extract_images(archives, dest / split)
        console.print(f"{split}: {count} images in {dest / split}")
    return dest


def _copy_sample(dest: Path) -> Path:
    for split in SPLITS:
        images = list_images(SAMPLE_DIR / split)
        with staged_dir(dest / split) as tmp:
            for path in images:
                shutil.copyfile(path, tmp / path.name)
        console.print(f"{split}: {len(images)} sample images in {dest / split}")
    return dest


def _is_plain_png(path: Path) -> bool:
    """An 8-bit RGB PNG without an orientation tag: its bytes can be copied as they are."""
    with Image.open(path) as img:
        rawmode = img.tile[0][3] if img.tile else None
        return img.format == "PNG" and rawmode == "RGB" and not img.getexif().get(0x0112)


def _convert_one(path: Path, out: Path) -> str | None:
    """Copy or convert one image to an 8-bit RGB PNG; returns the conversion note, if any."""
    if _is_plain_png(path):
        shutil.copyfile(path, out)
        return None
    pixels, note = read_rgb(path)
    save_png(pixels, out)
    return note or f"{path.name}: {path.suffix.lstrip('.').upper()} re-encoded as PNG"


def _import_folder(root: Path, dest: Path, min_size: int, workers: int) -> Path:
    for split in SPLITS:
        if not (root / split).is_dir():
            raise ConfigError(
                f"data.root {root} has no {split}/ folder; put HR images in {root}/train and "
                f"{root}/valid, or use data.source: sample"
            )
    for split in SPLITS:
        images = list_images(root / split)
        if not images:
            raise ConfigError(
                f"{root / split} holds no images ({', '.join(('png', 'jpg', 'tif'))}...)"
            )
        stems: dict[str, Path] = {}
        for path in images:
            if path.stem in stems:
                raise ConfigError(
                    f"{stems[path.stem]} and {path} would both become {path.stem}.png"
                )
            stems[path.stem] = path
        unreadable, small = [], []
        for path in images:
            try:
                h, w = image_size(path)
                if split == "train" and min(h, w) < min_size:
                    small.append(path)
            except ImageReadError:
                unreadable.append(path)
        if unreadable:
            raise ImageReadError(f"unreadable images: {', '.join(map(str, unreadable))}")
        keep = [p for p in images if p not in set(small)]
        with staged_dir(dest / split) as tmp, ThreadPoolExecutor(workers) as pool:
            notes = list(pool.map(lambda p: _convert_one(p, tmp / f"{p.stem}.png"), keep))
        converted = [n for n in notes if n]
        for note in converted[:5]:
            console.print(f"[yellow]{note}")
        summary = f"{split}: {len(keep)} images in {dest / split}"
        if converted:
            summary += f"; {len(converted)} converted to 8-bit RGB PNG"
        if small:
            summary += f"; {len(small)} skipped as smaller than {min_size} px"
        console.print(summary)
    return dest


def fetch(
    source: str,
    dest: Path,
    *,
    root: Path | None,
    url: str,
    downloads: Path,
    min_size: int = 0,
    workers: int = 4,
    policy: DownloadPolicy = DownloadPolicy(),
) -> Path:
    """Put `source`'s HR images in `dest/train` and `dest/valid` (PNG, 8-bit RGB); returns dest.

    `min_size`: `folder` training images with a shorter side are skipped (counted in the summary).
    """
    dest = Path(dest)
    if source == "div2k":
        return fetch_div2k(dest, url, DIV2K_FILES, downloads=downloads, policy=policy)
    if source == "sample":
        return _copy_sample(dest)
    if source == "folder":
        if root is None:
            raise ConfigError(
                "data.source: folder needs data.root, the folder holding train/ and valid/"
            )
        return _import_folder(Path(root), dest, min_size, workers)
    raise ConfigError(f"unknown data.source {source!r}; choose one of {', '.join(SOURCES)}")
