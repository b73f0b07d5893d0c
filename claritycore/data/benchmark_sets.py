"""Benchmark sets (Set5, Set14, B100, Urban100, Manga109) in the layouts people download them in.

A set is a folder of HR images, `data/benchmarks/<name>/` in the pipeline. Inside it, the first
of these that holds images is used:

- `HR/` (EDSR's benchmark.tar, many mirrors), `GTmod12/` (BasicSR's prepared sets: HR cropped
  to a multiple of 12), `GT/`, `original/` (some Set14 copies);
- `image_SRF_<scale>/` (SelfExSR's Set5/Set14/BSD100/Urban100): its `*_HR.*` files;
- the folder itself (flat), keeping only `*_HR.*` files when there are any.

A set that comes with its own LR in a paired layout (`HR/` + `LR/`, `GT/` + `LQ/`, RealSR's
`*_HR` + `*_LR<scale>`: `data.pairs`) is scored on that LR (`set_images`). The bicubic LR that
other sets come with (`LR_bicubic/`, `LRbicx4/`, SelfExSR's `*_LR.*`) is never read: that LR is
made from the HR by MATLAB bicubic, as the published tables make it.
"""

from __future__ import annotations

from pathlib import Path

from claritycore.data.images import IMAGE_SUFFIXES, list_images
from claritycore.data.pairs import ImagePair, image_pairs, paired_layout
from claritycore.errors import UserError

BENCHMARKS_DIR = Path("data/benchmarks")
HR_SUBFOLDERS = ("HR", "GTmod12", "GT", "original")
WHERE_TO_GET = (
    "the standard sets come with BasicSR's prepared datasets (docs/DatasetPreparation.md in "
    "XPixelGroup/BasicSR) and EDSR's benchmark.tar; any folder of HR images works"
)


class BenchmarkSetError(UserError, FileNotFoundError):
    """A benchmark set whose folder is missing or holds no HR images."""


def _hr_only(paths: list[Path]) -> list[Path]:
    hr = [p for p in paths if p.stem.endswith("_HR")]
    return hr or [p for p in paths if not p.stem.endswith(("_LR", "_bicubic"))]


def hr_images(folder: Path, scale: int) -> list[Path]:
    """The HR image files of the set in `folder` (any layout above), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkSetError(
            f"benchmark folder {folder} does not exist: put the set's HR images there "
            f"(flat, or in {'/, '.join(HR_SUBFOLDERS)}/ or image_SRF_<scale>/); {WHERE_TO_GET}"
        )
    candidates = [folder / sub for sub in HR_SUBFOLDERS] + [folder / f"image_SRF_{scale}"]
    for candidate in candidates:
        if candidate.is_dir():
            images = _hr_only(list_images(candidate))
            if images:
                return images
    images = _hr_only(list_images(folder))
    if not images:
        raise BenchmarkSetError(
            f"no HR images ({', '.join(IMAGE_SUFFIXES)}) in {folder} or its "
            f"{'/, '.join(HR_SUBFOLDERS)}/ or image_SRF_{scale}/ subfolders; {WHERE_TO_GET}"
        )
    return images


def set_images(folder: Path, scale: int) -> list[ImagePair]:
    """The set's images with the LR each is scored on, sorted by name: the given LR of a paired
    layout (checked, `data.pairs`), else the HR images (`hr_images`) with `lr=None` (made by
    MATLAB bicubic)."""
    folder = Path(folder)
    if folder.is_dir() and paired_layout(folder) is not None:
        return image_pairs(folder, scale)
    return [ImagePair(path) for path in hr_images(folder, scale)]


def set_name(folder: Path) -> str:
    """A set's name from its folder: `Set5/HR` and `Set5/GTmod12` are both "Set5"."""
    folder = Path(folder).resolve()
    inner = folder.name in HR_SUBFOLDERS or folder.name.startswith("image_SRF_")
    return folder.parent.name if inner else folder.name
