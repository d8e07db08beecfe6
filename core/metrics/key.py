"""
Key estimation: name the global key (tonic and mode) of an excerpt. An estimate is compared with
the reference key and scored by how the two keys are related (MIREX's weighted score), or by exact
agreement.

Conventions
-----------
Keys are mir_eval key strings ``'(tonic) (mode)'``, e.g. ``'C# major'`` or ``'Eb minor'``; case is
ignored, enharmonic spellings are equal (``'Db major'`` == ``'C# major'``), the mode is ``major`` or
``minor`` (mir_eval also accepts ``other``) and ``'X'`` means "no key". An estimate of ``None``
means the answer named no key: it scores 0 on every metric. A reference must be a valid key string.

Metrics
-------
* :func:`weighted_score`: MIREX weighted score (1.0 / 0.5 / 0.3 / 0.2 / 0.0), mir_eval's
  definition (written out, checked against mir_eval.key), optionally with MIREX 2017's "fifth
  below" case.
* :func:`exact`: 1.0 when tonic pitch class and mode agree.
* :func:`evaluate`: both, averaged over a list of items.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["validate", "weighted_score", "exact", "evaluate"]

# mir_eval.key's definitions (0.8.2), written out here: importing mir_eval costs about 1 s (its
# package imports every submodule, and scipy.stats with them), more than scoring 100,000 keys, and
# `mllm eval-mir` on a key file should start in a fraction of that. tests/test_metrics_key.py
# checks validation, splitting and the weighted score against mir_eval.key on every pair of keys.
_SEMITONE = {"c": 0, "c#": 1, "db": 1, "d": 2, "d#": 3, "eb": 3, "e": 4, "f": 5, "f#": 6, "gb": 6, "g": 7,
             "g#": 8, "ab": 8, "a": 9, "a#": 10, "bb": 10, "b": 11}
_MODES = ("major", "minor", "other")


def _validate_key(key: str) -> None:
    """mir_eval.key.validate_key: raise ValueError unless `key` is ``'(tonic) (mode)'`` or ``'X'``."""
    parts = key.split()
    if key.lower() == "x":
        return
    if len(parts) != 2:
        raise ValueError(f"'{key}' is not in the form '(key) (mode)' or 'X'")
    tonic, mode = parts
    if tonic.lower() == "x":
        raise ValueError(f"Mode {mode} is invalid; 'X' (Uncategorized) doesn't have mode")
    if tonic.lower() not in _SEMITONE:
        raise ValueError(f"Key {tonic} is invalid; should be e.g. D or C# or Eb or X (Uncategorized)")
    if mode not in _MODES:
        raise ValueError(f"Mode '{mode}' is invalid; must be 'major', 'minor' or 'other'")


def _split_key(key: str) -> tuple[int | None, str | None]:
    """mir_eval.key.split_key_string: ``'C# major'`` -> (1, 'major'); ``'X'`` -> (None, None)."""
    if key.lower() == "x":
        return None, None
    tonic, mode = key.split()
    return _SEMITONE[tonic.lower()], mode


def validate(reference: str, estimate: str | None) -> None:
    """Raise ValueError unless `reference` (and `estimate`, when given) are mir_eval key strings."""
    _validate_key(reference)
    if estimate is not None:
        _validate_key(estimate)


# Evaluation calls these per item on up to 100k items, and the 24 keys (+ X) make at most ~650
# distinct (reference, estimate) pairs: the cache turns the parsing into a dict look-up.
@lru_cache(maxsize=4096)
def _weighted_score(reference: str, estimate: str, descending_fifths: bool) -> float:
    validate(reference, estimate)
    ref_tonic, ref_mode = _split_key(reference)
    est_tonic, est_mode = _split_key(estimate)
    if ref_tonic == est_tonic and ref_mode == est_mode:
        return 1.0
    if ref_tonic is None or est_tonic is None:
        return 0.0
    interval = (est_tonic - ref_tonic) % 12  # semitones from the reference's tonic up to the estimate's
    if est_mode == ref_mode:
        # mir_eval scores only the fifth ABOVE; MIREX 2017 also the fifth below (5 semitones up)
        return 0.5 if interval == 7 or (descending_fifths and interval == 5) else 0.0
    if (ref_mode == "major" and interval == 9) or (ref_mode == "minor" and interval == 3):
        return 0.3  # relative minor / relative major
    if interval == 0:
        return 0.2  # parallel
    return 0.0


def weighted_score(reference: str, estimate: str | None, descending_fifths: bool = False) -> float:
    """MIREX weighted key score (mir_eval.key.weighted_score), by the relation of estimate to reference:

    ==================================================================  =====
    Relation of the estimated key to the reference key                  Score
    ==================================================================  =====
    same tonic pitch class and mode (enharmonics equal)                 1.0
    a perfect fifth ABOVE the reference, same mode (C major -> G major) 0.5
    a perfect fifth BELOW, same mode (C major -> F major), only when
    ``descending_fifths`` (MIREX 2017 variant; not in mir_eval 0.8.2)   0.5
    relative major/minor (C major <-> A minor)                          0.3
    parallel major/minor (C major <-> C minor)                          0.2
    anything else, and no answer (``None``)                             0.0
    ==================================================================  =====

    Examples
    --------
    >>> weighted_score("C major", "G major")
    0.5
    >>> weighted_score("C major", "F major"), weighted_score("C major", "F major", descending_fifths=True)
    (0.0, 0.5)
    >>> weighted_score("A minor", "C major")
    0.3

    Parameters
    ----------
    reference : str
        Reference key, e.g. ``"C# major"``.
    estimate : str or None
        Estimated key; ``None`` when the answer named no key.
    descending_fifths : bool
        Also give 0.5 to an estimate a fifth below the reference.

    Returns
    -------
    score : float
        One of 1.0, 0.5, 0.3, 0.2, 0.0.
    """
    if estimate is None:
        _validate_key(reference)
        return 0.0
    return _weighted_score(reference, estimate, bool(descending_fifths))


@lru_cache(maxsize=4096)
def _exact(reference: str, estimate: str) -> float:
    validate(reference, estimate)
    return float(_split_key(reference) == _split_key(estimate))


def exact(reference: str, estimate: str | None) -> float:
    """Exact key agreement: 1.0 when tonic pitch class and mode are the same, else 0.0.

    Enharmonic spellings are equal; ``'X'`` agrees only with ``'X'``; ``None`` scores 0.

    Examples
    --------
    >>> exact("C# major", "Db major"), exact("C major", "C minor"), exact("C major", None)
    (1.0, 0.0, 0.0)

    Parameters
    ----------
    reference : str
        Reference key.
    estimate : str or None
        Estimated key, ``None`` when the answer named no key.

    Returns
    -------
    score : float
        1.0 or 0.0.
    """
    if estimate is None:
        _validate_key(reference)
        return 0.0
    return _exact(reference, estimate)


def evaluate(
    references: Sequence[str], estimates: Sequence[str | None], descending_fifths: bool = False
) -> dict[str, float]:
    """Mean weighted score and mean exact accuracy over items.

    Examples
    --------
    >>> evaluate(["C major", "A minor"], ["G major", None])
    {'weighted_score': 0.25, 'accuracy': 0.0}

    Parameters
    ----------
    references : sequence of str
        One reference key per item.
    estimates : sequence of str or None
        One estimate per item (``None``: no answer).
    descending_fifths : bool
        See :func:`weighted_score`.

    Returns
    -------
    scores : dict
        ``{"weighted_score": mean, "accuracy": mean}`` in that order; NaN for no items.
    """
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
    n = len(references)
    if n == 0:
        return {"weighted_score": float("nan"), "accuracy": float("nan")}
    weighted = sum(weighted_score(r, e, descending_fifths) for r, e in zip(references, estimates))
    accurate = sum(exact(r, e) for r, e in zip(references, estimates))
    return {"weighted_score": weighted / n, "accuracy": accurate / n}
