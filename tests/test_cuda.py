"""The CUDA paths against the CPU reference; skipped without a GPU.

On a GPU machine: `python -m pytest tests/test_cuda.py -v` (the DDP test needs two GPUs).
"""

from __future__ import annotations

import math

import pytest
import torch

from claritycore.inference import upscale_tensor
from claritycore.models import AutoConfig, AutoModel
from claritycore.training import checkpoint as ckpt
from tests.helpers import history, latest, quick_options, run, tiny_experiment, tiny_store

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def losses(root) -> list[float]:
    return [row["train/loss"] for row in history(root / "ckpt")]


def final_weights(root) -> dict[str, torch.Tensor]:
    return torch.load(root / "model.pt", weights_only=True)["state_dict"]


def test_cuda_defaults_follow_the_cpu_run(tmp_path, capsys):
    """On CUDA the defaults turn on AMP (bf16 where supported), channels_last and compile; the
    run logs the CPU fp32 run's losses within low-precision rounding, and saves plain weights."""
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=8)
    run(tmp_path / "cpu", experiment, quick_options(), store)
    run(tmp_path / "cuda", experiment, quick_options(device="cuda", precision="auto"), store)
    banner = " ".join(capsys.readouterr().out.split())  # rich wraps lines at 80 columns
    assert "channels_last True, compile True" in banner
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert f"precision {expected}," in banner
    assert torch.load(tmp_path / "cuda" / "model.pt", weights_only=True)["precision"] == expected
    torch.testing.assert_close(
        losses(tmp_path / "cuda"), losses(tmp_path / "cpu"), rtol=3e-2, atol=0
    )
    cpu, cuda = final_weights(tmp_path / "cpu"), final_weights(tmp_path / "cuda")
    assert cuda.keys() == cpu.keys()
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in cuda.values())


BF16 = pytest.mark.skipif(not torch.cuda.is_bf16_supported(), reason="this GPU has no bf16")


@pytest.mark.parametrize("precision", ["fp16", pytest.param("bf16", marks=BF16), "fp32"])
def test_each_precision_trains_and_resumes(tmp_path, precision):
    """fp16 (with its GradScaler), bf16 and fp32 on CUDA: finite losses close to the CPU's, and a
    run killed after its first checkpoint resumes with the scaler's state."""
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=6)
    run(tmp_path / "cpu", experiment, quick_options(), store)
    options = quick_options(device="cuda", precision=precision)
    run(tmp_path / "cuda", experiment, options, store)
    # CUDA's fp32 convolutions use TF32 by default (10-bit mantissa).
    tolerance = 1e-2 if precision == "fp32" else 3e-2
    torch.testing.assert_close(
        losses(tmp_path / "cuda"), losses(tmp_path / "cpu"), rtol=tolerance, atol=0
    )
    ckpt_dir = tmp_path / "cuda" / "ckpt"
    (first_step, _), *later = ckpt.list_checkpoints(ckpt_dir / ckpt.run_key(experiment, 0, store))
    for _, path in later:  # as if killed after the first checkpoint
        path.unlink()
    assert first_step == 3
    run(tmp_path / "cuda", experiment, options, store)
    resumed = latest(ckpt_dir)
    assert resumed["step"] == 6 and all(math.isfinite(v) for v in losses(tmp_path / "cuda"))
    if precision == "fp16":
        assert resumed["scaler"]["_growth_tracker"] == 6


def test_upscale_on_cuda_matches_the_cpu(tmp_path):
    torch.manual_seed(0)
    config = AutoConfig.from_name("rrdbnet", scale=4, num_feat=16, num_block=2, num_grow_ch=8)
    model = AutoModel.from_config(config).eval()
    x = torch.rand(3, 70, 50, generator=torch.Generator().manual_seed(1))
    reference = upscale_tensor(model, x, tile=0, device="cpu")
    for precision, tolerance in (("fp32", 5e-3), ("bf16", 2e-2), ("fp16", 5e-3)):
        result = upscale_tensor(model, x, tile=32, device="cuda", precision=precision)
        assert abs(result - reference).max() < tolerance, precision


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_two_nccl_ranks_match_one_gpu(tmp_path):
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=4, batch_size=4)
    options = {"device": "cuda", "precision": "fp32", "compile": False, "save_every": 4}
    run(tmp_path / "one", experiment, quick_options(**options), store)
    run(tmp_path / "two", experiment, quick_options(**options, devices=2), store)
    one, two = latest(tmp_path / "one" / "ckpt"), latest(tmp_path / "two" / "ckpt")
    for name, tensor in one["model"].items():
        torch.testing.assert_close(two["model"][name], tensor, rtol=0, atol=1e-4, msg=name)


def test_degradation_on_cuda_matches_the_cpu_without_noise():
    """The batched degradation on the GPU: deterministic, and with the noise set to 0 (the
    only part whose random field is device-specific) within rounding of the CPU's result."""
    from dataclasses import replace

    from claritycore.config import DegradationConfig
    from claritycore.degradation import collate_draws, degrade, draw_sample

    config = DegradationConfig(type="realesrgan")
    hr = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    hr = torch.nn.functional.interpolate(hr, size=(128, 128), mode="bicubic").clamp(0, 1)
    draws = [draw_sample(config, 1, i) for i in range(4)]
    quiet = collate_draws(
        [replace(d, gaussian_noise=(True, True), noise_sigma=(0.0, 0.0)) for d in draws]
    )
    cpu = degrade(hr, quiet, config, scale=4, seed=1, step=3)
    gpu = degrade(hr.cuda(), quiet, config, scale=4, seed=1, step=3).cpu()
    # TF32 convolutions and another summation order move values by a level; a DCT coefficient
    # on a quantisation boundary, rarely, a few levels across its 8×8 block.
    assert (gpu - cpu).abs().max().item() <= 8 / 255
    assert (gpu - cpu).abs().mean().item() < 0.1 / 255
    noisy = collate_draws(draws)
    first = degrade(hr.cuda(), noisy, config, scale=4, seed=1, step=3)
    assert torch.equal(first, degrade(hr.cuda(), noisy, config, scale=4, seed=1, step=3))
