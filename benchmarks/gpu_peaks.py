"""Dense bf16 peaks of GPUs, the one table that step-time benchmarks divide by (MFU)."""

from __future__ import annotations

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from NVIDIA's data sheets, matched on
# the device name (H200 and H100 SXM: 989.4; the 1,979 on the sheets is with sparsity).
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                    "L40S": 362.1, "L4": 121.0}  # fmt: skip


def bf16_peak_tflops(device_name: str) -> float | None:
    """The first table entry whose key occurs in `device_name` (longer keys first), or None."""
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return BF16_PEAK_TFLOPS[key]
    return None
