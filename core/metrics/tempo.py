"""
Tempo estimation: name the global tempo of an excerpt in beats per minute (BPM). Scored as in
LLark (and the tempo-estimation literature it follows): Acc1 asks for the reference tempo itself,
Acc2 also accepts the usual metrical-level errors (double, triple, half, a third).

Conventions
-----------
A tempo is a positive float in BPM. An estimate of ``None`` (scalar functions) or NaN (array
functions) means the answer named no tempo: it scores 0. A reference must be finite and > 0.

The tolerance is relative to the (scaled) reference: an estimate ``e`` matches a reference ``r``
at factor ``k`` when

    |e - k*r| <= tolerance * k*r

(with ``tolerance = 0.04``: 124.8 matches 120, 124.9 does not; 249.6 matches 2 x 120 at k = 2).
Boundary values written in decimal (e.g. 124.8 for 120, or 124.8 for 130) are not exact in
binary floating point, so the comparison allows a relative slack of 1e-9 on the right-hand side:
a value on the boundary counts as inside.

Metrics
-------
* :func:`acc1`: 1.0 when the estimate is within the tolerance of the reference (k = 1).
* :func:`acc2`: 1.0 when it is within the tolerance of k x reference for k in 1, 2, 3, 1/2, 1/3.
* :func:`acc1_array`, :func:`acc2_array`: the same over arrays of items (vectorised).
* :func:`evaluate`: mean Acc1 and Acc2 over items.

mir_eval's tempo metric (``mir_eval.tempo.detection``) is a different one (a P-score over two
reference tempi with a salience weight), so these are written by hand.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FACTORS", "validate", "acc1", "acc2", "acc1_array", "acc2_array", "evaluate"]

# Acc2's metrical levels, written as (multiplier, divisor) so k*r is computed as r*m/d: r/3 and
# r/2 are then as exact as floating point allows (r * (1/3) is not always r / 3).
FACTORS = ((1, 1), (2, 1), (3, 1), (1, 2), (1, 3))
_SLACK = 1e-9  # relative slack on the tolerance bound (see the module docstring)


def validate(reference: float) -> None:
    """Raise ValueError unless the reference tempo is a finite positive number."""
    if not (math.isfinite(reference) and reference > 0):
        raise ValueError(f"reference tempo must be finite and > 0, got {reference!r}")


def _matches(reference: float, estimate: float, multiplier: int, divisor: int, tolerance: float) -> bool:
    target = reference * multiplier / divisor
    return abs(estimate - target) <= tolerance * target * (1 + _SLACK)


def acc1(reference: float, estimate: float | None, tolerance: float = 0.04) -> float:
    """Acc1: 1.0 when ``|estimate - reference| <= tolerance * reference``, else 0.0.

    Examples
    --------
    >>> acc1(120, 124.8), acc1(120, 124.9), acc1(120, None)
    (1.0, 0.0, 0.0)

    Parameters
    ----------
    reference : float
        Reference tempo in BPM (> 0).
    estimate : float or None
        Estimated tempo in BPM; ``None`` (or NaN) when the answer named no tempo.
    tolerance : float
        Relative tolerance (LLark: 0.04).

    Returns
    -------
    score : float
        1.0 or 0.0.
    """
    validate(reference)
    if estimate is None:
        return 0.0
    return float(_matches(reference, float(estimate), 1, 1, tolerance))


def acc2(reference: float, estimate: float | None, tolerance: float = 0.04) -> float:
    """Acc2: 1.0 when ``|estimate - k*reference| <= tolerance * k*reference`` for some
    k in {1, 2, 3, 1/2, 1/3}, else 0.0.

    Examples
    --------
    >>> [acc2(120, e) for e in (240, 60, 40, 360, 180)]
    [1.0, 1.0, 1.0, 1.0, 0.0]

    Parameters
    ----------
    reference : float
        Reference tempo in BPM (> 0).
    estimate : float or None
        Estimated tempo in BPM; ``None`` (or NaN) when the answer named no tempo.
    tolerance : float
        Relative tolerance around each scaled reference (LLark: 0.04).

    Returns
    -------
    score : float
        1.0 or 0.0.
    """
    validate(reference)
    if estimate is None:
        return 0.0
    estimate = float(estimate)
    return float(any(_matches(reference, estimate, m, d, tolerance) for m, d in FACTORS))


def _validate_arrays(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    references = np.asarray(references, dtype=float)
    estimates = np.asarray(estimates, dtype=float)
    if references.shape != estimates.shape:
        raise ValueError(f"references {references.shape} and estimates {estimates.shape} differ in shape")
    if not (np.isfinite(references).all() and (references > 0).all()):
        raise ValueError("reference tempi must be finite and > 0")
    return references, estimates


def _matches_array(references: np.ndarray, estimates: np.ndarray, multiplier: int, divisor: int, tolerance: float):
    target = references * multiplier / divisor
    return np.abs(estimates - target) <= tolerance * target * (1 + _SLACK)  # NaN estimate -> False


def acc1_array(references: np.ndarray, estimates: np.ndarray, tolerance: float = 0.04) -> np.ndarray:
    """Acc1 of each item (see :func:`acc1`); a NaN estimate scores 0.

    Parameters
    ----------
    references, estimates : np.ndarray
        Tempi in BPM, same shape.
    tolerance : float
        Relative tolerance.

    Returns
    -------
    scores : np.ndarray
        Float array of 0.0/1.0, the shape of the inputs.
    """
    references, estimates = _validate_arrays(references, estimates)
    return _matches_array(references, estimates, 1, 1, tolerance).astype(float)


def acc2_array(references: np.ndarray, estimates: np.ndarray, tolerance: float = 0.04) -> np.ndarray:
    """Acc2 of each item (see :func:`acc2`); a NaN estimate scores 0.

    Parameters
    ----------
    references, estimates : np.ndarray
        Tempi in BPM, same shape.
    tolerance : float
        Relative tolerance around each scaled reference.

    Returns
    -------
    scores : np.ndarray
        Float array of 0.0/1.0, the shape of the inputs.
    """
    references, estimates = _validate_arrays(references, estimates)
    hit = np.zeros(references.shape, dtype=bool)
    for multiplier, divisor in FACTORS:
        hit |= _matches_array(references, estimates, multiplier, divisor, tolerance)
    return hit.astype(float)


def evaluate(references, estimates, tolerance: float = 0.04) -> dict[str, float]:
    """Mean Acc1 and Acc2 over items.

    Examples
    --------
    >>> evaluate([120, 120], [121, 60])
    {'acc1': 0.5, 'acc2': 1.0}

    Parameters
    ----------
    references : array-like of float
        Reference tempi in BPM.
    estimates : array-like of float or None
        Estimated tempi; ``None`` or NaN for no answer.
    tolerance : float
        Relative tolerance.

    Returns
    -------
    scores : dict
        ``{"acc1": mean, "acc2": mean}``; NaN for no items.
    """
    estimates = [np.nan if e is None else e for e in estimates]
    references, estimates = _validate_arrays(references, estimates)
    if references.size == 0:
        return {"acc1": float("nan"), "acc2": float("nan")}
    return {
        "acc1": float(acc1_array(references, estimates, tolerance).mean()),
        "acc2": float(acc2_array(references, estimates, tolerance).mean()),
    }
