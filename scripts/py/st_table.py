#!/usr/bin/env python3
"""st_table.py FILE... — what PyPI `safetensors` (safe_open) sees: JSON on stdout,
{"tensors": {name: {"dtype": D, "shape": [...]}}, "metadata": {...}} over all FILES.
Exit 1 if any file fails to open."""
import json
import sys

from safetensors import safe_open


def main() -> int:
    tensors, metadata = {}, {}
    for f in sys.argv[1:]:
        try:
            with safe_open(f, framework="numpy") as st:
                metadata.update(st.metadata() or {})
                for k in st.keys():
                    sl = st.get_slice(k)
                    tensors[k] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape())}
        except Exception as e:  # noqa: BLE001 - report any failure to open
            print(f"safetensors cannot open {f}: {e}", file=sys.stderr)
            return 1
    json.dump({"tensors": tensors, "metadata": metadata}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
