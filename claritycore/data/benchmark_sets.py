"""Benchmark sets (Set5, Set14, B100, Urban100, Manga109) in the layouts people download them in.

A set is a folder of HR images, `data/benchmarks/<name>/` in the pipeline. Inside it, the first
of these that holds images is used:

- `HR/` (EDSR's benchmark.tar, many mirrors), `GTmod12/` (BasicSR's prepared sets: HR cropped
  to a multiple of 12), `GT/`, `original/` (some Set14 copies);
- `image_SRF_<scale>/` (SelfExSR's Set5/Set14/BSD100/Urban100): its `*_HR.*` files;
- the folder itself (flat), keeping only `*_HR.*` files when there are any.

LR images that come with a set (`LR_bicubic/`, `LRbicx4/`, `*_LR.*`) are never read: the LR is
always made from the HR by MATLAB bicubic, as the published tables make it.
"""

from __future__ import annotations

from pathlib import Path

from claritycore.data.images import IMAGE_SUFFIXES, list_images
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


def set_name(folder: Path) -> str:
    """A set's name from its folder: `Set5/HR` and `Set5/GTmod12` are both "Set5"."""
    folder = Path(folder).resolve()
    inner = folder.name in HR_SUBFOLDERS or folder.name.startswith("image_SRF_")
    return folder.parent.name if inner else folder.name
