"""JSONL record streams: one JSON object per line, UTF-8.

Reading is line by line (memory does not grow with the file). A line that is not a JSON object
does not stop the stream: it comes out as an error record whose `id` is `<source>:<line>` and whose
`raw` field keeps the line's text, so nothing is lost and the exit code reports it.
A file whose first non-blank byte is `[` is read as one JSON array of records (CMI-Bench writes
its result files that way); such a file is loaded whole. A UTF-8 byte order mark at the start is
skipped. A line that uses Python's `NaN`/`Infinity` (not JSON, but what `json.dumps` writes for
non-finite floats) or an integer beyond 64 bits is read for its `id` and becomes an error record
naming the field, with the line kept in `raw`: such a value cannot be carried on unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import orjson

from mllm.core.io.errors import Record, make_error
from mllm.core.io.tensors import TENSOR_KEYS, decode_tensor, encode_tensor, TensorCodecError


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_tensor(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write a value of type {type(value).__name__} into a record")


def dumps(record: Record) -> bytes:
    """One record as a JSON line (with its newline); numpy arrays go through the tensor codec."""
    return orjson.dumps(record, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)


def decode_fields(record: Record) -> Record:
    """Turn top-level tensor fields from their JSON form into numpy arrays (in place)."""
    for name, value in record.items():
        # the test of is_encoded_tensor, inlined: this loop sees every field of every record read
        if isinstance(value, dict) and value.keys() == TENSOR_KEYS:
            try:
                record[name] = decode_tensor(value)
            except TensorCodecError as exc:
                raise TensorCodecError(f"field {name!r}: {exc}") from exc
    return record


UTF8_BOM = b"\xef\xbb\xbf"
INT64 = (-(2**63), 2**64 - 1)  # what orjson reads and writes (uint64 included)


def _read_error(where: str, error_type: str, message: str, raw: str) -> Record:
    return {"id": where, "raw": raw, "error": make_error("read", message, error_type, fresh=True)}


def _unportable_fields(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(field path, value) of every non-finite float and out-of-range integer inside `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unportable_fields(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unportable_fields(item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        yield path, value


def _lenient_record(line: bytes, where: str, exc: Exception) -> Record:
    """The error record of a line orjson refuses: Python's json module is tried for NaN/Infinity and
    big integers, so that the record keeps its real id and the message names the field."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        value = json.loads(text)
    except ValueError:
        return _read_error(where, "JSONDecodeError", f"{where}: not valid JSON ({exc})", text)
    found = list(_unportable_fields(value))
    if not isinstance(value, dict) or not found:
        return _read_error(where, "JSONDecodeError", f"{where}: not valid JSON ({exc})", text)
    record_id = value.get("id") if isinstance(value.get("id"), str) else where
    fields = ", ".join(f"{name!r} = {number!r}" for name, number in found[:5])
    return {"id": record_id, "raw": text, "error": make_error(
        "read", f"{where}: record {record_id!r}: {fields}: JSON has no NaN or Infinity and mllm carries integers of "
        "64 bits at most; write null or a finite number", "UnportableNumber", fresh=True)}


def check_record(value: Any, where: str, *, require_id: bool) -> Record:
    """Validate one parsed JSON value as a record; returns an error record if it is not one."""
    if not isinstance(value, dict):
        return _read_error(
            where, "NotARecord", f"{where}: expected a JSON object, got {type(value).__name__}", orjson.dumps(value).decode()
        )
    return check_fields(value, where, require_id=require_id)


def check_fields(value: Record, where: str, *, require_id: bool) -> Record:
    """Validate a record's `id` and decode its tensor fields; an error record when either fails."""
    if require_id:
        if "id" not in value:
            out = dict(value)
            out["id"] = where
            out["error"] = make_error("read", f"{where}: record has no 'id' field", "MissingId", fresh=True)
            return out
        if not isinstance(value["id"], str):
            out = dict(value)
            out["error"] = make_error(
                "read", f"{where}: field 'id' must be a string, got {type(value['id']).__name__} {value['id']!r}", "BadId",
                fresh=True)
            out["id"] = str(value["id"])
            return out
    try:
        return decode_fields(value)
    except TensorCodecError as exc:
        out = dict(value)
        out["error"] = make_error("read", f"{where}: record {value.get('id', where)!r}: {exc}", "BadTensor", fresh=True)
        return out


def read_jsonl(stream: IO[bytes], name: str, *, require_id: bool = True) -> Iterator[Record]:
    """Records of a JSONL (or JSON array) byte stream; `name` is used in messages."""
    first = stream.peek(64) if hasattr(stream, "peek") else b""
    if first.startswith(UTF8_BOM):
        stream.read(len(UTF8_BOM))
        first = first[len(UTF8_BOM):]
    if first.lstrip()[:1] == b"[":
        yield from _read_json_array(stream.read(), name, require_id=require_id)
        return
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(UTF8_BOM):  # a stream without peek: the mark is still here
            line = line[len(UTF8_BOM):]
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _lenient_record(line, where, exc)
            continue
        yield check_record(value, where, require_id=require_id)


def _read_json_array(data: bytes, name: str, *, require_id: bool) -> Iterator[Record]:
    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # A whole-file array that does not parse cannot be split into records safely.
        raise ValueError(f"{name}: starts with '[' but is not a valid JSON array ({exc})") from exc
    if not isinstance(items, list):
        raise ValueError(f"{name}: expected a JSON array of records")
    for index, value in enumerate(items):
        yield check_record(value, f"{name}[{index}]", require_id=require_id)
