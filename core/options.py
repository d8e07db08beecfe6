"""Checks of the numeric options every command takes, so a bad value stops the command up front.

    check_number("--confidence", 2.0, above=0, below=1)     # ValueError: --confidence must be ...

Click's own range checks let NaN through (every comparison with NaN is false) and accept `inf`;
these checks refuse both unless asked, and say the allowed range in the message, which the CLI
prints with exit code 2. The option dataclasses of core (EvalOptions, EncodeOptions, ...) call
them in their `check()`, so the Python API refuses the same values.
"""

from __future__ import annotations

import math

__all__ = ["check_number", "check_integer", "MAX_FRAME_RATE"]

# Frames per second of a stored embedding: far above any encoder's native rate (Whisper and
# wav2vec2 give 50 Hz, the DSP encoders ~43 Hz), low enough that a mistyped value cannot ask for
# gigabytes (an hour at 1000 Hz is 3.6 M frames).
MAX_FRAME_RATE = 1000.0


def check_number(name: str, value: float, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None) -> float:
    """`value` if it is a finite number within the bounds (`minimum`/`maximum` inclusive,
    `above`/`below` exclusive); ValueError naming the option otherwise."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
    if above is not None:
        bounds.append(f"> {above:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    if below is not None:
        bounds.append(f"< {below:g}")
    wanted = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {wanted}, got {value!r}") from None
    if (not math.isfinite(number) or (minimum is not None and number < minimum)
            or (maximum is not None and number > maximum) or (above is not None and number <= above)
            or (below is not None and number >= below)):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return number


def check_integer(name: str, value: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` if it is an integer within the inclusive bounds; ValueError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    check_number(name, value, minimum=minimum, maximum=maximum)
    return value
