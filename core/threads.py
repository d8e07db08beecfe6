"""How many threads a command's torch, BLAS (numpy/scipy) and numba pools use.

A study is a pipeline: `mllm encode | mllm caption | mllm eval-mir` runs its stages at once on the
same cores. torch, OpenBLAS and numba each start a pool of one thread per core, and pools that
spin-wait for work fight each other: on two cores two such processes ran an sft step 3-10x
slower than with one thread each (docs/threads.md, benchmarks/RESULTS.md). So:

    threads = choose_threads(requested=None)   # --threads, else MLLM_THREADS, else the rule below
    use_threads(threads)                       # torch, BLAS/OpenMP, numba, and child processes

The rule when nothing is asked for:
1. `OMP_NUM_THREADS` when the user has set it (they said how many; torch reads it too);
2. in a pipeline - stdin or stdout is a pipe or a socket - `max(1, cores // 3)`: three stages fit
   the machine without oversubscribing it (one thread each on two or three cores);
3. alone (files in and out, or a terminal): every core this process may run on.

`use_threads` also sets OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS and
NUMBA_NUM_THREADS for the processes the command starts, which otherwise would each start a pool
per core: `--workers N` processes of extract-features and synth share the count (count // N
each, at least one). torchrun ranks get what their launcher's environment says.
"""

from __future__ import annotations

import os
import stat
import sys

__all__ = ["THREADS_ENV", "available_cores", "choose_threads", "in_pipeline", "use_threads"]

THREADS_ENV = "MLLM_THREADS"
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
PIPELINE_SHARE = 3  # a pipeline's stage takes a third of the cores


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def in_pipeline() -> bool:
    """True when stdin or stdout is a pipe or a socket: other processes run beside this one."""
    for fd in (0, 1):
        try:
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError):
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return True
    return False


def choose_threads(requested: int | None = None, environ: dict | None = None) -> int:
    """The thread count: `requested` (--threads; 0 = decide), else $MLLM_THREADS, else the rule of
    the module docstring. ValueError for a count below 0 or a variable that is not an integer."""
    environ = os.environ if environ is None else environ
    for value, where in ((requested, "--threads"), (environ.get(THREADS_ENV), THREADS_ENV),
                         (environ.get("OMP_NUM_THREADS"), "OMP_NUM_THREADS")):
        if value is None or value == "":
            continue
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a whole number of threads, got {value!r}") from None
        if count < 0:
            raise ValueError(f"{where} must be >= 0 (0 = decide), got {count}")
        if count > 0:
            return count
    cores = available_cores()
    return max(1, cores // PIPELINE_SHARE) if in_pipeline() else cores


def use_threads(count: int, workers: int = 1) -> None:
    """Size every thread pool of this process to `count`, and those of the processes it starts:
    `workers` processes working at once share the count (at least one thread each)."""
    for name in POOL_VARIABLES:
        os.environ[name] = str(max(1, count // workers))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count)  # OpenBLAS/MKL/OpenMP already loaded (numpy, scipy, torch)
    if "torch" in sys.modules:  # not imported yet: it reads OMP_NUM_THREADS when it is
        import torch

        torch.set_num_threads(count)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
