"""
Beat (and downbeat) tracking: list the times of the beats in an excerpt. The estimated times are
compared with the reference times by mir_eval.beat; the same metrics serve downbeats.

Conventions
-----------
Beat times are 1-d arrays of seconds. The reference must be increasing (an annotation); the
estimate is treated as a set of times and sorted first (an LLM may list them out of order).
Beats before ``trim_before`` seconds are dropped from both. mir_eval's ``trim_beats`` drops the
first 5 s because trackers need a few seconds to lock on to a full song; the default here is 0 s
because LLM benchmarks (LLark, CMI-Bench) ask about 10-30 s clips, where 5 s is a third to a half
of the answer. An empty estimate scores 0 on every metric (mir_eval's value) without mir_eval's
"empty beats" warnings; an empty reference (after trimming) raises ValueError: the item cannot be
scored.

Metrics
-------
* ``f_measure``: mir_eval.beat.f_measure, F-measure of beats matched within +-70 ms.
* ``cmlt``: mir_eval.beat.continuity, CMLt (correct metrical level, total): fraction of beats in
  continuous correct segments, the estimate at the annotated metrical level and phase.
* ``amlt``: mir_eval.beat.continuity, AMLt (allowed metrical levels, total): as CMLt but double or
  half tempo and off-beat phase also count.
* :func:`evaluate`: the three for one item.
"""

from __future__ import annotations

import warnings

import numpy as np

from mllm.core.metrics.mir_eval_package import mir_eval_with

mir_eval = mir_eval_with("beat", "util")  # not `import mir_eval`: 0.65 s of scipy it does not need

__all__ = ["validate", "evaluate"]


def validate(reference_times: np.ndarray, estimated_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check and normalise one item's beat arrays: reference (n,) increasing and non-empty,
    estimate (m,) finite; returns (reference, sorted estimate) as float arrays.
    """
    reference = np.asarray(reference_times, dtype=float)
    estimate = np.asarray(estimated_times, dtype=float)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise ValueError(f"beat times must be 1-d arrays, got shapes {reference.shape} and {estimate.shape}")
    if reference.size == 0:
        raise ValueError("the reference has no beats: the item cannot be scored")
    if not np.isfinite(estimate).all():
        raise ValueError("estimated beat times must be finite")
    mir_eval.util.validate_events(reference, mir_eval.beat.MAX_TIME)  # increasing, not absurdly late
    estimate = np.sort(estimate)
    mir_eval.util.validate_events(estimate, mir_eval.beat.MAX_TIME)
    return reference, estimate


def evaluate(reference_times: np.ndarray, estimated_times: np.ndarray, trim_before: float = 0.0) -> dict[str, float]:
    """F-measure, CMLt and AMLt of one item's beat estimate (mir_eval.beat).

    Examples
    --------
    >>> reference = np.arange(0.5, 10, 0.5)
    >>> evaluate(reference, reference)
    {'f_measure': 1.0, 'cmlt': 1.0, 'amlt': 1.0}
    >>> evaluate(reference, np.array([]))
    {'f_measure': 0.0, 'cmlt': 0.0, 'amlt': 0.0}

    Parameters
    ----------
    reference_times : np.ndarray, shape=(n,)
        Reference beat times in seconds, increasing.
    estimated_times : np.ndarray, shape=(m,)
        Estimated beat times in seconds (any order; may be empty).
    trim_before : float
        Drop beats before this time (seconds) from both arrays (mir_eval's trim_beats uses 5 s).

    Returns
    -------
    scores : dict
        ``{"f_measure": ..., "cmlt": ..., "amlt": ...}``, each in [0, 1].

    Raises
    ------
    ValueError
        When the reference is empty (before or after trimming) or an array is malformed.
    """
    reference, estimate = validate(reference_times, estimated_times)
    if trim_before > 0:
        reference = mir_eval.beat.trim_beats(reference, trim_before)
        estimate = mir_eval.beat.trim_beats(estimate, trim_before)
        if reference.size == 0:
            raise ValueError(f"the reference has no beats after {trim_before} s: the item cannot be scored")
    with warnings.catch_warnings():
        # With no or one estimated beat mir_eval warns and scores 0 (F-measure) or 0 (continuity,
        # which needs two beats); that is the intended score, and on 100k items the warnings are noise.
        if estimate.size <= 1 or reference.size <= 1:
            warnings.simplefilter("ignore", UserWarning)
        f_measure = mir_eval.beat.f_measure(reference, estimate)
        _cmlc, cmlt, _amlc, amlt = mir_eval.beat.continuity(reference, estimate)
    return {"f_measure": float(f_measure), "cmlt": float(cmlt), "amlt": float(amlt)}
