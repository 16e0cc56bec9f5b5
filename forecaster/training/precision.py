"""`train.precision`, and what this CPU can do fast.

`train.precision=bf16` lets TensorFlow's oneDNN mixed-precision rewrite run the training
Session's eligible ops in bfloat16 (the variables, the checkpoints and the exported model stay
float32). It pays only where the CPU computes in bf16 natively, with AVX512-BF16 or AMX;
elsewhere bf16 is emulated and slower than float32, so it is refused, with a message that says
why, when the config is read. The default is float32.

No TensorFlow here: the config is checked before anything is built.
"""

from __future__ import annotations

import platform
from pathlib import Path

from forecaster.errors import ConfigError

PRECISIONS = ("float32", "bf16")

# /proc/cpuinfo flags that make bf16 matmuls fast.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# The SIMD flags worth recording beside a benchmark (in this order, when present).
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_text(cpuinfo: Path | None) -> str:
    try:
        return (cpuinfo or CPUINFO).read_text()
    except OSError:  # not Linux
        return ""


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo is not there)."""
    for line in _cpuinfo_text(cpuinfo).splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model(cpuinfo: Path | None = None) -> str:
    for line in _cpuinfo_text(cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def vector_extensions(cpuinfo: Path | None = None) -> tuple[str, ...]:
    flags = cpu_flags(cpuinfo)
    return tuple(flag for flag in VECTOR_FLAGS if flag in flags)


def check_precision(precision: str, cpuinfo: Path | None = None) -> None:
    """Refuse an unknown precision, and bf16 on a CPU without native bf16 matmuls."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"train.precision={precision!r} is invalid: expected one of {PRECISIONS}."
        )
    if precision == "bf16" and not cpu_flags(cpuinfo) & set(BF16_FLAGS):
        found = " ".join(vector_extensions(cpuinfo)) or "none found"
        raise ConfigError(
            f"train.precision=bf16 needs a CPU with AVX512-BF16 or AMX ({' or '.join(BF16_FLAGS)} "
            f"in /proc/cpuinfo); this one ({cpu_model(cpuinfo)}) has {found}, where bf16 is "
            "emulated and slower than float32. Use train.precision=float32."
        )
