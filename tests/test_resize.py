"""MATLAB-compatible bicubic imresize and modcrop."""

from pathlib import Path

import numpy as np
import pytest
import torch

from claritycore.resize import imresize, lr_hr_pair, modcrop

FIXTURE = Path(__file__).parent / "fixtures" / "basicsr_reference.npz"

# Halving: the Keys kernel (a = -0.5) widened to 8 taps, evaluated by hand at distances
# 1.75, 1.25, 0.75, 0.25 (times 1/2): cubic = -3/128, -9/128, 29/128, 111/128. The
# taps sum to 2, so each is halved to normalise.
HALF_TAPS = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256


def _mirror(i: int, n: int) -> int:
    """MATLAB's symmetric padding for a 0-based index."""
    i = i % (2 * n)
    return i if i < n else 2 * n - 1 - i


def test_halving_a_row_matches_hand_computed_weights():
    row = np.array([3.0, 10.0, 50.0, 20.0, 90.0, 0.0, 40.0, 200.0])
    # Output k (0-based) is centred at input 2k + 0.5, so it reads inputs 2k-3 .. 2k+4.
    expected = [
        sum(t * row[_mirror(2 * k - 3 + j, 8)] for j, t in enumerate(HALF_TAPS)) for k in range(4)
    ]
    out = imresize(row[None, :], 0.5)
    assert out.shape == (1, 4)
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("scale", "size"),
    [(0.5, (4, 5)), (1 / 3, (3, 3)), (0.25, (2, 3)), (2, (14, 18)), (4, (28, 36))],
)
def test_output_size_is_ceil_of_input_times_scale(scale, size):
    img = np.random.default_rng(0).random((7, 9, 3))
    assert imresize(img, scale).shape == (*size, 3)
    assert imresize(torch.from_numpy(img).permute(2, 0, 1), scale).shape == (3, *size)


def test_constant_image_stays_constant():
    img = np.full((13, 17, 3), 77, np.uint8)
    for scale in (1 / 3, 1 / 4, 2, 4):
        out = imresize(img, scale)
        assert out.dtype == np.uint8
        assert (out == 77).all()


def test_uint8_rounds_half_away_from_zero_and_clips():
    # One row, so the vertical pass is exact. Doubling weighs neighbours by
    # (-3, 29, 111, -9)/128: a lone 64 gives 14.5 and 55.5 (half-even would give 14).
    row = np.zeros((1, 12), np.uint8)
    row[0, 5] = 64
    exact = imresize(row.astype(np.float64), 2)
    assert 14.5 in exact and 55.5 in exact
    out = imresize(row, 2)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.floor(np.clip(exact, 0, 255) + 0.5))
    assert 15 in out
    # A 0 -> 255 edge overshoots both ways; uint8 clips.
    edge = np.repeat(np.array([[0] * 6 + [255] * 6], np.uint8), 3, axis=0)
    overshoot = imresize(edge.astype(np.float64), 2)
    assert overshoot.min() < 0 and overshoot.max() > 255
    clipped = imresize(edge, 2)
    assert clipped.min() == 0 and clipped.max() == 255


def test_float_output_is_not_clipped_and_keeps_dtype():
    edge = np.repeat(np.array([[0.0] * 6 + [1.0] * 6], np.float32), 4, axis=0)
    out = imresize(edge, 4)
    assert out.dtype == np.float32
    assert out.min() < 0 and out.max() > 1


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3])
def test_torch_and_numpy_agree(scale):
    img = np.random.default_rng(1).random((23, 31, 3)).astype(np.float32)
    ours = imresize(img, scale)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    single = imresize(chw, scale)
    batch = imresize(torch.stack([chw, chw.flip(0)]), scale)
    np.testing.assert_allclose(single.permute(1, 2, 0).numpy(), ours, atol=1e-6)
    np.testing.assert_allclose(batch[0].numpy(), single.numpy(), atol=1e-6)
    np.testing.assert_allclose(batch[1].numpy(), single.flip(0).numpy(), atol=1e-6)
    u8 = (img * 255).round().astype(np.uint8)
    u8_torch = imresize(torch.from_numpy(u8).permute(2, 0, 1), scale)
    np.testing.assert_array_equal(u8_torch.permute(1, 2, 0).numpy(), imresize(u8, scale))


def test_grey_array_keeps_two_dimensions():
    img = np.random.default_rng(2).random((10, 12))
    out = imresize(img, 0.5)
    assert out.shape == (5, 6)
    np.testing.assert_allclose(out, imresize(img[..., None], 0.5)[..., 0], atol=1e-12)


@pytest.mark.parametrize("scale", [0, -2, float("nan"), float("inf")])
def test_invalid_scale_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), scale)


def test_modcrop():
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    assert modcrop(img, 4).shape == (4, 8, 3)
    np.testing.assert_array_equal(modcrop(img, 4), img[:4, :8])
    assert modcrop(img[..., 0], 3).shape == (6, 9)
    assert modcrop(torch.zeros(2, 3, 7, 10), 4).shape == (2, 3, 4, 8)
    with pytest.raises(ValueError, match="scale"):
        modcrop(img, 0)


@pytest.mark.parametrize(
    ("key", "scale", "crop"),
    [
        ("d2", 1 / 2, None),
        ("d3", 1 / 3, None),
        ("d4", 1 / 4, None),
        ("d8", 1 / 8, None),
        ("u2", 2, None),
        ("u4", 4, (16, 20)),
    ],
)
def test_matches_basicsr(key, scale, crop):
    ref = np.load(FIXTURE)
    hr = ref["img"].astype(np.float32) / 255.0
    if crop:
        hr = hr[: crop[0], : crop[1]]
    expected = ref[f"resize_{key}"]
    out = imresize(hr, scale)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    chw = imresize(torch.from_numpy(hr).permute(2, 0, 1), scale)
    np.testing.assert_allclose(chw.permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-4)


def test_lr_hr_pair_mod_crops_then_downscales():
    image = np.random.default_rng(3).integers(0, 256, (35, 22, 3), dtype=np.uint8)
    lr, hr = lr_hr_pair(image, 4)
    assert hr.shape == (32, 20, 3) and np.array_equal(hr, image[:32, :20])
    assert np.array_equal(lr, imresize(image[:32, :20], 1 / 4))
    with pytest.raises(ValueError, match="smaller than the scale 4"):
        lr_hr_pair(image[:3], 4)
