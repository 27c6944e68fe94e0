#!/usr/bin/env python3
"""llama.cpp references for the synthetic default model (playbooks/synthetic.playbook.yaml).

Builds the synthetic model with `apr-qa synth` using exactly the playbook's spec (the build is
byte-reproducible; the file's sha256 is recorded and F-INFER-001 refuses references of another
file), then records llama.cpp's prompt ids, greedy tokens and top-8 logits per step, in the
format of scripts/gen-infer-refs.py (whose functions it reuses).

Usage: ~/.cache/apr-qa/venv/bin/python scripts/gen-synth-refs.py [path/to/apr-qa]
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("refs", os.path.join(ROOT, "scripts", "gen-infer-refs.py"))
refs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refs)

# Must equal the `model.synth` block of playbooks/synthetic.playbook.yaml.
SYNTH = ["--arch", "qwen2", "--layers", "2", "--hidden", "384", "--heads", "6", "--kv-heads", "2",
         "--ffn", "1024", "--vocab", "1024", "--tied-embeddings", "true", "--quant", "mixed", "--seed", "42"]
PROMPTS = ["The quick brown fox", "fn main() {", "Once upon a time, in a small village,"]


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "apr-qa")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic.gguf")
        subprocess.run([exe, "synth", *SYNTH, "-o", path], check=True, stdout=subprocess.DEVNULL)
        llm = Llama(model_path=path, verbose=False, **refs.SETTINGS)
        prompts = []
        for text in PROMPTS:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            p = {"kind": "raw", "message": text, "prompt_text": text, "add_bos": True, "special": True,
                 "prompt_ids": ids}
            p["tokens"], p["steps"] = refs.run(llm, ids)
            prompts.append(p)
            print(f"{text!r}: {llm.detokenize(p['tokens'][:12])!r}", file=sys.stderr)
        doc = {
            "generator": "scripts/gen-synth-refs.py",
            "engine": "llama.cpp via llama-cpp-python",
            "llama_cpp_python": llama_cpp.__version__,
            "model": {"file": "synthetic.gguf", "synth": SYNTH, "bytes": os.path.getsize(path),
                      "sha256": refs.sha256(path)},
            "settings": dict(refs.SETTINGS, flash_attn=False, type_k="f16", type_v="f16",
                             greedy="argmax of the full logits, first index on ties; EOS does not stop"),
            "eos_id": llm.token_eos(),
            "bos_id": llm.token_bos(),
            "n_steps": refs.N_STEPS,
            "top": refs.TOP,
            "prompts": prompts,
        }
    out = os.path.join(ROOT, "tests", "data", "infer", "synthetic-qwen2.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
