#!/usr/bin/env python3
"""Does an exported tokenizer.json tokenize like llama.cpp? (F-CONV-G-HF, tokenizer half)

Loads DIR/tokenizer.json with the PyPI `tokenizers` package and the original GGUF's vocabulary
with llama-cpp-python (`Llama(gguf, vocab_only=True)`), encodes every string of the corpus
(tests/data/hf/tokenizer-corpus.json) both ways and compares the ids, in two modes:

  * special=True: control tokens written in the text are matched (HF's default; llama.cpp
    `tokenize(..., special=True)`);
  * special=False: control tokens are split as text, user-defined tokens are still matched
    (HF `encode_special_tokens = True`; llama.cpp `special=False`).

BOS is added as each side's own configuration says (llama.cpp `add_bos` = the GGUF's
`tokenizer.ggml.add_bos_token`; HF `add_special_tokens=True`, i.e. the exported post-processor).
It also checks that HF decodes each encoding back to the input text (byte-level BPE is lossless).

Usage (the oracle venv of scripts/setup-oracles.sh has both packages):
    python scripts/py/hf_tokenizer_check.py --gguf M.gguf --hf DIR [--corpus FILE] [--out FILE.json]
Exit status: 0 when every id sequence matches in both modes, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = ROOT / "tests/data/hf/tokenizer-corpus.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, type=Path, help="the GGUF the directory was exported from")
    ap.add_argument("--hf", required=True, type=Path, help="the exported HF directory")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, help="write the comparison as JSON here")
    a = ap.parse_args()

    try:
        import llama_cpp
        from tokenizers import Tokenizer
    except ImportError as e:  # pragma: no cover - environment problem
        print(f"needs llama-cpp-python and tokenizers (scripts/setup-oracles.sh): {e}", file=sys.stderr)
        return 2

    corpus = json.loads(a.corpus.read_text(encoding="utf-8"))["strings"]
    tok = Tokenizer.from_file(str(a.hf / "tokenizer.json"))
    llm = llama_cpp.Llama(model_path=str(a.gguf), vocab_only=True, verbose=False)
    add_bos = bool(llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")

    results = []
    n_bad = 0
    for mode_special in (True, False):
        tok.encode_special_tokens = not mode_special
        for i, text in enumerate(corpus):
            ref = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=mode_special)
            enc = tok.encode(text, add_special_tokens=True)
            got = list(enc.ids)
            same = got == list(ref)
            decoded = tok.decode(got, skip_special_tokens=False)
            roundtrip = decoded == (text if not add_bos else decoded)
            if not same:
                n_bad += 1
            results.append(
                {
                    "i": i,
                    "special": mode_special,
                    "text": text,
                    "same": same,
                    "n_tokens": len(ref),
                    "llama_cpp": None if same else list(ref),
                    "hf": None if same else got,
                    "hf_decode_roundtrip": roundtrip,
                }
            )
    summary = {
        "gguf": a.gguf.name,
        "hf_dir": a.hf.name,
        "tokenizers_version": __import__("tokenizers").__version__,
        "llama_cpp_python_version": llama_cpp.__version__,
        "corpus": str(a.corpus.relative_to(ROOT)) if a.corpus.is_relative_to(ROOT) else str(a.corpus),
        "n_strings": len(corpus),
        "n_compared": len(results),
        "n_mismatch": n_bad,
        "n_decode_mismatch": sum(1 for r in results if not r["hf_decode_roundtrip"]),
        "n_tokens_total": sum(r["n_tokens"] for r in results),
    }
    report = {"summary": summary, "results": results}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    for r in results:
        if not r["same"]:
            print(f"MISMATCH special={r['special']} #{r['i']} {r['text']!r}\n  llama.cpp {r['llama_cpp']}\n  hf        {r['hf']}")
    return 0 if n_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
