"""Pretrained backbone weights (VGG19 for the perceptual loss, AlexNet for LPIPS) as verified
inputs, treated like DIV2K: a file is used only once its size and sha256 match the published
values; it is looked for in torch's hub cache, then in the pipeline's `data/weights/`.

The sizes and full sha256 digests are those recorded for these files by several independent
public projects (e.g. style-metrics and LPIPS provenance tables found by code search); the first
8 hex digits of each match the file name, which torchvision derives from the same sha256
(`torch.hub` checks only that prefix).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from claritycore.config import AdversarialConfig
from claritycore.data.download import (
    Archive,
    DownloadPolicy,
    FetchError,
    UnreachableError,
    download,
    progress_bar,
    sha256_file,
)
from claritycore.errors import ConfigError, UserError

# The pipeline's own copy (a DVC-tracked output), relative to the repository root.
PIPELINE_WEIGHTS = Path("data") / "weights"


@dataclass(frozen=True)
class Backbone:
    """A published weights file: its name, where it is served, its exact size and sha256."""

    file: str
    url: str
    size: int
    sha256: str
    description: str


BACKBONES: dict[str, Backbone] = {
    "vgg19": Backbone(
        "vgg19-dcbb9e9d.pth",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        574_673_361,
        "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        "torchvision's ImageNet VGG19, for the perceptual loss",
    ),
    "alexnet": Backbone(
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        244_408_911,
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        "torchvision's ImageNet AlexNet, for LPIPS",
    ),
}

# sha256 by (resolved path, size, mtime_ns): hashing 548 MB takes about 1 s, and one run asks
# more than once (locate, verify, record in model.pt). A rewritten file changes size or mtime.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def backbone(name: str) -> Backbone:
    """The table entry for `name`, or a ConfigError listing the known names."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


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


def search_paths(name: str) -> list[Path]:
    """Where `name`'s file is looked for, in order: torch's hub cache, then `data/weights/`."""
    file = backbone(name).file
    return [Path(torch.hub.get_dir()) / "checkpoints" / file, PIPELINE_WEIGHTS / file]


def locate(name: str) -> Path | None:
    """The first existing file of `search_paths(name)` (not yet verified), or None."""
    return next((path for path in search_paths(name) if path.is_file()), None)


def verify(path: Path, name: str) -> str | None:
    """None if `path` is the published file `name` (size, then sha256), else what is wrong."""
    spec = backbone(name)
    size = Path(path).stat().st_size
    if size != spec.size:
        return f"size is {size:,} bytes, expected {spec.size:,}"
    digest = file_sha256(path)
    if digest != spec.sha256:
        return f"sha256 is {digest}, expected {spec.sha256}"
    return None


def _placement_help(spec: Backbone, name: str) -> str:
    places = " or ".join(f"{p.parent.resolve()}/" for p in search_paths(name))
    return (
        f"get {spec.file} ({spec.description}, {spec.size:,} bytes, sha256 {spec.sha256}) "
        f"from {spec.url} and put it in {places}, or run `dvc pull` where the pipeline has it"
    )


def require(name: str, path: Path | None = None) -> Path:
    """The verified file `name`: at `path` if given, else the first verified one of
    `search_paths(name)`. Otherwise a one-line UserError saying what to put where."""
    spec = backbone(name)
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
    raise UserError(f"{found}; {_placement_help(spec, name)}")


def fetch(
    name: str, dest_dir: Path = PIPELINE_WEIGHTS, policy: DownloadPolicy = DownloadPolicy()
) -> Path:
    """Put the verified file `name` in `dest_dir` and return its path: a verified file there is
    kept; one in torch's hub cache is copied (no network needed); otherwise it is downloaded
    (resumable via `<file>.part`, renamed into place only once size and sha256 match)."""
    spec = backbone(name)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.file
    if target.is_file():
        problem = verify(target, name)
        if problem is None:
            return target
        target.unlink()
    part = target.with_name(spec.file + ".part")
    cached = search_paths(name)[0]
    if cached.is_file() and verify(cached, name) is None:
        shutil.copyfile(cached, part)
        part.replace(target)
        _remember(target, spec.sha256)
        return target
    needed = spec.size - (part.stat().st_size if part.exists() else 0)
    free = shutil.disk_usage(dest_dir).free
    if free < needed:
        raise FetchError(
            f"{spec.file} needs {needed / 1e6:,.0f} MB in {dest_dir}; {free / 1e6:,.0f} MB free"
        )
    with progress_bar() as progress:
        try:
            download(spec.url, target, Archive(spec.size, spec.sha256, split=""), policy, progress)
        except UnreachableError as exc:
            raise UnreachableError(f"{exc}. Offline: {_placement_help(spec, name)}") from None
    _remember(target, spec.sha256)  # download() checked it
    return target


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
