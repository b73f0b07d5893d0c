"""LR/HR pairs in the folder layouts people keep them in: this module alone decides a folder's
layout and pairs its files.

- `HR/` + `LR/`, or BasicSR's `GT/` + `LQ/`: the same stems in both (an LR stem may carry the
  scale, `0001x4`, as DIV2K's LR files do); the LR folder may hold one subfolder per scale
  (`LR/X4/`).
- One folder with suffixed names (RealSR): `<stem>_HR.png` beside `<stem>_LR4.png` (one LR per
  scale: `_LR2`, `_LR3`, ...).
- Anything else is HR images only: the LR is made from them (MATLAB bicubic or a degradation).

SelfExSR's unnumbered `*_LR.*` files and EDSR's `LR_bicubic/` are bicubic LR of the HR: they are
not pairs, the LR is made from the HR as the published tables make it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from claritycore.data.images import image_size, list_images
from claritycore.errors import UserError
from claritycore.schema import SCALES

SUBFOLDER_LAYOUTS = (("HR", "LR"), ("GT", "LQ"))
_SUFFIXED_HR = re.compile(r"^(?P<stem>.+)_HR$")
_SUFFIXED_LR = re.compile(r"^(?P<stem>.+)_LR(?P<scale>\d+)$")
# Problems listed by name in the one error message; the rest are counted.
_LISTED = 5


class PairingError(UserError, ValueError):
    """A paired folder with an LR missing, an HR missing, or an LR of the wrong size."""


@dataclass(frozen=True)
class ImagePair:
    """An HR image file and the LR file paired with it; `lr` None: the LR is made from the HR."""

    hr: Path
    lr: Path | None = None

    @property
    def name(self) -> str:
        return self.hr.name


def _subfolders(folder: Path) -> tuple[Path, Path] | None:
    for hr, lr in SUBFOLDER_LAYOUTS:
        if (folder / hr).is_dir() and (folder / lr).is_dir():
            return folder / hr, folder / lr
    return None


def _is_suffixed(folder: Path) -> bool:
    stems = [p.stem for p in list_images(folder)]
    return any(map(_SUFFIXED_HR.match, stems)) and any(map(_SUFFIXED_LR.match, stems))


def paired_layout(folder: Path) -> str | None:
    """The paired layout of `folder` in words (`HR/ + LR/`, `GT/ + LQ/`, `*_HR + *_LR<s>`), or
    None when it holds HR images only."""
    folder = Path(folder)
    sub = _subfolders(folder)
    if sub is not None:
        return f"{sub[0].name}/ + {sub[1].name}/"
    return "*_HR + *_LR<s>" if folder.is_dir() and _is_suffixed(folder) else None


def _subfolder_pairs(hr_dir: Path, lr_dir: Path, scale: int) -> tuple[list[ImagePair], list[str]]:
    """Pairs by stem; the problems (an HR without LR, an LR without HR) by name."""
    per_scale = lr_dir / f"X{scale}"
    lr_dir = per_scale if per_scale.is_dir() else lr_dir
    lr_by_stem: dict[str, Path] = {}
    for path in list_images(lr_dir):
        stem = path.stem.removesuffix(f"x{scale}")
        lr_by_stem.setdefault(stem, path)
    pairs, problems = [], []
    for hr in list_images(hr_dir):
        lr = lr_by_stem.pop(hr.stem, None)
        if lr is None:
            problems.append(f"{hr.name} has no LR in {lr_dir}")
        else:
            pairs.append(ImagePair(hr, lr))
    problems += [f"{lr.name} has no HR in {hr_dir}" for lr in lr_by_stem.values()]
    return pairs, problems


def _suffixed_pairs(folder: Path, scale: int) -> tuple[list[ImagePair], list[str]]:
    hr_by_stem, lr_by_stem = {}, {}
    for path in list_images(folder):
        if m := _SUFFIXED_HR.match(path.stem):
            hr_by_stem[m["stem"]] = path
        elif (m := _SUFFIXED_LR.match(path.stem)) and int(m["scale"]) == scale:
            lr_by_stem[m["stem"]] = path
    pairs, problems = [], []
    for stem, hr in hr_by_stem.items():
        if stem in lr_by_stem:
            pairs.append(ImagePair(hr, lr_by_stem[stem]))
        else:
            problems.append(f"{hr.name} has no {stem}_LR{scale}")
    problems += [f"{lr.name} has no HR" for s, lr in lr_by_stem.items() if s not in hr_by_stem]
    return pairs, problems


def _size_problem(pair: ImagePair, scale: int) -> tuple[str, int | None] | None:
    """Why the LR is not the HR (mod-cropped) divided by `scale`, and the supported scale its
    size fits, if any."""
    lr = cast(Path, pair.lr)  # a pair read from a paired layout has its LR file
    (hr_h, hr_w), (lr_h, lr_w) = image_size(pair.hr), image_size(lr)
    if (lr_h, lr_w) == (hr_h // scale, hr_w // scale):
        return None
    fits = next((s for s in SCALES if (hr_h // s, hr_w // s) == (lr_h, lr_w)), None)
    why = (
        f"{pair.name}: LR {lr_w}×{lr_h} is not HR {hr_w}×{hr_h} / {scale} "
        f"(expected {hr_w // scale}×{hr_h // scale})"
    )
    return why, fits


def hr_images(folder: Path) -> list[Path]:
    """The HR image files of `folder`, sorted by name: its HR/ (GT/) files or `*_HR` files in a
    paired layout, else every image in it."""
    folder = Path(folder)
    sub = _subfolders(folder)
    if sub is not None:
        return list_images(sub[0])
    images = list_images(folder)
    if _is_suffixed(folder):
        return sorted((p for p in images if _SUFFIXED_HR.match(p.stem)), key=lambda p: p.name)
    return images


def image_pairs(folder: Path, scale: int) -> list[ImagePair]:
    """Every image of `folder` with its LR at `scale`, sorted by HR name: the given LR of a
    paired layout (each checked: LR × scale = HR mod-cropped to the scale), or `lr=None` for a
    folder of HR images. A missing partner or a wrong size fails, all listed in one
    PairingError, before anything reads pixels."""
    folder = Path(folder)
    sub = _subfolders(folder)
    if sub is None and not _is_suffixed(folder):
        return [ImagePair(path) for path in list_images(folder)]
    layout = paired_layout(folder)
    pairs, problems = _subfolder_pairs(*sub, scale) if sub else _suffixed_pairs(folder, scale)
    hints = ["give every HR image its LR and every LR its HR"] if problems else []
    fits: set[int | None] = set()
    for pair in pairs:
        problem = _size_problem(pair, scale)
        if problem is not None:
            problems.append(problem[0])
            fits.add(problem[1])
    if len(fits) == 1 and None not in fits:
        hints.append(f"the LR sizes fit ×{fits.pop()}: use that scale (data.scales, --scale)")
    elif fits:
        hints.append(f"each LR must be its HR, mod-cropped to {scale}, divided by {scale}")
    if not pairs and not problems:
        problems.append(f"no ×{scale} pairs")
    if problems:
        listed = "; ".join(problems[:_LISTED])
        more = f" (and {len(problems) - _LISTED} more)" if len(problems) > _LISTED else ""
        hint = "; ".join(hints) or f"add LR files for ×{scale}"
        raise PairingError(
            f"{folder} ({layout}): {len(problems)} problems at ×{scale}: {listed}{more}; {hint}"
        )
    return sorted(pairs, key=lambda p: p.name)
