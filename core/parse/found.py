"""What a parser found in a text: the value, and the piece of text that decided it.

Every `find_*` function of `core.parse` returns a `Found` (or None when the text holds no
answer), so a caller can show why an answer was read the way it was (`eval-mir --per-item`
writes `matched`; a reward can log it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Found(Generic[T]):
    value: T
    text: str  # the words of the answer that gave the value, as written
    start: int = 0  # character span of `text` in the parsed string
    end: int = 0
