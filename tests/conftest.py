"""Shared test settings.

Property-based tests run 100 examples each by default; `HYPOTHESIS_PROFILE=thorough` runs 2000
(worth doing after changing a parser).
"""

import os

from hypothesis import settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
