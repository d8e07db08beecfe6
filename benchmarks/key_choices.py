"""The grid behind the default backend's key settings (issue 12): peak range x profile x fifth
weight x minor bias, scored on dev data only.

    python benchmarks/real_music.py fetch --cache ~/.cache/mllm/real-music-big --per-package 60
    python benchmarks/features_real_music.py --cache ~/.cache/mllm/real-music-big --sets dev
    mllm synth /tmp/corpus-40-8 --n 40 --seconds 30 --seed 8 --source both --meters 4/4,3/4,6/8 --sample-rate 44100
    python benchmarks/key_choices.py --real ~/.cache/mllm/real-music-big --corpus /tmp/corpus-40-8/manifest.jsonl

Real excerpts (no labels) are scored by the MIREX weighted score against madmom's and Essentia's
keys (the runs features_real_music.py caches under <real>/runs/), and separately on the excerpts
where those two agree; rendered corpora by their exact labels. Each record is decoded once at
22.05 kHz (the default backend's rate); the front end (`spectra.FrameAnalyser`) is run once per
peak range, with `spectra.PEAK_RANGE_DB` set for the run (this script's only patch of the
library), and every profile/weight/bias is then scored on the same pitch-class distributions.
Extra profiles come from music21 (Aarden-Essen, Bellman-Budge, Temperley-Kostka-Payne 2007),
beside key.py's own. Writes a markdown table to stdout, the best rows first (by the sum of the
real-music and corpus scores); progress to stderr.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mllm.core.audio.decode import load_audio  # noqa: E402
from mllm.core.features import key as K  # noqa: E402
from mllm.core.features import spectra  # noqa: E402
from mllm.core.io.records import read_records  # noqa: E402
from mllm.core.metrics.key import weighted_score  # noqa: E402

SAMPLE_RATE = 22050


def music21_profiles() -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    from music21.analysis import discrete

    found = {}
    for name, cls in (("aarden", discrete.AardenEssen), ("bellman", discrete.BellmanBudge), ("temperley2007", discrete.TemperleyKostkaPayne)):
        method = cls()
        found[name] = (tuple(method.getWeights("major")), tuple(method.getWeights("minor")))
    return found


def read_jsonl(path: Path) -> list[dict]:
    return list(read_records(path))


def distribution(samples: np.ndarray) -> np.ndarray | None:
    analyser = spectra.FrameAnalyser(SAMPLE_RATE)
    analyser.add(samples)
    frames = analyser.finish()
    return K.pitch_class_distribution(frames.chroma, frames.sounding())


def best_key(dist: np.ndarray | None, profile: str, fifth: float, minor_bias: float) -> str | None:
    if dist is None:
        return None
    K.FIFTH_PARTIAL_WEIGHT = fifth  # key_templates reads the module constant
    scores = K.key_scores(dist, profile, minor_bias)
    best = int(np.argmax(scores))
    return K.key_name(best % 12, K.MODES[best // 12])


def weighted(estimate: str | None, reference: str | None) -> float:
    return 0.0 if reference is None else weighted_score(reference, estimate)  # None estimate: 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="real_music.py's folder: dev.jsonl and runs/dev.{madmom,essentia}.jsonl")
    parser.add_argument("--set", default="dev", help="which of its sets (never the test set: this is a tuning grid)")
    parser.add_argument("--corpus", type=Path, action="append", default=[], help="a labelled manifest (repeatable)")
    parser.add_argument("--peaks", default="15,20,25,30,40", help="peak ranges in dB")
    parser.add_argument("--profiles", default="albrecht,temperley,krumhansl,edma,aarden,bellman,temperley2007")
    parser.add_argument("--fifths", default="0,0.1,0.2,0.4")
    parser.add_argument("--minor-biases", default="0,0.02,0.04")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--also", action="append", default=["40,temperley,0.4,0.02"],
                        help="PEAK,PROFILE,FIFTH,BIAS: rows shown below the top ones, wherever they rank (default: the settings before issue 12)")
    args = parser.parse_args()
    if args.set == "test":
        parser.error("the test set is for reporting, not for choosing settings")

    K.PROFILES.update(music21_profiles())
    real = read_jsonl(args.real / f"{args.set}.jsonl")
    refs = {}
    for backend in ("madmom", "essentia"):
        refs[backend] = {r["id"]: r["features"]["key"] for r in read_jsonl(args.real / "runs" / f"{args.set}.{backend}.jsonl") if "features" in r}
    agree = [r["id"] for r in real if refs["madmom"].get(r["id"]) is not None and refs["madmom"].get(r["id"]) == refs["essentia"].get(r["id"])]
    corpora = [[r for r in read_jsonl(path) if (r.get("labels") or {}).get("key")] for path in args.corpus]

    print(f"decoding {len(real)} real excerpts and {sum(map(len, corpora))} corpus clips", file=sys.stderr)
    signals = {r["id"]: load_audio(r["audio"], sample_rate=SAMPLE_RATE, start=r.get("start"), end=r.get("end")).samples for r in real}
    corpus_signals = [[load_audio(r["audio"], sample_rate=SAMPLE_RATE, start=r.get("start"), end=r.get("end")).samples for r in c] for c in corpora]

    original_peak, original_fifth = spectra.PEAK_RANGE_DB, K.FIFTH_PARTIAL_WEIGHT
    rows = []
    for peak in (float(p) for p in args.peaks.split(",")):
        print(f"front end at {peak:g} dB", file=sys.stderr)
        spectra.PEAK_RANGE_DB = peak
        real_dists = {i: distribution(x) for i, x in signals.items()}
        corpus_dists = [[distribution(x) for x in c] for c in corpus_signals]
        for profile in args.profiles.split(","):
            for fifth in (float(f) for f in args.fifths.split(",")):
                for bias in (float(b) for b in args.minor_biases.split(",")):
                    keys = {i: best_key(d, profile, fifth, bias) for i, d in real_dists.items()}
                    row = {"peak": peak, "profile": profile, "fifth": fifth, "bias": bias}
                    for backend, ref in refs.items():
                        row[backend] = np.mean([weighted(keys[r["id"]], ref.get(r["id"])) for r in real])
                    row["agreed"] = np.mean([weighted(keys[i], refs["madmom"][i]) for i in agree]) if agree else float("nan")
                    row["corpora"] = [np.mean([weighted(best_key(d, profile, fifth, bias), r["labels"]["key"]) for d, r in zip(ds, c)])
                                      for ds, c in zip(corpus_dists, corpora)]
                    rows.append(row)
    spectra.PEAK_RANGE_DB, K.FIFTH_PARTIAL_WEIGHT = original_peak, original_fifth

    def total(row):
        return row["madmom"] + row["essentia"] + sum(row["corpora"])

    rows.sort(key=total, reverse=True)
    corpus_heads = [f"{path.parent.name} ({len(c)})" for path, c in zip(args.corpus, corpora)]
    print(f"{args.set}: {len(real)} real excerpts, madmom and Essentia agree on {len(agree)}; "
          f"current default: {original_peak:g} dB, {K.DEFAULT_PROFILE}, fifth {original_fifth:g}, minor bias {K.MINOR_BIAS:g}\n")
    print("| peak dB | profile | fifth | minor bias | vs madmom | vs Essentia | where they agree | " + " | ".join(corpus_heads) + " |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in corpus_heads) + " |")
    current = f"{original_peak:g},{K.DEFAULT_PROFILE},{original_fifth:g},{K.MINOR_BIAS:g}"
    wanted = {tuple(a.split(",")) for a in [current, *args.also]}
    shown = rows[: args.top] + [r for r in rows[args.top:] if (f"{r['peak']:g}", r["profile"], f"{r['fifth']:g}", f"{r['bias']:g}") in wanted]
    for rank, row in enumerate(shown):
        if rank == args.top:
            print("| ... |" + " |" * (6 + len(corpus_heads)))
        print(f"| {row['peak']:g} | {row['profile']} | {row['fifth']:g} | {row['bias']:g} | {row['madmom']:.3f} | {row['essentia']:.3f} | "
              f"{row['agreed']:.3f} | " + " | ".join(f"{v:.3f}" for v in row["corpora"]) + " |")


if __name__ == "__main__":
    main()
