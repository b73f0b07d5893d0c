"""LPIPS-Alex v0.1 equals the `lpips` package's (tests/fixtures/lpips_reference.json, made by
tests/fixtures/make_lpips_fixture.py with seeded AlexNet weights), loads torchvision's AlexNet
key layout, and refuses other files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from claritycore.lpips import LPIPS, MIN_SIDE, load_lpips, lpips_distance
from tests.fixtures.lpips_inputs import pairs, seeded_alexnet_features

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "lpips_reference.json").read_text())


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> Path:
    """The seeded weights in torchvision's layout, classifier included (as its file has)."""
    state = seeded_alexnet_features(FIXTURE["seed"])
    state["classifier.1.weight"] = torch.zeros(4096, 9216)
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def metric(alexnet_file) -> LPIPS:
    return load_lpips(alexnet_file)


def test_seeded_weights_are_the_fixture_ones() -> None:
    """Guards the comparison below: the same numpy draws on both sides."""
    state = seeded_alexnet_features(FIXTURE["seed"])
    for key, total in FIXTURE["weight_abs_sums"].items():
        assert float(state[key].double().abs().sum()) == pytest.approx(total, rel=1e-12), key


@pytest.mark.parametrize("name", list(FIXTURE["pairs"]))
def test_matches_lpips_package(metric: LPIPS, name: str) -> None:
    a, b = pairs()[name]
    expected = FIXTURE["pairs"][name]
    got = lpips_distance(metric, a, b)
    # Measured within 6e-9; values are near 0.005 with seeded weights, so 1e-6, not 1e-5.
    assert got == pytest.approx(expected["lpips"], abs=1e-6, rel=0)
    assert (got == 0) == (expected["lpips"] == 0)


def test_each_layer_matches(alexnet_file) -> None:
    """One linear layer at a time (the others zeroed) gives that layer's term."""
    a, b = pairs()["cat_shift"]
    expected = FIXTURE["pairs"]["cat_shift"]["layers"]
    for keep in range(5):
        metric = load_lpips(alexnet_file)
        for i, lin in enumerate(metric.lins):
            if i != keep:
                lin.weight.zero_()
        assert lpips_distance(metric, a, b) == pytest.approx(expected[keep], abs=1e-7, rel=0)


def test_tf32_is_off_during_lpips_and_restored(metric: LPIPS, monkeypatch) -> None:
    seen = []
    forward = LPIPS.forward

    def spy(self, a, b):
        seen.append(torch.backends.cudnn.allow_tf32)
        return forward(self, a, b)

    monkeypatch.setattr(LPIPS, "forward", spy)
    before = torch.backends.cudnn.allow_tf32
    a, b = pairs()["cat_ripple"]
    lpips_distance(metric, a, b)
    assert seen == [False] and torch.backends.cudnn.allow_tf32 == before


def test_crop_and_small_images(metric: LPIPS) -> None:
    a, b = pairs()["cat_ripple"]
    c = 4
    assert lpips_distance(metric, a, b, crop_border=c) == pytest.approx(
        lpips_distance(metric, a[c:-c, c:-c], b[c:-c, c:-c]), abs=1e-7
    )
    small = a[: MIN_SIDE + 7, : MIN_SIDE + 7]
    assert math.isfinite(lpips_distance(metric, small, small[::-1].copy(), crop_border=3))
    assert math.isnan(lpips_distance(metric, small, small, crop_border=4))


def test_wrong_backbone_file_is_refused(tmp_path) -> None:
    state = seeded_alexnet_features()
    state["features.0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not torchvision's AlexNet"):
        load_lpips(tmp_path / "other.pth")
    floats = np.zeros((40, 40, 3), np.float32)
    with pytest.raises(ValueError, match="uint8"):
        lpips_distance(LPIPS(), floats, floats)
