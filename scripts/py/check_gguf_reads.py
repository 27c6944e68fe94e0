#!/usr/bin/env python3
"""check_gguf_reads.py FILE.gguf EXPECT.json — prove gguf-py (GGUFReader) reads FILE as EXPECT says.

Run it with the oracle venv's python (scripts/setup-oracles.sh; gguf==0.19.0).
Exit status: 0 every listed fact matches; 1 FILE does not load in gguf-py or something differs (every
difference is printed on stderr, one line each); 2 bad usage or a malformed EXPECT.json.

EXPECT.json is the gguf_table.py format (so a gguf_table.py output is itself a valid EXPECT):
  {
    "metadata": [ENTRY, ...],   required. The file must hold exactly these keys (header pseudo-keys
                                GGUF.* excluded), in this order unless "metadata_order": "any".
    "tensors":  [TENSOR, ...],  required. The file must hold exactly these tensors, in this order
                                unless "tensor_order": "any".
    "version", "tensor_count", "kv_count", "alignment", "data_offset", "file_bytes":
                                optional integers, compared exactly.
    "metadata_order", "tensor_order": optional, "file" (default) or "any".
    "tool", "gguf_py_version", "file" and keys starting with "_": ignored (comments, provenance).
  }
  ENTRY (every field present is checked; unknown fields are an error):
    {"key": K, "type": T, "value": V, "bits": "0x..."}          scalar or STRING; value or bits
    {"key": K, "type": "ARRAY", "element_type": E,               array; any of value (the full
     "value": [..], "len": N, "sha256": H, "first": [..]}        list), len, sha256, first
    T, E: UINT8 INT8 UINT16 INT16 UINT32 INT32 FLOAT32 BOOL STRING ARRAY UINT64 INT64 FLOAT64.
    Integers and strings compare exactly; BOOL is true/false; a FLOAT32 value matches when the
    JSON number rounded to f32 has the file's bit pattern (so any round-trip repr of an f32, e.g.
    Rust's `1e-6f32`, works); FLOAT64 compares as a double; "NaN"/"Infinity"/"-Infinity" match by
    class; "bits" compares the IEEE pattern exactly. "sha256" hashes the canonical encoding
    described in gguf_common.py (the little-endian on-disk payload after element type and count).
    A non-UTF-8 string value is {"utf8_invalid_hex": "..."}.
  TENSOR (every field present is checked; unknown fields are an error):
    {"name": S, "type": ggml type name, "type_id": int, "ne": [ne0, ne1, ...] (file order),
     "n_elements": int, "offset": int (relative to the data section), "n_bytes": int,
     "sha256": hex of the tensor's n_bytes bytes in the file}
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from gguf import GGUFReader, GGUFValueType  # noqa: E402

from gguf_common import array_values, table_from_reader  # noqa: E402

TOP_EXACT = ("version", "tensor_count", "kv_count", "alignment", "data_offset", "file_bytes")
TOP_IGNORED = ("tool", "gguf_py_version", "file")
TOP_OTHER = ("metadata", "tensors", "metadata_order", "tensor_order")
ENTRY_FIELDS = {"key", "type", "value", "bits", "element_type", "len", "sha256", "first"}
TENSOR_FIELDS = {"name", "type", "type_id", "ne", "n_elements", "offset", "n_bytes", "sha256"}
FLOATS = (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64)


class BadExpect(Exception):
    """EXPECT.json is malformed."""


def show(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 200 else s[:200] + "…"


def _bits(x: float, vtype: GGUFValueType) -> int:
    if vtype == GGUFValueType.FLOAT32:
        return int(np.array([x], dtype=np.float32).view(np.uint32)[0])
    return int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if v in ("NaN", "Infinity", "-Infinity"):
        return float(v.replace("Infinity", "inf"))
    return None


def same_value(expected: Any, actual: Any, vtype: GGUFValueType) -> bool:
    """Compare one expected JSON value with gguf-py's value (as gguf_common renders it)."""
    if vtype in FLOATS:
        e, a = _as_float(expected), _as_float(actual)
        if e is None or a is None:
            return False
        if math.isnan(e) or math.isnan(a):
            return math.isnan(e) and math.isnan(a)
        return _bits(e, vtype) == _bits(a, vtype)
    if vtype == GGUFValueType.BOOL:
        return isinstance(expected, bool) and expected == actual
    if vtype == GGUFValueType.STRING:
        return expected == actual
    # integers: reject bools and floats posing as integers
    return isinstance(expected, int) and not isinstance(expected, bool) and expected == actual


def same_list(expected: Any, actual: list[Any], vtype: GGUFValueType) -> bool:
    return (
        isinstance(expected, list)
        and len(expected) == len(actual)
        and all(same_value(e, a, vtype) for e, a in zip(expected, actual))
    )


def value_type(name: Any, where: str) -> GGUFValueType:
    try:
        return GGUFValueType[name]
    except (KeyError, TypeError):
        raise BadExpect(f"{where}: unknown GGUF value type {show(name)}") from None


def check_entry(exp: dict, act: dict, field, diffs: list[str]) -> None:
    key = exp["key"]
    where = f"metadata {key!r}"
    unknown = set(exp) - ENTRY_FIELDS
    if unknown:
        raise BadExpect(f"{where}: unknown fields {sorted(unknown)}")
    if "type" not in exp:
        raise BadExpect(f"{where}: missing \"type\"")
    et = value_type(exp["type"], where)
    if exp["type"] != act["type"]:
        diffs.append(f"{where}: type: expected {exp['type']}, got {act['type']}")
        return
    if et == GGUFValueType.ARRAY:
        if "bits" in exp:
            raise BadExpect(f"{where}: \"bits\" is for FLOAT32/FLOAT64 scalars")
        if "element_type" not in exp:
            raise BadExpect(f"{where}: an ARRAY entry needs \"element_type\"")
        elt = value_type(exp["element_type"], where)
        if exp["element_type"] != act["element_type"]:
            diffs.append(
                f"{where}: element_type: expected {exp['element_type']}, got {act['element_type']}"
            )
            return
        for k in ("len", "sha256"):
            if k in exp and exp[k] != act[k]:
                diffs.append(f"{where}: {k}: expected {show(exp[k])}, got {show(act[k])}")
        if "first" in exp and not same_list(exp["first"], act["first"], elt):
            diffs.append(f"{where}: first: expected {show(exp['first'])}, got {show(act['first'])}")
        if "value" in exp:
            full = array_values(field)
            if not same_list(exp["value"], full, elt):
                detail = ""
                if isinstance(exp["value"], list):
                    for i, (e, a) in enumerate(zip(exp["value"], full)):
                        if not same_value(e, a, elt):
                            detail = f" (first difference at [{i}]: expected {show(e)}, got {show(a)})"
                            break
                    else:
                        detail = f" (length: expected {len(exp['value'])}, got {len(full)})"
                diffs.append(f"{where}: value differs{detail}")
        return
    for k in ("element_type", "len", "sha256", "first"):
        if k in exp:
            raise BadExpect(f"{where}: \"{k}\" is only for ARRAY entries")
    if "value" not in exp and "bits" not in exp:
        raise BadExpect(f"{where}: needs \"value\" (or \"bits\" for floats)")
    if "value" in exp and not same_value(exp["value"], act["value"], et):
        diffs.append(f"{where}: value: expected {show(exp['value'])}, got {show(act['value'])}")
    if "bits" in exp:
        if et not in FLOATS:
            raise BadExpect(f"{where}: \"bits\" is for FLOAT32/FLOAT64 scalars")
        if str(exp["bits"]).lower() != act["bits"]:
            diffs.append(f"{where}: bits: expected {exp['bits']}, got {act['bits']}")


def check_tensor(exp: dict, act: dict, diffs: list[str]) -> None:
    where = f"tensor {exp['name']!r}"
    unknown = set(exp) - TENSOR_FIELDS
    if unknown:
        raise BadExpect(f"{where}: unknown fields {sorted(unknown)}")
    for k in sorted(TENSOR_FIELDS - {"name"}):
        if k in exp and exp[k] != act[k]:
            diffs.append(f"{where}: {k}: expected {show(exp[k])}, got {show(act[k])}")


def check_list(
    kind: str, exp_list: Any, act_list: list[dict], id_key: str, order: str, diffs: list[str]
) -> list[tuple[dict, dict]]:
    """Match expected entries to actual ones by id_key; record missing/extra/order differences."""
    if not isinstance(exp_list, list) or not all(
        isinstance(e, dict) and isinstance(e.get(id_key), str) for e in exp_list
    ):
        raise BadExpect(f"\"{kind}\" must be a list of objects each with a string \"{id_key}\"")
    exp_ids = [e[id_key] for e in exp_list]
    if len(set(exp_ids)) != len(exp_ids):
        raise BadExpect(f"\"{kind}\" lists a {id_key} twice")
    act_by = {a[id_key]: a for a in act_list}
    act_ids = [a[id_key] for a in act_list]
    for i in exp_ids:
        if i not in act_by:
            diffs.append(f"{kind}: missing {i!r}")
    exp_set = set(exp_ids)
    for i in act_ids:
        if i not in exp_set:
            diffs.append(f"{kind}: unexpected {i!r}")
    if order == "file":
        common_exp = [i for i in exp_ids if i in act_by]
        common_act = [i for i in act_ids if i in exp_set]
        if common_exp != common_act:
            pos = next(n for n, (a, b) in enumerate(zip(common_exp, common_act)) if a != b)
            diffs.append(
                f"{kind}: order differs at position {pos}: expected {common_exp[pos]!r}, "
                f"got {common_act[pos]!r}"
            )
    elif order != "any":
        raise BadExpect(f"{kind} order must be \"file\" or \"any\", not {show(order)}")
    return [(e, act_by[e[id_key]]) for e in exp_list if e[id_key] in act_by]


def check(path: str, expect: Any) -> list[str]:
    if not isinstance(expect, dict):
        raise BadExpect("EXPECT.json must be a JSON object")
    for k in expect:
        if not (k in TOP_EXACT or k in TOP_IGNORED or k in TOP_OTHER or k.startswith("_")):
            raise BadExpect(f"unknown top-level key {k!r}")
    for k in ("metadata", "tensors"):
        if k not in expect:
            raise BadExpect(f"missing top-level \"{k}\"")
    try:
        reader = GGUFReader(path, "r")
        with_sha = any(isinstance(t, dict) and "sha256" in t for t in expect["tensors"])
        actual = table_from_reader(reader, path, with_sha)
    except Exception as e:  # gguf-py raises ValueError/KeyError/IndexError on malformed files
        return [f"gguf-py cannot load the file: {type(e).__name__}: {e}"]
    diffs: list[str] = []
    for k in TOP_EXACT:
        if k in expect and expect[k] != actual[k]:
            diffs.append(f"{k}: expected {show(expect[k])}, got {show(actual[k])}")
    pairs = check_list(
        "metadata", expect["metadata"], actual["metadata"], "key",
        expect.get("metadata_order", "file"), diffs,
    )
    for e, a in pairs:
        check_entry(e, a, reader.fields[e["key"]], diffs)
    pairs = check_list(
        "tensors", expect["tensors"], actual["tensors"], "name",
        expect.get("tensor_order", "file"), diffs,
    )
    for e, a in pairs:
        check_tensor(e, a, diffs)
    return diffs


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: check_gguf_reads.py FILE.gguf EXPECT.json\n")
        return 2
    path, expect_path = argv
    try:
        with open(expect_path, encoding="utf-8") as f:
            expect = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"check_gguf_reads: cannot read {expect_path}: {e}\n")
        return 2
    if not os.path.isfile(path):
        sys.stderr.write(f"check_gguf_reads: {path}: no such file\n")
        return 1
    try:
        diffs = check(path, expect)
    except BadExpect as e:
        sys.stderr.write(f"check_gguf_reads: bad {expect_path}: {e}\n")
        return 2
    if diffs:
        for d in diffs:
            sys.stderr.write(f"check_gguf_reads: {path}: {d}\n")
        sys.stderr.write(f"check_gguf_reads: {path}: {len(diffs)} difference(s) from {expect_path}\n")
        return 1
    n_sha = sum(1 for t in expect["tensors"] if "sha256" in t)
    print(
        f"ok: {path}: {len(expect['metadata'])} metadata keys, {len(expect['tensors'])} tensors "
        f"({n_sha} with sha256) as expected"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
