"""LLark's filter for generated question-answer pairs (Gardner et al., ICML 2024, Table 9).

    banned_phrase("Who is the artist of this song?", "...")   -> ("question", "who is the artist")
    banned_phrase("What is the tempo?", "Based on the provided metadata, 120 BPM.")
                                                              -> ("answer", "metadata")
    banned_phrase("What is the tempo?", "About 120 BPM.")       -> None

LLark removes every pair whose question contains a phrase of the query list, or whose answer
contains a phrase of the response list. As in the paper, a phrase matches anywhere as a
substring, case ignored ("duration" in a question drops it; so does "pack" inside "packed").
The lists are the paper's, word for word; the paper says this removes 1-10 % of generated pairs.
"""

from __future__ import annotations

__all__ = ["QUESTION_PHRASES", "ANSWER_PHRASES", "banned_phrase"]

QUESTION_PHRASES: tuple[str, ...] = (
    "what is the composer",
    "who is the composer",
    "tell me about the composer",
    "name of the composer",
    "who is the artist",
    "tell me about the artist",
    "what tags are associated with the artist",
    "what are the tags associated with the artist",
    "is there any information available about the album",
    "about the album",
    "name of the artist",
    "what is the name",
    "what is the movement",
    "what is the specific movement",
    "what is the title",
    "which movement is",
    "what is the length of this clip",
    "duration",
    "pack",
)

ANSWER_PHRASES: tuple[str, ...] = (
    "metadata",
    "is not provided",
    "based on the provided metadata",
    "based on the provided beat",
    "based on the provided chord",
    "based on the provided information",
    "based on the provided annotations",
    "no specific mood",
    "there is no mention of",
    "there is no specific mention of any",
    "as an ai assistant, i am unable to",
    "as an ai assistant, i do not",
    "it is difficult to determine",
    "it is not possible to determine",
    "no information is available about the album",
    "cannot determine",
    "violin 1",
    "violin 2",
    "violin 3",
    "viola 1",
    "viola 2",
    "viola 3",
    "pack",
)


def banned_phrase(question: str, answer: str) -> tuple[str, str] | None:
    """("question" or "answer", the phrase) of the first banned phrase found, or None."""
    lowered = question.lower()
    for phrase in QUESTION_PHRASES:
        if phrase in lowered:
            return "question", phrase
    lowered = answer.lower()
    for phrase in ANSWER_PHRASES:
        if phrase in lowered:
            return "answer", phrase
    return None
