"""The bf16 default: a CPU with no bf16 flag is never probed; otherwise the measured matmul ratio decides."""

from __future__ import annotations

import math

import pytest
import torch

from mllm.core.train import precision


def test_cpu_without_bf16_flags_is_off_and_not_probed(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: False)

    def probe(*args):
        raise AssertionError("probed a CPU without bf16 instructions")

    monkeypatch.setattr(precision, "cpu_bf16_speedup", probe)
    assert precision.bf16_supported("cpu") is False


@pytest.mark.parametrize("speedup, expected", [(0.68, False), (1.29, False), (1.3, True), (5.6, True)])
def test_the_measured_speedup_decides_on_a_cpu_with_a_flag(monkeypatch, speedup, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: True)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: speedup)
    assert precision.bf16_supported("cpu") is expected


def test_the_probe_times_both_dtypes_on_this_cpu():
    precision.cpu_bf16_speedup.cache_clear()
    ratio = precision.cpu_bf16_speedup(repeats=2)
    assert math.isfinite(ratio) and ratio > 0
    assert precision.cpu_bf16_speedup(repeats=2) == ratio  # measured once per process


def test_flags_are_read_as_whole_words(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse avx512f avx512_bf16x\n")  # a longer flag is not the flag
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert precision.cpu_bf16_flags() is False
    cpuinfo.write_text("flags\t: fpu sse avx512f amx_bf16 amx_tile\n")
    assert precision.cpu_bf16_flags() is True


def test_cuda_follows_the_device():
    assert precision.bf16_supported("cuda") is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
