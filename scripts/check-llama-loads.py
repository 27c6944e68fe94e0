#!/usr/bin/env python3
"""Issue #4: GGUF files apr-qa writes load in llama.cpp and generate the original's tokens.

Two files, made with the apr-qa binary (default target/release/apr-qa):
  1. Qwen2.5-Coder-0.5B Q4_K_M through GGUF -> APR -> SafeTensors -> GGUF (a round trip);
  2. SmolLM2-135M Q4_1 exported to HF at F32 (`convert --to hf --dtype f32`) and imported back
     to GGUF (`convert DIR -o X.gguf`): Q/K rows re-permuted by our importer, metadata derived
     from the HF files' carried keys — not a byte copy of the original.
Each is loaded by llama.cpp (llama-cpp-python from the oracle venv, CPU) and generates 16 greedy
tokens on three raw prompts; the original file (for 2: llama.cpp's own F32 requantization of
the original, since an F32 file and a Q4_1 file are different computations in llama.cpp) does
the same in the same process. Any load failure or token difference exits 1. The output is
printed and, with --write, saved to evidence/llama-loads/result.txt.

Usage: ~/.cache/apr-qa/venv/bin/python scripts/check-llama-loads.py [--write] [MODELS_DIR]
"""

import ctypes
import os
import subprocess
import sys
import tempfile

import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("APR_QA_BIN", os.path.join(ROOT, "target/release/apr-qa"))
PROMPTS = ["The quick brown fox", "fn fibonacci(n: u64) -> u64 {", "Once upon a time, in a small village,"]
N = 16


def run(*args):
    subprocess.run([BIN, *args], check=True, stdout=subprocess.DEVNULL)


def greedy(path):
    llm = Llama(model_path=path, n_ctx=256, n_threads=2, verbose=False, logits_all=False)
    out = []
    for p in PROMPTS:
        toks = llm.tokenize(p.encode(), add_bos=True, special=True)
        llm.reset()
        gen = []
        for t in llm.generate(toks, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            gen.append(t)
            if len(gen) == N:
                break
        out.append(gen)
    del llm
    return out


def f32_requant(src, dst):
    """llama.cpp's own F32 conversion of `src` (its dequantizer, not ours)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed on {src}: {rc}")


def main():
    write = "--write" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--write"]
    models = args[0] if args else os.environ.get("APR_QA_MODELS", os.path.expanduser("~/.cache/apr-qa/models"))
    qwen = os.path.join(models, "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")
    smol = os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf")
    lines, ok = [], True
    with tempfile.TemporaryDirectory() as d:
        apr, st, back = (os.path.join(d, n) for n in ("q.apr", "q.safetensors", "q-back.gguf"))
        run("convert", qwen, "-o", apr)
        run("convert", apr, "-o", st)
        run("convert", st, "-o", back)
        hf, imported, ref = (os.path.join(d, n) for n in ("smol-hf", "smol-imported.gguf", "smol-f32-llama.gguf"))
        run("convert", smol, "-o", hf, "--to", "hf", "--dtype", "f32")
        run("convert", hf, "-o", imported)
        f32_requant(smol, ref)
        for label, orig, ours in [
            ("Qwen Q4_K_M, gguf->apr->safetensors->gguf", qwen, back),
            ("SmolLM2 F32, HF export -> HF import (vs llama.cpp's F32 of the original)", ref, imported),
        ]:
            a, b = greedy(orig), greedy(ours)
            same = a == b
            ok &= same
            lines.append(f"{'SAME' if same else 'DIFFERENT'}  {label}")
            if orig == ref:
                q = greedy(smol)
                lines.append(
                    f"  (for information: the Q4_1 original in llama.cpp gives "
                    f"{'the same' if q == b else 'other'} tokens — llama.cpp quantizes activations to 8 bits there)"
                )
            for p, x, y in zip(PROMPTS, a, b):
                lines.append(f"  {p!r}: original {x}")
                if x != y:
                    lines.append(f"  {' ' * len(repr(p))}  ours     {y}")
    lines.append(f"llama-cpp-python {llama_cpp.__version__}; {N} greedy tokens per prompt; result: {'PASS' if ok else 'FAIL'}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if write:
        out = os.path.join(ROOT, "evidence", "llama-loads")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "result.txt"), "w") as f:
            f.write(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
