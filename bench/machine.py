"""What machine a benchmark ran on, for the line each one prints first (bench/RESULTS.md quotes it)."""

import os
import platform
from pathlib import Path


def cpu_flags() -> str:
    """CPU model, core count and the vector/matrix flags that decide which kernels TensorFlow can use."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    keep = [f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(keep)}"
