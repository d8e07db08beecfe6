"""One codec for tensors inside records, shared by JSONL and Parquet.

A tensor field (an embedding `[T, D]`, say) is held in memory as a numpy array and written as

- JSONL:   ``{"dtype": "float16", "shape": [T, D], "b64": "<base64 of the C-order bytes>"}``
- Parquet: a struct column ``{dtype: string, shape: list<int64>, data: binary}``

Bytes are little-endian whatever the machine, so a file written on one machine reads the same on
any other. Only top-level fields of a record are decoded; a tensor nested deeper stays in its
encoded (JSON) form, the same in both formats.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

TENSOR_KEYS = frozenset(("dtype", "shape", "b64"))
PARQUET_TENSOR_KEYS = frozenset(("dtype", "shape", "data"))

# dtypes a record may carry; anything else (object, complex, strings) is refused on encode.
ALLOWED_DTYPES = frozenset(
    ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
)


class TensorCodecError(ValueError):
    """A tensor field could not be encoded or decoded (names the problem, not the record)."""


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and np.little_endian is False):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def tensor_bytes(array: np.ndarray) -> tuple[str, list[int], bytes]:
    """Split an array into (dtype name, shape, little-endian C-order bytes)."""
    array = np.asarray(array)
    name = array.dtype.name
    if name not in ALLOWED_DTYPES:
        raise TensorCodecError(f"cannot store a tensor of dtype {name!r}; use one of {sorted(ALLOWED_DTYPES)}")
    data = np.ascontiguousarray(_little_endian(array)).tobytes()
    return name, [int(n) for n in array.shape], data


def check_shape(shape: object) -> tuple[int, ...]:
    """A tensor shape as a tuple of ints; TensorCodecError unless it is a list of non-negative integers.

    Floats are refused even when whole (`[4.7, 39]` must not become `[4, 39]`), and so are bools.
    """
    if not isinstance(shape, (list, tuple)):
        raise TensorCodecError(f"tensor 'shape' must be a list of non-negative integers, got {shape!r}")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise TensorCodecError(f"tensor 'shape' must be a list of non-negative integers, got {list(shape)!r}")
    return tuple(int(n) for n in shape)


def tensor_from_bytes(dtype: str, shape: list[int] | tuple[int, ...], data: bytes) -> np.ndarray:
    """Rebuild an array from (dtype name, shape, bytes); checks the shape and that the sizes agree."""
    if dtype not in ALLOWED_DTYPES:
        raise TensorCodecError(f"unknown tensor dtype {dtype!r}")
    shape = check_shape(shape)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TensorCodecError(f"tensor data must be bytes, got {type(data).__name__}")
    np_dtype = np.dtype(dtype).newbyteorder("<")
    # Python ints: the product of [2**32, 2**32] must not wrap around to 0 as an int64 would.
    expected = math.prod(shape) * np_dtype.itemsize
    if len(data) != expected:
        raise TensorCodecError(
            f"tensor of shape {list(shape)} and dtype {dtype} needs {expected} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=np_dtype).reshape(shape).astype(np.dtype(dtype), copy=False)


def encode_tensor(array: np.ndarray) -> dict[str, Any]:
    """Array -> the JSON form ``{"dtype", "shape", "b64"}``."""
    dtype, shape, data = tensor_bytes(array)
    return {"dtype": dtype, "shape": shape, "b64": base64.b64encode(data).decode("ascii")}


def is_encoded_tensor(value: Any) -> bool:
    """True for a dict in the JSON tensor form."""
    return isinstance(value, dict) and value.keys() == TENSOR_KEYS


def decode_tensor(value: dict[str, Any]) -> np.ndarray:
    """The JSON form ``{"dtype", "shape", "b64"}`` -> array."""
    if not isinstance(value["b64"], str):
        raise TensorCodecError(f"tensor 'b64' must be a base64 string, got {type(value['b64']).__name__}")
    if not isinstance(value["dtype"], str):
        raise TensorCodecError(f"tensor 'dtype' must be a string, got {value['dtype']!r}")
    shape = check_shape(value["shape"])  # before decoding: a bad shape is reported as such
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError) as exc:
        raise TensorCodecError(f"tensor 'b64' is not valid base64: {exc}") from exc
    return tensor_from_bytes(value["dtype"], shape, data)
