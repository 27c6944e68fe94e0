#!/usr/bin/env python3
"""gen-tokenizer-refs.py — regenerate tests/data/tokenizer/: the parity corpus and what
llama.cpp (through llama-cpp-python) makes of it for each real model.

Usage:  ~/.cache/apr-qa/venv/bin/python scripts/gen-tokenizer-refs.py [OUT_DIR]
        (default OUT_DIR: tests/data/tokenizer). Needs the venv of scripts/setup-oracles.sh
        (llama-cpp-python, jinja2) and the models of scripts/fetch-models.sh
        (APR_QA_MODELS, default ~/.cache/apr-qa/models). Takes a few seconds per model.

Writes
  corpus.json      {"strings": [...]} from scripts/py/tok_corpus.py (deterministic).
  <model>.json     one per model, all produced by llama.cpp via llama-cpp-python:
    versions       llama-cpp-python and jinja2 versions;
    vocab          n_tokens, bos, eos, eot, add_bos, add_eos, the EOG ids, and every token
                   attribute that is not plain NORMAL (llama_vocab_get_attr), as [id, attr];
    cases[i]       for corpus string i: ids of Llama.tokenize(text, add_bos, special) for
                   (add_bos, special) in {plain: F,F; special: F,T; bos: T,F; bos_special: T,T},
                   and llama_detokenize(ids) bytes as hex: detok_special = special ids with
                   (remove_special=F, unparse_special=T); detok_bos = bos ids with (F, F);
                   detok_bos_rm = bos ids with (T, F);
    pieces         llama_token_to_piece(id, lstrip=0, special) for a fixed sample of ids, as
                   hex, for special=T and special=F;
    chat           (models with tokenizer.chat_template) conversations rendered exactly as
                   Llama.create_chat_completion does: the GGUF template through
                   llama_chat_format.Jinja2ChatFormatter with the model's bos/eos token texts
                   (the script asserts Llama picked "chat_template.default", i.e. that
                   formatter), and the prompt ids it then feeds the model
                   (tokenize(prompt, add_bos=False, special=True)).
"""

import ctypes
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "py"))

import jinja2  # noqa: E402
import llama_cpp  # noqa: E402
from llama_cpp import llama_chat_format  # noqa: E402

from tok_corpus import corpus  # noqa: E402

MODELS = [
    ("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf", "qwen2.5-coder-0.5b"),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m"),
    ("gemma-3-270m-Q4_K_M.gguf", "gemma-3-270m"),
]

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are a terse assistant."},
     {"role": "user", "content": "Name three primes."}],
    [{"role": "system", "content": "Answer in French."},
     {"role": "user", "content": "Hello!"},
     {"role": "assistant", "content": "Bonjour !"},
     {"role": "user", "content": "How are you?"}],
    [{"role": "user", "content": "Write `fn main() {}` in Rust.\n\n  Indented\tline"},
     {"role": "assistant", "content": "```rust\nfn main() {}\n```"},
     {"role": "user", "content": "中文 😀 <|im_end|> and 'quotes' \"double\""}],
    [{"role": "user", "content": ""}],
]


def detok(vocab, ids, remove_special, unparse_special):
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, remove_special, unparse_special)
    if n < 0:
        raise RuntimeError(f"detokenize needs {-n} bytes")
    return buf.raw[:n].hex()


def piece(vocab, tok, special):
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(vocab, tok, buf, 256, 0, special)
    if n < 0:
        raise RuntimeError(f"piece of {tok} needs {-n} bytes")
    return buf.raw[:n].hex()


def sample_ids(n_tokens):
    rng = random.Random(7)
    ids = set(range(min(n_tokens, 400)))
    ids.update(range(max(0, n_tokens - 400), n_tokens))
    ids.update(rng.randrange(n_tokens) for _ in range(2500))
    return sorted(ids)


def one_model(path, strings):
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    attrs = []
    eog = []
    for i in range(n):
        a = int(llama_cpp.llama_vocab_get_attr(vocab, i))
        if a != 4:  # LLAMA_TOKEN_ATTR_NORMAL
            attrs.append([i, a])
        if llama_cpp.llama_vocab_is_eog(vocab, i):
            eog.append(i)
    out = {
        "versions": {"llama_cpp_python": llama_cpp.__version__, "jinja2": jinja2.__version__},
        "model": path.name,
        "vocab": {
            "n_tokens": n,
            "bos": llama_cpp.llama_vocab_bos(vocab),
            "eos": llama_cpp.llama_vocab_eos(vocab),
            "eot": llama_cpp.llama_vocab_eot(vocab),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
            "eog": eog,
            "attrs": attrs,
        },
        "cases": [],
    }
    for s in strings:
        b = s.encode("utf-8")
        c = {
            "plain": llm.tokenize(b, add_bos=False, special=False),
            "special": llm.tokenize(b, add_bos=False, special=True),
            "bos": llm.tokenize(b, add_bos=True, special=False),
            "bos_special": llm.tokenize(b, add_bos=True, special=True),
        }
        c["detok_special"] = detok(vocab, c["special"], False, True)
        c["detok_bos"] = detok(vocab, c["bos"], False, False)
        c["detok_bos_rm"] = detok(vocab, c["bos"], True, False)
        out["cases"].append(c)
    ids = sample_ids(n)
    out["pieces"] = {
        "ids": ids,
        "special": [piece(vocab, i, True) for i in ids],
        "plain": [piece(vocab, i, False) for i in ids],
    }
    template = llm.metadata.get("tokenizer.chat_template")
    if template is not None:
        if llm.chat_format != "chat_template.default":
            raise RuntimeError(f"{path.name}: llama-cpp-python chose chat format {llm.chat_format!r}")
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        out["chat"] = {"bos_token": bos, "eos_token": eos, "renders": []}
        for agp in (True, False):
            fmt = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id])
            fmt.add_generation_prompt = agp
            for msgs in CONVERSATIONS:
                prompt = fmt(messages=msgs).prompt
                out["chat"]["renders"].append({
                    "messages": msgs,
                    "add_generation_prompt": agp,
                    "prompt": prompt,
                    "ids": llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True),
                })
    return out


def dump(obj, path):
    # one case per line keeps diffs readable and the files small
    with open(path, "w", encoding="utf-8") as f:
        if isinstance(obj, dict) and "cases" in obj:
            f.write("{\n")
            keys = list(obj.keys())
            for k in keys:
                v = obj[k]
                f.write(f"  {json.dumps(k)}: ")
                if k == "cases":
                    f.write("[\n")
                    f.write(",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in v))
                    f.write("\n  ]")
                else:
                    f.write(json.dumps(v, ensure_ascii=False))
                f.write(",\n" if k != keys[-1] else "\n")
            f.write("}\n")
        else:
            f.write("{\n  \"strings\": [\n")
            f.write(",\n".join("    " + json.dumps(s, ensure_ascii=False) for s in obj["strings"]))
            f.write("\n  ]\n}\n")


def main():
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "tokenizer"
    models = Path(os.environ.get("APR_QA_MODELS", Path.home() / ".cache" / "apr-qa" / "models"))
    out_dir.mkdir(parents=True, exist_ok=True)
    strings = corpus()
    dump({"strings": strings}, out_dir / "corpus.json")
    for fname, stem in MODELS:
        p = models / fname
        if not p.is_file():
            raise SystemExit(f"missing model {p} — run scripts/fetch-models.sh")
        data = one_model(p, strings)
        dump(data, out_dir / f"{stem}.json")
        print(f"{stem}: {len(data['cases'])} cases, {len(data['pieces']['ids'])} pieces,"
              f" {len(data.get('chat', {}).get('renders', []))} chat renders")


if __name__ == "__main__":
    main()
