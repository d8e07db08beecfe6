"""The thread rule of core/threads.py: what is asked wins, else every core with idle OpenMP threads
asleep, and the pools of torch and BLAS (and child processes) follow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mllm.core.threads import available_cores, choose_threads, use_threads

def test_asked_for_wins_in_order():
    assert choose_threads(3, {"MLLM_THREADS": "5", "OMP_NUM_THREADS": "7"}) == 3
    assert choose_threads(None, {"MLLM_THREADS": "5", "OMP_NUM_THREADS": "7"}) == 5
    assert choose_threads(0, {"OMP_NUM_THREADS": "7"}) == 7  # 0 = decide
    with pytest.raises(ValueError, match="MLLM_THREADS"):
        choose_threads(None, {"MLLM_THREADS": "many"})
    with pytest.raises(ValueError, match="--threads"):
        choose_threads(-1, {})


def test_default_is_every_core_and_idle_openmp_threads_sleep():
    env = {k: v for k, v in os.environ.items() if k not in ("MLLM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    probe = ("import os, mllm.cli.main; from mllm.core.threads import choose_threads; "
             "print(choose_threads(), os.environ['OMP_WAIT_POLICY'])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env, text=True)
    assert result.stdout.split() == [str(available_cores()), "PASSIVE"]
    asked = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env={**env, "OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"})
    assert asked.stdout.split() == ["1", "ACTIVE"]  # what the user set is kept


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


def test_use_threads_twice_in_one_process_with_numba_loaded():
    # numba reads NUMBA_NUM_THREADS at every compilation and raises once its pool runs with another
    # size: a second use_threads (two commands in one process, as the tests run them) must not
    # change it under a running pool, and must not start the pool itself.
    probe = (
        "import numba\n"
        "from numba.np.ufunc import parallel\n"
        "from mllm.core.threads import use_threads\n"
        "use_threads(1)\n"
        "started_by_use_threads = parallel._is_initialized\n"
        "use_threads(2)\n"
        "numba.njit(lambda x: x + 1)(1)\n"  # a compilation re-reads the variable
        "pool = numba.get_num_threads()\n"  # starts the pool: 2 threads, what the variable said
        "use_threads(1)\n"
        "numba.njit(lambda x: x + 2)(1)\n"
        "print(started_by_use_threads, pool, numba.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "2", "1"]
