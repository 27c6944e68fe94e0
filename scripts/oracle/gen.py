#!/usr/bin/env python3
"""Writes tests/data/oracle/<type>.oracle: block-codec vectors produced by ggml.

Run by scripts/gen-oracle-vectors.sh (which builds the ggml driver and the gguf-py venv);
see that script's header for the file format and the provenance recorded in every file.

Producers:
  * ggml (scripts/oracle/driver.c linked against ggml-base) makes every vector.
  * gguf-py, where it implements the type, recomputes the same outputs; any difference
    aborts the run (exit status 1), except the divergences listed in KNOWN_GGUF_DIVERGENCE,
    each of which is checked to be exactly what it says and reported in the file.

Inputs come from a self-contained splitmix64 generator and Python's math module (not
numpy's random or SIMD math), so a rerun with the same glibc writes identical files.
"""

import argparse
import hashlib
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

import numpy as np

import gguf
from gguf import quants as gq

M64 = (1 << 64) - 1

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
RANDOM_ELEMS = 4096

# fp16 bit patterns written into scale fields: ±0, subnormals, the normal range limits,
# ±Inf and NaNs with assorted payloads and signs.
SPECIAL_F16 = [
    0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x7BFF,
    0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7D55, 0xFFFF,
]
SPECIAL_F32 = [
    0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF,
    0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
    0x7FA5A5A5, 0xFFFFFFFF, 0x3F800000, 0x33800000,
]
# Byte offsets of the fp16 scale fields that dequantization reads, per type
# (ggml src/ggml-common.h block structs).
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q8_1": [0, 2],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ3_XXS": [0], "IQ1_S": [0], "IQ4_NL": [0],
    "IQ3_S": [0], "IQ2_S": [0], "IQ4_XS": [0], "TQ1_0": [52], "TQ2_0": [64],
    "Q1_0": [0], "Q2_0": [0],
}

# Where gguf-py 0.19.0 legitimately differs from ggml. A section that differs is accepted
# only if EVERY differing element (dequantize) or block (quantize) satisfies the predicate of
# one of these entries; the section is then tagged gguf-py=agrees-except:<key> and the file
# gets a note with the explanation. Anything else fails the run.
def _f16_snan_quieted(u):
    # u: (ggml f32 bits, gguf-py f32 bits); ggml's fp16->fp32 goes through an f32 multiply,
    # which quiets a signaling NaN; numpy's astype keeps the signaling bit clear.
    a, b = struct.unpack("<I", u["ggml"])[0], struct.unpack("<I", u["gguf"])[0]
    return (b & 0x7F800000) == 0x7F800000 and (b & 0x7FFFFF) != 0 and (b & 0x400000) == 0 \
        and a == b | 0x400000


def _neg_zero_block_scale(u):
    # An all-zero input block: ggml's Q4_0/Q5_0 start max at +0.0, so d = +0/-8 = -0.0
    # (0x8000); gguf-py takes max from the data, so a block of -0.0 gives d = +0.0.
    x = np.frombuffer(u["input"], dtype=np.float32)
    return bool(np.all(x == 0)) and u["ggml"][:2] == b"\x00\x80" and u["gguf"][:2] == b"\x00\x00" \
        and u["ggml"][2:] == u["gguf"][2:]


def _nan_input(u):
    # ggml's max/min loops use < and >, which skip NaN; numpy's max/argmax propagate it.
    return bool(np.any(np.isnan(np.frombuffer(u["input"], dtype=np.float32))))


def _f16_nan_canonical(u):
    # f32 NaN -> f16: ggml writes 0x7E00 with the sign; numpy keeps the top payload bits.
    x = np.frombuffer(u["input"], dtype=np.float32)
    a, b = struct.unpack("<H", u["ggml"])[0], struct.unpack("<H", u["gguf"])[0]
    return bool(np.isnan(x[0])) and (a & 0x7FFF) == 0x7E00 and (b & 0x7C00) == 0x7C00 and (b & 0x3FF) != 0


def _nan_sign_flipped(u):
    # IQ grids apply signs as x * (bit ? -1.f : 1.f); gcc folds that into a sign flip, so a
    # NaN scale yields NaNs whose sign follows the sign bit; numpy multiplies and keeps it.
    a = np.frombuffer(u["ggml"], dtype=np.uint32)
    b = np.frombuffer(u["gguf"], dtype=np.uint32)
    d = a != b
    nan_a = (a & 0x7F800000 == 0x7F800000) & (a & 0x7FFFFF != 0)
    return bool(np.all(nan_a[d] & ((a[d] ^ b[d]) == 0x80000000)))


KNOWN_GGUF_DIVERGENCE = {
    "nan-sign-flipped": (
        {(t, "dequantize") for t in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ3_S", "IQ2_S")}, _nan_sign_flipped,
        "NaN scale: ggml (gcc folds x*(s ? -1.f : 1.f) into a sign flip) gives NaNs whose sign bit "
        "follows the grid sign; gguf-py multiplies and keeps the NaN's sign"),
    "f16-snan-quieted": (
        {("F16", "dequantize")}, _f16_snan_quieted,
        "F16 signaling NaNs: ggml's fp16->fp32 quiets them (sets f32 bit 22), numpy keeps them signaling"),
    "neg-zero-block-scale": (
        {("Q4_0", "quantize"), ("Q5_0", "quantize")}, _neg_zero_block_scale,
        "blocks of -0.0: ggml writes d = -0.0 (0x8000) for every all-zero block, gguf-py +0.0"),
    "nan-input": (
        {(t, "quantize") for t in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")}, _nan_input,
        "blocks with a NaN input: ggml's min/max comparisons skip NaN, numpy's propagate it"),
    "f16-nan-canonical": (
        {("F16", "quantize")}, _f16_nan_canonical,
        "f32 NaN -> F16: ggml writes the canonical 0x7E00 (with sign), numpy keeps the payload"),
}


def crosscheck(t, kind, ggml_out, gguf_out, unit_out, inp, unit_in):
    """Returns (tag, None) or (None, failure message)."""
    if ggml_out == gguf_out:
        return "gguf-py=agrees", None
    if len(ggml_out) != len(gguf_out):
        return None, "gguf-py output has %d bytes, ggml %d" % (len(gguf_out), len(ggml_out))
    n = len(ggml_out) // unit_out
    diffs = [i for i in range(n) if ggml_out[i * unit_out:(i + 1) * unit_out]
             != gguf_out[i * unit_out:(i + 1) * unit_out]]
    for key, (where, pred, _) in KNOWN_GGUF_DIVERGENCE.items():
        if (t, kind) not in where:
            continue
        if all(pred({"ggml": ggml_out[i * unit_out:(i + 1) * unit_out],
                     "gguf": gguf_out[i * unit_out:(i + 1) * unit_out],
                     "input": inp[i * unit_in:(i + 1) * unit_in]}) for i in diffs):
            return "gguf-py=agrees-except:%s(%d)" % (key, len(diffs)), None
    i = diffs[0]
    j = next(k for k in range(i * unit_out, (i + 1) * unit_out) if ggml_out[k] != gguf_out[k])
    w = 4 if kind == "dequantize" else 1
    j -= j % w
    return None, "%d of %d blocks differ, first block %d at byte %d: gguf-py %s, ggml %s" % (
        len(diffs), n, i, j - i * unit_out, gguf_out[j:j + w].hex(), ggml_out[j:j + w].hex())


# ---------------------------------------------------------------------------------------------
# Deterministic inputs
# ---------------------------------------------------------------------------------------------

class Rng:
    """splitmix64; floats via Python's math (glibc), never numpy's random or SIMD math."""

    def __init__(self, label):
        self.s = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.u64() >> 11) * (2.0 ** -53)

    def below(self, n):
        return self.u64() % n

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def student_t2(self):
        z = self.normal()
        v = -2.0 * math.log(1.0 - self.uniform())  # chi-square with 2 degrees of freedom
        return z / math.sqrt(v / 2.0)

    def cauchy(self):
        return math.tan(math.pi * (self.uniform() - 0.5))

    def bytes(self, n):
        out = bytearray()
        while len(out) < n:
            out += self.u64().to_bytes(8, "little")
        return bytes(out[:n])


def f32(values):
    return np.array(values, dtype=np.float64).astype(np.float32)


def f32_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def dist_normal(n, r):
    scales = [0.02, 1.0, 0.001, 30.0]
    sub = [1.0, 0.5, 2.0, 0.25, 1.5, 4.0, 0.125, 1.0]
    return f32([r.normal() * scales[(i // 256) % 4] * sub[(i // 32) % 8] for i in range(n)])


def dist_uniform(n, r):
    out = []
    for i in range(n):
        c = i // 256
        a = [1.0, 0.05, 7.0][c % 3]
        u = r.uniform()
        kind = c % 4
        out.append((2.0 * u - 1.0) * a if kind < 2 else (u * a if kind == 2 else -u * a))
    return f32(out)


def dist_heavy(n, r):
    return f32([(r.student_t2() if (i // 256) % 2 == 0 else r.cauchy()) * 0.01 for i in range(n)])


def dist_zero(n, r):
    return f32([0.0] * (n // 2) + [-0.0] * (n - n // 2))


def dist_constant(n, r):
    values = [1.0, -1.0, 0.1, -3.75, 1e-3, 1000.0, 65504.0]
    return f32([values[(i // 256) % len(values)] for i in range(n)])


def dist_outlier(n, r):
    x = [r.normal() * 0.02 for _ in range(n)]
    mags = [50.0, 200.0, 1000.0, 1e4]
    for c in range(n // 256):
        groups = [c * 256] if c % 2 == 0 else [c * 256 + 32 * g for g in range(8)]
        span = 256 if c % 2 == 0 else 32
        for k, g0 in enumerate(groups):
            sign = 1.0 if r.below(2) == 0 else -1.0
            x[g0 + r.below(span)] = sign * 0.02 * mags[(c + k) % 4]
    return f32(x)


def dist_huge(n, r):
    scales = [1e4, 6e4, 1e6, 1e12, 1e30, 1e38]
    return f32([max(-3.0e38, min(3.0e38, r.normal() * scales[(i // 256) % 6])) for i in range(n)])


def dist_tiny(n, r):
    scales = [1e-5, 6e-8, 1e-12, 1e-30, 1e-38, 1e-44]
    return f32([r.normal() * scales[(i // 256) % 6] for i in range(n)])


def dist_f16exact(n, r):
    return f32([r.normal() * 0.05 for _ in range(n)]).astype(np.float16).astype(np.float32)


def dist_grid16(n, r):
    return f32([(int(r.below(65)) - 32) / 16.0 for _ in range(n)])


def dist_sparse(n, r):
    x = [r.normal() * 0.02 for _ in range(n)]
    for c in range(n // 256):
        for s in range(16):
            if c % 4 == 0 or r.below(5) < 2:
                for j in range(16):
                    x[c * 256 + 16 * s + j] = 0.0
        for g in range(8):
            if r.below(5) == 0:
                for j in range(32):
                    x[c * 256 + 32 * g + j] = 0.0
    return f32(x)


NAN_BITS = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFA00001]


def dist_nan(n, r):
    x = f32([r.normal() for _ in range(n)])
    bits = x.view(np.uint32)
    for g in range(n // 32):
        kind = g % 4
        count = [1, 3, 0, 32][kind]
        pos = list(range(32)) if count == 32 else [int(r.below(32)) for _ in range(count)]
        for p in pos:
            bits[32 * g + p] = NAN_BITS[int(r.below(len(NAN_BITS)))]
    return bits.view(np.float32)


def dist_edges(n, r):
    """Rounding ties and range limits of f16/bf16, f32 specials, then random f32 bit patterns."""
    vals = []
    for base in [1.0, 2048.0, 0.5, 1e-4]:
        for k in range(1, 8):
            vals.append(base * (1.0 + k * 2.0 ** -11))   # f16 halfway points and neighbours
            vals.append(base * (1.0 + k * 2.0 ** -8))    # bf16 halfway points and neighbours
    vals += [65504.0, 65519.0, 65519.996, 65520.0, 65536.0, 1e5, 2.0 ** -14, 2.0 ** -15,
             2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 3.0 * 2.0 ** -26, 2.0 ** -26,
             2.0 ** -14 - 2.0 ** -25, 6.1e-5, 5.96e-8, 3.0e38, 3.3e38, 1.0e-40, 1.4e-45]
    vals += [-v for v in vals]
    bits = list(f32(vals).view(np.uint32)) + SPECIAL_F32 + NAN_BITS + [
        0x7F802000, 0x7F801FFF, 0x7FC01000, 0xFF800100, 0x7F810000, 0x3F808000, 0x3F818000,
        0x3F80FFFF, 0x477FF000, 0x477FEFFF, 0x33000000, 0x33000001, 0x387FC000, 0x387FE000,
    ]
    while len(bits) < n:
        bits.append(r.u64() & 0xFFFFFFFF)
    return f32_bits(bits[:n])


DISTRIBUTIONS = {
    "normal": dist_normal, "uniform": dist_uniform, "heavy": dist_heavy, "zero": dist_zero,
    "constant": dist_constant, "outlier": dist_outlier, "huge": dist_huge, "tiny": dist_tiny,
    "f16exact": dist_f16exact, "grid16": dist_grid16, "sparse": dist_sparse, "nan": dist_nan,
    "edges": dist_edges,
}
DIST_DOC = {
    "normal": "N(0,s^2), s per 256 values in {0.02,1,0.001,30}, times {1,.5,2,.25,1.5,4,.125,1} per 32",
    "uniform": "U(-a,a), U(0,a) or U(-a,0) per 256 values, a in {1,0.05,7}",
    "heavy": "0.01 x Student-t(2) or Cauchy, alternating per 256 values",
    "zero": "half +0.0, half -0.0",
    "constant": "one constant per 256 values: 1,-1,0.1,-3.75,1e-3,1000,65504",
    "outlier": "N(0,0.02^2) with one outlier (50x..1e4x) per 256 or per 32 values",
    "huge": "N(0,1) x {1e4,6e4,1e6,1e12,1e30,1e38} per 256 values, clamped to 3e38",
    "tiny": "N(0,1) x {1e-5,6e-8,1e-12,1e-30,1e-38,1e-44} per 256 values (f32 subnormals)",
    "f16exact": "N(0,0.05^2) rounded to f16",
    "grid16": "k/16, k uniform in [-32,32] (exact ties)",
    "sparse": "N(0,0.02^2) with all-zero 16- and 32-value sub-blocks and all-zero 256-blocks",
    "nan": "N(0,1) with 1, 3, 0 or 32 NaNs (assorted payloads) per 32 values",
    "edges": "f16/bf16 rounding ties, range limits, f32 specials, then random f32 bit patterns",
}

_dist_cache = {}


def distribution(name, n):
    key = (name, n)
    if key not in _dist_cache:
        x = DISTRIBUTIONS[name](n, Rng("dist:" + name))
        assert x.dtype == np.float32 and x.size == n
        _dist_cache[key] = x
    return _dist_cache[key]


# ---------------------------------------------------------------------------------------------
# Block bytes for dequantization
# ---------------------------------------------------------------------------------------------

def random_blocks(t, info):
    bs, ts = info["block_size"], info["type_size"]
    n = RANDOM_ELEMS
    return n, Rng("random:" + t).bytes(n // bs * ts)


def special_blocks(t, info):
    """Random block bytes whose scale fields hold NaN/Inf/subnormal/±0 patterns."""
    bs, ts = info["block_size"], info["type_size"]
    r = Rng("special:" + t)
    if t == "F32":
        bits = SPECIAL_F32 + NAN_BITS
        while len(bits) < 512:
            k = len(bits) % 3
            m = r.u64()
            sign = (m >> 40) & 1
            if k == 0:
                bits.append((sign << 31) | 0x7F800000 | ((m & 0x7FFFFF) or 1))   # NaN payloads
            elif k == 1:
                bits.append((sign << 31) | (m & 0x7FFFFF))                       # subnormals
            else:
                bits.append(m & 0xFFFFFFFF)
        return 512, struct.pack("<512I", *bits[:512])
    if t == "F16":
        vals = [s | (e << 10) | m for s in (0, 0x8000) for e in (0, 31) for m in range(1024)]
        return len(vals), struct.pack("<%dH" % len(vals), *vals)
    if t == "BF16":
        vals = [s | (e << 7) | m for s in (0, 0x8000) for e in (0, 255) for m in range(128)]
        return len(vals), struct.pack("<%dH" % len(vals), *vals)
    if t == "MXFP4":
        nb = 256
        raw = bytearray(r.bytes(nb * ts))
        for b in range(nb):
            raw[b * ts] = b                      # every E8M0 exponent byte once
        return nb * bs, bytes(raw)
    if t == "NVFP4":
        nb = 64
        raw = bytearray(r.bytes(nb * ts))
        for b in range(nb):
            for k in range(4):
                raw[b * ts + k] = (b + 64 * k) & 0xFF   # every UE4M3 scale byte once
        return nb * bs, bytes(raw)
    if t == "Q8_K":
        nb = len(SPECIAL_F32)
        raw = bytearray(r.bytes(nb * ts))
        for b in range(nb):
            raw[b * ts:b * ts + 4] = struct.pack("<I", SPECIAL_F32[b])
        return nb * bs, bytes(raw)
    nb = max(len(SPECIAL_F16), 2048 // bs)
    raw = bytearray(r.bytes(nb * ts))
    for b in range(nb):
        v0 = SPECIAL_F16[b % 16]
        v1 = SPECIAL_F16[(7 * b + 3) % 16]
        if t == "IQ1_M":
            # The fp16 scale is the top nibble of each of the four u16 words of scales[] @48.
            for k in range(4):
                off = b * ts + 48 + 2 * k + 1
                raw[off] = (raw[off] & 0x0F) | (((v0 >> (4 * k)) & 0xF) << 4)
            continue
        for j, off in enumerate(F16_FIELDS[t]):
            raw[b * ts + off:b * ts + off + 2] = struct.pack("<H", v0 if j == 0 else v1)
    return nb * bs, bytes(raw)


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
# gguf-py cross-check
# ---------------------------------------------------------------------------------------------

def gguf_qtype(t):
    qt = getattr(gguf.GGMLQuantizationType, t, None)
    return qt


def gguf_can_dequantize(t):
    qt = gguf_qtype(t)
    return qt is not None and (t in ("F32", "F16") or qt in gq._type_traits) and t != "Q8_1"


def gguf_can_quantize(t):
    if t in ("F32", "F16"):
        return True   # numpy astype
    qt = gguf_qtype(t)
    if qt is None or qt not in gq._type_traits:
        return False
    cls = gq._type_traits[qt]
    return "quantize_blocks" in cls.__dict__


def gguf_dequantize(t, raw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = gq.dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), gguf_qtype(t))
    return np.ascontiguousarray(out, dtype=np.float32).tobytes()


def gguf_quantize(t, x):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = gq.quantize(x.reshape(-1, 256).copy(), gguf_qtype(t))
    return np.ascontiguousarray(out).tobytes()


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
                             "(it returns early); the output buffer was zero-filled first, so such blocks "
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
