"""`mllm extract-features` against Essentia on a labelled corpus: accuracy and CPU time side by side.

    python benchmarks/features_vs_essentia.py corpus/manifest.jsonl          # any manifest with `labels`
    python benchmarks/features_vs_essentia.py --synth 240 --seconds 30       # render one with `mllm synth` first

Ours: the real command, `mllm extract-features MANIFEST --workers 1` (default librosa backend),
in its own process with one BLAS thread; its CPU time (user + system, from the kernel's
accounting of the child) less the CPU time of the same command on an empty input (interpreter
start and imports), so both columns count decoding and analysis only.

Essentia: in this process, per record: decode at 44.1 kHz (mllm.core.audio, counted),
`RhythmExtractor2013(method="multifeature")` for tempo and beats, and `KeyExtractor` with each
profile of --profiles; the key row reports the best profile, and Essentia's CPU time counts that
profile's KeyExtractor once. Essentia has no downbeat tracker or chord recogniser that returns
mir_eval labels, so those rows are ours only.

Metrics (mllm.core.metrics): tempo Acc1/Acc2 (4 %), key MIREX weighted score (mir_eval), beat
and downbeat F-measure (mir_eval, +-70 ms, no trimming), meter accuracy, chord majmin
(mir_eval, duration-weighted over the corpus). A metric is computed over the records whose
labels hold it. CPU seconds per minute of audio, and "x real time" = 60 / that (one core).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core each, before numpy is imported

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from mllm.core.audio import record_audio  # noqa: E402
from mllm.core.features import essentia_backend  # noqa: E402
from mllm.core.io.records import read_records  # noqa: E402
from mllm.core.metrics import beats as beat_metrics  # noqa: E402
from mllm.core.metrics import chords as chord_metrics  # noqa: E402
from mllm.core.metrics import key as key_metrics  # noqa: E402
from mllm.core.metrics import tempo as tempo_metrics  # noqa: E402

PROFILES = "bgate,edma,temperley,krumhansl,shaath"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(manifest: str, out: Path, backend: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `mllm extract-features` on the manifest, start-up excluded."""
    command = [sys.executable, "-m", "mllm.cli", "extract-features", "--workers", "1", "--backend", backend, "--allow-errors",
               "--overwrite"]
    empty = out.with_name("empty.jsonl")
    empty.write_bytes(b"")
    before = children_cpu()
    subprocess.run([*command, str(empty), "-o", str(out.with_name("empty.out.jsonl"))], check=True, stderr=subprocess.DEVNULL)
    startup = children_cpu() - before
    before, wall = children_cpu(), time.perf_counter()
    subprocess.run([*command, manifest, "-o", str(out)], check=True, stderr=subprocess.DEVNULL)
    return children_cpu() - before - startup, time.perf_counter() - wall


def run_essentia(records: list[dict], profiles: list[str]) -> tuple[list[dict], dict[str, float]]:
    """Per record: tempo, beats and the key of each profile; CPU seconds per stage."""
    cpu = {"decode": 0.0, "rhythm": 0.0, **{f"key:{p}": 0.0 for p in profiles}}
    results = []
    for record in records:
        start = time.process_time()
        try:
            audio = record_audio(record, sample_rate=essentia_backend.RHYTHM_SAMPLE_RATE)
        except ValueError:
            results.append({})
            continue
        cpu["decode"] += time.process_time() - start
        start = time.process_time()
        tempo, beats = essentia_backend.rhythm(audio.samples)
        cpu["rhythm"] += time.process_time() - start
        result = {"tempo_bpm": tempo, "beats": beats.tolist()}
        for profile in profiles:
            start = time.process_time()
            result[f"key:{profile}"] = essentia_backend.key(audio.samples, audio.sample_rate, profile)[0]
            cpu[f"key:{profile}"] += time.process_time() - start
        results.append(result)
    return results, cpu


def score(records: list[dict], estimates: list[dict], key_field: str = "key") -> dict[str, float]:
    """The metrics over the records whose labels (and estimates) hold each quantity, and
    `n_tempo`, `n_key`, `n_beats`, `n_downbeats`, `n_meter`, `n_chords`: how many records each counts."""
    tempo_ref, tempo_est, key_ref, key_est, beat_f, downbeat_f, meters, chords = [], [], [], [], [], [], [], []
    for record, estimate in zip(records, estimates):
        labels = record.get("labels") or {}
        if labels.get("tempo_bpm"):
            tempo_ref.append(labels["tempo_bpm"])
            tempo_est.append(estimate.get("tempo_bpm"))
        if labels.get("key") and "X" != labels["key"]:
            key_ref.append(labels["key"])
            key_est.append(estimate.get(key_field))
        if labels.get("beats") and "beats" in estimate:
            beat_f.append(beat_metrics.evaluate(np.array(labels["beats"]), np.array(estimate["beats"]))["f_measure"])
        if labels.get("downbeats") and "downbeats" in estimate:
            downbeat_f.append(beat_metrics.evaluate(np.array(labels["downbeats"]), np.array(estimate["downbeats"]))["f_measure"])
        if labels.get("meter") and "meter" in estimate:
            meters.append(float(labels["meter"] == estimate["meter"]))
        if labels.get("chords") and "chords" in estimate:
            reference, estimated = labels["chords"], estimate["chords"]
            chords.append(chord_metrics.evaluate(
                [c[:2] for c in reference], [c[2] for c in reference],
                np.array([c[:2] for c in estimated]).reshape(-1, 2), [c[2] for c in estimated], comparisons=("majmin",),
            )["majmin"])
    out = {}
    if tempo_ref:
        out.update(tempo_metrics.evaluate(tempo_ref, tempo_est))
    if key_ref:
        keys = key_metrics.evaluate(key_ref, key_est)
        out["key_weighted"], out["key_exact"] = keys["weighted_score"], keys["accuracy"]
    for name, values in (("beat_f", beat_f), ("downbeat_f", downbeat_f), ("meter_accuracy", meters)):
        if values:
            out[name] = float(np.mean(values))
    if chords:
        out["chord_majmin"] = chord_metrics.corpus_score(chords)
    counts = {"n_tempo": tempo_ref, "n_key": key_ref, "n_beats": beat_f, "n_downbeats": downbeat_f, "n_meter": meters,
              "n_chords": chords}
    return {**out, **{name: len(values) for name, values in counts.items()}}


def make_corpus(folder: Path, n: int, seconds: float, seed: int, sample_rate: int | None = None) -> str:
    rate = [] if sample_rate is None else ["--sample-rate", str(sample_rate)]
    subprocess.run(
        [sys.executable, "-m", "mllm.cli", "synth", str(folder), "--n", str(n), "--seconds", str(seconds), "--seed", str(seed),
         "--source", "both", "--meters", "4/4,3/4,6/8", "--workers", "2", "--no-stdout", *rate],
        check=True,
    )
    return str(folder / "manifest.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", nargs="?", help="JSONL/Parquet records with `audio` and `labels` (default: render one with --synth)")
    parser.add_argument("--synth", type=int, default=240, help="clips to render with `mllm synth` when no manifest is given")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length for --synth")
    parser.add_argument("--seed", type=int, default=7, help="seed for --synth")
    parser.add_argument("--profiles", default=PROFILES, help="Essentia KeyExtractor profiles to try (the best is reported)")
    parser.add_argument("--backend", default="librosa", help="our backend")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mllm-features-bench-") as scratch:
        scratch = Path(scratch)
        manifest = args.manifest or make_corpus(scratch / "corpus", args.synth, args.seconds, args.seed)
        records = list(read_records(manifest))
        ours_path = scratch / "ours.jsonl"
        ours_cpu, ours_wall = run_ours(manifest, ours_path, args.backend)
        ours = [r.get("features") or {} for r in read_records(ours_path)]
        profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
        essentia, essentia_cpu = run_essentia(records, profiles)

    minutes = sum(f.get("duration", 0.0) for f in ours) / 60
    ours_scores = score(records, ours)
    by_profile = {p: score(records, essentia, key_field=f"key:{p}").get("key_weighted", float("nan")) for p in profiles}
    best = max(by_profile, key=lambda p: by_profile[p])
    essentia_scores = score(records, essentia, key_field=f"key:{best}")
    essentia_seconds = essentia_cpu["decode"] + essentia_cpu["rhythm"] + essentia_cpu[f"key:{best}"]
    failed = sum(1 for f in ours if not f)

    rows = [
        ("tempo Acc1", "acc1"), ("tempo Acc2", "acc2"), ("key weighted score", "key_weighted"),
        ("beat F-measure", "beat_f"), ("downbeat F-measure", "downbeat_f"), ("meter accuracy", "meter_accuracy"),
        ("chord majmin", "chord_majmin"),
    ]
    print(f"corpus: {manifest}: {len(records)} records, {minutes:.1f} min of audio ({failed} without features)")
    print("Essentia key profiles (weighted score): " + ", ".join(f"{p} {v:.3f}" for p, v in by_profile.items()) + f"; best: {best}")
    print()
    print("| metric | ours | Essentia |")
    print("| --- | ---: | ---: |")
    for label, name in rows:
        theirs = essentia_scores.get(name)
        print(f"| {label} | {ours_scores.get(name, float('nan')):.3f} | {'-' if theirs is None else f'{theirs:.3f}'} |")
    ours_per_minute, essentia_per_minute = ours_cpu / minutes, essentia_seconds / minutes
    print(f"| CPU s per minute of audio | {ours_per_minute:.2f} | {essentia_per_minute:.2f} |")
    print(f"| x real time (one core) | {60 / ours_per_minute:.0f} | {60 / essentia_per_minute:.0f} |")
    print()
    print(f"ours: the whole command (decode at 22.05 kHz, every feature), {ours_wall:.1f} s wall; "
          f"Essentia: decode at 44.1 kHz {essentia_cpu['decode'] / minutes:.2f} + RhythmExtractor2013 "
          f"{essentia_cpu['rhythm'] / minutes:.2f} + KeyExtractor({best}) {essentia_cpu[f'key:{best}'] / minutes:.2f} s/min")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({
            "manifest": manifest, "records": len(records), "minutes": minutes, "ours": ours_scores,
            "essentia": essentia_scores, "essentia_profiles": by_profile, "essentia_best_profile": best,
            "cpu_seconds_per_minute": {"ours": ours_per_minute, "essentia": essentia_per_minute, "essentia_stages": {k: v / minutes for k, v in essentia_cpu.items()}},
        }, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
