"""Start-up of scipy.signal without its docstring rewriting (about 0.7 s of CPU per process).

    skip_capability_notes()   # before the first `import scipy.signal` (librosa, pyloudnorm)

SciPy 1.17's `xp_capabilities` decorator, applied at import time to every function of
scipy.signal, scipy.stats, scipy.interpolate, ... that declares its array-API support, parses the
function's docstring with numpydoc's `FunctionDoc`, appends a Notes table and renders it back: on
this project's path (librosa and pyloudnorm import scipy.signal, which pulls scipy.stats) that is
about 1.2 s -> 0.45 s of CPU for `import scipy.signal` on one core, a third of the start-up of
`mllm extract-features`. Nothing reads those notes but `help()` and Sphinx.

`skip_capability_notes` gives the decorator a stand-in for `FunctionDoc` that keeps each docstring
as it was (less its leading blank space) and drops the Notes table. Functions, their arguments and
results are untouched; only the docstrings of the functions decorated afterwards, in this
process, lack the "Array API Standard Support" table. Where SciPy's internals differ (another
version: no `scipy._lib._array_api.FunctionDoc`), it does nothing and returns False. It is applied
only to the SciPy minor releases it was checked on (`CHECKED_SCIPY`): a later SciPy may ask more of
the parsed docstring, and a failed import would cost more than the 0.7 s it saves.
"""

from __future__ import annotations

import sys

CHECKED_SCIPY = ("1.17.",)  # scipy.__version__ prefixes this stand-in was checked against


class KeptDoc:
    """What `xp_capabilities` needs of FunctionDoc: `doc["Notes"].append(...)` and `str(doc)`
    (a signature line, then the docstring), without parsing."""

    def __init__(self, function) -> None:
        self.doc = getattr(function, "__doc__", None) or ""
        self.sections: dict[str, list] = {}

    def __getitem__(self, name: str) -> list:
        return self.sections.setdefault(name, [])

    def __str__(self) -> str:
        return "\n" + self.doc  # the decorator drops the first line (numpydoc's signature)


def skip_capability_notes() -> bool:
    """Make scipy's `xp_capabilities` keep docstrings unparsed in this process (see the module
    docstring); True when it is in place, False when this SciPy has no such decorator."""
    try:
        import scipy
        from scipy._lib import _array_api
    except ImportError:
        return False
    if not scipy.__version__.startswith(CHECKED_SCIPY):
        return False
    if not hasattr(_array_api, "FunctionDoc") or not hasattr(_array_api, "xp_capabilities"):
        return False
    if "scipy.signal" not in sys.modules:  # already imported: its cost is paid, nothing to gain
        _array_api.FunctionDoc = KeptDoc
    return _array_api.FunctionDoc is KeptDoc
