"""How many threads a command's torch, BLAS (numpy/scipy) and numba pools use, and how they wait.

A study is a pipeline (`mllm encode | mllm caption | mllm eval-mir` runs its stages at once on the
same cores), and researchers start jobs side by side. torch's OpenMP pool has a thread per core,
and an idle OpenMP thread spins before it sleeps: with more busy threads than cores, the spinning
threads take the cores from the working ones. Two `mllm sft` runs at once on two cores took
16-52 s per step against 4.4 s alone (benchmarks/RESULTS.md, "threads"). So mllm:

1. makes idle OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE unless the user set a policy;
   `sleeping_idle_threads`, called by mllm.cli before torch loads): the two runs then take 7.9 s
   per step each, what one thread each gives, while a run alone keeps its speed;
2. sizes the pools (`choose_threads`, `use_threads`): `--threads N`, else $MLLM_THREADS, else
   $OMP_NUM_THREADS when the user set it, else every core this process may run on. With idle
   threads asleep, a pipeline whose stages use every core ran faster than one thread per stage
   (0.77-0.80 of its stages' time one after the other, against 0.82-1.02), so a pipeline gets no
   smaller share by default; give `--threads` to pin it.

`use_threads` also sets OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS and
NUMBA_NUM_THREADS for the processes the command starts, which otherwise would each start a pool
per core: `--workers N` processes of extract-features and synth share the count (count // N
each, at least one). torchrun ranks get what their launcher's environment says.
"""

from __future__ import annotations

import os
import sys

__all__ = ["THREADS_ENV", "available_cores", "choose_threads", "sleeping_idle_threads", "use_threads"]

THREADS_ENV = "MLLM_THREADS"
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def sleeping_idle_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, unless the user set
    a policy). Read once, when the OpenMP runtime loads (with torch): mllm.cli calls this before
    importing anything else."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_threads(requested: int | None = None, environ: dict | None = None) -> int:
    """The thread count: `requested` (--threads; 0 = decide), else $MLLM_THREADS, else
    $OMP_NUM_THREADS, else every available core. ValueError for a count below 0 or a variable
    that is not an integer."""
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
    return available_cores()


def use_threads(count: int, workers: int = 1) -> None:
    """Size every thread pool of this process to `count`, and those of the processes it starts:
    `workers` processes working at once share the count (at least one thread each).

    numba's pool: sized by NUMBA_NUM_THREADS when it starts (numba reads the variable again at
    every compilation, and refuses a new value once its threads run). Before it starts, setting
    the variable is enough; once started (an earlier call in the same process), its size is fixed,
    the variable keeps it and `count` of its threads are used."""
    numba_started = _numba_pool_started()
    for name in POOL_VARIABLES:
        if not (name == "NUMBA_NUM_THREADS" and numba_started):
            os.environ[name] = str(max(1, count // workers))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count)  # OpenBLAS/MKL/OpenMP already loaded (numpy, scipy, torch)
    if "torch" in sys.modules:  # not imported yet: it reads OMP_NUM_THREADS when it is
        import torch

        torch.set_num_threads(count)
    if numba_started:
        import numba

        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


def _numba_pool_started() -> bool:
    if "numba" not in sys.modules:
        return False
    from numba.np.ufunc import parallel

    return bool(parallel._is_initialized)
