"""NIQE equals BasicSR 1.4.2's `calculate_niqe` as it computes on each CPU recorded
(tests/fixtures/niqe_reference.json, made by tests/fixtures/make_niqe_fixture.py) and is
undefined (NaN) where it should be."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from claritycore import niqe as niqe_module
from claritycore.niqe import BLOCK, luma, niqe
from claritycore.resize import imresize
from tests.fixtures.niqe_images import SHARED, pixels

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "niqe_reference.json").read_text())
ENTRIES = FIXTURE["images"]
# BasicSR's own value moves by up to 2.1e-3 between CPUs, and ours differs from it by up to
# 2.10e-3 (measured across both CPUs and torch 2.13.0/2.14.1; tests/fixtures/README.md).
TOLERANCE = 3e-3


def _id(entry: dict) -> str:
    return f"{entry['image']}:{entry['variant'] or 'as-is'}:crop{entry['crop_border']}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[_id(e) for e in ENTRIES])
def test_matches_basicsr(entry: dict) -> None:
    if entry["image"].startswith("Set") and not SHARED.is_dir():
        pytest.skip("../shared/benchmarks is not here (a user's clone)")
    got = niqe(pixels(entry), crop_border=entry["crop_border"])
    assert all(abs(got - ref) < TOLERANCE for ref in entry["niqe"].values()), (got, entry["niqe"])


def test_fixture_covers_every_path() -> None:
    """Colour, greyscale, flat areas (blocks left out) and Set5/Set14 are all in it, each with
    BasicSR's value on every CPU the fixture records, and more than one kind of CPU."""
    variants = {e["variant"] for e in ENTRIES}
    assert {None, "blocky", "flat", "green"} <= variants
    assert sum(e["image"].startswith("Set14/") for e in ENTRIES) == 14
    machines = FIXTURE["machines"]
    assert len(machines) >= 2 and all(e["niqe"].keys() == machines.keys() for e in ENTRIES)
    for machine in machines:  # no copy-pasted values
        assert len({e["niqe"][machine] for e in ENTRIES}) == len(ENTRIES), machine


def test_pristine_window_is_separable() -> None:
    """`_gaussian_filter` runs the 7×7 window as two 1-D passes: it must be their product."""
    _, _, taps = niqe_module._pristine()
    with np.load(Path(niqe_module.__file__).parent / "metrics_data" / "niqe_pris_params.npz") as p:
        np.testing.assert_allclose(np.outer(taps, taps), p["gaussian_window"], atol=1e-15)
        assert p["mu_pris_param"].shape == (1, 36) and p["cov_pris_param"].shape == (36, 36)


def test_half_size_is_matlab_bicubic() -> None:
    """The float32 halving NIQE uses is MATLAB's bicubic ×1/2 (claritycore.resize's)."""
    rng = np.random.default_rng(0)
    y = np.round(rng.uniform(0, 255, (96, 192))).astype(np.float32)
    expected = imresize(y.astype(np.float64) / 255, 0.5) * 255
    np.testing.assert_allclose(niqe_module._half_size(y), expected, atol=1e-4)


def test_luma_of_grey_and_colour() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    rgb[0, 1] = (255, 0, 0)
    # 16 + 219 for white, 16 + 65.481 for pure red (rounded), 16 for black.
    np.testing.assert_array_equal(luma(rgb), [[235, 81], [16, 16]])
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(luma(grey[..., None]), luma(grey))
    np.testing.assert_array_equal(luma(grey), grey)


def test_undefined_where_too_few_blocks() -> None:
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (BLOCK + 8, 2 * BLOCK + 8, 3), dtype=np.uint8)
    assert math.isfinite(niqe(texture, crop_border=4))  # exactly two blocks
    assert math.isnan(niqe(texture, crop_border=5))  # one block and a bit
    assert math.isnan(niqe(np.full((400, 400, 3), 77, np.uint8)))  # flat: no block is defined
    with pytest.raises(ValueError, match="uint8"):
        niqe(texture.astype(np.float32))
