"""Records in -> records with `features` out: `mllm extract-features` as a library call.

    summary = StreamSummary(STAGE)
    for record in extract_features(read_records("clips.jsonl"), workers=2, summary=summary):
        ...   # record["features"] = {"duration", "tempo_bpm", "beats", ..., "backend"}

- Each record's audio is `record["audio"]` between `start` and `end` (mllm.core.audio), decoded
  to mono at `sample_rate`, block by block for the librosa backend (memory does not grow with
  the excerpt beyond its frames), whole for essentia. An excerpt longer than the backend's
  `longest_seconds` fails alone with an error naming the field (`audio` or `end`) and the bound.
  A record that cannot be read or analysed gets an `error` field
  (stage "extract-features") and every other field kept; a record that failed upstream passes
  through untouched (map_records semantics).
- `shard=(i, n)` keeps the records whose position in the input (0-based, counting every record)
  is i modulo n, so n jobs of a cluster array or n torchrun ranks split a collection with no
  overlap and no gap; the other records' audio is not decoded and they are not written.
- `workers > 1` analyses records in a process pool. Output order is input order. At most
  `IN_FLIGHT_PER_WORKER * workers` records are in flight, so memory does not grow with the
  input. Every analysis runs with one BLAS thread (see `analyse_record`), so N workers use N cores.
  A worker that dies (a decoder crash, out of memory) fails the record it was analysing: the
  records that were in flight are re-run one at a time in a fresh pool to find which one it
  was, and the others go on. Workers are spawned, so a Python script calling this with
  workers > 1 needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
import multiprocessing

from threadpoolctl import threadpool_limits

from mllm.core.audio import record_audio, record_audio_stream
from mllm.core.features.backend import DEFAULT_BACKEND, get_backend
from mllm.core.io.errors import Record, StreamSummary, has_error, map_records, with_error
from mllm.core.io.shards import take_shard

STAGE = "extract-features"
DEFAULT_SAMPLE_RATE = 22050  # the decode rate of a backend that names none (librosa)
IN_FLIGHT_PER_WORKER = 4


def decode_rate(backend: str, sample_rate: int | None = None) -> int:
    """The rate audio is decoded at for `backend`: `sample_rate` when given, else the backend's own
    (SAMPLE_RATE of its module: 44.1 kHz for essentia and madmom, whose extractors and networks are
    built for it), else DEFAULT_SAMPLE_RATE."""
    return int(sample_rate or get_backend(backend).sample_rate or DEFAULT_SAMPLE_RATE)


def analyse_record(record: Record, backend: str = DEFAULT_BACKEND, sample_rate: int | None = None) -> Record:
    """The record with a `features` field; raises on unreadable audio, an excerpt over the
    backend's bound (AudioTooLong, naming the field) or a failed analysis.

    A backend with `analyse_blocks` (librosa) gets the audio block by block as it is decoded;
    one without (essentia) gets the whole excerpt. BLAS runs on one thread meanwhile: the
    analysis multiplies small matrices, where OpenBLAS's threads cost more than they give (240
    clips of 30 s: 50 s of CPU and 51 s of wall time with its default threads on two cores, 17 s
    and 20 s with one).
    """
    chosen = get_backend(backend)
    sample_rate = decode_rate(backend, sample_rate)
    purpose = f"extract-features --backend {backend}"
    with threadpool_limits(1):
        if chosen.analyse_blocks is not None:
            stream = record_audio_stream(record, sample_rate=sample_rate, longest=chosen.longest_seconds, purpose=purpose)
            features = chosen.analyse_blocks(stream, sample_rate)
        else:
            audio = record_audio(record, sample_rate=sample_rate, longest=chosen.longest_seconds, purpose=purpose)
            features = chosen.analyse(audio.samples, audio.sample_rate)
    return {**record, "features": features}


def _analyse_or_error(record: Record, backend: str, sample_rate: int | None) -> Record:
    """analyse_record in a worker: any failure becomes the record's error (never a dead pool)."""
    try:
        return analyse_record(record, backend, sample_rate)
    except Exception as exc:  # noqa: BLE001 - one record's failure is that record's error
        return with_error(record, STAGE, exc)


@dataclass
class _Pending:
    record: Record
    future: Future | None  # None: passed through (failed upstream)


class _Pool:
    """A process pool running `task(record) -> record` that is replaced when a worker dies."""

    def __init__(self, workers: int, task: Callable[[Record], Record]):
        self.workers, self.task = workers, task
        self.executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding BLAS/numba threads
        return ProcessPoolExecutor(self.workers, mp_context=context)

    def submit(self, record: Record) -> Future:
        """The record's future; when a worker has already died (the pool is broken before the
        record could be queued), a future holding that BrokenProcessPool, handled like the others."""
        try:
            return self.executor.submit(self.task, record)
        except BrokenProcessPool as exc:
            future: Future = Future()
            future.set_exception(exc)
            return future

    def renew(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new()

    def run_alone(self, record: Record) -> Record:
        """Analyse one record with nothing else in flight; a dead worker is its error."""
        try:
            return self.submit(record).result()
        except BrokenProcessPool as exc:
            self.renew()
            return with_error(record, STAGE, f"the worker process analysing it died ({exc})", "WorkerDied")

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def in_pool(
    records: Iterable[Record], task: Callable[[Record], Record], workers: int, summary: StreamSummary | None = None
) -> Iterator[Record]:
    """`task` (picklable; it must turn its own failures into error records) over the records in
    `workers` spawned processes, in input order; records with an `error` pass through."""
    pool = _Pool(workers, task)
    window: deque[_Pending] = deque()

    def finish(entry: _Pending) -> Iterator[Record]:
        if entry.future is None:
            out, new_failure = entry.record, False
        else:
            try:
                out = entry.future.result()
            except BrokenProcessPool:
                # Which in-flight record killed the worker is unknown: re-run them one at a time.
                pool.renew()
                out = pool.run_alone(entry.record)
                for other in window:
                    if other.future is not None and (not other.future.done() or other.future.exception() is not None):
                        other.future = _done(pool.run_alone(other.record))
            except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                out = with_error(entry.record, STAGE, exc)
            new_failure = has_error(out)
        if summary is not None:
            summary.note(out, new_failure=new_failure)
        yield out

    try:
        for record in records:
            if summary is not None:
                summary.records_in += 1
            window.append(_Pending(record, None if has_error(record) else pool.submit(record)))
            while len(window) >= IN_FLIGHT_PER_WORKER * workers:
                yield from finish(window.popleft())
        while window:
            yield from finish(window.popleft())
    finally:
        pool.close()


def _done(record: Record) -> Future:
    future: Future = Future()
    future.set_result(record)
    return future


def extract_features(
    records: Iterable[Record],
    *,
    backend: str = DEFAULT_BACKEND,
    sample_rate: int | None = None,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    summary: StreamSummary | None = None,
) -> Iterator[Record]:
    """Records with `features` (or an `error`), in input order (see the module docstring).

    The backend is checked before the first record is read: an unknown or uninstalled backend
    raises BackendUnavailable at once instead of failing every record.
    """
    sample_rate = decode_rate(backend, sample_rate)  # also checks the backend
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    records = take_shard(records, shard)
    if workers == 1:
        return map_records(records, lambda record: analyse_record(record, backend, sample_rate), STAGE, summary)
    return in_pool(records, partial(_analyse_or_error, backend=backend, sample_rate=sample_rate), workers, summary)
