"""Self-ensemble: the mean of the 8 transformed outputs, tiled without seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore import inference
from claritycore.cli import app
from claritycore.ensemble import SelfEnsemble
from claritycore.inference import upscale, upscale_tensor
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import save_model
from tests.test_inference import FULL_PAD


@pytest.fixture(autouse=True)
def fp32_auto(monkeypatch) -> None:
    monkeypatch.setattr(inference, "AUTO_BF16", False)


def tiny(scale: int = 2, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    config = AutoConfig.from_name(
        "rrdbnet", scale=scale, num_feat=8, num_block=1, num_grow_ch=4, **extra
    )
    return AutoModel.from_config(config).eval()


@torch.no_grad()
def test_ensemble_is_the_mean_of_the_eight_transformed_outputs() -> None:
    model = tiny()
    x = torch.rand(1, 3, 9, 13)
    expected = []
    for k in range(4):  # rot90 by k, with and without a horizontal flip, mapped back
        for flip in (False, True):
            t = torch.rot90(x, k, (2, 3))
            t = t.flip(3) if flip else t
            y = model(t)
            y = y.flip(3) if flip else y
            expected.append(torch.rot90(y, -k, (2, 3)))
    mean = torch.stack(expected).mean(0)
    ensembled = SelfEnsemble(model)(x)
    assert ensembled.shape == (1, 3, 18, 26)
    torch.testing.assert_close(ensembled, mean, rtol=0, atol=1e-6)
    # Not a no-op: the model is not equivariant, so the mean differs from one pass.
    assert (ensembled - model(x)).abs().max() > 1e-4


@pytest.mark.parametrize("extra", [{}, {"upsampler": "nearest", "x2_unshuffle": True}])
def test_tiled_ensemble_equals_the_whole_image_ensemble(extra) -> None:
    ensemble = SelfEnsemble(tiny(**extra))
    x = torch.rand(3, 31, 27)
    whole = upscale_tensor(ensemble, x, tile=0, progress=False)
    tiled = upscale_tensor(ensemble, x, tile=8, tile_pad=FULL_PAD, progress=False)
    assert whole.shape == (62, 54, 3)
    assert np.abs(tiled - whole).max() < 1e-5


def test_upscale_command_self_ensemble_writes_the_ensembled_image(tmp_path) -> None:
    model = tiny()
    save_model(tmp_path / "model.pt", model, experiment={}, step=1)
    pixels = np.random.default_rng(0).integers(0, 256, (20, 17, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    outputs = {}
    for flag in ("--no-self-ensemble", "--self-ensemble"):
        args = ["upscale", str(tmp_path / "in.png"), "-m", str(tmp_path / "model.pt")]
        result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / flag), flag])
        assert result.exit_code == 0, result.output
        outputs[flag] = np.asarray(Image.open(tmp_path / flag / "in.png"))
    assert "self-ensemble ×8" in result.output
    np.testing.assert_array_equal(outputs["--self-ensemble"], upscale(SelfEnsemble(model), pixels))
    assert not np.array_equal(outputs["--self-ensemble"], outputs["--no-self-ensemble"])
