"""What the model libraries print for their own developers stays off the user's stderr.

transformers, peft, torch and huggingface_hub warn about their deprecations (``FutureWarning:
`is_gradient_checkpointing` is deprecated``), log advice, and draw tqdm bars ("Loading weights:
100%|...") on stderr, where mllm writes its own progress and summaries. A command calls
:func:`quiet_libraries` once at start; it only sets warning filters and environment defaults that
the libraries read when they are imported (nothing is imported here):

* deprecation warnings (DeprecationWarning, FutureWarning) raised in those libraries are ignored,
  unless Python was given warning options (``-W``, ``PYTHONWARNINGS``), which then decide;
* their logging shows errors only, unless ``TRANSFORMERS_VERBOSITY`` is set;
* their progress bars are off when stderr is not a terminal (piped, in CI, in a log file), as
  mllm's own bars are, unless ``HF_HUB_DISABLE_PROGRESS_BARS`` is set. On a terminal a download
  from the hub still shows its bar.
"""

from __future__ import annotations

import os
import sys
import warnings

LIBRARIES = r"(transformers|peft|torch|huggingface_hub|accelerate|torchaudio)(\.|$)"


def quiet_libraries(stderr_is_terminal: bool | None = None) -> None:
    """Silence the model libraries' deprecation warnings, advice and (off a terminal) progress bars."""
    if not sys.warnoptions:
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if stderr_is_terminal is None:
        stderr_is_terminal = sys.stderr.isatty()
    if not stderr_is_terminal:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
