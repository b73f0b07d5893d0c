"""Published weights files (the table in `published.py`: VGG19 and AlexNet for the losses and
scores, the published RRDBNet generators and discriminators) as verified inputs, treated like
DIV2K: a file is used only once what is published of its size and sha256 matches; it is looked
for in torch's hub cache, then in the pipeline's `data/weights/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from claritycore.config import AdversarialConfig
from claritycore.data.download import (
    Archive,
    DownloadPolicy,
    FetchError,
    UnreachableError,
    download,
    mismatch,
    progress_bar,
    sha256_file,
)
from claritycore.data.published import FULL_SHA256, PublishedFile, published
from claritycore.errors import UserError

# The pipeline's own copy (a DVC-tracked output), relative to the repository root.
PIPELINE_WEIGHTS = Path("data") / "weights"


# sha256 by (resolved path, size, mtime_ns): hashing 548 MB takes about 1 s, and one run asks
# more than once (locate, verify, record in model.pt). A rewritten file changes size or mtime.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def _remember(path: Path, sha256: str) -> None:
    """Record a digest just checked, so the next verify of the same file costs nothing."""
    _DIGESTS[_key(path)] = sha256


def file_sha256(path: Path) -> str:
    """Hex sha256 of `path`, computed once per (path, size, mtime) in this process."""
    key = _key(path)
    if key not in _DIGESTS:
        if key[1] > 64 << 20:
            with progress_bar() as progress:
                _DIGESTS[key] = sha256_file(Path(path), progress)
        else:
            _DIGESTS[key] = sha256_file(Path(path))
    return _DIGESTS[key]


def hub_dir() -> Path:
    """torch's hub cache of weights files, where `upscale -m NAME` keeps what it downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_paths(name: str) -> list[Path]:
    """Where `name`'s file is looked for, in order: torch's hub cache, then `data/weights/`."""
    file = published(name).file
    return [hub_dir() / file, PIPELINE_WEIGHTS / file]


def locate(name: str) -> Path | None:
    """The first existing file of `search_paths(name)` (not yet verified), or None."""
    return next((path for path in search_paths(name) if path.is_file()), None)


def verify(path: Path, name: str) -> str | None:
    """None if `path` is the published file `name` as far as its size and sha256 are
    published (`PublishedFile.checks`), else what is wrong."""
    spec = published(name)
    return mismatch(Path(path), spec.size, spec.sha256, lambda: file_sha256(path))


def describe(spec: PublishedFile) -> str:
    """The file's published facts in one phrase: size and sha256, or which are not published."""
    size = "size not published" if spec.size is None else f"{spec.size:,} bytes"
    if not spec.sha256:
        digest = "sha256 not published"
    elif len(spec.sha256) < FULL_SHA256:
        digest = f"sha256 starting {spec.sha256} (only that prefix is published)"
    else:
        digest = f"sha256 {spec.sha256}"
    return f"{spec.description}, {size}, {digest}"


def placement_help(name: str) -> str:
    """Where to get the file `name` and where to put it, in one clause."""
    spec = published(name)
    places = " or ".join(f"{p.parent.resolve()}/" for p in search_paths(name))
    return (
        f"get {spec.file} ({describe(spec)}) from {spec.url} and put it in {places}, or run "
        "`dvc pull` where the pipeline has it"
    )


def require(name: str, path: Path | None = None) -> Path:
    """The verified file `name`: at `path` if given, else the first verified one of
    `search_paths(name)`. Otherwise a one-line UserError saying what to put where."""
    spec = published(name)
    candidates = [Path(path)] if path is not None else search_paths(name)
    problems = []
    for candidate in candidates:
        if not candidate.is_file():
            continue
        problem = verify(candidate, name)
        if problem is None:
            return candidate
        problems.append(f"{candidate} is not the published file ({problem})")
    found = "; ".join(problems) if problems else f"{spec.file} not found"
    raise UserError(f"{found}; {placement_help(name)}")


def _remember_published(path: Path, spec: PublishedFile) -> Path:
    """After a check of `path` against a full published sha256, that digest is the file's."""
    if len(spec.sha256) == FULL_SHA256:
        _remember(path, spec.sha256)
    return path


def _copy(source: Path, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    shutil.copyfile(source, part)
    part.replace(target)


def fetch(
    name: str, dest_dir: Path = PIPELINE_WEIGHTS, policy: DownloadPolicy = DownloadPolicy()
) -> Path:
    """Put the verified file `name` in `dest_dir` and return its path: a verified file there is
    kept; one in torch's hub cache is copied (no network needed); otherwise it is downloaded
    (resumable via `<file>.part`, renamed into place only once what is published of its size
    and sha256 matches). A wrong file already in `dest_dir` is replaced."""
    spec = published(name)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.file
    if target.is_file():
        if verify(target, name) is None:
            return target
        target.unlink()
    cached = search_paths(name)[0]
    if cached.is_file() and cached.resolve() != target.resolve() and verify(cached, name) is None:
        _copy(cached, target)
        return _remember_published(target, spec)
    if not spec.direct:
        raise FetchError(f"{spec.file} has no direct download; {placement_help(name)}")
    part = target.with_name(spec.file + ".part")
    needed = (spec.size or 0) - (part.stat().st_size if part.exists() else 0)
    free = shutil.disk_usage(dest_dir).free
    if free < needed:
        raise FetchError(
            f"{spec.file} needs {needed / 1e6:,.0f} MB in {dest_dir}; {free / 1e6:,.0f} MB free"
        )
    with progress_bar() as progress:
        try:
            download(spec.url, target, Archive(spec.size, spec.sha256, split=""), policy, progress)
        except UnreachableError as exc:
            raise UnreachableError(f"{exc}. Offline: {placement_help(name)}") from None
    return _remember_published(target, spec)  # download() checked it


def needed_backbones(adversarial: AdversarialConfig | None, vgg_weights: Path | None) -> list[str]:
    """The backbones training with `adversarial` (an experiment's GAN stage, or None) loads
    from the table: VGG19 for the perceptual loss, unless `train.vgg_weights` names a file."""
    uses_vgg = adversarial is not None and adversarial.perceptual_weight > 0
    return ["vgg19"] if uses_vgg and vgg_weights is None else []


def fetch_needed(
    adversarial: AdversarialConfig | None,
    vgg_weights: Path | None,
    dest_dir: Path = PIPELINE_WEIGHTS,
) -> list[Path]:
    """`fetch` every backbone the stage needs into `dest_dir` (created even when none is
    needed: it is the pipeline's output); offline and without a copy, the one-line error."""
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    return [fetch(name, dest_dir) for name in needed_backbones(adversarial, vgg_weights)]
