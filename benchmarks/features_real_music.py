"""extract-features backends side by side: exact labels on a rendered corpus, agreement with madmom on real music.

    python benchmarks/real_music.py fetch                           # once: the real-music excerpts (dev/test)
    python benchmarks/features_real_music.py                        # renders a 40-clip corpus, runs every backend
    python benchmarks/features_real_music.py --corpus /tmp/c/manifest.jsonl --backends librosa,essentia
    python benchmarks/features_real_music.py --sets dev --backends librosa,madmom   # a quick check while tuning on dev
    python benchmarks/features_real_music.py --backends madmom,essentia --versus-rate essentia=22050   # Essentia native vs upsampled

Each backend runs as the real command, `mllm extract-features MANIFEST --backend B --workers 1
--threads 1`, in its own process, at the rate it analyses at (RATES: librosa 22050 Hz, madmom and
Essentia 44100 Hz, their models' and extractors' native rate; `--rate essentia=22050` for
another). Speed is x real time per core of the whole command: seconds of audio / CPU seconds of
the process (user + system, start-up and imports included, from the kernel's accounting of the
child). On a shared machine CPU time is inflated too (caches, frequency): compare backends
measured in one run, and rerun alone for absolute figures.

Sets (each a manifest; a set whose manifest is missing is skipped with a message):
- corpus: `mllm synth` clips (`--synth N`, 30 s, 4/4 3/4 6/8 and Bach chorales, rendered at
  44.1 kHz) or `--corpus MANIFEST`: scored against the exact labels, as features_vs_essentia.py.
- test: the real-music test packages (benchmarks/real_music.py): no labels, so every backend is
  scored against madmom's output as the reference (tempo Acc1/Acc2 with madmom's tempo as the
  reference, beat and downbeat F-measure with madmom's beats as reference beats, key weighted
  score and exact agreement with madmom's key, meter agreement, chord majmin overlap). Also the
  tempo of the 8 Frets on Fire songs against their charts' tempo (labels.tempo_bpm: truth).
- dev: the real-music dev packages, the same figures, labelled as the tuning set.

Caching: madmom's outputs (the reference, and its slowest backend: about 8 s of CPU per 30 s
clip) are kept in CACHE/runs/SET.madmom.jsonl with a .meta.json (the SHA-256 of the manifest and
of core/features/madmom_*.py, the rate, the CPU time) and reused while those match
(`--refresh madmom` recomputes). The other backends rerun every time (`--reuse essentia` to
reuse theirs too). Nothing of the cache is in the repository.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core each, before numpy is imported

import argparse  # noqa: E402
import hashlib  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import orjson  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from features_vs_essentia import make_corpus, score  # noqa: E402
from real_music import DEFAULT_CACHE  # noqa: E402

from mllm.core.io.records import read_records  # noqa: E402

BACKENDS = ["librosa", "madmom", "essentia"]
RATES = {"librosa": 22050, "madmom": 44100, "essentia": 44100}
NAMES = {"librosa": "default", "madmom": "madmom", "essentia": "Essentia"}
REFERENCE = "madmom"
CACHED = {"madmom"}
BACKEND_SOURCE = Path(__file__).resolve().parents[1] / "core" / "features"
ROWS = [
    ("tempo Acc1", "acc1", "n_tempo"), ("tempo Acc2", "acc2", "n_tempo"), ("beat F-measure", "beat_f", "n_beats"),
    ("downbeat F-measure", "downbeat_f", "n_downbeats"), ("meter", "meter_accuracy", "n_meter"),
    ("key weighted score", "key_weighted", "n_key"), ("key exact", "key_exact", "n_key"),
    ("chord majmin", "chord_majmin", "n_chords"),
]
REFERENCE_FIELDS = ("tempo_bpm", "beats", "downbeats", "meter", "key", "chords")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_backend(manifest: Path, backend: str, rate: int, out: Path) -> dict:
    """Run the whole command; {cpu_seconds, wall_seconds, rate} (also written next to `out`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mllm.cli", "extract-features", str(manifest), "--backend", backend, "--sample-rate",
               str(rate), "--workers", "1", "--threads", "1", "--allow-errors", "--overwrite", "-o", str(out)]
    print(f"  {' '.join(command[2:])}", file=sys.stderr, flush=True)
    before, wall = children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    return {"cpu_seconds": children_cpu() - before, "wall_seconds": time.perf_counter() - wall, "rate": rate}


def meta_key(manifest: Path, backend: str, rate: int) -> dict:
    sources = sorted(BACKEND_SOURCE.glob(f"{backend}_*.py"))  # madmom_backend.py, madmom_networks.py
    return {"manifest_sha256": sha256(manifest), "backend": backend, "rate": rate,
            "backend_sha256": hashlib.sha256(b"".join(sha256(p).encode() for p in sources)).hexdigest()}


def features_of(manifest: Path, backend: str, rate: int, runs: Path, set_name: str, reuse: bool) -> tuple[list[dict], dict]:
    """(features per record, run info), from the cache when `reuse` and it matches."""
    out = runs / (f"{set_name}.{backend}.jsonl" if rate == RATES.get(backend) else f"{set_name}.{backend}-{rate}.jsonl")
    meta_path = out.with_suffix(".meta.json")
    key = meta_key(manifest, backend, rate)
    meta = orjson.loads(meta_path.read_bytes()) if meta_path.exists() else {}
    if reuse and out.exists() and all(meta.get(k) == v for k, v in key.items()):
        print(f"  {set_name} {backend}: cached ({out})", file=sys.stderr)
        info = {**meta, "cached": True}
    else:
        info = {**key, **run_backend(manifest, backend, rate, out), "cached": False}
        meta_path.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    return [r.get("features") or {} for r in read_records(out)], info


def as_labels(reference: list[dict]) -> list[dict]:
    """The reference backend's features as `labels` records, so score() compares against them."""
    return [{"labels": {k: f.get(k) for k in REFERENCE_FIELDS if f.get(k) is not None}} for f in reference]


def table(title: str, scores: dict[str, dict], backends: list[str]) -> list[str]:
    lines = [f"**{title}**", "", "| metric | n | " + " | ".join(NAMES[b] for b in backends) + " |",
             "| --- | ---: |" + " ---: |" * len(backends)]
    for label, name, count in ROWS:
        values = [scores[b].get(name) for b in backends]
        if all(v is None for v in values):
            continue
        n = max(int(scores[b].get(count, 0)) for b in backends)
        lines.append(f"| {label} | {n} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in values) + " |")
    return lines + [""]


def speed_line(set_name: str, minutes: float, infos: dict[str, dict], backends: list[str]) -> str:
    cells = []
    for b in backends:
        info = infos[b]
        x = minutes * 60 / info["cpu_seconds"] if info["cpu_seconds"] > 0 else float("nan")
        cells.append(f"{x:.1f}" + (" (cached)" if info.get("cached") else ""))
    return f"| {set_name} | {minutes:.1f} | " + " | ".join(cells) + " |"


def same_level(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 0.04 * b


def compare_rates(records: list[dict], reference: list[dict] | None, at_rate: list[dict], at_other: list[dict],
                  rate: int, other_rate: int) -> dict:
    """One backend at two decode rates: how many tempi move off the other's level (beyond 4 %), how
    many keys change, and each rate's tempo Acc1/Acc2 (truth where labelled, else madmom)."""
    moved = [r["id"] for r, a, b in zip(records, at_rate, at_other) if not same_level(a.get("tempo_bpm"), b.get("tempo_bpm"))]
    keys = sum(1 for a, b in zip(at_rate, at_other) if a.get("key") != b.get("key"))
    labelled = any((r.get("labels") or {}).get("key") for r in records)  # the corpus: exact labels
    base = records if labelled else (as_labels(reference) if reference else None)
    scores = {str(rate): score(base, at_rate), str(other_rate): score(base, at_other)} if base else {}
    return {"rates": [rate, other_rate], "tempo_moved": moved, "keys_changed": keys, "n": len(records),
            "scored_against": "labels" if labelled else "madmom", "scores": scores}


def rate_lines(set_name: str, backend: str, result: dict) -> list[str]:
    rate, other = result["rates"]
    lines = [f"**{NAMES[backend]} at {rate} vs {other} Hz, {set_name}** ({result['n']} records): tempo on another level (> 4 % apart) "
             f"in {len(result['tempo_moved'])} ({', '.join(result['tempo_moved']) or 'none'}), key changed in {result['keys_changed']}", ""]
    if result["scores"]:
        a, b = result["scores"][str(rate)], result["scores"][str(other)]
        lines += [f"| against {result['scored_against']} | {rate} Hz | {other} Hz |", "| --- | ---: | ---: |"]
        for label, name, _ in ROWS[:2] + ROWS[5:7]:
            if name in a:
                lines.append(f"| {label} | {a[name]:.3f} | {b[name]:.3f} |")
        lines.append("")
    return lines


def per_record_lines(set_name: str, records: list[dict], outputs: dict[str, list[dict]], backends: list[str]) -> list[str]:
    """One row per record: the label tempo (if any), each backend's tempo, meter and key."""
    lines = [f"**{set_name}, per record** (tempo BPM / meter / key)", "",
             "| id | label tempo | " + " | ".join(NAMES[b] for b in backends) + " |", "| --- | ---: |" + " --- |" * len(backends)]
    for i, record in enumerate(records):
        label = (record.get("labels") or {}).get("tempo_bpm")
        cells = []
        for b in backends:
            f = outputs[b][i]
            cells.append("error" if not f else f"{f.get('tempo_bpm')} / {f.get('meter')} / {f.get('key')}")
        lines.append(f"| {record.get('id')} | {label if label else '-'} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="real_music.py's folder (dev.jsonl, test.jsonl; runs/ is written there)")
    parser.add_argument("--corpus", type=Path, help="a labelled manifest (default: render --synth clips into CACHE/corpus)")
    parser.add_argument("--synth", type=int, default=40, help="clips to render when no --corpus is given")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sets", default="corpus,test,dev", help="which sets, comma-separated")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="which backends (madmom is needed as the reference)")
    parser.add_argument("--rate", action="append", default=[], help="BACKEND=HZ: the --sample-rate of a backend (default RATES)")
    parser.add_argument("--refresh", default="", help="cached backends to recompute (comma-separated)")
    parser.add_argument("--reuse", default="", help="other backends whose cached outputs to reuse")
    parser.add_argument("--versus-rate", help="BACKEND=HZ: also run that backend at HZ and compare (e.g. essentia=22050)")
    parser.add_argument("--per-record", action="store_true", help="also a table of each record's tempo, meter and key per backend")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    cache = args.cache.expanduser()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rates = dict(RATES)
    for item in args.rate:
        name, _, hz = item.partition("=")
        rates[name] = int(hz)
    versus = None
    if args.versus_rate:
        name, _, hz = args.versus_rate.partition("=")
        versus = (name, int(hz))
    reuse = (CACHED | set(filter(None, args.reuse.split(",")))) - set(filter(None, args.refresh.split(",")))
    runs = cache / "runs"
    manifests = {"test": cache / "test.jsonl", "dev": cache / "dev.jsonl"}
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if "corpus" in sets:
        if args.corpus:
            manifests["corpus"] = args.corpus
        else:
            corpus = cache / f"corpus-{args.synth}-{args.seed}"
            if not (corpus / "manifest.jsonl").exists():
                make_corpus(corpus, args.synth, 30.0, args.seed, sample_rate=44100)
            manifests["corpus"] = corpus / "manifest.jsonl"

    report: dict = {"backends": backends, "rates": {b: rates[b] for b in backends}, "sets": {}}
    lines, speed = [], []
    for set_name in sets:
        manifest = manifests.get(set_name)
        if manifest is None or not manifest.exists():
            print(f"{set_name}: no manifest at {manifest} (run benchmarks/real_music.py fetch)", file=sys.stderr)
            continue
        print(f"{set_name}: {manifest}", file=sys.stderr)
        records = list(read_records(manifest))
        outputs, infos = {}, {}
        for backend in backends:
            outputs[backend], infos[backend] = features_of(manifest, backend, rates[backend], runs, set_name, backend in reuse)
        minutes = max(sum(f.get("duration", 0.0) for f in outputs[b]) for b in backends) / 60
        failed = {b: sum(1 for f in outputs[b] if not f) for b in backends}
        entry = {"manifest": str(manifest), "records": len(records), "minutes": minutes, "failed": failed, "runs": infos}
        if any(failed.values()):  # error records: their metrics count as misses (tempo) or are left out
            lines += [f"{set_name}: records without features (error records): "
                      + ", ".join(f"{NAMES[b]} {n}" for b, n in failed.items() if n), ""]
        if set_name == "corpus":
            entry["truth"] = {b: score(records, outputs[b]) for b in backends}
            lines += table(f"Rendered corpus ({len(records)} clips, exact labels)", entry["truth"], backends)
        else:
            split = "test packages: report these" if set_name == "test" else "dev packages: the tuning set, not a result"
            if REFERENCE in outputs:
                others = [b for b in backends if b != REFERENCE]
                reference = as_labels(outputs[REFERENCE])
                entry["agreement_with_madmom"] = {b: score(reference, outputs[b]) for b in others}
                if others:
                    lines += table(f"Real music, {set_name} ({len(records)} excerpts of 30 s, {split}): agreement with madmom",
                                   entry["agreement_with_madmom"], others)
            labelled = [(r, o) for r, o in zip(records, zip(*(outputs[b] for b in backends))) if (r.get("labels") or {}).get("tempo_bpm")]
            if labelled:
                label_records = [r for r, _ in labelled]
                entry["chart_tempo"] = {b: score(label_records, [o[i] for _, o in labelled]) for i, b in enumerate(backends)}
                lines += table(f"Real music, {set_name}: tempo against the Frets on Fire charts ({len(labelled)} songs, truth)",
                               entry["chart_tempo"], backends)
        if versus:
            name, rate = versus
            other, other_info = features_of(manifest, name, rate, runs, set_name, name in reuse)
            entry["versus_rate"] = compare_rates(records, outputs.get(REFERENCE), outputs[name], other, rates[name], rate)
            lines += rate_lines(set_name, name, entry["versus_rate"])
        if args.per_record:
            lines += per_record_lines(set_name, records, outputs, backends)
        speed.append(speed_line(f"{set_name} ({len(records)})", minutes, infos, backends))
        report["sets"][set_name] = entry

    out = lines + ["**Speed: x real time per core, the whole command** (audio / CPU seconds, start-up included)", "",
                   "| set (records) | minutes | " + " | ".join(NAMES[b] for b in backends) + " |",
                   "| --- | ---: |" + " ---: |" * len(backends), *speed]
    print("\n".join(out))
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


if __name__ == "__main__":
    main()
