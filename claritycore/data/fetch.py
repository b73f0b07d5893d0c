"""HR images into `<dest>/{train,valid}/*.png`: verified DIV2K, Flickr2K and OST archives, the
bundled sample, a folder; more training images mixed in (`data.mix`).

The network and zip handling lives in `claritycore.data.download`; this module knows the
sources and their layouts.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from claritycore.config import DataOptions
from claritycore.data.download import (
    Archive,
    DownloadPolicy,
    FetchError,
    UnreachableError,
    console,
    download,
    extract_images,
    progress_bar,
    verify,
)
from claritycore.data.images import (
    ImageReadError,
    image_size,
    is_plain_png,
    list_images,
    read_rgb,
    save_png,
    staged_dir,
)
from claritycore.data.pairs import ImagePair, image_pairs, paired_layout
from claritycore.errors import ConfigError
from claritycore.presets import largest_patch
from claritycore.schema import SCALES

SPLITS = ("train", "valid")
DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# The repository's bundled images (data/sample/{train,valid}); stage code runs from a checkout.
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"


DIV2K_FILES: dict[str, Archive] = {
    "DIV2K_train_HR.zip": Archive(
        3_530_603_713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "train"
    ),
    "DIV2K_valid_HR.zip": Archive(
        448_993_893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "valid"
    ),
}
# Flickr2K (EDSR's authors) and OST (SFTGAN's OutdoorSceneTrain_v2; the mirror mmagic's and
# Real-ESRGAN's docs link): no size or sha256 is published with them and none could be checked
# here (no network), so their size is None and their sha256 "": the download is checked against
# the server's length, and its sha256 printed to pin here (docs/data.md). Only the HR folder of
# each is unpacked.
FLICKR2K_FILES = {
    "Flickr2K.tar": Archive(
        None, "", "train", url="https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
        members="Flickr2K_HR",
    ),
}  # fmt: skip
OST_FILES = {
    "OST_dataset.zip": Archive(
        None, "", "train",
        url="https://openmmlab.oss-cn-hangzhou.aliyuncs.com/datasets/OST_dataset.zip",
        members="OutdoorSceneTrain_v2",
    ),
}  # fmt: skip
# The archives of each downloaded source; OST has no validation split of its own: DIV2K's.
SOURCE_FILES: dict[str, dict[str, Archive]] = {
    "div2k": DIV2K_FILES,
    "df2k": {**DIV2K_FILES, **FLICKR2K_FILES},
    "ost": {**OST_FILES, "DIV2K_valid_HR.zip": DIV2K_FILES["DIV2K_valid_HR.zip"]},
}


def _offline_help(url: str, names: list[str], downloads: Path) -> str:
    """The ways on without a network, naming the files that are missing."""
    return (
        f"Offline alternatives: `data.source: sample` (the bundled images), "
        f"`data.source: folder` with `data.root` (your own HR images in train/ and valid/), "
        f"a mirror in `data.url` (now {url}), or place {', '.join(names)} in {downloads} by hand."
    )


def fetch_archives(
    dest: Path,
    base_url: str,
    files: Mapping[str, Archive],
    *,
    downloads: Path,
    policy: DownloadPolicy = DownloadPolicy(),
) -> Path:
    """Download (or reuse) the verified `files` (from their own URL, or `base_url` + name) into
    `downloads`, then unpack each split's images into `dest/<split>/`. Returns `dest`."""
    dest, downloads = Path(dest), Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    by_split: dict[str, list[tuple[Path, str | None]]] = defaultdict(list)
    with progress_bar() as progress:
        for name, spec in files.items():
            target = downloads / name
            if target.exists():
                problem = verify(target, spec, progress)
                if problem is None:
                    by_split[spec.split].append((target, spec.members))
                    continue
                target.unlink()
                console.print(f"[yellow]{target} is not the published file ({problem}); deleted")
            part = target.with_name(name + ".part")
            needed = (spec.size or 0) - (part.stat().st_size if part.exists() else 0)
            free = shutil.disk_usage(downloads).free
            if free < needed:
                raise FetchError(
                    f"{name} needs {needed / 1e9:.1f} GB in {downloads}; {free / 1e9:.1f} free"
                )
            try:
                download(spec.url or base + name, target, spec, policy, progress)
            except UnreachableError as exc:
                help_text = _offline_help(base, [name], downloads)
                raise UnreachableError(f"{exc}. {help_text}") from None
            by_split[spec.split].append((target, spec.members))
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


def _convert_one(path: Path, out: Path) -> str | None:
    """Copy or convert one image to an 8-bit RGB PNG; returns the conversion note, if any."""
    if is_plain_png(path):
        shutil.copyfile(path, out)
        return None
    pixels, note = read_rgb(path)
    save_png(pixels, out)
    return note or f"{path.name}: {path.suffix.lstrip('.').upper()} re-encoded as PNG"


def import_folder(root: Path, dest: Path, min_size: int, workers: int = 4) -> Path:
    """A user's `root/{train,valid}` as 8-bit RGB PNGs in `dest`; training images with a side
    below `min_size` are skipped (counted in the summary)."""
    _check_splits(root)
    for split in SPLITS:
        images = list_images(root / split)
        if not images:
            raise ConfigError(f"{root / split} holds no images (png, jpg, tif...)")
        stems: dict[str, Path] = {}
        for path in images:
            if path.stem in stems:
                raise ConfigError(
                    f"{stems[path.stem]} and {path} would both become {path.stem}.png"
                )
            stems[path.stem] = path
        unreadable: list[Path] = []
        small: list[Path] = []
        keep: list[Path] = []
        for path in images:
            try:
                h, w = image_size(path)
            except ImageReadError:
                unreadable.append(path)
                continue
            (small if split == "train" and min(h, w) < min_size else keep).append(path)
        if unreadable:
            raise ImageReadError(
                f"unreadable images: {', '.join(map(str, unreadable))}: re-save them with an "
                "image editor or remove them from the folder"
            )
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


def _check_splits(root: Path) -> None:
    for split in SPLITS:
        if not (root / split).is_dir():
            raise ConfigError(
                f"data.root {root} has no {split}/ folder; put HR images in {root}/train and "
                f"{root}/valid, or use data.source: sample"
            )


def import_pairs(
    root: Path, dest: Path, scales: tuple[int, ...], min_size: int, workers: int = 4
) -> Path:
    """A user's LR/HR pairs (`root/{train,valid}` in any layout of `data.pairs`), checked at
    every scale before anything is written, as `dest/<split>/<stem>_HR.png` beside
    `<stem>_LR<s>.png` (RealSR's layout, which holds one LR per scale). Training pairs whose
    HR has a side below `min_size` are skipped (counted in the summary)."""
    _check_splits(root)
    chosen: dict[str, dict[int, list[ImagePair]]] = {}
    for split in SPLITS:
        if paired_layout(root / split) is None:
            raise ConfigError(
                f"data.source: paired, but {root / split} holds no LR/HR pairs; use HR/ + LR/ "
                "(same names), GT/ + LQ/, or <name>_HR.png beside <name>_LR<scale>.png, or "
                "data.source: folder for HR images alone"
            )
        chosen[split] = {scale: image_pairs(root / split, scale) for scale in scales}
    for split, by_scale in chosen.items():
        hr_files = {pair.hr for pairs in by_scale.values() for pair in pairs}
        small = {h for h in hr_files if split == "train" and min(image_size(h)) < min_size}
        jobs = [(h, f"{h.stem.removesuffix('_HR')}_HR.png") for h in sorted(hr_files - small)]
        jobs += [
            # paired_layout is set: every pair has its LR file.
            (cast(Path, pair.lr), f"{pair.hr.stem.removesuffix('_HR')}_LR{scale}.png")
            for scale, pairs in by_scale.items()
            for pair in pairs
            if pair.hr not in small
        ]
        with staged_dir(dest / split) as tmp, ThreadPoolExecutor(workers) as pool:
            notes = list(pool.map(lambda job: _convert_one(job[0], tmp / job[1]), jobs))
        converted = [n for n in notes if n]
        summary = f"{split}: {len(hr_files) - len(small)} pairs in {dest / split}"
        if converted:
            summary += f"; {len(converted)} files converted to 8-bit RGB PNG"
        if small:
            summary += f"; {len(small)} skipped as smaller than {min_size} px"
        console.print(summary)
    return dest


def fetch(
    data: DataOptions,
    dest: Path,
    *,
    downloads: Path,
    workers: int = 4,
    policy: DownloadPolicy = DownloadPolicy(),
) -> Path:
    """Put `data.source`'s HR images in `dest/train` and `dest/valid` (PNG, 8-bit RGB), with
    their LR for a `paired` source, and `data.mix`'s images in `dest/train` (`mix_in`).

    A `folder` or `paired` source drops training images smaller than the largest patch of any
    preset at `data.scales` (or any scale when it is empty: no such preset could crop them).
    """
    dest = Path(dest)
    min_size = largest_patch(data.scales or SCALES)
    if data.source in SOURCE_FILES:
        files = SOURCE_FILES[data.source]
        fetch_archives(dest, data.url, files, downloads=downloads, policy=policy)
    elif data.source == "sample":
        _copy_sample(dest)
    elif data.source == "paired":
        import_pairs(cast(Path, data.root), dest, data.scales, min_size, workers)
    else:  # folder; DataOptions requires data.root for it
        import_folder(cast(Path, data.root), dest, min_size, workers)
    for entry in data.mix:
        mix_in(entry, dest / "train", data.url, downloads=downloads, policy=policy)
    return dest


def mix_in(
    entry: str, train: Path, base_url: str, *, downloads: Path, policy: DownloadPolicy
) -> None:
    """Add the training images of `entry` (a downloaded source's name, or a folder of HR images)
    to `train`, each as `<entry name>_<stem>.png`: a source's training archives are fetched and
    unpacked beside `train` first; a folder's images are copied (or converted to PNG)."""
    if entry in SOURCE_FILES:
        files = {n: a for n, a in SOURCE_FILES[entry].items() if a.split == "train"}
        staging = train.parent / f".mix-{entry}"
        fetch_archives(staging, base_url, files, downloads=downloads, policy=policy)
        images, prefix = list_images(staging / "train"), entry
    elif Path(entry).is_dir():
        images, prefix = list_images(Path(entry)), Path(entry).name
    else:
        raise ConfigError(
            f"data.mix entry {entry!r} is neither a source ({', '.join(SOURCE_FILES)}) nor a "
            "folder of HR images; fix the name or the path"
        )
    for path in images:
        _convert_one(path, train / f"{prefix}_{path.stem}.png")
    if entry in SOURCE_FILES:
        shutil.rmtree(train.parent / f".mix-{entry}")
    console.print(f"train: {len(images)} images of {entry} mixed in as {prefix}_*.png")
