"""Tiled upscaling: seamless stitching, and every image mode coming back in its mode and size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from claritycore.inference import upscale, upscale_tensor
from claritycore.models import AutoConfig, AutoModel
from claritycore.resize import imresize

# num_block=1: beyond ~12 LR pixels an input pixel moves the output by < 1e-6 (the 0.2
# residual scaling damps the far field), so tile_pad=12 covers the receptive field.
FULL_PAD = 12


def tiny(scale: int = 4, upsampler: str = "pixelshuffle", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = AutoConfig.from_name(
        "rrdbnet", scale=scale, num_feat=8, num_block=1, num_grow_ch=4, upsampler=upsampler
    )
    return AutoModel.from_config(config).eval()


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "pixelshuffle"), (3, "pixelshuffle"), (2, "nearest")]
)
def test_tiled_equals_whole_image(scale: int, upsampler: str) -> None:
    model = tiny(scale, upsampler)
    # Odd sides that the tile does not divide; x2 nearest also exercises the unshuffle grid.
    x = torch.rand(3, 45, 39, generator=torch.Generator().manual_seed(1))
    whole = upscale_tensor(model, x, tile=0)
    assert whole.shape == (45 * scale, 39 * scale, 3)
    tiled = upscale_tensor(model, x, tile=8, tile_pad=FULL_PAD, progress=False)
    batched = upscale_tensor(model, x, tile=5, tile_pad=FULL_PAD, batch_size=4, progress=False)
    assert np.abs(tiled - whole).max() < 1e-5
    assert np.abs(batched - whole).max() < 1e-5


def test_tiles_without_context_show_seams() -> None:
    """The equality above is not vacuous: with no padding the tiles differ from the whole."""
    model = tiny()
    x = torch.rand(3, 37, 29, generator=torch.Generator().manual_seed(1))
    whole = upscale_tensor(model, x, tile=0)
    assert np.abs(upscale_tensor(model, x, tile=10, tile_pad=0) - whole).max() > 1e-3


def test_uint8_array_matches_whole_image_within_one_level() -> None:
    model = tiny()
    image = np.random.default_rng(0).integers(0, 256, (41, 23, 3), dtype=np.uint8)
    whole = upscale(model, image, tile=0)
    tiled = upscale(model, image, tile=16, tile_pad=FULL_PAD)
    assert whole.dtype == np.uint8 and whole.shape == (164, 92, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_uint8_output_is_the_rounded_float_output() -> None:
    model = tiny()
    image = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    as_float = upscale(model, image.astype(np.float32) / 255, tile=0)
    expected = np.clip(np.round(as_float * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(upscale(model, image, tile=0), expected)


def _pil(mode: str, size: tuple[int, int] = (13, 10)) -> Image.Image:
    rng = np.random.default_rng(3)
    rgba = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8))
    return rgba.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_pil_modes_round_trip(mode: str) -> None:
    out = upscale(tiny(), _pil(mode), tile=0)
    assert out.mode == mode
    assert out.size == (52, 40)


def test_rgba_alpha_is_bicubic_and_rgb_ignores_it() -> None:
    model = tiny()
    image = _pil("RGBA")
    out = np.asarray(upscale(model, image, tile=0))
    alpha = np.asarray(image)[..., 3:].astype(np.float32) / 255
    expected = np.round(np.clip(imresize(alpha, 4), 0, 1) * 255)[..., 0]
    np.testing.assert_array_equal(out[..., 3], expected)
    rgb = np.asarray(upscale(model, image.convert("RGB"), tile=0))
    assert np.abs(out[..., :3].astype(int) - rgb.astype(int)).max() <= 1


def test_grey_matches_luma_of_rgb_result() -> None:
    model = tiny()
    image = _pil("L")
    rgb = np.asarray(upscale(model, image.convert("RGB"), tile=0)).astype(np.float32)
    expected = rgb @ np.array([0.299, 0.587, 0.114])
    out = np.asarray(upscale(model, image, tile=0)).astype(np.float32)
    assert np.abs(out - expected).max() <= 1.01


def test_16_bit_png_round_trip(tmp_path) -> None:
    model = tiny()
    values = np.random.default_rng(4).integers(0, 65536, (10, 13), dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = Image.open(path)
    assert image.mode == "I;16"
    out = upscale(model, image, tile=0)
    out.save(tmp_path / "out.png")
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "I;16" and back.size == (52, 40)
    pixels = np.asarray(back)
    # Processed in float: the result uses 16-bit levels, not 8-bit levels times 257.
    assert np.any(pixels % 257 != 0)
    grey8 = np.asarray(upscale(model, Image.fromarray((values // 257).astype(np.uint8)), tile=0))
    assert np.abs(pixels / 65535 - grey8 / 255).max() < 0.02


def test_16_bit_rgb_array_keeps_dtype() -> None:
    image = np.random.default_rng(5).integers(0, 65536, (7, 9, 3), dtype=np.uint16)
    out = upscale(tiny(), image, tile=0)
    assert out.dtype == np.uint16 and out.shape == (28, 36, 3)


def test_exif_orientation_is_applied() -> None:
    image = _pil("RGB", size=(13, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    rotated = Image.open(_saved_jpeg(image, exif))
    out = upscale(tiny(), rotated, tile=0)
    assert out.size == (40, 52)


def _saved_jpeg(image: Image.Image, exif: Image.Exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    buffer.seek(0)
    return buffer


def test_bad_inputs_are_explained() -> None:
    with pytest.raises(ValueError, match="HxWx4"):
        upscale(tiny(), np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="tile"):
        upscale(tiny(), np.zeros((4, 4, 3), dtype=np.uint8), tile=-1)
    with pytest.raises(ValueError, match="dtype"):
        upscale(tiny(), np.zeros((4, 4, 3), dtype=np.int64))


def test_upscale_cli_folder_skips_existing_and_reports_unreadable(tmp_path) -> None:
    from typer.testing import CliRunner

    from claritycore.cli import app
    from claritycore.weights import save_model

    save_model(tmp_path / "model.pt", tiny())
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    _pil("RGB").save(inputs / "a.png")
    _pil("L").save(inputs / "b.jpg")
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    args = ["upscale", str(inputs), "-m", str(tmp_path / "model.pt"), "-o", str(out)]

    result = CliRunner().invoke(app, [*args, "--tile", "8"])
    assert result.exit_code == 1, result.output
    assert "1 upscaled, 1 skipped (exist), 1 failed" in result.output
    assert "broken.png" in result.output
    assert (out / "a.png").read_bytes() == b"keep me"
    assert Image.open(out / "b.png").mode == "L" and Image.open(out / "b.png").size == (52, 40)

    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert "2 upscaled, 0 skipped (exist), 1 failed" in result.output
    assert Image.open(out / "a.png").size == (52, 40)
