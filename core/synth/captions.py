"""Template captions of rendered clips: what the labels say, in one of several phrasings (seeded).

    "A driving rock piece in A minor at 128 BPM in 4/4, with distorted guitar, electric bass and drums."

Every fact in a caption is a label of the same clip (style, key, tempo, meter, instruments, the
chord loop, the source score) or a word for a numeric attribute read from a fixed table
(`ENERGY_WORDS`, `BRIGHTNESS_WORDS`); no word names an emotion.
"""

from __future__ import annotations

import numpy as np

__all__ = ["caption", "TEMPLATES", "SCORE_TEMPLATES"]

# (upper bound, word): the first bound the value is below.
ENERGY_WORDS = ((3.0, "gentle"), (4.5, "relaxed"), (6.0, "steady"), (7.5, "lively"), (10.0, "driving"))
BRIGHTNESS_WORDS = ((3.5, "dark"), (6.0, "warm"), (10.0, "bright"))
TEMPO_WORDS = ((76, "slow"), (108, "moderate"), (140, "fast"), (1000, "very fast"))
METER_WORDS = {"4/4": "common time", "3/4": "waltz time", "6/8": "compound duple time"}

TEMPLATES = (
    "{An_energy} {genre} piece in {key} at {tempo} BPM in {meter}, with {instruments}.",
    "{Genre} in {key}, {tempo} BPM, {meter}: {instruments} over a {loop} progression.",
    "{Instruments} play a {brightness} {genre} tune in {key} at a {tempo_word} {tempo} BPM.",
    "{A_tempo_word} {genre} track in {meter_words} ({meter}), key of {key}, featuring {instruments}.",
    "{An_energy}, {brightness} {genre} clip: {instruments}; {key}; {tempo} beats per minute in {meter}.",
)
SCORE_TEMPLATES = (
    "{Title} in {key}, played by {ensemble} at {tempo} BPM in {meter}.",
    "{Ensemble} plays {title_lower}, in {key}, {tempo} BPM, {meter}.",
    "{An_energy} rendition of {title_lower} in {key} for {ensemble}, at a {tempo_word} {tempo} BPM in {meter_words}.",
)


def _word(table: tuple, value: float) -> str:
    return next(word for bound, word in table if value < bound)


def _article(word: str) -> str:
    return ("An " if word[0].lower() in "aeiou" else "A ") + word


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def caption(rng: np.random.Generator, labels: dict, *, loop: str | None = None, title: str | None = None, ensemble: str | None = None) -> str:
    """One caption of a clip from its labels; `title`/`ensemble` for a score, `loop` for a generated piece."""
    energy_word = _word(ENERGY_WORDS, labels["energy"])
    tempo_word = _word(TEMPO_WORDS, labels["tempo_bpm"])
    instruments = _listing(labels["instruments"])
    values = {
        "genre": labels["genre"], "Genre": labels["genre"].capitalize(), "key": labels["key"],
        "tempo": f"{labels['tempo_bpm']:g}", "meter": labels["time_signature"],
        "meter_words": METER_WORDS.get(labels["time_signature"], labels["time_signature"]),
        "instruments": instruments, "Instruments": instruments[0].upper() + instruments[1:],
        "An_energy": _article(energy_word), "brightness": _word(BRIGHTNESS_WORDS, labels["brightness"]),
        "tempo_word": tempo_word, "A_tempo_word": _article(tempo_word), "loop": loop or "",
    }
    if title is not None:
        ensemble = ensemble or "an ensemble"
        values.update(
            Title=title[0].upper() + title[1:], title_lower=title[0].lower() + title[1:],
            ensemble=ensemble, Ensemble=ensemble[0].upper() + ensemble[1:],
        )
        templates = SCORE_TEMPLATES
    else:
        templates = TEMPLATES if loop else tuple(t for t in TEMPLATES if "{loop}" not in t)
    return templates[int(rng.integers(len(templates)))].format(**values)
