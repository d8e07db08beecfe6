"""Whether bf16 autocast is worth turning on by default: `bf16_supported(device)`.

    bf16_supported("cpu")     # True on a CPU where a bf16 matmul is measurably faster than fp32
    cpu_bf16_speedup()        # fp32 time / bf16 time of one matmul the size of SmolLM2's MLP

On a CUDA GPU the answer is the device's: `torch.cuda.is_bf16_supported()`.

On a CPU the instruction flags alone do not tell (measured with `mllm sft`, s per step of the slow
check's recipe, fp32 against `--bf16`, side by side):
- Intel Xeon with AMX (model 167): bf16 matmul about 6x fp32; sft about 1.2x faster with bf16;
- AMD EPYC Zen 4 (family 25 model 17, AVX512-BF16): 6.6 against 8.5 s per step, bf16 faster;
- Intel Xeon (model 207) whose VM exposes AVX512-BF16 but not AMX: the matmul runs at fp32's
  speed (140 against 147 GFLOP/s, 2 threads) and sft is 1.3-1.6x *slower* with bf16 (4.3 and 5.2
  against 3.3 s per step, one thread, two alternating runs), the casts adding work;
- a CPU with neither AVX512-BF16 nor AMX (AMD EPYC Zen 1): bf16 emulated, 0.2 GFLOP/s.
So a CPU with neither flag is never probed (the probe would take seconds there); otherwise one
product of SmolLM2's MLP shape (`PROBE_SHAPE`) is timed in both dtypes, the best of `PROBE_REPEATS`
each after a warm-up (the best, not the mean, so a busy core does not tip it), and bf16 is the
default when it is at least `MIN_SPEEDUP` times faster. The gap between the kinds above is wide
(about 0.95x against 2-6x), so the margin keeps the choice stable from run to run; a resumed run
keeps its checkpoint's choice whatever the probe says (`resolve_config`), and `--bf16/--no-bf16`
overrides it. The probe costs about 0.1 s, once per process.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import torch

PROBE_SHAPE = (256, 576, 1536)  # tokens x hidden x MLP width: one product of SmolLM2-135M's MLP
PROBE_REPEATS = 5
MIN_SPEEDUP = 1.3
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags() -> bool:
    """The CPU has AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; False where it cannot be read)."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in words for flag in BF16_FLAGS)


def _best_seconds(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    torch.matmul(a, b)  # warm-up: the kernel's first call selects and prepares it
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return best


@lru_cache(maxsize=None)
def cpu_bf16_speedup(repeats: int = PROBE_REPEATS) -> float:
    """fp32 seconds / bf16 seconds of a (PROBE_SHAPE) matmul at torch's current thread count, the
    best of `repeats` each: above 1 bf16 is faster. Measured once per process."""
    tokens, hidden, width = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(tokens, hidden, generator=generator)
    b = torch.randn(hidden, width, generator=generator)
    fp32 = _best_seconds(a, b, repeats)
    bf16 = _best_seconds(a.bfloat16(), b.bfloat16(), repeats)
    return fp32 / bf16


def bf16_supported(device: str) -> bool:
    """bf16 autocast is worth it by default: a CUDA GPU with bf16, or a CPU with a bf16 flag on which
    a bf16 matmul measures at least MIN_SPEEDUP times fp32's speed (see the module docstring)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_bf16_flags() and cpu_bf16_speedup() >= MIN_SPEEDUP
