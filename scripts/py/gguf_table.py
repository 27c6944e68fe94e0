#!/usr/bin/env python3
"""gguf_table.py MODEL.gguf [--no-tensor-sha] — print what gguf-py's GGUFReader sees, as JSON.

Run it with the oracle venv's python (scripts/setup-oracles.sh; gguf==0.19.0).

Output (one JSON object; key order as listed; floats/arrays/strings as in gguf_common.py):
  tool            "gguf-py"
  gguf_py_version the installed gguf package version
  file            basename of MODEL.gguf
  file_bytes      file size
  version         GGUF version from the header
  tensor_count    from the header
  kv_count        from the header
  alignment       general.alignment, else 32
  data_offset     absolute file offset of the tensor data section
  metadata        list, in file order, of
                    {key, type, value[, bits]}                    scalars and strings
                    {key, type:"ARRAY", element_type, len, sha256, first[, value]}
                  arrays always carry len, sha256 of the canonical encoding and the first 8
                  elements; arrays of at most 16 elements also carry the full value.
  tensors         list, in file order, of
                    {name, type (ggml type name), type_id, ne (dims as in the file, ne[0] first),
                     n_elements, offset (relative to data_offset), n_bytes, sha256 (of the
                     tensor's n_bytes bytes in the file; omitted with --no-tensor-sha)}
Exit status: 0 on success, 1 if gguf-py cannot read the file, 2 on bad usage.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_common import table  # noqa: E402


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    if len(args) != 1 or any(f != "--no-tensor-sha" for f in flags):
        sys.stderr.write(__doc__.split("\n\n", 1)[0] + "\n")
        return 2
    try:
        t = table(args[0], with_sha="--no-tensor-sha" not in flags)
    except Exception as e:  # gguf-py raises ValueError/KeyError/IndexError on malformed files
        sys.stderr.write(f"gguf_table: gguf-py cannot read {args[0]}: {type(e).__name__}: {e}\n")
        return 1
    json.dump(t, sys.stdout, indent=1, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
