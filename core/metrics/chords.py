"""
Chord recognition: label the chords of an excerpt over time. The estimated chord sequence is
compared with the reference segment by segment, under one of mir_eval's chord comparisons, and
the score is the fraction of the (comparable) reference duration that is labelled correctly.

Conventions
-----------
A chord sequence is a pair: intervals, an (n, 2) array of [start, end] in seconds, and n Harte
labels (``"C:maj"``, ``"A:min"``, ``"G:7"``, ``"N"`` for no chord). The estimate is cropped or
padded with ``"N"`` to the reference's span (mir_eval.util.adjust_intervals), then both are cut
at every boundary of either (mir_eval.util.merge_labeled_intervals) and each piece is weighted by
its duration. A comparison may leave a reference chord out (returns -1 for it, e.g. ``majmin``
ignores a ``C:dim`` reference); the left-out duration counts neither way.

A corpus score is duration-weighted, as MIREX computes it: every item returns its score AND the
duration it was scored on, and :func:`corpus_score` pools them.

Metrics
-------
For each comparison in :data:`COMPARISONS` (mir_eval.chord functions; ``thirds_inv``,
``triads_inv`` and ``tetrads_inv`` are accepted too):

* ``root``: same root.
* ``majmin``: same root and major/minor quality (other qualities left out).
* ``mirex``: the estimate shares at least 3 pitch classes with the reference (MIREX 2013+).
* ``thirds``, ``triads``, ``sevenths``, ``tetrads``: root plus the third / triad / seventh chord /
  full tetrad agree; ``majmin_inv`` and ``sevenths_inv`` also require the bass.

* :func:`evaluate`: (score, duration) per comparison for one item.
* :func:`corpus_score`: sum(score x duration) / sum(duration) over items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mllm.core.metrics.mir_eval_package import mir_eval_with

mir_eval = mir_eval_with("chord", "util")  # not `import mir_eval`: 0.65 s of scipy it does not need

__all__ = ["COMPARISONS", "validate", "evaluate", "corpus_score"]

COMPARISONS = ("root", "majmin", "mirex", "thirds", "triads", "sevenths", "tetrads", "majmin_inv", "sevenths_inv")
_FUNCTIONS = {
    name: getattr(mir_eval.chord, name)
    for name in (*COMPARISONS, "thirds_inv", "triads_inv", "tetrads_inv")
}


def validate(ref_intervals, ref_labels, est_intervals, est_labels) -> tuple[np.ndarray, list, np.ndarray, list]:
    """Check one item's chord sequences (shapes, interval order, labels) and return them as
    (ref_intervals (n, 2) float, ref_labels, est_intervals (m, 2) float, est_labels).
    """
    ref_intervals = np.asarray(ref_intervals, dtype=float).reshape(-1, 2)
    est_intervals = np.asarray(est_intervals, dtype=float).reshape(-1, 2)
    ref_labels, est_labels = list(ref_labels), list(est_labels)
    if len(ref_labels) == 0:
        raise ValueError("the reference has no chords: the item cannot be scored")
    if len(ref_labels) != len(ref_intervals) or len(est_labels) != len(est_intervals):
        raise ValueError("each chord interval needs exactly one label")
    mir_eval.util.validate_intervals(ref_intervals)
    if len(est_labels):
        mir_eval.util.validate_intervals(est_intervals)
    for label in (*ref_labels, *est_labels):
        try:
            mir_eval.chord.validate_chord_label(label)
        except mir_eval.chord.InvalidChordException as exc:  # not a ValueError in mir_eval
            raise ValueError(f"invalid Harte chord label {label!r}") from exc
    return ref_intervals, ref_labels, est_intervals, est_labels


def evaluate(
    ref_intervals, ref_labels, est_intervals, est_labels, comparisons: Sequence[str] = COMPARISONS
) -> dict[str, tuple[float, float]]:
    """Duration-weighted chord score of one item under each comparison, with the duration it covers.

    For a comparison c, with pieces p of the common segmentation (duration d_p) and c(p) in
    {1, 0, -1 (left out)}:

        duration = sum of d_p over pieces with c(p) >= 0
        score    = sum of d_p * c(p) over those pieces / duration     (= mir_eval.chord.weighted_accuracy)

    which is what mir_eval.chord.evaluate computes, plus the duration. When no piece is comparable
    the score is undefined: (nan, 0.0).

    Examples
    --------
    >>> ref = np.array([[0, 2], [2, 4]]), ["C:maj", "A:min"]
    >>> est = np.array([[0, 3], [3, 4]]), ["C:maj", "A:min"]
    >>> evaluate(*ref, *est, comparisons=("majmin",))
    {'majmin': (0.75, 4.0)}

    Parameters
    ----------
    ref_intervals : np.ndarray, shape=(n, 2)
        Reference [start, end] times in seconds.
    ref_labels : sequence of str
        Reference Harte labels, one per interval.
    est_intervals : np.ndarray, shape=(m, 2)
        Estimated [start, end] times in seconds (m may be 0: all "N").
    est_labels : sequence of str
        Estimated Harte labels.
    comparisons : sequence of str
        Names of mir_eval.chord comparison functions.

    Returns
    -------
    scores : dict
        comparison -> (score in [0, 1] or nan, duration in seconds).
    """
    unknown = [name for name in comparisons if name not in _FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown chord comparison(s) {unknown}; known: {sorted(_FUNCTIONS)}")
    ref_intervals, ref_labels, est_intervals, est_labels = validate(
        ref_intervals, ref_labels, est_intervals, est_labels
    )
    start, end = ref_intervals.min(), ref_intervals.max()
    if len(est_labels) == 0:
        est_intervals, est_labels = np.array([[start, end]]), [mir_eval.chord.NO_CHORD]
    # (m', 2): the estimate cropped/padded with "N" to the reference's span
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        est_intervals, est_labels, start, end, mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD
    )
    # (p, 2) pieces cut at every boundary of either sequence, with both labels per piece
    intervals, ref_pieces, est_pieces = mir_eval.util.merge_labeled_intervals(
        ref_intervals, ref_labels, est_intervals, est_labels
    )
    durations = mir_eval.util.intervals_to_durations(intervals)  # (p,)
    out = {}
    for name in comparisons:
        comparison = _FUNCTIONS[name](ref_pieces, est_pieces)  # (p,): 1 right, 0 wrong, -1 left out
        duration = float(durations[comparison >= 0].sum())
        if duration > 0:
            out[name] = (float(mir_eval.chord.weighted_accuracy(comparison, durations)), duration)
        else:
            out[name] = (math.nan, 0.0)
    return out


def corpus_score(per_item: Sequence[tuple[float, float]]) -> float:
    """Duration-weighted corpus score (MIREX style): sum(score x duration) / sum(duration).

    Items with duration 0 (nothing comparable, score nan) drop out.

    Examples
    --------
    >>> corpus_score([(0.75, 4.0), (0.0, 4.0)])
    0.375
    >>> corpus_score([(1.0, 1.0), (0.5, 3.0)])
    0.625

    Parameters
    ----------
    per_item : sequence of (score, duration)
        As returned per comparison by :func:`evaluate`.

    Returns
    -------
    score : float
        The pooled score; nan when the total duration is 0.
    """
    total = weighted = 0.0
    for score, duration in per_item:
        if duration < 0:
            raise ValueError(f"negative duration {duration}")
        if duration > 0:
            total += duration
            weighted += score * duration
    return weighted / total if total > 0 else math.nan
