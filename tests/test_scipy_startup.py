"""core.features.scipy_startup: scipy.signal imported without parsing docstrings, same functions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

PROBE = """
import json, sys, time
import numpy as np
if sys.argv[1] == "skip":
    from mllm.core.features.scipy_startup import skip_capability_notes
    assert skip_capability_notes()
start = time.process_time()
import scipy.signal
seconds = time.process_time() - start
b, a = scipy.signal.butter(2, 0.1)
y = scipy.signal.lfilter(b, a, np.sin(np.arange(1000) / 7.0))
print(json.dumps({"seconds": seconds, "y": y.tolist(), "doc": scipy.signal.lfilter.__doc__}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_scipy_signal_imports_faster_and_computes_the_same():
    plain, skipped = probe("plain"), probe("skip")
    assert np.array_equal(plain["y"], skipped["y"])
    # (the CPU time saved, about 1.2 s -> 0.45 s on one core, is benchmarks/features_startup.py's to measure)
    # The docstring is kept (the part before scipy's added table), only the table is gone.
    assert skipped["doc"].startswith("Filter data along one-dimension")
    assert "Array API Standard Support" in plain["doc"] and "Array API Standard Support" not in skipped["doc"]


def test_the_librosa_backend_applies_it_before_scipy_signal_loads():
    code = ("import sys; import mllm.core.features.librosa_backend; import scipy._lib._array_api as a; "
            "from mllm.core.features.scipy_startup import KeptDoc; print(a.FunctionDoc is KeptDoc, 'scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
