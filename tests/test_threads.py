"""The thread rule of core/threads.py: what is asked wins, a pipeline stage takes a share of the
cores, and the pools of torch and BLAS follow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mllm.core.threads import available_cores, choose_threads, use_threads

PROBE = "from mllm.core.threads import choose_threads; print(choose_threads())"


def test_asked_for_wins_in_order():
    assert choose_threads(3, {"MLLM_THREADS": "5", "OMP_NUM_THREADS": "7"}) == 3
    assert choose_threads(None, {"MLLM_THREADS": "5", "OMP_NUM_THREADS": "7"}) == 5
    assert choose_threads(0, {"OMP_NUM_THREADS": "7"}) == 7  # 0 = decide
    with pytest.raises(ValueError, match="MLLM_THREADS"):
        choose_threads(None, {"MLLM_THREADS": "many"})
    with pytest.raises(ValueError, match="--threads"):
        choose_threads(-1, {})


def probe(stdout) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("MLLM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", PROBE], stdout=stdout, stdin=subprocess.DEVNULL, env=env, text=True)
    assert result.returncode == 0
    return int(result.stdout) if stdout is subprocess.PIPE else None


def test_a_pipeline_stage_takes_a_third_of_the_cores_and_a_lone_command_all(tmp_path):
    cores = available_cores()
    assert probe(subprocess.PIPE) == max(1, cores // 3)  # stdout is a pipe: a stage of a pipeline
    with open(tmp_path / "out.txt", "w") as handle:  # stdout is a file: alone
        probe(handle)
    assert int((tmp_path / "out.txt").read_text()) == cores


def test_use_threads_sizes_torch_blas_and_child_processes(monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    before = torch.get_num_threads()
    try:
        use_threads(1)
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['OMP_NUM_THREADS'])"],
                               capture_output=True, text=True)
        assert child.stdout.strip() == "1"
        use_threads(4, workers=3)  # --workers 3: each worker process gets 4 // 3 threads
        assert os.environ["OMP_NUM_THREADS"] == "1" and torch.get_num_threads() == 4
        use_threads(4, workers=2)
        assert os.environ["OPENBLAS_NUM_THREADS"] == "2"
    finally:
        use_threads(before)
