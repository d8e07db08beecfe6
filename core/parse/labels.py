"""Reading labels of a closed set (genres, instruments, moods, tags) out of free text.

    genres = LabelSet.of(["blues", "hiphop", "rock"])
    find_labels("Sounds like hip-hop, not rock.", genres)  -> [Found("hiphop", "hip-hop")]
    genres.canonical("Hip Hop")                           -> "hiphop"

Phrasings accepted (the tests use this list):

    "This is a blues song."  "Pop."  "ROCK"  "rock music"          case and punctuation are free
    "hip-hop"  "hip hop"  "Hip_Hop"  -> hiphop                     separators and their absence
    "guitars"  "Pianos"                                            plurals of the set's labels
    "drum kit"  "drum set"  "drummer"  -> drums                     built-in synonyms (SYNONYM_GROUPS)
    "singing"  "a singer"  "voice"  -> vocals
    "It's not rock, it's jazz."  -> jazz                           negated mentions are skipped
    "There are no vocals or drums; just piano."  -> piano          ("not", "no", "without", "n't", ...)
    "punk rock"  with labels {punk rock, rock}  -> punk rock        the longest label wins
    "It sounds like rock or pop"  -> rock, pop                     every label named, in order
    "Belting"  -> belt   "sadness" -> sad   "calmness" -> calm      word forms of a label (Snowball stems)
    "happiness" -> happy   "rocking" -> rock   "inhaling" -> inhaled
Not matched:
    "rocket" (rock)   "sadly" (sad)   "lovely" (love)   "metallic" (metal)   "popping" (pop)
    "sadder" (sad)   "classic" (classical)   "blue" (blues)   "melancholy" (sad: a synonym, give it with --synonyms)

Rules:
- Text and labels are compared lower-cased, with "-", "_" and "/" read as spaces and "&" as "and".
- A built-in synonym is used only for a label of the set, and only when the synonym is not itself a
  label of the set ("percussion" stays its own label where the set has it). Users add synonyms with
  `LabelSet.of(labels, {"label": ["synonym", ...]})` (`eval-mir --synonyms FILE`).
- A mention is negated when "not", "no", "non", "without", "n't", "never", "nor", "rather than",
  "instead of", "lacks", "absence of" stands at most three words before it in the same clause.
- Each label is returned once, at its first (non-negated) mention.
- Word forms: a word of the text names a one-word label of the set (or a user's synonym) when
  the Snowball English (Porter 2) stemmer gives both the same stem, each word is that stem plus
  nothing, "e", "s", "es", "ed", "ing" or "ness" (a final "y" may stand for the stem's "i":
  happy, happiness), and the text's word is not the label cut short ("blue" is not "blues").
  Inflections and "-ness" nouns match ("relaxed" names "relaxing"); words that only share a stem
  do not: "-ly", "-al", "-ic" endings ("sadly", "metallic"; "classic" and "classical" are
  different labels either way round: classic rock is not classical music) and doubled
  consonants ("popping" is a bass technique, not pop). A label that is itself a derivation
  ("classical", "percussion") gets only its plural. The stemmer is rules, no downloaded data.
  The built-in synonym groups list their own forms ("drumming", "rapping"); "voicing" is not a
  form of "voice" (chord voicings). "melancholy" for "sad" is a synonym, not a word form: give
  it with `--synonyms`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mllm.core.parse.found import Found

__all__ = ["LabelSet", "find_labels", "normalise", "SYNONYM_GROUPS"]

# Terms that name the same thing in music tagging data sets (GTZAN, MTG-Jamendo, MagnaTagATune,
# NSynth, MusicCaps captions). A label of the set takes the other members of its group as synonyms.
SYNONYM_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group)
    for group in (
        {"drums", "drum", "drum kit", "drum set", "drumkit", "drumset", "drummer", "drumming"},
        {"vocals", "vocal", "voice", "voices", "singing", "singer", "singers", "vocalist", "sung"},
        {"hiphop", "hip hop", "hip hop music", "rap", "rapping"},
        {"rnb", "r and b", "rhythm and blues"},
        {"electronic", "electronica", "electronic music"},
        {"guitar", "guitarist"},
        {"piano", "pianist"},
        {"bass", "bass guitar", "bassist", "electric bass"},
        {"violin", "fiddle"},
        {"saxophone", "sax"},
        {"synthesizer", "synth", "synthesiser"},
        {"keyboard", "keys"},
        {"strings", "string", "string section"},
        {"orchestra", "orchestral"},
        {"female vocals", "female vocal", "female voice", "female singer", "woman singing"},
        {"male vocals", "male vocal", "male voice", "male singer", "man singing"},
        {"no vocals", "no voice", "instrumental"},
    )
)

NEGATION = re.compile(
    r"(?:\b(?:not|no|non|without|never|nor|lacks?|lacking)|n't|\brather\s+than|\binstead\s+of|\babsence\s+of)"
    r"((?:\s+(?:any|really|quite|a|an|the|much|or|nor|and|[a-z']+)){0,3})[\s-]+$"
)
CLAUSE_BREAK = re.compile(r"[.;:!?,()\n]|\bbut\b")


def normalise(text: str) -> str:
    """Lower case, "-", "_", "/" as spaces, "&" as "and", single spaces, no end punctuation."""
    text = text.lower().replace("&", " and ")
    text = re.sub(r"[-_/]+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" .,;:!?\"'")


WORD_FORM_ENDINGS = ("", "e", "s", "es", "ed", "ing", "ness")
NOT_WORD_FORMS = frozenset({"voicing", "voicings"})  # chord voicings, not voice


@lru_cache(maxsize=1)
def _snowball():
    # The Snowball project's own Python stemmers (snowballstemmer), not NLTK's copy: importing nltk
    # costs about 1.2 s (it imports scipy.stats), longer than reading 100k answers.
    import snowballstemmer

    return snowballstemmer.stemmer("english").stemWord


@lru_cache(maxsize=65536)
def _word_form_stem(word: str) -> str | None:
    """The Snowball stem of `word` when the word is that stem plus one of WORD_FORM_ENDINGS, else None.

    "belting" -> "belt", "happy" -> "happi" (a final "y" of the word reads "i" in the stem),
    "happiness" -> "happi"; "sadly" -> None ("sad" + "ly"), "popping" -> None ("pop" + "ping").
    """
    if word in NOT_WORD_FORMS:
        return None
    stem = _snowball()(word)
    if word.startswith(stem) or (stem.endswith("i") and word.startswith(stem[:-1] + "y")):
        return stem if word[len(stem) :] in WORD_FORM_ENDINGS else None
    return None


def _alias_pattern(alias: str) -> str:
    words = alias.split(" ")
    body = r"[\s_/-]*".join(re.escape(w) for w in words) if len(words) > 1 else re.escape(alias)
    plural = r"(?:es)?" if alias.endswith("s") else r"(?:s|es)?"
    return body + plural


@dataclass(frozen=True)
class LabelSet:
    """A closed label set with its aliases (normalised form -> canonical label)."""

    labels: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    pattern: re.Pattern | None = None  # one alternative per alias, longest first, then word forms
    ordered: tuple[str, ...] = ()  # the aliases in the pattern's order
    word_forms: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # stem -> (label, its alias)

    @classmethod
    def of(cls, labels: Sequence[str], synonyms: Mapping[str, Iterable[str]] | None = None) -> LabelSet:
        labels = tuple(dict.fromkeys(str(label).strip() for label in labels if str(label).strip()))
        own = {normalise(label): label for label in labels}
        aliases = dict(own)
        for label in labels:
            key = normalise(label)
            # "hiphop" also matches "hip hop": a label's words may be written together or apart.
            aliases.setdefault(key.replace(" ", ""), label)
            for group in SYNONYM_GROUPS:
                if key in group:
                    for synonym in group:
                        if synonym not in own:
                            aliases.setdefault(synonym, label)
                            aliases.setdefault(synonym.replace(" ", ""), label)
        for label, extra in (synonyms or {}).items():
            canonical = own.get(normalise(label))
            if canonical is None:
                continue  # synonyms of labels that are not in this set do not apply
            for synonym in extra:
                aliases[normalise(synonym)] = canonical
        # Word forms of the set's labels and of the user's synonyms (the built-in groups list their own).
        word_forms: dict[str, tuple[str, str]] = {}
        for alias in [*own, *(normalise(s) for extra in (synonyms or {}).values() for s in extra)]:
            stem = _word_form_stem(alias) if alias in aliases and alias.isalpha() else None
            if stem:
                word_forms.setdefault(stem, (aliases[alias], alias))
        ordered = sorted(aliases, key=len, reverse=True)  # the longest alias wins at a position
        alternatives = [f"(?P<a{i}>{_alias_pattern(a)})" for i, a in enumerate(ordered)]
        # Last, any word that starts like a stem ("belt" for "belting"): find_labels checks its form.
        starts = sorted({stem[:-1] if stem.endswith("i") else stem for stem in word_forms}, key=len, reverse=True)
        if starts:
            alternatives.append("(?P<form>(?:" + "|".join(map(re.escape, starts)) + ")[a-z]*)")
        pattern = re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])") if ordered else None
        return cls(labels, aliases, pattern, tuple(ordered), word_forms)

    def canonical(self, text: str) -> str | None:
        """The label a whole string names ("Hip-Hop" -> "hiphop"), or None."""
        key = normalise(text)
        if key in self.aliases:
            return self.aliases[key]
        if key.endswith("s") and key[:-1] in self.aliases:
            return self.aliases[key[:-1]]
        return self.aliases.get(key.replace(" ", "")) or self._word_form(key)

    def _word_form(self, word: str) -> str | None:
        """The label of which `word` is a word form ("belting" -> "belt"; "blue" is not "blues"), or None."""
        if not word.isalpha():
            return None
        label, alias = self.word_forms.get(_word_form_stem(word) or "", (None, ""))
        return label if label and not alias.startswith(word) else None

    def __contains__(self, label: str) -> bool:
        return label in self.labels

    def __len__(self) -> int:
        return len(self.labels)


def _negated(lowered: str, start: int) -> bool:
    before = lowered[max(0, start - 60) : start]
    breaks = list(CLAUSE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end() :]
    return bool(NEGATION.search(" " + before))


def find_labels(text: str, label_set: LabelSet) -> list[Found[str]]:
    """Every label of the set that the text names (not negated), once each, in reading order."""
    if label_set.pattern is None:
        return []
    lowered = text.lower().replace("&", "+")  # same length as text, so spans map back
    found: dict[str, Found[str]] = {}
    for match in label_set.pattern.finditer(lowered):
        if match.lastgroup == "form":
            label = label_set._word_form(match.group(0))  # None for "rocket", "sadly"
        else:
            label = label_set.aliases[label_set.ordered[int(match.lastgroup[1:])]]
        if label is None or label in found or _negated(lowered, match.start()):
            continue
        found[label] = Found(label, text[match.start() : match.end()], match.start(), match.end())
    return list(found.values())
