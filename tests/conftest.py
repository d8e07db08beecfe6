"""Shared test settings.

Property-based tests run 100 examples each by default; `HYPOTHESIS_PROFILE=thorough` runs 2000
(worth doing after changing a parser).
"""

import os

from mllm.core.threads import sleeping_idle_threads

# As `mllm` does before torch loads (core/threads.py): idle OpenMP threads of the in-process tests
# sleep instead of spinning against the `mllm` subprocesses some tests start.
sleeping_idle_threads()

from hypothesis import settings  # noqa: E402

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
