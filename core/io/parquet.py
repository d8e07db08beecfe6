"""Parquet record streams.

Layout written by mllm (and read back losslessly):
- scalar fields (string, integer, float, bool) are native columns;
- tensor fields (numpy arrays) are struct columns ``{dtype, shape, data}`` (see tensors.py);
- any other value (dicts such as `features` or `answer`, lists such as `messages`) is a JSON string
  column, listed in the file's metadata under ``mllm.json_columns``;
- the columns are fixed by the first batch of records. A later record with a field the schema
  does not have, or a value of another type, keeps it in the `_extra` JSON column, which the
  reader merges back. Nothing is dropped and the schema never has to be rewritten.

Parquet written by other tools is read as it is (nested columns become dicts and lists).
Reading goes row group by row group, so memory follows the row-group size, not the file size;
Parquet from stdin has to be held in memory first (the format keeps its index at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from mllm.core.io.errors import Record, make_error
from mllm.core.io.jsonl import _json_default, check_fields
from mllm.core.io.tensors import PARQUET_TENSOR_KEYS, TensorCodecError, tensor_bytes, tensor_from_bytes

JSON_COLUMNS_KEY = b"mllm.json_columns"
TENSOR_COLUMNS_KEY = b"mllm.tensor_columns"
EXTRA_COLUMN = "_extra"
TENSOR_TYPE = pa.struct([("dtype", pa.string()), ("shape", pa.list_(pa.int64())), ("data", pa.binary())])


class ParquetReadError(ValueError):
    """The Parquet input cannot be read at all (cut short, not Parquet, unreadable)."""


def read_parquet(source: str | IO[bytes], name: str, *, batch_size: int = 1024) -> Iterator[Record]:
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ParquetReadError(
            f"{name}: not a complete Parquet file ({exc}). A file cut short loses its footer; "
            "write it again or read the part that survives with another tool."
        ) from exc
    metadata = parquet.schema_arrow.metadata or {}
    json_columns = set(orjson.loads(metadata.get(JSON_COLUMNS_KEY, b"[]")))
    tensor_columns = set(orjson.loads(metadata.get(TENSOR_COLUMNS_KEY, b"[]")))
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_size):
            for values in batch.to_pylist():
                row += 1
                yield _decode_row(values, json_columns, tensor_columns, f"{name}:row {row}")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ParquetReadError(f"{name}: unreadable after row {row} ({exc})") from exc


def _decode_row(values: dict[str, Any], json_columns: set[str], tensor_columns: set[str], where: str) -> Record:
    """One Parquet row as a record; a row that cannot be decoded is an error record that keeps its id."""
    extra = values.pop(EXTRA_COLUMN, None)
    record: Record = {}
    if values.get("id") is not None:
        record["id"] = values["id"]
    try:
        for key, value in values.items():
            if value is None and (key in json_columns or key in tensor_columns):
                continue  # a field this record did not have
            if key in json_columns:
                record[key] = orjson.loads(value)
            elif key in tensor_columns or (isinstance(value, dict) and value.keys() == PARQUET_TENSOR_KEYS):
                if not isinstance(value, dict) or value.keys() != PARQUET_TENSOR_KEYS:
                    raise TensorCodecError(f"field {key!r}: not a tensor struct {{dtype, shape, data}}")
                try:
                    record[key] = tensor_from_bytes(value["dtype"], value["shape"], value["data"])
                except TensorCodecError as exc:
                    raise TensorCodecError(f"field {key!r}: {exc}") from exc
            elif value is not None or key in ("id",):
                record[key] = value
        if extra:
            fields = orjson.loads(extra)
            if not isinstance(fields, dict):
                raise ValueError(f"column {EXTRA_COLUMN!r} must hold a JSON object, got {type(fields).__name__}")
            record.update(fields)
    except (orjson.JSONDecodeError, TensorCodecError, TypeError, ValueError) as exc:
        kind = "BadTensor" if isinstance(exc, TensorCodecError) else type(exc).__name__
        record.setdefault("id", where)
        record["error"] = make_error("read", f"{where}: record {record['id']!r}: {exc}", kind, fresh=True)
        record["id"] = str(record["id"])
        return record
    # The id checks and tensors in their JSON form (a JSON column or `_extra`), as for JSONL.
    return check_fields(record, where, require_id=True)


def _column_kind(values: list[Any]) -> str:
    """How a column is stored, from the values of the first batch: tensor, json or an arrow scalar."""
    kinds = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            kinds.add("tensor")
        elif isinstance(value, bool) or isinstance(value, np.bool_):
            kinds.add("bool")
        elif isinstance(value, (int, np.integer)):
            kinds.add("int")
        elif isinstance(value, (float, np.floating)):
            kinds.add("float")
        elif isinstance(value, str):
            kinds.add("string")
        else:
            kinds.add("json")
    if not kinds:
        return "json"
    if kinds == {"int", "float"}:
        return "float"
    if len(kinds) == 1:
        return kinds.pop()
    return "json"


_ARROW_TYPES = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "string": pa.string()}


class ParquetRecordWriter:
    """Writes records to Parquet in row groups of `batch_size`; the first batch fixes the columns."""

    def __init__(self, sink: str | IO[bytes], *, batch_size: int = 1024):
        self.sink = sink
        self.batch_size = batch_size
        self.buffer: list[Record] = []
        self.kinds: dict[str, str] | None = None
        self.writer: pq.ParquetWriter | None = None

    def write(self, record: Record) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.batch_size:
            self._flush()

    def close(self) -> None:
        if self.buffer or self.writer is None:
            self._flush()
        if self.writer is not None:
            self.writer.close()

    def _schema(self) -> pa.Schema:
        assert self.kinds is not None
        fields = []
        for name, kind in self.kinds.items():
            if kind == "tensor":
                fields.append(pa.field(name, TENSOR_TYPE))
            elif kind == "json":
                fields.append(pa.field(name, pa.string()))
            else:
                fields.append(pa.field(name, _ARROW_TYPES[kind]))
        fields.append(pa.field(EXTRA_COLUMN, pa.string()))
        metadata = {
            JSON_COLUMNS_KEY: orjson.dumps([n for n, k in self.kinds.items() if k == "json"]),
            TENSOR_COLUMNS_KEY: orjson.dumps([n for n, k in self.kinds.items() if k == "tensor"]),
        }
        return pa.schema(fields, metadata=metadata)

    def _flush(self) -> None:
        records, self.buffer = self.buffer, []
        if self.kinds is None:
            names: dict[str, None] = {"id": None, "error": None}
            for record in records:
                names.update(dict.fromkeys(record))
            self.kinds = {name: _column_kind([r.get(name) for r in records]) for name in names}
            self.kinds["error"] = "json"  # always present, so later error records fit the schema
            schema = self._schema()
            self.writer = pq.ParquetWriter(self.sink, schema)
        schema = self.writer.schema
        extras: list[dict[str, Any]] = [{} for _ in records]
        for record, extra in zip(records, extras):
            for key, value in record.items():
                if key not in self.kinds:
                    extra[key] = value
                elif value is None and self.kinds[key] != "json":
                    extra[key] = None  # an explicit null, kept apart from "field absent"
        arrays = []
        for name, kind in self.kinds.items():
            values = [record.get(name) for record in records]
            arrays.append(self._column(name, kind, values, extras))
        arrays.append(
            pa.array([orjson.dumps(e, default=_json_default).decode() if e else None for e in extras], pa.string())
        )
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    def _column(self, name: str, kind: str, values: list[Any], extras: list[dict[str, Any]]) -> pa.Array:
        if kind == "json":
            return pa.array(
                [None if v is None else orjson.dumps(v, default=_json_default).decode() for v in values], pa.string()
            )
        if kind == "tensor":
            cells = []
            for value, extra in zip(values, extras):
                if isinstance(value, np.ndarray):
                    dtype, shape, data = tensor_bytes(value)
                    cells.append({"dtype": dtype, "shape": shape, "data": data})
                else:
                    if value is not None:
                        extra[name] = value
                    cells.append(None)
            return pa.array(cells, TENSOR_TYPE)
        arrow_type = _ARROW_TYPES[kind]
        try:
            return pa.array(values, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # Values of another type than the first batch had: keep them row by row in _extra.
            cells = []
            for value, extra in zip(values, extras):
                try:
                    pa.array([value], arrow_type)
                    cells.append(value)
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                    extra[name] = value
                    cells.append(None)
            return pa.array(cells, arrow_type)
