"""Shared helpers for gguf_table.py and check_gguf_reads.py: turn what gguf-py's GGUFReader sees
into plain JSON-ready data.

Conventions (the "gguf-py table" format; see gguf_table.py for the full layout):
  * Metadata types are GGUFValueType names: UINT8 INT8 UINT16 INT16 UINT32 INT32 FLOAT32 BOOL STRING
    ARRAY UINT64 INT64 FLOAT64.
  * Floats are JSON numbers holding the exact value (a FLOAT32 is widened to double exactly);
    non-finite floats are the strings "NaN", "Infinity", "-Infinity". FLOAT32/FLOAT64 scalars also
    carry "bits": the IEEE bit pattern as a lowercase hex string ("0x3f800000").
  * The canonical encoding of an array (hashed by "sha256") is the array's payload as a
    little-endian GGUF file stores it after the element type and count: numbers as little-endian
    elements of the element type, BOOL as one byte 0/1, STRING as u64 LE byte length + UTF-8 bytes,
    nested ARRAY as u32 LE element type + u64 LE count + payload.
  * Strings that are not valid UTF-8 are given as {"utf8_invalid_hex": "..."} instead of a string.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType

# Arrays up to this length also carry their full "value"; every array carries len/sha256/first.
FULL_ARRAY_MAX = 16
FIRST_N = 8

PSEUDO_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


def float_json(x: float) -> Any:
    """A float as JSON: the exact number, or a string for non-finite values."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def float_bits(x: Any, vtype: GGUFValueType) -> str:
    if vtype == GGUFValueType.FLOAT32:
        return "0x%08x" % int(np.array([x], dtype=np.float32).view(np.uint32)[0])
    return "0x%016x" % int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def string_json(raw: bytes) -> Any:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"utf8_invalid_hex": raw.hex()}


def _le_bytes(part: np.ndarray) -> bytes:
    if part.dtype.byteorder in ("<", "|", "=") and np.little_endian:
        return part.tobytes()
    return part.astype(part.dtype.newbyteorder("<")).tobytes()


def _scalar(part: np.ndarray, vtype: GGUFValueType) -> Any:
    v = part.tolist()[0]
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return float_json(v)
    if vtype == GGUFValueType.BOOL:
        return bool(v)
    return int(v)


def _array_elements(field, start: int, end: int) -> tuple[GGUFValueType, list[Any]]:
    """Elements [start, end) of a one-level array field as JSON values."""
    etype = GGUFValueType(int(field.parts[3][0]))
    out: list[Any] = []
    if etype == GGUFValueType.ARRAY:
        return etype, out  # nested arrays: summarised only
    for idx in field.data[start:end]:
        part = field.parts[idx]
        if etype == GGUFValueType.STRING:
            out.append(string_json(bytes(part)))
        else:
            out.append(_scalar(part, etype))
    return etype, out


def describe_field(field) -> dict[str, Any]:
    """One metadata entry: {key, type, value[, bits]} or for arrays
    {key, type: ARRAY, element_type, len, sha256, first[, value]}."""
    vtype = GGUFValueType(int(field.parts[2][0]))
    entry: dict[str, Any] = {"key": field.name, "type": vtype.name}
    if vtype == GGUFValueType.STRING:
        entry["value"] = string_json(bytes(field.parts[-1]))
    elif vtype == GGUFValueType.ARRAY:
        n = int(field.parts[4][0])
        etype = GGUFValueType(int(field.parts[3][0]))
        h = hashlib.sha256()
        for part in field.parts[5:]:
            h.update(_le_bytes(part))
        entry["element_type"] = etype.name
        entry["len"] = n
        entry["sha256"] = h.hexdigest()
        entry["first"] = _array_elements(field, 0, FIRST_N)[1]
        if n <= FULL_ARRAY_MAX and etype != GGUFValueType.ARRAY:
            entry["value"] = _array_elements(field, 0, n)[1]
    else:
        entry["value"] = _scalar(field.parts[-1], vtype)
        if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            entry["bits"] = float_bits(field.parts[-1].tolist()[0], vtype)
    return entry


def describe_tensor(t, raw: np.ndarray, data_start: int, with_sha: bool) -> dict[str, Any]:
    """One tensor-table entry; "sha256" hashes the file bytes [data_offset, data_offset + n_bytes)."""
    entry: dict[str, Any] = {
        "name": t.name,
        "type": t.tensor_type.name,
        "type_id": int(t.tensor_type),
        "ne": [int(d) for d in t.shape.tolist()],
        "n_elements": int(t.n_elements),
        "offset": int(t.data_offset) - data_start,
        "n_bytes": int(t.n_bytes),
    }
    if with_sha:
        start = int(t.data_offset)
        chunk = raw[start : start + int(t.n_bytes)]
        if chunk.nbytes != int(t.n_bytes):
            raise ValueError(f"tensor {t.name!r}: data runs past the end of the file")
        entry["sha256"] = hashlib.sha256(memoryview(chunk)).hexdigest()
    return entry


def table(path: str, with_sha: bool = True) -> dict[str, Any]:
    """The whole gguf-py view of one file."""
    return table_from_reader(GGUFReader(path, "r"), path, with_sha)


def table_from_reader(r: GGUFReader, path: str, with_sha: bool = True) -> dict[str, Any]:
    """The whole gguf-py view of an already opened reader."""
    import importlib.metadata
    import os

    version = int(r.fields["GGUF.version"].parts[0][0])
    tensor_count = int(r.fields["GGUF.tensor_count"].parts[0][0])
    kv_count = int(r.fields["GGUF.kv_count"].parts[0][0])
    return {
        "tool": "gguf-py",
        "gguf_py_version": importlib.metadata.version("gguf"),
        "file": os.path.basename(path),
        "file_bytes": os.path.getsize(path),
        "version": version,
        "tensor_count": tensor_count,
        "kv_count": kv_count,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": [describe_field(f) for k, f in r.fields.items() if k not in PSEUDO_FIELDS],
        "tensors": [describe_tensor(t, r.data, int(r.data_offset), with_sha) for t in r.tensors],
    }


def array_values(field) -> list[Any]:
    """All elements of a one-level array field as JSON values ([] for nested arrays)."""
    return _array_elements(field, 0, int(field.parts[4][0]))[1]
