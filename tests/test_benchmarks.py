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


def test_bench_loader_smoke_figures_are_consistent(capsys):
    """Every loader takes the same crops; its figures are its own rates, their medians, the
    ratio to the raw store and the H100's need divided by the rate."""
    from benchmarks.bench_loader import SMOKE_SIZE, h100_patches_per_second, run

    result = run(2, SMOKE_SIZE, 4, 2)
    needed, derivation = h100_patches_per_second()
    assert 895 < needed < 900 and result["needed"] == needed
    assert "7.05 TFLOP per step of batch 16" in derivation and "989.4" in derivation
    rows = result["rows"]
    assert list(rows)[:3] == ["raw store", "shards store", "BasicSR PNG folders"]
    raw = rows["raw store"]
    for row in rows.values():
        assert len(row["runs"]) == 2 and min(row["runs"]) <= row["patches_per_s_per_core"]
        assert row["patches_per_s_per_core"] <= max(row["runs"])
        assert row["vs_raw"] == row["patches_per_s_per_core"] / raw["patches_per_s_per_core"]
        assert row["cores_for_h100"] == needed / row["patches_per_s_per_core"]
        assert row["bytes_vs_raw"] == row["bytes"] / raw["bytes"]
    # Lossless compression of gradients and edges: fewer bytes than the raw planes.
    assert rows["shards store"]["bytes"] < raw["bytes"]
    assert len(result["load_average"]) == 2
