#!/usr/bin/env python3
"""Does an exported HF directory load in transformers and compute llama.cpp's logits?

(F-CONV-G-HF, model half.) Two interpreters take part, because llama-cpp-python lives in the
oracle venv (scripts/setup-oracles.sh) and torch + transformers in another:

  1. `--part llamacpp` (run by --llama-python, by default the oracle venv's python): loads the
     `--dtype f32` GGUF with llama-cpp-python (F32 K/V cache, no flash attention, so that the
     reference itself rounds nothing to F16), tokenizes each prompt (no BOS unless the GGUF
     adds one; special tokens parsed), evaluates it with logits at every position, and greedily
     generates --n-gen tokens (argmax of llama.cpp's own logits); writes an .npz.
  2. the main part (run by a python with torch and transformers): loads DIR with
     `AutoTokenizer` and `AutoModelForCausalLM` (float32, CPU), checks that the HF tokenizer
     gives llama.cpp's prompt ids, computes the logits of the same ids, compares them at every
     position (max |Δlogit| ≤ --tol), and greedily generates --n-gen tokens with
     `generate(do_sample=False)`, which must equal llama.cpp's.

Usage:
    HF_PY scripts/py/hf_logits_check.py --hf DIR --gguf M-f32.gguf --out evidence/hf-export/X.json
Exit status: 0 when every check passes, 1 when one fails, 2 on a usage/environment error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "The capital of France is",
]
DEFAULT_LLAMA_PY = Path.home() / ".cache/apr-qa/venv/bin/python"
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "tests/data/hf/tokenizer-corpus.json"


def part_llamacpp(a: argparse.Namespace) -> int:
    import numpy as np
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(a.gguf), n_ctx=a.n_ctx, logits_all=True, n_threads=a.threads,
        n_batch=a.n_ctx, verbose=False, seed=0,
        # an exact reference: F32 K/V cache (llama.cpp's default is F16) and no flash attention
        type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False,
    )
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    out = {"prompts": np.array(PROMPTS, dtype=object)}
    for k, p in enumerate(PROMPTS):
        ids = llm.tokenize(p.encode("utf-8"), add_bos=add_bos, special=True)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        gen = []
        for _ in range(a.n_gen):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            gen.append(nxt)
            llm.eval([nxt])
        out[f"ids{k}"] = np.array(ids, dtype=np.int64)
        out[f"logits{k}"] = logits
        out[f"gen{k}"] = np.array(gen, dtype=np.int64)
    if a.corpus and a.corpus.is_file():
        strings = json.loads(a.corpus.read_text(encoding="utf-8"))["strings"]
        out["corpus"] = np.array(strings, dtype=object)
        out["corpus_ids"] = np.array(
            [llm.tokenize(t.encode("utf-8"), add_bos=add_bos, special=True) for t in strings], dtype=object
        )
    out["version"] = np.array(llama_cpp.__version__)
    np.savez(a.npz, **out)
    return 0


def main_part(a: argparse.Namespace) -> int:
    try:
        import numpy as np
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        print(f"needs torch and transformers: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as td:
        npz = Path(td) / "llamacpp.npz"
        t0 = time.time()
        cmd = [str(a.llama_python), __file__, "--part", "llamacpp", "--gguf", str(a.gguf),
               "--npz", str(npz), "--n-gen", str(a.n_gen), "--n-ctx", str(a.n_ctx),
               "--threads", str(a.threads), "--corpus", str(a.corpus)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            return 2
        ref = dict(np.load(npz, allow_pickle=True))
        t_llama = time.time() - t0

    torch.set_num_threads(a.threads)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(a.hf))
    model, info = AutoModelForCausalLM.from_pretrained(str(a.hf), dtype=torch.float32, output_loading_info=True)
    model.eval()
    t_load = time.time() - t0
    # weights transformers had to initialise, or found but did not use: an export must have none
    missing = sorted(info.get("missing_keys", [])) + sorted(info.get("unexpected_keys", []))
    report = {
        "hf_dir": a.hf.name, "gguf": a.gguf.name, "tolerance": a.tol, "n_gen": a.n_gen,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "llama_cpp_python": str(ref["version"]), "model_class": type(model).__name__,
        "tokenizer_class": type(tok).__name__, "seconds": {"llama_cpp": round(t_llama, 2), "hf_load": round(t_load, 2)},
        "prompts": [],
    }
    ok = True
    t0 = time.time()
    for k, prompt in enumerate(PROMPTS):
        ids = [int(x) for x in ref[f"ids{k}"]]
        hf_ids = tok(prompt, add_special_tokens=True)["input_ids"]
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            logits = model(x).logits[0].float().numpy()
        ll = ref[f"logits{k}"]
        d = np.abs(logits - ll)
        per_pos = d.max(axis=1)
        argmax_same = bool((logits.argmax(axis=1) == ll.argmax(axis=1)).all())
        with torch.no_grad():
            g = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=a.n_gen, do_sample=False,
                               pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        hf_gen = [int(t) for t in g[0, len(ids):]]
        ll_gen = [int(t) for t in ref[f"gen{k}"]]
        # transformers stops at EOS; llama.cpp's loop does not: compare up to where HF stopped
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        stopped = len(hf_gen) < a.n_gen and bool(hf_gen) and hf_gen[-1] in eos_ids
        gen_same = hf_gen == ll_gen[: len(hf_gen)] and (len(hf_gen) == len(ll_gen) or stopped)
        p_ok = bool(per_pos.max() <= a.tol) and hf_ids == ids and gen_same
        ok &= p_ok
        report["prompts"].append({
            "prompt": prompt, "n_tokens": len(ids), "ids": ids, "hf_tokenizer_ids_equal": hf_ids == ids,
            "max_abs_dlogit": float(per_pos.max()), "max_abs_dlogit_per_position": [float(v) for v in per_pos],
            "mean_abs_dlogit": float(d.mean()), "argmax_equal_every_position": argmax_same,
            "llama_cpp_greedy": ll_gen, "hf_greedy": hf_gen, "greedy_equal": gen_same,
            "llama_cpp_text": tok.decode(ll_gen), "hf_text": tok.decode(hf_gen), "pass": p_ok,
        })
    report["seconds"]["hf_forward_and_generate"] = round(time.time() - t0, 2)
    # Reported, not judged: AutoTokenizer may substitute a model-specific class with its own
    # pipeline (transformers 5 loads Qwen2Tokenizer, which always applies NFC; llama.cpp does not).
    if "corpus" in ref:
        diff = []
        for text, ids in zip(ref["corpus"], ref["corpus_ids"]):
            got = tok(str(text), add_special_tokens=True)["input_ids"]
            if got != [int(i) for i in ids]:
                diff.append({"text": str(text), "llama_cpp": [int(i) for i in ids], "auto_tokenizer": got})
        report["auto_tokenizer_corpus"] = {"n_strings": len(ref["corpus"]), "n_mismatch": len(diff), "mismatches": diff}
    report["missing_or_unexpected_weights"] = missing
    report["pass"] = bool(ok) and not missing
    text = json.dumps(report, ensure_ascii=False, indent=1) + "\n"
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text, encoding="utf-8")
    summary = {k: v for k, v in report.items() if k not in ("prompts", "auto_tokenizer_corpus")}
    if "auto_tokenizer_corpus" in report:
        summary["auto_tokenizer_corpus_mismatches"] = report["auto_tokenizer_corpus"]["n_mismatch"]
    summary["prompts"] = [{k: p[k] for k in ("n_tokens", "max_abs_dlogit", "greedy_equal", "hf_tokenizer_ids_equal", "pass")} for p in report["prompts"]]
    print(json.dumps(summary, indent=1))
    return 0 if report["pass"] else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["main", "llamacpp"], default="main")
    ap.add_argument("--hf", type=Path, help="exported HF directory")
    ap.add_argument("--gguf", type=Path, required=True, help="the --dtype f32 GGUF of the same model")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--npz", type=Path)
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--n-gen", type=int, default=16)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--llama-python", type=Path, default=DEFAULT_LLAMA_PY)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                    help="also compare AutoTokenizer with llama.cpp on these strings (reported only)")
    a = ap.parse_args()
    if a.part == "llamacpp":
        return part_llamacpp(a)
    if a.hf is None:
        ap.error("--hf is required")
    return main_part(a)


if __name__ == "__main__":
    sys.exit(main())
