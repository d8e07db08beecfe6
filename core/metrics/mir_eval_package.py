"""mir_eval's task modules without the cost of `import mir_eval`.

`import mir_eval` runs its `__init__`, which imports every task module; `alignment` and
`separation` pull in scipy.stats and scipy.optimize: 0.65 s of the 0.70 s it takes on a small CPU,
for modules eval-mir never calls (beats and chords need only `beat`, `chord` and `util`, numpy
alone). mir_eval has no lighter entry point, so when it is not imported yet, `mir_eval_with`
registers its package without running `__init__` and imports just the submodules asked for. The
package gets a module `__getattr__` (PEP 562) that imports any other submodule on first use, so
`mir_eval.key.weighted_score` and `mir_eval.__version__` still work for any later user in the same
process, as after a plain `import mir_eval`.

    mir_eval = mir_eval_with("beat", "util")
    mir_eval.beat.f_measure(reference, estimate)
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from types import ModuleType

__all__ = ["mir_eval_with"]


def _submodule_on_first_use(name: str):
    if name == "__version__":
        return importlib.metadata.version("mir_eval")
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"mir_eval.{name}")
    except ModuleNotFoundError as error:
        raise AttributeError(f"module 'mir_eval' has no attribute {name!r}") from error


def _package() -> ModuleType:
    if "mir_eval" in sys.modules:
        return sys.modules["mir_eval"]
    spec = importlib.util.find_spec("mir_eval")
    if spec is None:
        raise ModuleNotFoundError("No module named 'mir_eval'", name="mir_eval")
    package = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    package.__getattr__ = _submodule_on_first_use
    sys.modules["mir_eval"] = package
    return package


def mir_eval_with(*submodules: str) -> ModuleType:
    """The mir_eval package with `submodules` (e.g. "beat", "util") imported."""
    package = _package()
    for name in submodules:
        importlib.import_module(f"mir_eval.{name}")
    return package
