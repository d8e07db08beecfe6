"""mir_eval_with: mir_eval's beat/chord modules without `import mir_eval`'s scipy, and the package
still whole for any later user (run in a fresh interpreter: pytest's own process has imported
mir_eval already)."""

import subprocess
import sys

CHECK = r"""
import sys
from mllm.core.metrics.mir_eval_package import mir_eval_with
mir_eval = mir_eval_with("beat", "chord", "util")
print(sorted(m for m in ("scipy.stats", "scipy.optimize", "mir_eval.alignment") if m in sys.modules))
print(round(mir_eval.beat.f_measure(__import__("numpy").array([1.0, 2.0, 3.0]), __import__("numpy").array([1.0, 2.02, 3.5])), 4))
import mir_eval as again
print(again is mir_eval, again.key.weighted_score("C major", "A minor"), again.__version__ == __import__("importlib.metadata").metadata.version("mir_eval"))
try:
    again.no_such_module
except AttributeError:
    print("AttributeError")
"""


def test_loads_only_the_task_modules_and_keeps_the_package_whole():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"  # none of the scipy modules that `import mir_eval` pulls in
    assert out[1] == "0.6667"  # 2 of 3 beats matched within 70 ms, as mir_eval computes it
    assert out[2] == "True 0.3 True"  # a later `import mir_eval` gets the same package, other tasks load on use
    assert out[3] == "AttributeError"


def test_after_a_plain_import_the_real_package_is_used():
    code = "import mir_eval, sys\nfrom mllm.core.metrics.mir_eval_package import mir_eval_with\nprint(mir_eval_with('beat') is mir_eval, 'mir_eval.alignment' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True True"
