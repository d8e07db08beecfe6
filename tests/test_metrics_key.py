"""core.metrics.key: the MIREX weighted-score table, by hand and against mir_eval."""

from __future__ import annotations

import mir_eval
import pytest

from mllm.core.metrics import key

# (reference, estimate, score by hand, score with descending_fifths, relation)
TABLE = [
    ("C major", "C major", 1.0, 1.0, "same key"),
    ("A minor", "a minor", 1.0, 1.0, "same key, case ignored"),
    ("C# major", "Db major", 1.0, 1.0, "enharmonic spelling"),
    ("Eb minor", "D# minor", 1.0, 1.0, "enharmonic spelling, minor"),
    ("C major", "G major", 0.5, 0.5, "fifth above"),
    ("A minor", "E minor", 0.5, 0.5, "fifth above, minor"),
    ("B major", "F# major", 0.5, 0.5, "fifth above across the octave"),
    ("C major", "F major", 0.0, 0.5, "fifth below"),
    ("E minor", "A minor", 0.0, 0.5, "fifth below, minor"),
    ("C major", "G minor", 0.0, 0.0, "fifth above, other mode"),
    ("C major", "F minor", 0.0, 0.0, "fifth below, other mode"),
    ("C major", "A minor", 0.3, 0.3, "relative minor"),
    ("A minor", "C major", 0.3, 0.3, "relative major"),
    ("F# minor", "A major", 0.3, 0.3, "relative major, sharp"),
    ("C major", "C minor", 0.2, 0.2, "parallel minor"),
    ("C minor", "C major", 0.2, 0.2, "parallel major"),
    ("C major", "D major", 0.0, 0.0, "other"),
    ("C major", "E minor", 0.0, 0.0, "other (mediant)"),
    ("C major", "X", 0.0, 0.0, "no key estimated as X"),
    ("X", "X", 1.0, 1.0, "both no key"),
]


@pytest.mark.parametrize("reference, estimate, expected, expected_descending, relation", TABLE)
def test_weighted_score_table(reference, estimate, expected, expected_descending, relation):
    assert key.weighted_score(reference, estimate) == expected, relation
    assert key.weighted_score(reference, estimate, descending_fifths=True) == expected_descending, relation


@pytest.mark.parametrize("reference, estimate, expected, expected_descending, relation", TABLE)
def test_weighted_score_is_mir_evals(reference, estimate, expected, expected_descending, relation):
    assert key.weighted_score(reference, estimate) == mir_eval.key.weighted_score(reference, estimate)


def test_descending_fifths_is_not_in_mir_eval():
    # the reason the extra case is hand-written: mir_eval scores the fifth below as "other"
    assert mir_eval.key.weighted_score("C major", "F major") == 0.0
    assert key.weighted_score("C major", "F major", descending_fifths=True) == 0.5


def test_every_pair_of_keys_against_mir_eval():
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    keys = [f"{n} {m}" for n in names for m in ("major", "minor")]
    for reference in keys:
        for estimate in keys:
            expected = mir_eval.key.weighted_score(reference, estimate)
            assert key.weighted_score(reference, estimate) == expected
            ref_tonic, ref_mode = mir_eval.key.split_key_string(reference)
            est_tonic, est_mode = mir_eval.key.split_key_string(estimate)
            fifth_below = ref_mode == est_mode and (est_tonic - ref_tonic) % 12 == 5
            assert key.weighted_score(reference, estimate, True) == (0.5 if fifth_below else expected)
            assert key.exact(reference, estimate) == float(reference == estimate)


def test_every_spelling_mode_and_x_against_mir_eval():
    # the definitions are written out (mir_eval's import costs ~1 s): every spelling mir_eval knows,
    # its three modes, X, and malformed strings raise where mir_eval raises
    keys = ["X", "x"] + [f"{t} {m}" for t in mir_eval.key.KEY_TO_SEMITONE if t != "x"
                         for t in (t, t.upper()) for m in ("major", "minor", "other")]
    for reference in keys:
        assert key._split_key(reference) == mir_eval.key.split_key_string(reference)
        for estimate in keys:
            assert key.weighted_score(reference, estimate) == mir_eval.key.weighted_score(reference, estimate), (
                reference, estimate)
            expected_exact = mir_eval.key.split_key_string(reference) == mir_eval.key.split_key_string(estimate)
            assert key.exact(reference, estimate) == float(expected_exact)
    for bad in ["", " ", "C", "H major", "C Major", "C dorian", "X major", "x minor", "C major extra", " X", "Cb major"]:
        with pytest.raises(ValueError) as ours:
            key.validate(bad, None)
        with pytest.raises(ValueError) as theirs:
            mir_eval.key.validate_key(bad)
        assert str(ours.value) == str(theirs.value)


def test_importing_the_key_metrics_does_not_import_mir_eval():
    import subprocess
    import sys

    probe = "import sys\nimport mllm.core.metrics.key\nprint('mir_eval' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def test_none_estimate_scores_zero():
    assert key.weighted_score("C major", None) == 0.0
    assert key.weighted_score("C major", None, descending_fifths=True) == 0.0
    assert key.exact("C major", None) == 0.0


def test_exact():
    assert key.exact("C# major", "Db major") == 1.0
    assert key.exact("C major", "c major") == 1.0
    assert key.exact("C major", "G major") == 0.0  # half credit in the weighted score, none here
    assert key.exact("C major", "C minor") == 0.0
    assert key.exact("A minor", "C major") == 0.0


def test_invalid_keys_raise():
    with pytest.raises(ValueError):
        key.weighted_score("H major", "C major")
    with pytest.raises(ValueError):
        key.weighted_score("C major", "C dorian")
    with pytest.raises(ValueError):
        key.exact("C", "C major")
    with pytest.raises(ValueError):
        key.weighted_score("nonsense", None)


def test_evaluate_means_in_order():
    scores = key.evaluate(["C major", "A minor", "C major", "C major"], ["G major", "A minor", None, "F major"])
    assert list(scores) == ["weighted_score", "accuracy"]
    assert scores["weighted_score"] == pytest.approx((0.5 + 1.0 + 0 + 0) / 4)
    assert scores["accuracy"] == pytest.approx(1 / 4)
    descending = key.evaluate(["C major", "C major"], ["F major", "C major"], descending_fifths=True)
    assert descending["weighted_score"] == pytest.approx(0.75)


def test_evaluate_length_mismatch():
    with pytest.raises(ValueError):
        key.evaluate(["C major"], [])
