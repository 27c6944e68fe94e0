"""gguf-py as a second producer: recompute a section and compare it with ggml's output."""

import struct
import warnings

import numpy as np

import gguf
from gguf import quants as gq

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
