"""PSNR and SSIM: hand-computed values, conventions, and BasicSR's reference figures."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from claritycore.metrics import psnr, ssim

FIXTURE = Path(__file__).parent / "fixtures" / "basicsr_reference.npz"
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _image(h: int = 24, w: int = 20, seed: int = 0, high: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (h, w, 3), dtype=np.uint8)


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).double() / 255.0


@pytest.mark.parametrize("d", [1, 3, 10])
def test_psnr_of_constant_offset(d):
    a = _image()
    expected = 10 * math.log10(255**2 / d**2)
    assert psnr(a, a + d) == pytest.approx(expected, abs=1e-10)
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 moves by d * 219 / 255.
    expected_y = 10 * math.log10(255**2 / (d * 219 / 255) ** 2)
    assert psnr(a, a + d, y_channel=True) == pytest.approx(expected_y, abs=1e-10)


def test_identical_images():
    a = _image()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == 1.0
    assert ssim(a, a, y_channel=True) == 1.0
    t = _chw(a)
    assert psnr(t, t).item() == math.inf
    assert ssim(t, t).item() == 1.0


def test_ssim_of_constant_images():
    # No variance: only the luminance term (2 p q + C1) / (p² + q² + C1) remains.
    p, q = 100, 130
    a, b = np.full((16, 16, 3), p, np.uint8), np.full((16, 16, 3), q, np.uint8)
    assert ssim(a, b) == pytest.approx((2 * p * q + C1) / (p * p + q * q + C1), abs=1e-12)


def test_ssim_on_one_window_by_hand():
    # An 11x11 image has exactly one valid window: the Gaussian-weighted statistics.
    a, b = _image(11, 11, seed=1), _image(11, 11, seed=2)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for c in range(3):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        mx, my = (win * x).sum(), (win * y).sum()
        vx = (win * x * x).sum() - mx * mx
        vy = (win * y * y).sum() - my * my
        cov = (win * x * y).sum() - mx * my
        values.append(
            (2 * mx * my + C1) * (2 * cov + C2) / ((mx * mx + my * my + C1) * (vx + vy + C2))
        )
    assert ssim(a, b) == pytest.approx(np.mean(values), abs=1e-12)


def test_crop_border_ignores_the_edges():
    a = _image()
    b = a.copy()
    b[:3] = 255 - b[:3]
    b[:, -2:] = 0
    assert psnr(a, b) < 20
    assert psnr(a, b, crop_border=3) == math.inf
    assert ssim(a, b, crop_border=3) == 1.0
    assert psnr(a, b, crop_border=2) < math.inf


def test_y_channel_ignores_chroma_changes_that_keep_luma():
    a = _image().astype(np.float64) + 20
    b = a.copy()
    # Shift R and B so that 65.481 dR + 24.966 dB = 0: Y unchanged, RGB not.
    b[..., 0] += 24.966 / 10
    b[..., 2] -= 65.481 / 10
    assert psnr(a, b) < 60
    assert psnr(a, b, y_channel=True) > 250
    assert ssim(a, b, y_channel=True) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("crop", [0, 2])
def test_torch_batch_and_numpy_agree(y_channel, crop):
    a = [_image(seed=s) for s in range(3)]
    b = [np.clip(x.astype(int) + _image(seed=9) // 20 - 5, 0, 255).astype(np.uint8) for x in a]
    ta, tb = torch.stack([_chw(x) for x in a]), torch.stack([_chw(x) for x in b])
    kw = {"crop_border": crop, "y_channel": y_channel}
    for metric in (psnr, ssim):
        batch = metric(ta, tb, **kw)
        assert batch.shape == (3,) and batch.dtype == torch.float64
        single = metric(ta[1], tb[1], **kw)
        assert single.shape == ()
        assert single.item() == pytest.approx(batch[1].item(), abs=1e-12)
        for i in range(3):
            assert batch[i].item() == pytest.approx(metric(a[i], b[i], **kw), abs=1e-9)
        # A float array on [0, 255] is the same image as its uint8 source.
        assert metric(a[0].astype(np.float32), b[0], **kw) == pytest.approx(
            metric(a[0], b[0], **kw), abs=1e-12
        )


def test_shape_mismatch_names_both_shapes():
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"\(24, 20, 3\).*\(24, 21, 3\)"):
            metric(_image(), _image(24, 21))


def test_ssim_needs_a_full_window():
    with pytest.raises(ValueError, match="11"):
        ssim(_image(16, 16), _image(16, 16), crop_border=3)


PAIRS = [(pair, y, crop) for pair in ("trip", "noisy") for y in (False, True) for crop in (0, 4)]


@pytest.mark.parametrize(("pair", "y_channel", "crop"), PAIRS)
def test_matches_basicsr(pair, y_channel, crop):
    ref = np.load(FIXTURE)
    a, b = ref["img"], ref[pair]
    key = f"{pair}_{'y' if y_channel else 'rgb'}_crop{crop}"
    kw = {"crop_border": crop, "y_channel": y_channel}
    # BasicSR rounds Y to float32 (we don't): PSNR-Y differs by up to 6e-7 dB on these pairs.
    assert psnr(a, b, **kw) == pytest.approx(float(ref[f"psnr_{key}"]), abs=1e-6)
    assert ssim(a, b, **kw) == pytest.approx(float(ref[f"ssim_{key}"]), abs=1e-6)
    assert psnr(_chw(a), _chw(b), **kw).item() == pytest.approx(float(ref[f"psnr_{key}"]), abs=1e-6)


def test_inputs_are_not_modified():
    a, b = _chw(_image(seed=3)), _chw(_image(seed=4))
    a0, b0 = a.clone(), b.clone()
    for metric in (psnr, ssim):
        metric(a, b, y_channel=True)
        metric(a, b)
    assert torch.equal(a, a0) and torch.equal(b, b0)


def test_a_grey_image_is_its_own_luma() -> None:
    """One channel: PSNR on it as it is (MATLAB's tables), not through RGB -> Y."""
    hr = np.zeros((12, 12, 1), dtype=np.uint8)
    sr = hr.copy()
    sr[5, 6, 0] = 10  # one pixel off by 10 inside the 1-pixel border: MSE = 100 / 10²
    expected = 10 * np.log10(255**2 / 1.0)
    assert psnr(sr, hr, crop_border=1, y_channel=True) == pytest.approx(expected, abs=1e-12)
    assert psnr(sr, hr, crop_border=1) == pytest.approx(expected, abs=1e-12)
    # The same pixels replicated to RGB and scored on Y: the error shrinks by 219/255.
    rgb = psnr(np.repeat(sr, 3, 2), np.repeat(hr, 3, 2), crop_border=1, y_channel=True)
    assert rgb == pytest.approx(expected + 20 * np.log10(255 / 219), abs=1e-9)
    assert ssim(sr, hr, y_channel=True) == ssim(sr, hr)
