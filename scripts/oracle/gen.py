#!/usr/bin/env python3
"""Writes tests/data/oracle/<type>.oracle: block-codec vectors produced by ggml.

Run by scripts/gen-oracle-vectors.sh (which builds the ggml driver and the gguf-py venv);
see that script's header for the file format and the provenance recorded in every file.

Producers:
  * ggml (scripts/oracle/driver.c linked against ggml-base) makes every vector.
  * gguf-py, where it implements the type, recomputes the same outputs; any difference
    aborts the run (exit status 1), except the divergences listed in
    crosscheck.KNOWN_GGUF_DIVERGENCE, each of which is checked to be exactly what it says
    and reported in the file.

Inputs (inputs.py) come from a self-contained splitmix64 generator and Python's math module
(not numpy's random or SIMD math), so a rerun with the same glibc writes identical files.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from crosscheck import (KNOWN_GGUF_DIVERGENCE, crosscheck, gguf_can_dequantize,
                        gguf_can_quantize, gguf_dequantize, gguf_quantize)
from inputs import DIST_DOC, distribution, random_blocks, special_blocks

# Types with a dequantizer in the crate (apr_qa::quant::can_dequantize) and with a
# reference quantizer (can_quantize). Names are the crate's (ggml's, upper-cased).
DEQUANT_TYPES = [
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
    "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "IQ1_M",
    "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0", "Q2_0",
]
QUANT_TYPES = [
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
]
IMATRIX_REQUIRED = {"IQ2_XXS", "IQ2_XS", "IQ1_S"}  # ggml_quantize_requires_imatrix
LEGACY = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1"}
PLAIN = {"F32", "F16", "BF16"}

# Section sizes in elements (multiples of 256, so every type gets whole blocks and
# ggml_quantize_chunk can use 256-element rows).
DEQ_DIST = {
    "normal": 2048, "uniform": 2048, "heavy": 2048, "zero": 512, "constant": 1792,
    "outlier": 1536, "huge": 1536, "tiny": 1536,
}
QUANT_DIST = dict(DEQ_DIST, **{"f16exact": 2048, "grid16": 2048, "sparse": 2048})
QUANT_LEGACY_EXTRA = {"nan": 1024}
QUANT_PLAIN_EXTRA = {"nan": 1024, "edges": 1024}

# ---------------------------------------------------------------------------------------------
# ggml driver
# ---------------------------------------------------------------------------------------------

class Driver:
    def __init__(self, path, work):
        self.path = path
        self.work = work
        self.seq = 0
        out = subprocess.run([path, "info"], check=True, capture_output=True, text=True).stdout
        self.info = {}
        self.types = {}
        for line in out.splitlines():
            if line.startswith("type "):
                _, name, tid, bs, ts = line.split()
                self.types[name.upper()] = {"ggml_name": name, "id": int(tid),
                                            "block_size": int(bs), "type_size": int(ts)}
            else:
                k, v = line.split("=", 1)
                self.info[k] = v

    def _file(self, data=None):
        self.seq += 1
        p = os.path.join(self.work, "f%06d" % self.seq)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        return p

    def run_jobs(self, jobs):
        """jobs: list of (args, out_path). Runs them in one process; on an abort, reruns the
        remaining jobs one by one so that one failing job loses only its own output.
        Returns {index: bytes or None} and {index: error text}."""
        results, errors = {}, {}
        pending = list(range(len(jobs)))
        while pending:
            jf = self._file("".join(" ".join(jobs[i][0]) + "\n" for i in pending).encode())
            p = subprocess.run([self.path, "batch", jf], capture_output=True, text=True,
                               env=dict(os.environ, GGML_NO_BACKTRACE="1"))
            done = [int(l.split()[1]) for l in p.stdout.splitlines() if l.startswith("done ")]
            for k in done:
                i = pending[k - 1]
                with open(jobs[i][1], "rb") as f:
                    results[i] = f.read()
            if p.returncode == 0:
                break
            failed = pending[len(done)]
            err = [l for l in p.stderr.splitlines() if "GGML_ASSERT" in l or "Oops" in l or "error" in l]
            msg = (err or p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1].strip()
            errors[failed] = re.sub(r"\S*/([\w.-]+\.(?:c|cpp|h)):", r"\1:", msg)  # no local paths
            results[failed] = None
            pending = pending[len(done) + 1:]
        return results, errors


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--producer", required=True, help="ggml producer description")
    ap.add_argument("--types", default="", help="comma-separated subset (for debugging)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="oracle-")
    drv = Driver(args.driver, work)
    gguf_desc = "gguf-py %s (numpy %s)" % (gguf_version(), np.__version__)
    only = set(args.types.split(",")) if args.types else None
    failures = []
    summary = []
    os.makedirs(args.out, exist_ok=True)

    for t in DEQUANT_TYPES:
        if only and t not in only:
            continue
        info = drv.types.get(t)
        if info is None:
            sys.exit("ggml in this source has no type %s" % t)
        g = info["ggml_name"]
        bs, ts = info["block_size"], info["type_size"]
        sections = []   # (kind, name, n_blocks, input bytes, output bytes, tags)
        notes = []

        # 1. Block bytes: quantized by ggml from each distribution, random, special scales.
        src_jobs, src_meta = [], []
        for name, n in DEQ_DIST.items():
            if t in PLAIN and name != "normal":
                continue   # plain conversions: random and special bit patterns cover them
            x = distribution(name, n)
            inp, out = drv._file(x.tobytes()), drv._file()
            if t in QUANT_TYPES:
                src_jobs.append((["ref", g, str(n), inp, out], out))
                how = "ggml:" + ref_name(t)
            else:
                imat = "1" if t in IMATRIX_REQUIRED else "0"
                src_jobs.append((["chunk", g, str(n), "256", inp, out, imat], out))
                how = "ggml:ggml_quantize_chunk" + ("(imatrix=ones)" if imat == "1" else "")
            src_meta.append((name, n, x, how))
        src_res, src_err = drv.run_jobs(src_jobs)
        blocks = []
        for i, (name, n, x, how) in enumerate(src_meta):
            if src_res.get(i) is None:
                # ggml aborted (e.g. an IQ grid search on 1e30-scale input): quantize the
                # section one 256-value row at a time and keep the rows ggml can quantize.
                row_jobs = []
                for r0 in range(0, n, 256):
                    a = list(src_jobs[i][0])
                    a[2], a[4], a[5] = "256", drv._file(x[r0:r0 + 256].tobytes()), drv._file()
                    row_jobs.append((a, a[5]))
                row_res, row_err = drv.run_jobs(row_jobs)
                kept = [r for r in range(len(row_jobs)) if row_res.get(r) is not None]
                notes.append("dequantize %s: ggml aborted while quantizing rows %s of 256 values "
                             "(%s); the section holds the other %d rows"
                             % (name, ",".join(str(r) for r in sorted(row_err)),
                                sorted(set(row_err.values()))[0], len(kept)))
                if not kept:
                    continue
                x = np.concatenate([x[256 * r:256 * (r + 1)] for r in kept])
                blocks.append((name, 256 * len(kept), b"".join(row_res[r] for r in kept), "src=" + how, x))
                continue
            blocks.append((name, n, src_res[i], "src=" + how, x))
        n, raw = random_blocks(t, info)
        blocks.append(("random", n, raw, "src=random-bytes", None))
        n, raw = special_blocks(t, info)
        blocks.append(("special", n, raw, "src=random-bytes+special-scales", None))

        deq_jobs = []
        for name, n, raw, how, _ in blocks:
            out = drv._file()
            deq_jobs.append((["deq", g, str(n), drv._file(raw), out], out))
        deq_res, deq_err = drv.run_jobs(deq_jobs)
        by = "driver:d*q" if t == "Q8_1" else "ggml:" + deq_name(t)
        for i, (name, n, raw, how, _) in enumerate(blocks):
            out = deq_res.get(i)
            if out is None:
                failures.append("%s dequantize %s: ggml failed: %s" % (t, name, deq_err.get(i)))
                continue
            tags = ["by=" + by, how]
            if gguf_can_dequantize(t):
                tag, err = crosscheck(t, "dequantize", out, gguf_dequantize(t, raw), 4 * bs, raw, ts)
                if err:
                    failures.append("%s dequantize %s: %s" % (t, name, err))
                    tag = "gguf-py=DIFFERS"
                tags.append(tag)
            else:
                tags.append("gguf-py=n/a")
            sections.append(("dequantize", name, n // bs, raw, out, tags))

        # Extra cross-check: gguf-py's quantizer on the inputs ggml quantized for dequantization.
        if t not in QUANT_TYPES and gguf_can_quantize(t):
            for name, n, raw, how, x in blocks:
                if x is None:
                    continue
                tag, err = crosscheck(t, "quantize", raw, gguf_quantize(t, x), ts, x.tobytes(), 4 * bs)
                if err:
                    failures.append("%s quantize(%s) via gguf-py: %s" % (t, name, err))
            notes.append("gguf-py quantize also reproduces the ggml-quantized block bytes of every distribution section")

        # 2. Quantization vectors.
        if t in QUANT_TYPES:
            qdist = dict(QUANT_DIST)
            if t in LEGACY:
                qdist.update(QUANT_LEGACY_EXTRA)
            if t in PLAIN:
                qdist.update(QUANT_PLAIN_EXTRA)
            if t == "F32":
                qdist = {k: v for k, v in qdist.items() if k in ("normal", "nan", "edges")}
            q_jobs, q_meta = [], []
            for name, n in qdist.items():
                x = distribution(name, n)
                out = drv._file()
                q_jobs.append((["ref", g, str(n), drv._file(x.tobytes()), out], out))
                q_meta.append((name, n, x))
            q_res, q_err = drv.run_jobs(q_jobs)
            for i, (name, n, x) in enumerate(q_meta):
                out = q_res.get(i)
                if out is None:
                    failures.append("%s quantize %s: ggml failed: %s" % (t, name, q_err.get(i)))
                    continue
                tags = ["by=ggml:" + ref_name(t)]
                if gguf_can_quantize(t):
                    tag, err = crosscheck(t, "quantize", out, gguf_quantize(t, x), ts, x.tobytes(), 4 * bs)
                    if err:
                        failures.append("%s quantize %s: %s" % (t, name, err))
                        tag = "gguf-py=DIFFERS"
                    tags.append(tag)
                else:
                    tags.append("gguf-py=n/a")
                sections.append(("quantize", name, n // bs, x.tobytes(), out, tags))
            notes.append("quantize outputs were zero-filled before each ggml call")
            if t == "Q8_K":
                notes.append("ggml's quantize_row_q8_K_ref leaves bsums unwritten for an all-zero block "
                             "(it moves to the next block before computing them); the output buffer was zero-filled first, so such blocks "
                             "carry zero bsums")

        for key, (_, _, why) in KNOWN_GGUF_DIVERGENCE.items():
            if any("agrees-except:" + key in tag for sec in sections for tag in sec[5]):
                notes.append("gguf-py divergence %s: %s; every differing unit was checked to be "
                             "exactly this case" % (key, why))
        path = os.path.join(args.out, t.lower() + ".oracle")
        write_file(path, t, info, args.producer, gguf_desc, sections, notes)
        size = os.path.getsize(path)
        nd = sum(1 for s in sections if s[0] == "dequantize")
        nq = sum(1 for s in sections if s[0] == "quantize")
        agreed = sum(1 for s in sections if "gguf-py=agrees" in s[5])
        partial = sum(1 for s in sections if any(x.startswith("gguf-py=agrees-except:") for x in s[5]))
        summary.append("%-8s %8d bytes  %2d dequantize + %2d quantize sections; gguf-py: %d exact, "
                       "%d with documented divergences" % (t, size, nd, nq, agreed, partial))
        print(summary[-1], flush=True)

    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("\nFAILED: ggml and gguf-py (or the ggml driver) disagree:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)


def ref_name(t):
    return {"F32": "copy", "F16": "ggml_fp32_to_fp16_row",
            "BF16": "ggml_fp32_to_bf16_row_ref"}.get(t, "quantize_row_%s_ref" % ggml_case(t))


def deq_name(t):
    return {"F32": "copy", "F16": "ggml_fp16_to_fp32_row",
            "BF16": "ggml_bf16_to_fp32_row"}.get(t, "dequantize_row_%s" % ggml_case(t))


def ggml_case(t):
    return t.lower().replace("_k", "_K")


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover
        return "unknown"


def write_file(path, t, info, producer, gguf_desc, sections, notes):
    lines = [
        "ggml-oracle-vectors 1",
        "type %s" % t,
        "ggml_id %d" % info["id"],
        "block_size %d" % info["block_size"],
        "type_size %d" % info["type_size"],
        "producer %s" % producer,
    ]
    exact = sum(1 for s in sections if "gguf-py=agrees" in s[5])
    partial = sum(1 for s in sections if any(x.startswith("gguf-py=agrees-except:") for x in s[5]))
    if exact + partial:
        lines.append("crosscheck %s recomputed %d of %d sections: %d bit-exactly (gguf-py=agrees), "
                     "%d except for the divergences noted below (gguf-py=agrees-except:KEY(units)); "
                     "gguf-py has no codec for the rest (gguf-py=n/a)"
                     % (gguf_desc, exact + partial, len(sections), exact, partial))
    else:
        lines.append("crosscheck none: %s has no codec for %s" % (gguf_desc, t))
    for n in notes:
        lines.append("note " + n)
    for name in sorted({s[1] for s in sections}):
        if name in DIST_DOC:
            lines.append("input %s: %s" % (name, DIST_DOC[name]))
    lines.append("layout dequantize: n_blocks*type_size block bytes, then n_blocks*block_size f32 (LE)")
    lines.append("layout quantize: n_blocks*block_size f32 (LE), then n_blocks*type_size block bytes")
    for kind, name, nb, inp, out, tags in sections:
        lines.append("section %s %s %d %s" % (kind, name, nb, " ".join(tags)))
    lines.append("data")
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())
        for kind, name, nb, inp, out, tags in sections:
            f.write(inp)
            f.write(out)


if __name__ == "__main__":
    main()
