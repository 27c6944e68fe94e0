"""Deterministic inputs for the oracle vectors: f32 distributions and block bytes.

Everything derives from splitmix64 streams seeded by a label and from Python's math module
(glibc), never numpy's random generator or its SIMD math, so reruns are bit-identical.
"""

import hashlib
import math
import struct

import numpy as np

M64 = (1 << 64) - 1
RANDOM_ELEMS = 4096  # values per "random" dequantize section

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
