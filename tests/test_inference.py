"""Tiled upscaling: seamless stitching, and every image mode coming back in its mode and size."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from claritycore import inference
from claritycore.inference import axis_spans, model_input_pixels, upscale, upscale_tensor
from claritycore.models import AutoConfig, AutoModel
from claritycore.resize import imresize
from tests.helpers import png48

# num_block=1: beyond ~12 LR pixels an input pixel moves the output by < 1e-6 (the 0.2
# residual scaling damps the far field), so tile_pad=12 covers the receptive field.
FULL_PAD = 12


@pytest.fixture(autouse=True)
def fp32_auto(monkeypatch) -> None:
    """`auto` as fp32, so exact comparisons do not depend on the test machine's CPU."""
    monkeypatch.setattr(inference, "AUTO_BF16", False)


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


def realesrganer_input_pixels(height: int, width: int, tile: int, pad: int) -> int:
    """RealESRGANer.tile_process's work: ceil(side / tile) tiles, each padded inside the image."""

    def axis(size: int) -> int:
        starts = range(0, size, tile)
        return sum(min(s + tile + pad, size) - max(s - pad, 0) for s in starts)

    return axis(height) * axis(width)


def test_model_work_is_realesrganers_for_the_issue_case() -> None:
    # 480x320 at tile 128, pad 10: 4 x 3 windows of 135 x 120, the image plus its padding.
    assert model_input_pixels(320, 480, 128, 10) == realesrganer_input_pixels(320, 480, 128, 10)
    assert model_input_pixels(320, 480, 128, 10) == 194_400 == 540 * 360
    assert model_input_pixels(320, 480, 0, 10) == 320 * 480
    # x2 nearest works on 2-pixel cells: 3 x 4 windows of 382 x 504 for 1144 x 2016 of work.
    assert model_input_pixels(1080, 1920, 512, 16, align=2) == 3 * 4 * 382 * 504


@pytest.mark.parametrize("tile", [64, 100, 128, 256, 512])
@pytest.mark.parametrize("pad", [0, 4, 10, 16, 32])
def test_model_work_stays_within_3_percent_of_realesrganers(tile: int, pad: int) -> None:
    sides = [1, 37, 127, 129, 333, 480, 511, 720, 1021, 1080, 2040]
    for height in sides:
        for width in sides:
            ours = model_input_pixels(height, width, tile, pad)
            assert ours <= 1.03 * realesrganer_input_pixels(height, width, tile, pad)


@pytest.mark.parametrize("size", [1, 20, 29, 148, 149, 479, 480, 1021])
@pytest.mark.parametrize(("tile", "pad"), [(128, 10), (7, 3), (16, 0), (50, 25)])
def test_spans_cover_the_axis_with_context_and_one_window_size(size, tile, pad) -> None:
    length, spans = axis_spans(size, tile, pad)
    assert length <= max(tile + 2 * pad, 1) or len(spans) == 1
    assert len(spans) == max(1, math.ceil((size - 2 * pad) / tile))
    assert spans[0].lo == 0 and spans[-1].hi == size
    for span, after in itertools.pairwise(spans):
        assert span.hi == after.lo  # cores tile the axis exactly
    for span in spans:
        assert span.start >= 0 and span.start + length <= size
        assert span.lo - span.start >= pad or span.start == 0
        assert span.start + length - span.hi >= pad or span.start + length == size


def test_tiles_without_context_show_seams() -> None:
    """The equality above is not vacuous: with no padding the tiles differ from the whole."""
    model = tiny()
    x = torch.rand(3, 37, 29, generator=torch.Generator().manual_seed(1))
    whole = upscale_tensor(model, x, tile=0)
    assert np.abs(upscale_tensor(model, x, tile=10, tile_pad=0) - whole).max() > 1e-3


@pytest.mark.parametrize(
    ("height", "width", "tile"), [(41, 23, 16), (67, 29, 7), (50, 61, 13), (23, 97, 30)]
)
def test_uint8_array_matches_whole_image_within_one_level(height, width, tile) -> None:
    """One window on an axis, many, and spans whose overlaps differ by the rounding."""
    model = tiny()
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    whole = upscale(model, image, tile=0)
    tiled = upscale(model, image, tile=tile, tile_pad=FULL_PAD)
    assert whole.dtype == np.uint8 and whole.shape == (4 * height, 4 * width, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_uint8_output_is_the_rounded_float_output() -> None:
    model = tiny()
    image = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    as_float = upscale(model, image.astype(np.float32) / 255, tile=0)
    expected = np.clip(np.round(as_float * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(upscale(model, image, tile=0), expected)


def peak_torch_bytes(run) -> int:
    """Peak bytes of live torch CPU allocations while `run()` runs (the profiler's events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize(("upsampler", "bound"), [("nearest", 2.3), ("pixelshuffle", 2.1)])
def test_inference_keeps_at_most_two_high_resolution_maps_alive(upsampler, bound) -> None:
    """The largest tensors are num_feat x 4H x 4W maps; the old forward kept a third alive
    (the upsampled input of conv_up2 through conv_hr: 3.39 maps nearest, 2.39 pixelshuffle)."""
    model = tiny(4, upsampler).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 32, 48).to(memory_format=torch.channels_last)
    hr_map = 8 * (32 * 4) * (48 * 4) * 4
    with torch.inference_mode():
        model(x)  # first-call allocations (oneDNN primitives) are not the forward's
        assert peak_torch_bytes(lambda: model(x)) <= bound * hr_map


def test_whole_image_upscale_holds_the_model_peak_and_not_more() -> None:
    """Pre- and post-processing add no full-size float copies: output goes straight to uint8."""
    model = tiny(4, "nearest")
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    upscale(model, image, tile=0)
    hr_map = 8 * (32 * 4) * (48 * 4) * 4
    assert peak_torch_bytes(lambda: upscale(model, image, tile=0)) <= 2.3 * hr_map


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_follows_the_cpu_when_bf16_is_enabled(monkeypatch, native_bf16) -> None:
    monkeypatch.setattr(inference, "AUTO_BF16", True)
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: native_bf16)
    assert inference.inference_precision(torch.device("cpu")) == ("bf16" if native_bf16 else "fp32")
    model = tiny()
    x = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(6))
    auto = upscale_tensor(model, x, tile=0)
    bf16 = upscale_tensor(model, x, tile=0, precision="bf16")
    fp32 = upscale_tensor(model, x, tile=0, precision="fp32")
    assert 0 < np.abs(bf16 - fp32).max() < 0.05  # bf16 really ran, and ran close
    np.testing.assert_array_equal(auto, bf16 if native_bf16 else fp32)


@pytest.mark.parametrize("cuda_bf16", [True, False])
def test_auto_precision_on_cuda_is_bf16_where_supported(monkeypatch, cuda_bf16) -> None:
    monkeypatch.setattr(inference, "AUTO_BF16", True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: cuda_bf16)
    expected = "bf16" if cuda_bf16 else "fp32"
    assert inference.inference_precision(torch.device("cuda")) == expected


def test_auto_precision_is_fp32_when_bf16_is_not_enabled(monkeypatch) -> None:
    monkeypatch.setattr(inference, "AUTO_BF16", False)
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    for device in ("cpu", "cuda"):
        assert inference.inference_precision(torch.device(device)) == "fp32"


def test_unknown_precision_is_explained() -> None:
    with pytest.raises(ValueError, match="auto, bf16, fp16, fp32"):
        upscale(tiny(), np.zeros((4, 4, 3), dtype=np.uint8), precision="int8")


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


def test_upscale_cli_precision_is_checked_and_passed_on(tmp_path) -> None:
    from typer.testing import CliRunner

    from claritycore.cli import app
    from claritycore.weights import save_model

    save_model(tmp_path / "model.pt", tiny())
    _pil("RGB").save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "-m", str(tmp_path / "model.pt")]
    args += ["-o", str(tmp_path / "out"), "--tile", "0"]
    bad = CliRunner().invoke(app, [*args, "--precision", "int8"])
    assert bad.exit_code == 2 and "auto, bf16, fp16, fp32" in bad.output
    result = CliRunner().invoke(app, [*args, "--precision", "bf16"])
    assert result.exit_code == 0 and "cpu, bf16" in result.output, result.output
    expected = upscale(tiny(), _pil("RGB"), tile=0, precision="bf16")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), expected)


def test_upscale_cli_warns_that_16_bit_colour_comes_out_8_bit(tmp_path) -> None:
    """Pillow decodes 48-bit PNGs to 8-bit RGB and writes no 48-bit PNG: the result is 8-bit,
    said in one warning naming the file; 16-bit grey keeps 16 bits (test_16_bit_png_round_trip)."""
    from typer.testing import CliRunner

    from claritycore.cli import app
    from claritycore.weights import save_model

    save_model(tmp_path / "model.pt", tiny())
    deep = np.random.default_rng(3).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    (tmp_path / "deep48.png").write_bytes(png48(deep))
    args = ["upscale", str(tmp_path / "deep48.png"), "-m", str(tmp_path / "model.pt")]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "out"), "--tile", "0"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warned) == 1 and "deep48.png" in warned[0] and "8-bit RGB" in warned[0], warned
    with Image.open(tmp_path / "out" / "deep48.png") as out:
        assert (out.mode, out.size) == ("RGB", (28, 24))
