"""Benchmark sets: the layouts people download, and the published bicubic tables reproduced."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from claritycore.cli.evaluate import parse_sets
from claritycore.data.benchmark_sets import BenchmarkSetError, hr_images, set_images, set_name
from claritycore.errors import UserError
from claritycore.scoring import load_reference

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["a.png", "b.png"], ["a.png", "b.png"]),
        (["HR/a.png", "LR_bicubic/X4/ax4.png"], ["HR/a.png"]),
        (["GTmod12/a.png", "LRbicx4/a.png"], ["GTmod12/a.png"]),
        (["GT/a.png"], ["GT/a.png"]),
        (["original/a.png"], ["original/a.png"]),
        (
            ["image_SRF_4/img_001_SRF_4_HR.png", "image_SRF_4/img_001_SRF_4_LR.png",
             "image_SRF_2/img_001_SRF_2_HR.png"],
            ["image_SRF_4/img_001_SRF_4_HR.png"],
        ),
        (["x_HR.png", "x_LR.png", "x_bicubic.png"], ["x_HR.png"]),
    ],
)  # fmt: skip
def test_layouts(tmp_path, files, expected) -> None:
    for name in files:
        _png(tmp_path / "Set5" / name)
    found = hr_images(tmp_path / "Set5", 4)
    assert [p.relative_to(tmp_path / "Set5").as_posix() for p in found] == expected


def test_missing_and_empty_sets_say_where_and_how(tmp_path) -> None:
    with pytest.raises(BenchmarkSetError, match="Urban100 does not exist: put the set's HR"):
        hr_images(tmp_path / "Urban100", 4)
    (tmp_path / "B100" / "HR").mkdir(parents=True)
    with pytest.raises(BenchmarkSetError, match=re.escape("BasicSR's prepared datasets")):
        hr_images(tmp_path / "B100", 4)


def test_set_names_and_cli_specs(tmp_path) -> None:
    assert set_name(tmp_path / "Set5" / "GTmod12") == "Set5"
    assert set_name(tmp_path / "Set14") == "Set14"
    sets = parse_sets(["A=x/y", str(tmp_path / "Set5" / "HR"), "data/benchmarks/Set14"])
    assert sets == {
        "A": Path("x/y"),
        "Set5": tmp_path / "Set5" / "HR",
        "Set14": Path("data/benchmarks/Set14"),
    }
    with pytest.raises(UserError, match="two sets are named 'Set14'"):
        parse_sets(["a/Set14", "b/Set14"])


def _published_bicubic() -> dict[str, dict[int, float]]:
    """The PSNR column of the README table in ../shared/benchmarks."""
    table = {}
    for line in (SHARED / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("Set5", "Set14"):
            psnrs = (float(cell.split("/")[0]) for cell in cells[1:])
            table[cells[0]] = dict(zip((2, 3, 4, 8), psnrs, strict=True))
    return table


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks is not here (a user's clone)")
@pytest.mark.parametrize("name", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_published_bicubic_psnr_is_reproduced(name: str, scale: int) -> None:
    published = _published_bicubic()[name][scale]
    refs = [load_reference(image, scale) for image in set_images(SHARED / name, scale)]
    assert len(refs) == {"Set5": 5, "Set14": 14}[name]
    measured = float(np.mean([ref.bicubic_scores[0] for ref in refs]))
    assert measured == pytest.approx(published, abs=0.02)
