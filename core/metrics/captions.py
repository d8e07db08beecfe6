"""
Captioning: describe a music clip in words. A generated caption (the *candidate*) is compared with
one or several human captions of the same clip (the *references*) by n-gram overlap (BLEU, CIDEr),
longest common subsequence (ROUGE-L), aligned unigrams with stems and synonyms (METEOR) or
contextual token embeddings (BERTScore). These are the metrics of COCO caption evaluation, which
LLark reports for music captioning (BLEU, BLEU-4, METEOR, ROUGE, CIDEr).

Conventions
-----------
Captions are compared after :func:`tokenize`, which returns the caption as lowercase tokens joined
by single spaces ("A bright, lo-fi beat!" -> "a bright lo-fi beat"): the form COCO's scorers take
(pycocoevalcap splits on whitespace). Every metric function takes such *tokenised captions*: a
candidate is one string, its references a non-empty sequence of strings. Corpus functions take the
candidates and the references item by item (``references[i]`` are the references of
``candidates[i]``). An empty candidate is a valid answer and scores 0; a reference must hold at
least one token (the caller checks). BERTScore alone takes the raw text (the model tokenises).

Metrics
-------
* :func:`tokenize`: lowercase word tokens, punctuation dropped.
* :func:`bleu`: BLEU-1..4, corpus-level and per item (pycocoevalcap, as COCO).
* :func:`corpus_bleu_statistic`: corpus BLEU from per-item counts, vectorised (for the bootstrap).
* :func:`rouge_l`: ROUGE-L precision, recall and F of one item (rouge-score).
* :func:`rouge_1`: ROUGE-1 precision, recall and F of one item (rouge-score).
* :func:`cider`: CIDEr-D, corpus-level and per item (pycocoevalcap, as COCO).
* :func:`meteor_nltk`: METEOR of one item (NLTK, WordNet synonyms).
* :func:`meteor_jar`: METEOR 1.5, corpus-level and per item (the Java jar COCO runs).
* :func:`corpus_meteor_statistic`: METEOR 1.5's corpus aggregate from per-item counts, vectorised
  (for the bootstrap).
* :func:`bertscore`: BERTScore precision, recall, F1 per item with a local model (bert-score;
  safetensors weights only, checked by :func:`check_bertscore_model`).

Resources that may be missing (Java, WordNet, bert-score) raise :class:`MissingResource`, whose
message says what is missing and how to get it. Finding WordNet, Java and the jar is
:mod:`mllm.core.metrics.caption_resources`.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider_scorer import CiderScorer

from mllm.core.metrics import caption_resources
from mllm.core.metrics.caption_resources import MissingResource

__all__ = [
    "MissingResource", "tokenize", "Bleu", "bleu", "corpus_bleu_statistic", "rouge_l", "rouge_1", "cider",
    "meteor_nltk", "Meteor", "meteor_jar", "corpus_meteor_statistic", "check_bertscore_model", "bertscore",
]


# ---------------------------------------------------------------- tokenisation

# A token is a run of letters or digits; an apostrophe or hyphen between two such runs joins them
# ("don't", "hip-hop", "rock'n'roll"), and so does a period or comma between two digits ("3.5",
# "1,000"). Everything else (punctuation, symbols, underscores, spaces) separates tokens and is
# dropped, as COCO's PTB tokenizer + punctuation filter does, without needing Java.
_TOKEN = re.compile(r"[^\W_]+(?:(?:['\-]|(?<=\d)[.,](?=\d))[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-"})


def tokenize(text: str) -> str:
    """A caption as lowercase word tokens joined by single spaces.

    Steps: Unicode NFKC normalisation; typographic apostrophes and hyphens made ASCII; lowercase;
    tokens are runs of letters/digits, joined through an inner apostrophe or hyphen, or an inner
    period/comma between digits; everything else is dropped.

    Examples
    --------
    >>> tokenize("A Hip-Hop beat, 92.5 BPM; don\u2019t miss the 808s!")
    "a hip-hop beat 92.5 bpm don't miss the 808s"
    >>> tokenize("R&B / lo-fi -- 4/4")
    'r b lo-fi 4 4'

    Parameters
    ----------
    text : str
        A caption.

    Returns
    -------
    tokens : str
        The tokens separated by single spaces ("" when there is none).
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    return " ".join(_TOKEN.findall(text))


# ---------------------------------------------------------------- BLEU


@dataclass
class Bleu:
    """BLEU-1..N of a corpus: ``corpus`` (N,), ``items`` (n, N) and the per-item ``counts`` (n, 2N + 2)
    that :func:`corpus_bleu_statistic` takes (matches 1..N, candidate n-grams 1..N, candidate length,
    closest reference length)."""

    corpus: np.ndarray
    items: np.ndarray
    counts: np.ndarray


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4) -> Bleu:
    """BLEU-1..``max_order`` (Papineni et al. 2002) as COCO caption evaluation computes it
    (pycocoevalcap.bleu.BleuScorer with the "closest" reference length).

    For n = 1..N, the clipped n-gram precision of a candidate is

        p_n = sum over n-grams g of min(count(g in candidate), max over references count(g in ref))
              / number of n-grams in the candidate,

    and BLEU-N = BP * (p_1 * ... * p_N) ** (1 / N), with the brevity penalty
    BP = exp(1 - r / c) when c < r, else 1 (c: candidate length, r: the reference length closest
    to c, the shorter on ties).

    * Corpus BLEU sums matches, n-gram counts, c and r over all items before dividing (so it is
      not the mean of the per-item scores).
    * Per-item BLEU applies the formula to one item, smoothed as pycocoevalcap does: each p_n is
      (matches + 1e-15) / (n-grams + 1e-9), so an item without a matching 4-gram gets a BLEU-4 of
      about 0 rather than an undefined log.

    Examples
    --------
    >>> result = bleu(["the cat sat on the mat"], [["the cat is on the mat"]])
    >>> round(float(result.corpus[0]), 4)  # 5 of 6 unigrams match, same length
    0.8333

    Parameters
    ----------
    candidates : sequence of str
        Tokenised candidates, one per item.
    references : sequence of sequences of str
        Tokenised references of each item (at least one per item).
    max_order : int
        Largest n-gram order N.

    Returns
    -------
    result : Bleu
        ``corpus`` BLEU-1..N, per-item ``items`` (n, N), and ``counts`` for the bootstrap.
    """
    scorer = BleuScorer(n=max_order)
    for candidate, refs in zip(candidates, references, strict=True):
        scorer += (candidate, list(refs))
    if not candidates:
        empty = np.full(max_order, np.nan)
        return Bleu(empty, np.zeros((0, max_order)), np.zeros((0, 2 * max_order + 2)))
    corpus, items = scorer.compute_score(option="closest", verbose=0)
    # The scorer keeps each item's counts ("cooked" test); the closest reference length is the
    # one its compute_score used: nearest to the candidate length, the shorter on ties.
    counts = np.array(
        [[*c["correct"], *c["guess"], c["testlen"], min((abs(r - c["testlen"]), r) for r in c["reflen"])[1]]
         for c in scorer.ctest],
        dtype=float,
    )
    return Bleu(np.asarray(corpus, dtype=float), np.asarray(items, dtype=float).T, counts)


def corpus_bleu_statistic(*counts: np.ndarray) -> np.ndarray:
    """Corpus BLEU-1..N from per-item counts, vectorised: the statistic of the bootstrap.

    ``counts`` are the 2N + 2 columns of :attr:`Bleu.counts` (matches 1..N, candidate n-grams 1..N,
    candidate length, closest reference length), each of shape (..., n). The counts are summed
    over the items (last axis) and combined as :func:`bleu` defines corpus BLEU, with
    pycocoevalcap's guards (+1e-15 on numerators, +1e-9 on denominators), so on the whole corpus
    it returns :attr:`Bleu.corpus`.

    Returns
    -------
    bleu : np.ndarray
        Shape (N, ...): BLEU-1..N of each row.
    """
    order = (len(counts) - 2) // 2
    sums = [np.sum(c, axis=-1) for c in counts]
    matches, totals, length, reference_length = sums[:order], sums[order:2 * order], sums[-2], sums[-1]
    tiny, small = 1e-15, 1e-9
    log_precisions = np.cumsum([np.log((m + tiny) / (t + small)) for m, t in zip(matches, totals)], axis=0)
    scores = np.exp(log_precisions / np.arange(1, order + 1).reshape((order,) + (1,) * np.ndim(length)))
    ratio = (length + tiny) / (reference_length + small)
    brevity = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * brevity


# ---------------------------------------------------------------- ROUGE-L


class _SpaceTokenizer:
    """rouge-score tokenizer for captions that are already tokenised."""

    def tokenize(self, text: str) -> list[str]:
        return text.split()


_ROUGE: dict = {}  # rouge-score's kind ("rougeL", "rouge1") -> its scorer


def _rouge(kind: str, candidate: str, references: Sequence[str]) -> tuple[float, float, float]:
    if kind not in _ROUGE:
        from rouge_score.rouge_scorer import RougeScorer  # imports absl and nltk: only when used

        _ROUGE[kind] = RougeScorer([kind], tokenizer=_SpaceTokenizer())
    score = _ROUGE[kind].score_multi(list(references), candidate)[kind]
    return float(score.precision), float(score.recall), float(score.fmeasure)


def rouge_1(candidate: str, references: Sequence[str]) -> tuple[float, float, float]:
    """ROUGE-1 (Lin 2004) of one item: unigram overlap precision, recall and F (rouge-score's
    ``rouge1``, on our tokens, no stemming). With M = the tokens candidate and reference share
    (counted with multiplicity): P = M / len(candidate), R = M / len(reference), F = 2 P R / (P + R);
    several references: the one with the highest F, as :func:`rouge_l`.

    Examples
    --------
    >>> [round(v, 4) for v in rouge_1("a calm piano piece", ["a slow calm solo piano"])]  # a, calm, piano
    [0.75, 0.6, 0.6667]
    >>> [round(v, 4) for v in rouge_1("piano a calm", ["a calm piano"])]  # order does not matter (ROUGE-L: 0.6667)
    [1.0, 1.0, 1.0]
    """
    return _rouge("rouge1", candidate, references)


def rouge_l(candidate: str, references: Sequence[str]) -> tuple[float, float, float]:
    """ROUGE-L (Lin 2004) of one item: longest common subsequence (LCS) precision, recall and F
    (rouge-score's ``rougeL``, on our tokens, no stemming).

    With L = length of the LCS of candidate and reference (tokens in the same order, not
    necessarily contiguous): precision P = L / len(candidate), recall R = L / len(reference),
    F = 2 P R / (P + R) (0 when L = 0). With several references, the reference giving the highest
    F is used, and its P, R and F are reported (rouge_score's ``score_multi``).

    Examples
    --------
    >>> [round(v, 4) for v in rouge_l("a calm piano piece", ["a slow calm solo piano"])]  # LCS "a calm piano"
    [0.75, 0.6, 0.6667]

    Parameters
    ----------
    candidate : str
        Tokenised candidate.
    references : sequence of str
        Tokenised references (at least one).

    Returns
    -------
    (precision, recall, f) : tuple of float
    """
    return _rouge("rougeL", candidate, references)


# ---------------------------------------------------------------- CIDEr


def cider(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """CIDEr-D (Vedantam et al. 2015) as COCO caption evaluation computes it (pycocoevalcap.cider).

    Each caption becomes, for n = 1..4, a vector of TF-IDF weights over its n-grams:
    tf(g) * log(N / df(g)), where N is the number of items in the corpus and df(g) the number of
    items whose references contain g (at least 1). For each n, the similarity of candidate c and
    reference s is

        sim_n(c, s) = sum over g of min(w_c(g), w_s(g)) * w_s(g) / (|w_c| |w_s|)
                      * exp(-(len(c) - len(s))**2 / (2 * 6**2))

    (clipped candidate weights, Gaussian length penalty with sigma = 6), and

        CIDEr-D(c) = 10 * mean over n = 1..4 of (mean over references s of sim_n(c, s)).

    The corpus value is the mean over items. The IDF makes it depend on the whole corpus: an
    item's score changes with the other items, and a corpus of one item scores 0 (log 1 = 0).

    Examples
    --------
    >>> corpus, items = cider(["a calm piano piece", "loud rock drums"],
    ...                       [["a calm piano piece"], ["a jazz trio with brushes"]])
    >>> round(float(items[0]), 4), float(items[1])
    (10.0, 0.0)

    Parameters
    ----------
    candidates, references
        As for :func:`bleu`.

    Returns
    -------
    (corpus, items) : (float, np.ndarray of shape (n,))
        NaN and an empty array for an empty corpus.
    """
    if not candidates:
        return float("nan"), np.zeros(0)
    scorer = CiderScorer(n=4, sigma=6.0)
    for candidate, refs in zip(candidates, references, strict=True):
        scorer += (candidate, list(refs))
    corpus, items = scorer.compute_score()
    return float(corpus), np.asarray(items, dtype=float)


# ---------------------------------------------------------------- METEOR (NLTK)


def meteor_nltk(candidate: str, references: Sequence[str], wordnet=None) -> float:
    """METEOR (Banerjee & Lavie 2005) of one item, NLTK's implementation (nltk.translate.meteor_score).

    Candidate and reference unigrams are aligned in three stages: exact match, then Porter stem
    match, then WordNet synonym match. With m aligned unigrams, precision P = m / len(candidate),
    recall R = m / len(reference), the harmonic mean F = P R / (alpha P + (1 - alpha) R) weights
    recall (alpha = 0.9), and a fragmentation penalty Pen = gamma * (chunks / m) ** beta
    (gamma = 0.5, beta = 3; chunks: runs of aligned unigrams that are adjacent in both) gives

        METEOR = F * (1 - Pen)   (0 when nothing aligns).

    With several references the best score is taken. This is METEOR's first version; the
    METEOR 1.5 jar (:func:`meteor_jar`) adds paraphrases and tuned parameters, so the two differ.

    Examples
    --------
    >>> meteor_nltk("soft piano", ["soft piano"]) > 0.9, meteor_nltk("loud drums", ["soft piano"])
    (True, 0.0)

    Parameters
    ----------
    candidate : str
        Tokenised candidate.
    references : sequence of str
        Tokenised references (at least one).
    wordnet : WordNetCorpusReader, optional
        Default: :func:`mllm.core.metrics.caption_resources.load_wordnet`.

    Returns
    -------
    meteor : float
    """
    from nltk.translate.meteor_score import meteor_score

    wordnet = wordnet if wordnet is not None else caption_resources.load_wordnet()
    return float(meteor_score([r.split() for r in references], candidate.split(), wordnet=wordnet))


# ---------------------------------------------------------------- METEOR 1.5 (Java)

# METEOR 1.5's English parameters (`-l en`, the default task), as the jar prints them: alpha, beta,
# gamma, delta, and the weights of its four matching stages (exact, stem, synonym, paraphrase).
METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA, METEOR_DELTA = 0.85, 0.2, 0.6, 0.75
METEOR_STAGE_WEIGHTS = np.array([1.0, 0.6, 0.8, 0.6])
METEOR_COUNTS = (
    "weighted_candidate_length", "weighted_reference_length", "weighted_candidate_matches",
    "weighted_reference_matches", "unmatched_words", "chunks", "word_matches",
)


@dataclass
class Meteor:
    """METEOR 1.5 of a corpus: ``corpus`` (the jar's aggregate), per-item ``items`` (n,), and the
    per-item ``counts`` (n, 7) that :func:`corpus_meteor_statistic` takes (columns: METEOR_COUNTS)."""

    corpus: float
    items: np.ndarray
    counts: np.ndarray


def _meteor_line(text: str) -> str:
    # "|||" separates fields of the jar's protocol and a newline ends a request.
    return " ".join(text.replace("|||", " ").split())


def _meteor_counts(statistics: np.ndarray) -> np.ndarray:
    """(n, 23) statistics of the jar's SCORE replies -> (n, 7) counts whose sums give the corpus.

    A reply holds: candidate length, reference length, candidate and reference function words;
    for each stage (exact, stem, synonym, paraphrase) the candidate content, reference content,
    candidate function and reference function words matched; chunks; candidate and reference
    words matched. The weighted lengths and matches are linear in these, so they are computed per
    item here and summed later. An item matched completely in one chunk adds no chunk (the jar's
    MeteorStats.addStats skips it, so that a corpus of perfect answers scores 1).
    """
    length, function_words = statistics[:, 0:2], statistics[:, 2:4]  # (n, 2): candidate, reference
    stages = statistics[:, 4:20].reshape(-1, 4, 4)  # (n, stage, [cand content, ref content, cand function, ref function])
    delta, weights = METEOR_DELTA, METEOR_STAGE_WEIGHTS
    weighted_length = delta * (length - function_words) + (1 - delta) * function_words  # (n, 2)
    weighted_matches = np.stack([
        (stages[:, :, side] * weights).sum(axis=1) * delta + (stages[:, :, side + 2] * weights).sum(axis=1) * (1 - delta)
        for side in (0, 1)
    ], axis=1)  # (n, 2)
    matched = np.stack([stages[:, :, 0].sum(1) + stages[:, :, 2].sum(1), stages[:, :, 1].sum(1) + stages[:, :, 3].sum(1)], axis=1)
    unmatched = (length - matched).sum(axis=1)
    chunks = statistics[:, 20]
    chunks = np.where((unmatched == 0) & (chunks == 1), 0.0, chunks)
    word_matches = statistics[:, 21] + statistics[:, 22]
    return np.column_stack([weighted_length, weighted_matches, unmatched, chunks, word_matches])


def corpus_meteor_statistic(*counts: np.ndarray) -> np.ndarray:
    """METEOR 1.5's corpus aggregate from per-item counts, vectorised: the statistic of the bootstrap.

    ``counts`` are the 7 columns of :attr:`Meteor.counts` (METEOR_COUNTS), each of shape (..., n).
    They are summed over the items (last axis) and combined as the jar combines its summed
    statistics (MeteorScorer.computeMetrics, English parameters alpha = 0.85, beta = 0.2,
    gamma = 0.6, delta = 0.75, stage weights 1.0 / 0.6 / 0.8 / 0.6):

        P = weighted candidate matches / weighted candidate length,
        R = weighted reference matches / weighted reference length,
        F_mean = P R / (alpha P + (1 - alpha) R),
        frag = chunks / (word matches / 2)   (0 when every word matched, in one chunk),
        METEOR = F_mean * (1 - gamma * frag ** beta)   (0 when undefined, never below 0),

    where a weighted length counts content words delta and function words 1 - delta, and a
    weighted match also carries its stage's weight. On the whole corpus this is the jar's
    aggregate (:attr:`Meteor.corpus`, checked by :func:`meteor_jar`); on one item, its score.

    Returns
    -------
    meteor : np.ndarray
        Shape (...): the corpus METEOR of each row.
    """
    (candidate_length, reference_length, candidate_matches, reference_matches, unmatched, chunks,
     word_matches) = (np.sum(c, axis=-1) for c in counts)
    alpha, beta, gamma = METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = candidate_matches / candidate_length
        recall = reference_matches / reference_length
        f_mean = 1.0 / ((1.0 - alpha) / precision + alpha / recall)  # as the jar writes it: 0 when P or R is 0
        fragmentation = np.where((unmatched == 0) & (chunks == 1), 0.0, chunks / (word_matches / 2))
        score = f_mean * (1.0 - gamma * fragmentation ** beta)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def meteor_jar(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> Meteor:
    """METEOR 1.5 (Denkowski & Lavie 2014) as COCO caption evaluation runs it: the jar shipped
    with pycocoevalcap, ``java -Xmx2G -jar meteor-1.5.jar - - -stdio -l en -norm``.

    Unigrams are aligned by exact match, stem, WordNet synonym and paraphrase (its English
    paraphrase table); content and function words are weighted apart, and the score is a
    parameterised harmonic mean of precision and recall times a fragmentation penalty (the
    English parameters of METEOR 1.5; formula: :func:`corpus_meteor_statistic`). ``-norm``
    lowercases and re-tokenises punctuation. With several references the best one counts.

    The corpus value is the jar's aggregate, computed from the statistics summed over all items
    (what COCO reports), not the mean of the per-item scores. All items go through one Java
    process: requests are streamed to it by a writer thread while the statistics are read back,
    then one EVAL request scores them all. The statistics are also kept as :attr:`Meteor.counts`,
    from which :func:`corpus_meteor_statistic` recomputes the aggregate of any subset of items
    (a bootstrap resample, a split) without Java; that it gives the jar's aggregate on the whole
    corpus is checked here.

    Examples
    --------
    >>> result = meteor_jar(["a calm piano piece", "loud drums"], [["a calm piano piece"], ["soft piano"]])  # doctest: +SKIP
    >>> result.corpus, result.items  # doctest: +SKIP
    (0.625, array([1., 0.]))

    Parameters
    ----------
    candidates, references
        As for :func:`bleu`.

    Returns
    -------
    result : Meteor
        NaN, empty arrays and no counts for an empty corpus.

    Raises
    ------
    MissingResource
        No Java runtime, or the jar is missing.
    RuntimeError
        The Java process failed (its stderr is in the message), or its aggregate is not the one
        the counts give (a jar with other parameters).
    """
    java = caption_resources.java_path()
    if java is None:
        raise MissingResource(caption_resources.JAVA_HELP)
    jar = caption_resources.meteor_jar_file()
    if not jar.exists():
        raise MissingResource(f"METEOR 1.5 jar not found at {jar}; reinstall pycocoevalcap (pip install pycocoevalcap==1.2)")
    if not candidates:
        return Meteor(float("nan"), np.zeros(0), np.zeros((0, len(METEOR_COUNTS))))
    requests = [
        "SCORE ||| " + " ||| ".join(_meteor_line(r) for r in refs) + " ||| " + _meteor_line(candidate) + "\n"
        for candidate, refs in zip(candidates, references, strict=True)
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [java, "-Xmx2G", "-jar", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
        )

        def fail(what: str) -> RuntimeError:
            process.kill()
            process.wait()
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-2000:]
            return RuntimeError(f"METEOR 1.5 (java) failed {what}: {tail or 'no message'}")

        def write_requests() -> None:
            # A thread writes while the main thread reads, so neither pipe fills up and blocks.
            try:
                for request in requests:
                    process.stdin.write(request.encode())
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # the reader sees the process end and reports it

        writer = threading.Thread(target=write_requests, daemon=True)
        writer.start()
        statistics = []
        for _ in requests:
            line = process.stdout.readline()
            if not line:
                raise fail("while scoring")
            statistics.append(line.decode().strip())
        writer.join()
        process.stdin.write(("EVAL ||| " + " ||| ".join(statistics) + "\n").encode())
        process.stdin.flush()
        try:
            items = np.array([float(process.stdout.readline()) for _ in statistics])
            corpus = float(process.stdout.readline())
            counts = _meteor_counts(np.array([[float(v) for v in line.split()] for line in statistics]).reshape(len(statistics), 23))
        except ValueError:
            raise fail("while aggregating") from None
        process.stdin.close()
        process.wait()
    recomputed = float(corpus_meteor_statistic(*counts.T))
    if not abs(recomputed - corpus) <= 1e-9:
        raise RuntimeError(
            f"METEOR 1.5: the jar's aggregate {corpus!r} is not the {recomputed!r} its statistics give with "
            "the English parameters of METEOR 1.5 (alpha 0.85, beta 0.2, gamma 0.6, delta 0.75); is this the jar of pycocoevalcap 1.2?"
        )
    return Meteor(corpus, items, counts)


# ---------------------------------------------------------------- BERTScore

BERTSCORE_HELP = "BERTScore needs the `bertscore` extra: pip install 'mllm[bertscore]' (bert-score, torch, transformers)."


def check_bertscore_model(model: str | Path) -> Path:
    """``model`` as a local folder with a config.json and readable safetensors weights, else
    :class:`MissingResource` naming the folder or file.

    bert-score loads the model itself (``AutoModel.from_pretrained(folder)``, which takes no
    ``use_safetensors``), so this check is what keeps it to safetensors: a folder whose weights are
    only a pickle (pytorch_model.bin) or whose model.safetensors is empty, truncated or corrupt is
    refused before bert-score runs. Models are never downloaded.
    """
    from mllm.core.model.sources import ModelSourceError, check_model_folder

    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise MissingResource(
            f"--bertscore-model {folder}: not a local model folder (no config.json); it must hold a Hugging Face "
            "model (config.json, model.safetensors, tokenizer). Models are never downloaded."
        )
    try:
        return check_model_folder(folder)
    except ModelSourceError as exc:
        raise MissingResource(f"--bertscore-model {exc}") from None


def bertscore(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    model: str | Path,
    *,
    layer: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BERTScore (Zhang et al. 2020) of each item with a local model (bert-score's ``score``).

    Candidate and reference are embedded token by token by a layer of a Transformer encoder;
    each candidate token is matched to its most similar reference token (cosine similarity) and
    vice versa: precision = mean over candidate tokens of the best similarity, recall = mean over
    reference tokens, F1 their harmonic mean. No IDF weighting and no baseline rescaling (both
    need data from the network). With several references, the one with the best F1 counts.

    Parameters
    ----------
    candidates : sequence of str
        Raw candidate texts (the model tokenises them).
    references : sequence of sequences of str
        Raw references of each item.
    model : str or Path
        A local folder holding a Hugging Face encoder and its tokenizer (never downloaded).
    layer : int, optional
        Which hidden layer gives the embeddings (default: the last one, from the model's config).
    batch_size : int
        Sentences per forward pass.
    device : str, optional
        torch device (default: CUDA when available, else CPU).

    Returns
    -------
    (precision, recall, f1) : three np.ndarray of shape (n,)

    Raises
    ------
    MissingResource
        bert-score is not installed, or ``model`` is not a local folder with a config.json and
        readable safetensors weights (:func:`check_bertscore_model`).
    """
    try:
        import bert_score
    except ImportError as exc:
        raise MissingResource(f"{BERTSCORE_HELP} ({exc})") from exc
    folder = check_bertscore_model(model)
    if layer is None:
        from transformers import AutoConfig

        layer = AutoConfig.from_pretrained(str(folder), local_files_only=True).num_hidden_layers
    if not candidates:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    precision, recall, f1 = bert_score.score(
        list(candidates), [list(refs) for refs in references], model_type=str(folder), num_layers=layer,
        batch_size=batch_size, device=device, idf=False, rescale_with_baseline=False,
    )
    return precision.numpy().astype(float), recall.numpy().astype(float), f1.numpy().astype(float)
