#!/usr/bin/env python3
"""Reference continuations from llama.cpp (through llama-cpp-python) for the inference tests.

For each model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, SmolLM2-135M-Instruct Q4_1) and each of the
eight prompts of issue #5, writes to tests/data/infer/<model>.json:
  - the exact prompt text tokenized and llama.cpp's prompt token ids (so the engine is tested
    without our tokenizer);
  - 64 greedy tokens (argmax of the full logits, first index on ties, EOS not treated as a stop:
    generation always runs 64 steps);
  - for every step, the top-8 token ids and their logits (float32 values, written exactly).

Two runs per prompt:
  - "tokens"/"steps": llama.cpp on the quantized file with its default settings (f16 KV cache,
    activations quantized to 8 bits inside its quantized dot products), i.e. as users run it;
  - "exact": llama.cpp on the model's F32 export, made by llama.cpp's own
    `llama_model_quantize` (ftype ALL_F32, allow_requantize: its dequantizer, not ours), with an
    f32 KV cache. That is the model's math without llama.cpp's approximations; apr-qa's engine
    computes the quantized file and its F32 export bit-identically, so it is compared with this
    run at a tight tolerance.

Chat prompts are rendered the way `Llama.create_chat_completion` does for a GGUF with
`tokenizer.chat_template` (chat format "chat_template.default"): `Jinja2ChatFormatter` with the
model's eos/bos token texts and add_generation_prompt=True, then tokenized with add_bos=False,
special=True. Raw prompts are tokenized as `create_completion` does: add_bos=True (llama.cpp
adds BOS only where the vocabulary asks for it), special=True.

Usage: ~/.cache/apr-qa/venv/bin/python scripts/gen-infer-refs.py [MODELS_DIR]
"""

import ctypes
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

MODELS = {
    "qwen2.5-coder-0.5b-q4_k_m": "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf",
    "smollm2-135m-q4_1": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
CHAT = [
    "Name three primary colors.",
    "Write a haiku about the sea.",
    "Explain what a hash map is in two sentences.",
    "Translate 'good morning' into French and Spanish.",
]
RAW = [
    "The quick brown fox",
    "fn fibonacci(n: u64) -> u64 {",
    "import numpy as np\n",
    "Once upon a time, in a small village,",
]
N_STEPS = 64
TOP = 8
SETTINGS = dict(n_ctx=512, n_threads=2, n_threads_batch=2, seed=0, logits_all=True, n_batch=512)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def top_k(logits, k):
    # Highest first; ties by lower id (a stable sort of -logits).
    order = np.argsort(-logits, kind="stable")[:k]
    return [int(i) for i in order], [float(logits[i]) for i in order]


def run(llm, ids):
    llm.reset()
    llm.eval(ids)
    tokens, steps = [], []
    for _ in range(N_STEPS):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        tok = int(np.argmax(logits))
        top_ids, top_logits = top_k(logits, TOP)
        assert top_ids[0] == tok
        steps.append({"top_ids": top_ids, "top_logits": top_logits})
        tokens.append(tok)
        llm.eval([tok])
    return tokens, steps


def f32_export(src, dst):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = 0  # LLAMA_FTYPE_ALL_F32
    p.allow_requantize = True
    p.nthread = SETTINGS["n_threads"]
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    assert rc == 0, f"llama_model_quantize failed: {rc}"


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/apr-qa/models")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "tests", "data", "infer")
    os.makedirs(out_dir, exist_ok=True)
    for key, file in MODELS.items():
        path = os.path.join(models_dir, file)
        llm = Llama(model_path=path, verbose=False, **SETTINGS)
        assert llm.chat_format == "chat_template.default", llm.chat_format
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        fmt = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=eos,
            bos_token=bos,
            stop_token_ids=[eos_id],
        )
        prompts = []
        for msg in CHAT:
            text = fmt(messages=[{"role": "user", "content": msg}]).prompt
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            prompts.append({"kind": "chat", "message": msg, "prompt_text": text,
                            "add_bos": False, "special": True, "prompt_ids": ids})
        for text in RAW:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            prompts.append({"kind": "raw", "message": text, "prompt_text": text,
                            "add_bos": True, "special": True, "prompt_ids": ids})
        for p in prompts:
            p["tokens"], p["steps"] = run(llm, p["prompt_ids"])
            print(f"{key}: {p['message']!r}: {len(p['prompt_ids'])} prompt tokens -> "
                  f"{llm.detokenize(p['tokens'][:16])!r}...", file=sys.stderr)
        del llm
        with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
            exp = os.path.join(tmp, "f32.gguf")
            f32_export(path, exp)
            llm32 = Llama(model_path=exp, verbose=False, type_k=0, type_v=0, **SETTINGS)
            for p in prompts:
                toks, steps = run(llm32, p["prompt_ids"])
                p["exact"] = {"tokens": toks, "steps": steps}
                same = next((i for i, (a, b) in enumerate(zip(toks, p["tokens"])) if a != b), None)
                print(f"{key} exact: {p['message']!r}: first difference from the quantized run: "
                      f"{same}", file=sys.stderr)
            del llm32
        doc = {
            "generator": "scripts/gen-infer-refs.py",
            "engine": "llama.cpp via llama-cpp-python",
            "llama_cpp_python": llama_cpp.__version__,
            "model": {"file": file, "bytes": os.path.getsize(path), "sha256": sha256(path)},
            "settings": dict(SETTINGS, flash_attn=False, type_k="f16", type_v="f16",
                             chat_format="chat_template.default",
                             greedy="argmax of the full logits, first index on ties; EOS does not stop"),
            "exact_settings": dict(SETTINGS, flash_attn=False, type_k="f32", type_v="f32",
                                   weights="F32 export by llama_model_quantize(ftype=ALL_F32, allow_requantize=True)"),
            "eos_id": eos_id,
            "bos_id": bos_id,
            "n_steps": N_STEPS,
            "top": TOP,
            "prompts": prompts,
        }
        out = os.path.join(out_dir, key + ".json")
        with open(out, "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
