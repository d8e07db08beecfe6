"""Real music without labels, from Debian game soundtracks: 30 s excerpts split dev/test by package.

    python benchmarks/real_music.py fetch                        # -> ~/.cache/mllm/real-music/{dev,test}.jsonl
    python benchmarks/real_music.py fetch --cache /data/real-music --per-package 8 --seconds 30
    mllm extract-features ~/.cache/mllm/real-music/dev.jsonl --backend madmom -o ~/.cache/mllm/real-music/dev.madmom.jsonl

Why: the rendered `mllm synth` corpus has exact labels but no real mixes, tuning offsets, swing
or dotted rhythms, so a feature extractor tuned on it alone can fail on recordings (issue 12).
These soundtracks are real productions (rock bands, orchestral and electronic game scores),
licensed freely (every package is in Debian main) and fetched with `apt-get download` at pinned
versions whose .deb SHA-256 is checked, so every machine gets the same audio. The audio is never
committed: it lives in the cache folder (about 340 MB of .debs, 370 MB unpacked, 260 MB of
extracted and mixed tracks).

It needs `apt-get` and `dpkg-deb` with Debian bookworm's main archive in the apt sources (any
machine whose apt offers these exact versions; elsewhere put the .debs, e.g. from
snapshot.debian.org, into CACHE/debs: their SHA-256 is what is checked).

Steps of `fetch` (each skipped when its output is already there):
1. `apt-get download PACKAGE=VERSION` into CACHE/debs, the SHA-256 checked against PACKAGES;
2. `dpkg-deb -x` into CACHE/unpacked/PACKAGE;
3. the tracks: the package's .ogg files; nexuiz-music's are inside a zip (music.pk3), extracted to
   CACHE/tracks/; a Frets on Fire song is two stems (song.ogg: band without lead guitar, and
   guitar.ogg), summed into one FLAC under CACHE/tracks/ so the excerpt is the whole mix;
4. the excerpts: tracks of at least `--seconds` + 10 s (shorter ones are jingles), sorted by path,
   at most `--per-package` per package taken at evenly spaced positions of that order, each cut
   `--seconds` long from the track's middle (the intro and fade-out are the least typical parts);
5. CACHE/dev.jsonl and CACHE/test.jsonl (records `id`, `audio`, `start`, `end`, `package`,
   `package_version`, `licence`, `split`), and CACHE/packages.json (what was fetched).

Labels: none, except the 8 Frets on Fire songs (test), whose game charts carry the song's tempo
(`labels.tempo_bpm`, one tempo per song; see `chart_tempo`). Everything else is scored against
madmom as a reference (benchmarks/features_real_music.py).

The split is by package, fixed here (SPLIT), so that no track, composer or production style of
the test set is seen while tuning: dev = hyperrogue-music and drascula-music (tune on these),
test = nexuiz-music, planetblupi-music-ogg, singularity-music and the two Frets on Fire song
packages (report these; never tune on them). fb-music-high is left out: its one track is an
Extended Module (.xm), which neither libsndfile nor audioread decodes without a module player.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import soundfile

DEFAULT_CACHE = Path("~/.cache/mllm/real-music").expanduser()
EXCERPT_SECONDS = 30.0
PER_PACKAGE = 8
MARGIN_SECONDS = 10.0  # a track must be this much longer than an excerpt (shorter: jingles, stingers)


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # Debian bookworm main
    sha256: str  # of the .deb
    licence: str  # from the package's debian/copyright
    split: str  # "dev" or "test"
    tracks: str  # glob, relative to the unpacked package, of the audio files (or of the zip holding them)


PACKAGES = [
    Package("hyperrogue-music", "12.0q-1", "61ab9f4c2169442d85f42c42d26e80c1a18b93c741f3d44f1b9d83015904e7f7",
            "CC-BY-SA-3.0", "dev", "usr/share/hyperrogue/music/*.ogg"),
    Package("drascula-music", "1.0+ds4-2", "340e0beb1bacf005cbabebc07ebdd88adf6aee363d437f8a7d73cb0c77a93e79",
            "Drascula licence (BSD-like, DFSG-free)", "dev", "usr/share/scummvm/drascula/audio/*.ogg"),
    Package("nexuiz-music", "2.5.2-12", "d1a7d6e2c0a5bbe6670dbf73354e38f742597310d425e373250fc71a636f8dda",
            "GPL-2+", "test", "usr/share/games/nexuiz/data/music.pk3"),
    Package("planetblupi-music-ogg", "1.14.2-3", "7d89a6d00b43cdb601e35256ab1a62814d203b5922cfed6a0e73e98486e82fa6",
            "GPL-3+", "test", "usr/share/planetblupi/music/*.ogg"),
    Package("singularity-music", "007-2", "139ba1e408eeb0a72f1fff3760ca46558b9f81bed97dc8c0efa108c4007f4845",
            "CC-BY-SA-3.0", "test", "usr/share/games/singularity/music/*.ogg"),
    Package("fretsonfire-songs-muldjord", "2.dfsg-2.1", "b37adf8b08b46d4182c283e760e4f40622d83674e05803960ea1e11a92600c7b",
            "CC-BY-SA-3.0", "test", "usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg"),
    Package("fretsonfire-songs-sectoid", "1.dfsg-3.1", "14c1ed3e43c1a6a80eae7698f0469a0825cd1184e441968d62df89ca418aa0b4",
            "GPL-2+", "test", "usr/share/games/fretsonfire/data/songs/sectoid/*/song.ogg"),
]
SPLIT = {package.name: package.split for package in PACKAGES}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(package: Package, debs: Path) -> Path:
    """The package's .deb in `debs` (apt-get download at the pinned version), its SHA-256 checked."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package.name}_*.deb"))
    if not found:
        log(f"apt-get download {package.name}={package.version}")
        subprocess.run(["apt-get", "download", "-q", f"{package.name}={package.version}"], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
        found = sorted(debs.glob(f"{package.name}_*.deb"))
    deb = found[-1]
    digest = sha256(deb)
    if package.sha256 and digest != package.sha256:
        raise SystemExit(f"{deb}: SHA-256 {digest} is not the pinned {package.sha256} (a different build of "
                         f"{package.name} {package.version}?); delete it and fetch again, or update PACKAGES")
    return deb


def unpack(package: Package, deb: Path, unpacked: Path) -> Path:
    target = unpacked / package.name
    if not (target / ".done").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        (target / ".done").touch()
    return target


def mix_stems(stems: list[Path], out: Path) -> Path:
    """The stems (same rate) summed to one FLAC, scaled down only if the sum would clip."""
    if out.exists():
        return out
    signals = [soundfile.read(stem, dtype="float32", always_2d=True) for stem in stems]
    rate = signals[0][1]
    if any(r != rate for _, r in signals):
        raise SystemExit(f"stems at different rates: {stems}")
    length = max(s.shape[0] for s, _ in signals)
    channels = max(s.shape[1] for s, _ in signals)
    mix = np.zeros((length, channels), dtype=np.float32)
    for signal, _ in signals:
        mix[: signal.shape[0]] += signal if signal.shape[1] == channels else signal.mean(axis=1, keepdims=True)
    peak = float(np.abs(mix).max())
    if peak > 1.0:
        mix /= peak
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.flac")
    soundfile.write(partial, mix, rate, subtype="PCM_16")
    os.replace(partial, out)
    return out


def tracks(package: Package, root: Path, cache: Path) -> list[Path]:
    """The package's audio files, sorted (extracted or mixed into CACHE/tracks/PACKAGE first where needed)."""
    matched = sorted(root.glob(package.tracks))
    out_dir = cache / "tracks" / package.name
    if package.tracks.endswith(".pk3"):  # a zip of .ogg files
        extracted = []
        for archive in matched:
            with zipfile.ZipFile(archive) as pk3:
                for name in sorted(n for n in pk3.namelist() if n.endswith(".ogg")):
                    target = out_dir / Path(name).name
                    if not target.exists():
                        out_dir.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(pk3.read(name))
                    extracted.append(target)
        return extracted
    if package.name.startswith("fretsonfire-songs-"):  # song.ogg + guitar.ogg (+ rhythm.ogg) per song
        mixed = []
        for song in matched:
            stems = [song] + sorted(p for p in song.parent.glob("*.ogg") if p.name in ("guitar.ogg", "rhythm.ogg"))
            mixed.append(mix_stems(stems, out_dir / f"{song.parent.name.replace(' ', '_')}.flac"))
            CHART_TEMPO[mixed[-1]] = chart_tempo(song.parent / "notes.mid")
        return mixed
    return matched


CHART_TEMPO: dict[Path, float | None] = {}  # mixed Frets on Fire song -> its chart's tempo


def chart_tempo(notes: Path) -> float | None:
    """The tempo (BPM) of a Frets on Fire chart (notes.mid), when it has one tempo throughout.

    The charts are authored against the recording (the game scores notes played on its beat grid),
    so this is a tempo label made by a person for real music; the beat level is the charter's
    choice (170-190 BPM for the thrash metal songs), so Acc2 is the fair comparison. None when the
    chart changes tempo or mido (a dependency of madmom) is not installed.
    """
    try:
        import mido
    except ImportError:
        return None
    if not notes.exists():
        return None
    tempos = {round(mido.tempo2bpm(m.tempo), 3) for track in mido.MidiFile(notes).tracks for m in track if m.type == "set_tempo"}
    return tempos.pop() if len(tempos) == 1 else None


def evenly_spaced(items: list, most: int) -> list:
    if len(items) <= most:
        return items
    return [items[int(i * len(items) / most)] for i in range(most)]


def excerpts(package: Package, paths: list[Path], seconds: float, per_package: int) -> list[dict]:
    long_enough = []
    for path in paths:
        info = soundfile.info(path)
        duration = info.frames / info.samplerate
        if duration >= seconds + MARGIN_SECONDS:
            long_enough.append((path, duration))
    records = []
    for path, duration in evenly_spaced(long_enough, per_package):
        start = round((duration - seconds) / 2, 3)
        records.append({
            "id": f"{package.name}/{path.stem}", "audio": str(path), "start": start, "end": round(start + seconds, 3),
            "package": package.name, "package_version": package.version, "licence": package.licence,
            "split": package.split,
        })
        if CHART_TEMPO.get(path):
            records[-1]["labels"] = {"tempo_bpm": CHART_TEMPO[path], "source": "Frets on Fire chart (notes.mid)"}
    return records


def fetch(cache: Path, seconds: float, per_package: int) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[dict]] = {"dev": [], "test": []}
    fetched = []
    for package in PACKAGES:
        deb = download(package, cache / "debs")
        root = unpack(package, deb, cache / "unpacked")
        found = tracks(package, root, cache)
        chosen = excerpts(package, found, seconds, per_package)
        by_split[package.split].extend(chosen)
        fetched.append({"package": package.name, "version": package.version, "deb": deb.name, "sha256": sha256(deb),
                        "licence": package.licence, "split": package.split, "tracks": len(found), "excerpts": len(chosen)})
        log(f"{package.name} {package.version} ({package.split}): {len(found)} tracks, {len(chosen)} excerpts")
    for split, records in by_split.items():
        path = cache / f"{split}.jsonl"
        partial = path.with_suffix(".partial")
        partial.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        os.replace(partial, path)
        log(f"{path}: {len(records)} excerpts of {seconds:g} s")
    (cache / "packages.json").write_bytes(orjson.dumps(
        {"seconds": seconds, "per_package": per_package, "packages": fetched}, option=orjson.OPT_INDENT_2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download, unpack, cut excerpts, write dev.jsonl and test.jsonl")
    fetch_parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"folder outside the repo (default {DEFAULT_CACHE})")
    fetch_parser.add_argument("--seconds", type=float, default=EXCERPT_SECONDS, help="excerpt length")
    fetch_parser.add_argument("--per-package", type=int, default=PER_PACKAGE, help="most excerpts per package")
    args = parser.parse_args()
    if args.command == "fetch":
        fetch(args.cache.expanduser(), args.seconds, args.per_package)


if __name__ == "__main__":
    main()
