"""The FLOP count that GPU runs divide by to report their fraction of peak."""

from benchmarks.bench_train import conv_macs, train_flops_per_step
from claritycore.experiment import resolve
from claritycore.models import AutoModel


def rrdbnetx4_macs(side: int) -> int:
    """RRDBNet x4 (64 features, 23 blocks, growth 32, pixel-shuffle) by hand, per LR pixel × 9."""
    dense_block = sum((64 + 32 * k) * 32 for k in range(4)) + (64 + 4 * 32) * 64
    trunk = 3 * 64 + 23 * 3 * dense_block + 64 * 64  # conv_first, 69 dense blocks, conv_body
    upsample = 64 * 256 + 4 * 64 * 256  # conv before each ×2 shuffle, at 1× and 2× the side
    head = 16 * (64 * 64 + 64 * 3)  # conv_hr and conv_last at 4× the side
    return 9 * side * side * (trunk + upsample + head)


def test_conv_macs_match_the_architecture_by_hand() -> None:
    model = AutoModel.from_config(resolve("rrdbnetx4", {}).model)
    assert conv_macs(model, 16) == rrdbnetx4_macs(16) == 4_589_273_088


def test_step_flops_are_three_passes_of_two_flop_per_mac() -> None:
    experiment = resolve("rrdbnetx4", {"batch_size": 2, "patch_size": 64})
    assert train_flops_per_step(experiment) == 3 * 2 * 2 * rrdbnetx4_macs(16)


def test_bench_infer_rates_are_the_measured_output_over_time() -> None:
    from benchmarks.bench_infer import measure

    row = measure("rrdbnet-litex4", "24x16", 0, "fp32")
    assert row["images_per_s"] == 1 / row["seconds"]
    assert abs(row["output_mp_per_s"] * row["seconds"] * 1e6 - 96 * 64) < 1e-6
    assert row["input_pixels_computed"] == 24 * 16
    assert row["output_mib"] == 96 * 64 * 3 / 2**20 and row["precision"] == "fp32"


def test_bf16_peak_is_looked_up_by_device_name_longest_key_first() -> None:
    from benchmarks.gpu_peaks import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H200") == 989.4
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0  # not the SXM H100's 989.4
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak_tflops("Tesla T4") is None
