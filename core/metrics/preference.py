"""
Pairwise preference: two clips, A and B, made for one prompt, and a judgement of which is better
(on one axis: musicality, or alignment to the prompt). A reward model is scored by how often its
decision agrees with the human one (CMI-RewardBench's preference accuracy: Music Arena, CMI-Pref).

Conventions
-----------
A judgement is one of four labels, case ignored:

    "a"        A is better            ("model_a" is read the same: CMI-RewardBench's spelling)
    "b"        B is better            ("model_b")
    "both"     a tie: both equally good
    "neither"  a tie: both equally bad

and is written as an *outcome*: +1 (A), -1 (B), 0 (a tie; "both" and "neither" are the same
outcome, as CMI-RewardBench's evaluator maps "neither" to "both"). A reward model gives a score per
clip; its decision comes from the difference d = score_a - score_b and a tie margin m >= 0:

    +1 if d > m,   -1 if d < -m,   0 (a tie) if |d| <= m.

With m = 0 only exactly equal scores tie. (CMI-RewardBench's scripts never predict a tie from
scores: equal scores go to B in its inference script and to A in its Music Arena evaluator; with
float scores that is a difference of measure zero, and a tie is the honest reading of it.)

Metrics
-------
* :func:`agreement`: the credit of one pair, 1 - |human - model| / 2: 1 when the outcomes agree
  (a tie predicted for a tie included), 0.5 when exactly one side is a tie, 0 when they disagree.
* :func:`preference_accuracy`: the mean credit over pairs (ties counted 0.5, as CMI-RewardBench).
* :func:`decided_accuracy`: the same over the pairs the human decided (A or B): the protocol of
  CMI-RewardBench's Music Arena set, whose tied pairs were removed.
* :func:`evaluate`: both, with the number of pairs and of ties on each side.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

__all__ = [
    "LABELS", "OUTCOMES", "read_label", "validate", "decide", "agreement", "preference_accuracy",
    "decided_accuracy", "evaluate",
]

# label -> outcome; the spellings accepted (lowercased, stripped)
OUTCOMES = {"a": 1, "model_a": 1, "b": -1, "model_b": -1, "both": 0, "neither": 0}
LABELS = ("a", "b", "both", "neither")


def read_label(label) -> int:
    """The outcome (+1, -1, 0) of a judgement label; ValueError for anything else.

    Examples
    --------
    >>> read_label("A"), read_label("model_b"), read_label("neither")
    (1, -1, 0)
    """
    if isinstance(label, str):
        outcome = OUTCOMES.get(label.strip().lower())
        if outcome is not None:
            return outcome
    raise ValueError(f"a preference is one of {', '.join(LABELS)} (or model_a, model_b), got {label!r}")


def validate(human, model) -> tuple[np.ndarray, np.ndarray]:
    """Both outcome arrays as 1-d int arrays of -1/0/+1; ValueError when shapes differ or a
    value is not an outcome."""
    human = np.asarray(human)
    model = np.asarray(model)
    if human.ndim != 1 or human.shape != model.shape:
        raise ValueError(f"human {human.shape} and model {model.shape} must be 1-d arrays of equal length")
    for name, values in (("human", human), ("model", model)):
        if values.size and not np.isin(values, (-1, 0, 1)).all():
            raise ValueError(f"{name} outcomes must be -1 (B), 0 (tie) or +1 (A)")
    return human.astype(int), model.astype(int)


def decide(score_a, score_b, margin: float = 0.0) -> np.ndarray:
    """The model's outcome per pair from its two scores: +1 when score_a - score_b > margin,
    -1 when it is < -margin, 0 (a tie) otherwise.

    Examples
    --------
    >>> decide([0.9, 0.2, 0.5], [0.1, 0.3, 0.5]).tolist()
    [1, -1, 0]
    >>> decide([0.9, 0.2], [0.1, 0.3], margin=0.2).tolist()
    [1, 0]

    Parameters
    ----------
    score_a, score_b : array-like, shape=(n,)
        Finite scores of clip A and clip B (higher is better).
    margin : float
        Tie margin, >= 0.

    Returns
    -------
    outcome : np.ndarray of int, shape=(n,)
    """
    score_a = np.asarray(score_a, dtype=float)
    score_b = np.asarray(score_b, dtype=float)
    if score_a.shape != score_b.shape:
        raise ValueError(f"score_a {score_a.shape} and score_b {score_b.shape} must have one shape")
    if not (np.isfinite(score_a).all() and np.isfinite(score_b).all()):
        raise ValueError("scores must be finite")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"the tie margin must be a finite number >= 0, got {margin!r}")
    difference = score_a - score_b
    return np.where(difference > margin, 1, np.where(difference < -margin, -1, 0))


def agreement(human, model) -> np.ndarray:
    """Credit of each pair: 1 - |human - model| / 2 with outcomes in {-1, 0, +1}:

        human \\ model    A     tie    B
        A                1     0.5    0
        tie              0.5   1      0.5
        B                0     0.5    1

    Examples
    --------
    >>> agreement([1, 1, 0, -1], [1, 0, 0, 1]).tolist()
    [1.0, 0.5, 1.0, 0.0]
    """
    human, model = validate(human, model)
    return 1.0 - np.abs(human - model) / 2.0


def preference_accuracy(human, model) -> float:
    """Preference accuracy: the mean of :func:`agreement` over the n pairs, a tie on either side
    counted 0.5 (CMI-RewardBench). NaN with no pair.

    Examples
    --------
    >>> preference_accuracy([1, -1, 0, 1], [1, 1, 1, 0])
    0.5

    Parameters
    ----------
    human, model : array-like of int, shape=(n,)
        Outcomes: +1 (A better), -1 (B better), 0 (tie).

    Returns
    -------
    accuracy : float
        In [0, 1], or NaN.
    """
    credit = agreement(human, model)
    return float(credit.mean()) if credit.size else math.nan


def decided_accuracy(human, model) -> float:
    """Preference accuracy over the pairs the human decided (outcome +1 or -1) only; a tie the
    model predicts there still earns 0.5. NaN when the human decided none.

    Examples
    --------
    >>> decided_accuracy([1, -1, 0, 1], [1, 1, 1, 0])
    0.5
    """
    human, model = validate(human, model)
    decided = human != 0
    return preference_accuracy(human[decided], model[decided]) if decided.any() else math.nan


def evaluate(human, model) -> OrderedDict:
    """Every preference metric: accuracy, decided_accuracy, n, n_human_ties, n_model_ties.

    Examples
    --------
    >>> dict(evaluate([1, 0], [1, 1]))
    {'accuracy': 0.75, 'decided_accuracy': 1.0, 'n': 2, 'n_human_ties': 1, 'n_model_ties': 0}
    """
    human, model = validate(human, model)
    return OrderedDict(
        accuracy=preference_accuracy(human, model),
        decided_accuracy=decided_accuracy(human, model),
        n=int(human.size),
        n_human_ties=int((human == 0).sum()),
        n_model_ties=int((model == 0).sum()),
    )
