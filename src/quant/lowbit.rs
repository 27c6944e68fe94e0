//! Low-bit dequantizers: TQ1_0, TQ2_0 (ternary), MXFP4, NVFP4 (FP4 E2M1 with E8M0 / UE4M3
//! scales), Q1_0 (sign bits) and Q2_0 (2-bit codes −1..+2).
//!
//! Ported from ggml `src/ggml-quants.c` @ d99724f2 (`dequantize_row_tq1_0`, `_tq2_0`,
//! `_mxfp4`, `_nvfp4`, `_q1_0`, `_q2_0`; layouts from `src/ggml-common.h`); algorithms
//! restated, not copied. ggml has only reference quantizers for these types and this crate
//! does not quantize to them.
//!
//! Invariants:
//! - Callers (`quant::dequantize`) pass whole, matching blocks; every kernel walks
//!   `chunks_exact` pairs, so indexing inside a block is always in bounds.
//! - Each value is one f32 product `code · scale` (both exact), so results are bit-identical to
//!   ggml's whatever the compiler does; Q1_0 is a sign select between d and −d.

use super::float::{e8m0_to_f32_half, f16_to_f32, ue4m3_to_f32_half};
use super::le16;
use crate::dtype::GgmlType;

/// ggml `kvalues_mxfp4` (= `kvalues_fp4`): E2M1 values doubled, indexed by the 4-bit code.
const KVALUES_FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// [`KVALUES_FP4`] as f32 (exact), so the kernel is a lookup and one multiply.
const KVALUES_FP4_F32: [f32; 16] = {
    let mut t = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = KVALUES_FP4[i] as f32;
        i += 1;
    }
    t
};

/// Super-block size of the ternary types.
const QK_K: usize = 256;
const TQ1_0_SIZE: usize = GgmlType::TQ1_0.type_size();
const TQ2_0_SIZE: usize = GgmlType::TQ2_0.type_size();
const QK_MXFP4: usize = GgmlType::MXFP4.block_size();
const MXFP4_SIZE: usize = GgmlType::MXFP4.type_size();
const QK_NVFP4: usize = GgmlType::NVFP4.block_size();
/// NVFP4 values per UE4M3 scale.
const QK_NVFP4_SUB: usize = 16;
const NVFP4_SIZE: usize = GgmlType::NVFP4.type_size();
const QK1_0: usize = GgmlType::Q1_0.block_size();
const Q1_0_SIZE: usize = GgmlType::Q1_0.type_size();
const QK2_0: usize = GgmlType::Q2_0.block_size();
const Q2_0_SIZE: usize = GgmlType::Q2_0.type_size();

/// TQ1_0: `qs[48]` @0 (bytes 0..32 hold 5 trits each for 32-wide rows, bytes 32..48 for
/// 16-wide rows), `qh[4]` @48 (4 trits each), `d: half` @52.
const TQ1_QS: usize = 48;
const TQ1_QS_WIDE: usize = TQ1_QS - TQ1_QS % 32;
const TQ1_QH: usize = 4;

// Layouts (ggml-common.h `block_*`) must agree with the dtype table.
const _: () = {
    assert!(GgmlType::TQ1_0.block_size() == QK_K && GgmlType::TQ2_0.block_size() == QK_K);
    assert!(TQ1_0_SIZE == TQ1_QS + TQ1_QH + 2);
    assert!(TQ1_QS_WIDE * 5 + (TQ1_QS - TQ1_QS_WIDE) * 5 + TQ1_QH * 4 == QK_K);
    assert!(TQ2_0_SIZE == QK_K / 4 + 2);
    assert!(QK_MXFP4 == 32 && MXFP4_SIZE == 1 + QK_MXFP4 / 2);
    assert!(QK_NVFP4 == 64 && NVFP4_SIZE == QK_NVFP4 / QK_NVFP4_SUB + QK_NVFP4 / 2);
    assert!(QK1_0 == 128 && Q1_0_SIZE == 2 + QK1_0 / 8);
    assert!(QK2_0 == 64 && Q2_0_SIZE == 2 + QK2_0 / 4);
};

/// Trit k (0 = most significant) of a TQ1_0 byte, as ggml extracts it: the byte times 3^k
/// wraps in u8 (dropping the higher trits), then `(q · 3) >> 8` is the leading trit.
/// Returns the value trit − 1 as f32.
#[inline(always)]
fn tq1_value(byte: u8, pow3: u8) -> f32 {
    let q = byte.wrapping_mul(pow3);
    let trit = (u16::from(q) * 3) >> 8;
    (i32::from(trit) - 1) as f32
}

/// TQ1_0 → f32: y = (trit − 1) · h(d). Output order: for each group of byte columns, trit
/// 0 of every byte, then trit 1, … (byte m of the first 32 holds elements m + 32k).
pub fn dequantize_tq1_0(src: &[u8], dst: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    for (b, y) in src.chunks_exact(TQ1_0_SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(le16(b, TQ1_QS + TQ1_QH));
        let (wide, rest) = y.split_at_mut(TQ1_QS_WIDE * 5);
        let (narrow, tail) = rest.split_at_mut((TQ1_QS - TQ1_QS_WIDE) * 5);
        let groups = [
            (&b[..TQ1_QS_WIDE], wide, 5),
            (&b[TQ1_QS_WIDE..TQ1_QS], narrow, 5),
        ];
        let qh = &b[TQ1_QS..TQ1_QS + TQ1_QH];
        for (bytes, out, n_trits) in groups.into_iter().chain([(qh, tail, 4)]) {
            for (&p, row) in POW3[..n_trits]
                .iter()
                .zip(out.chunks_exact_mut(bytes.len()))
            {
                for (&q, v) in bytes.iter().zip(row.iter_mut()) {
                    *v = tq1_value(q, p) * d;
                }
            }
        }
    }
}

/// TQ2_0 → f32: y = (code − 1) · h(d); byte 32g + m, bits 2l..2l+1 = element 128g + 32l + m.
pub fn dequantize_tq2_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(TQ2_0_SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(le16(b, QK_K / 4));
        for (qs, out) in b[..QK_K / 4].chunks_exact(32).zip(y.chunks_exact_mut(128)) {
            for (l, row) in out.chunks_exact_mut(32).enumerate() {
                for (&q, v) in qs.iter().zip(row.iter_mut()) {
                    let code = (q >> (2 * l)) & 3;
                    *v = (i32::from(code) - 1) as f32 * d;
                }
            }
        }
    }
}

/// MXFP4 → f32: y = kvalues_fp4[nib] · 2^(e−128) (E8M0 scale `e` @0, split-halves nibbles).
pub fn dequantize_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(MXFP4_SIZE)
        .zip(dst.chunks_exact_mut(QK_MXFP4))
    {
        let d = e8m0_to_f32_half(b[0]);
        fp4_pairs(&b[1..], y, d);
    }
}

/// NVFP4 → f32: four 16-value sub-blocks, each with its UE4M3 scale `d[s]` @s and nibbles in
/// `qs[8s..8s+8]` @4 (low = element 16s + j, high = element 16s + 8 + j).
pub fn dequantize_nvfp4(src: &[u8], dst: &mut [f32]) {
    const N_SUB: usize = QK_NVFP4 / QK_NVFP4_SUB;
    for (b, y) in src
        .chunks_exact(NVFP4_SIZE)
        .zip(dst.chunks_exact_mut(QK_NVFP4))
    {
        let (scales, qs) = b.split_at(N_SUB);
        let subs = qs
            .chunks_exact(QK_NVFP4_SUB / 2)
            .zip(y.chunks_exact_mut(QK_NVFP4_SUB));
        for (&e, (q, out)) in scales.iter().zip(subs) {
            fp4_pairs(q, out, ue4m3_to_f32_half(e));
        }
    }
}

/// Split-halves FP4 nibbles: `qs[j]` low → `out[j]`, high → `out[j + qs.len()]`.
#[inline(always)]
fn fp4_pairs(qs: &[u8], out: &mut [f32], d: f32) {
    let (lo, hi) = out.split_at_mut(qs.len());
    for ((&q, l), h) in qs.iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
        *l = KVALUES_FP4_F32[usize::from(q & 0x0F)] * d;
        *h = KVALUES_FP4_F32[usize::from(q >> 4)] * d;
    }
}

/// Q1_0 → f32: bit j of the LE bit string `qs` @2 set → h(d), clear → −h(d).
pub fn dequantize_q1_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q1_0_SIZE).zip(dst.chunks_exact_mut(QK1_0)) {
        let d = f16_to_f32(le16(b, 0));
        let neg_d = -d;
        for (&q, out) in b[2..].iter().zip(y.chunks_exact_mut(8)) {
            for (bit, v) in out.iter_mut().enumerate() {
                *v = if (q >> bit) & 1 != 0 { d } else { neg_d };
            }
        }
    }
}

/// Q2_0 → f32: y = (code − 1) · h(d), code = bits 2(j%4).. of `qs[j/4]` @2 (−1, 0, +1, +2).
pub fn dequantize_q2_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q2_0_SIZE).zip(dst.chunks_exact_mut(QK2_0)) {
        let d = f16_to_f32(le16(b, 0));
        for (&q, out) in b[2..].iter().zip(y.chunks_exact_mut(4)) {
            for (k, v) in out.iter_mut().enumerate() {
                let code = (q >> (2 * k)) & 3;
                *v = (i32::from(code) - 1) as f32 * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Oracles are hand-derived from the layouts in `shared/reference/ggml-gguf-safetensors.md`
    //! §2.3 and ggml-common.h; the bit-exact comparison with ggml is the oracle-vector test.
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3C]; // fp16 1.0, LE

    /// E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}, sign in bit 3, written out independently.
    fn e2m1(code: u8) -> f32 {
        let mag = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0][usize::from(code & 7)];
        if code & 8 != 0 {
            -mag
        } else {
            mag
        }
    }

    #[test]
    fn tq2_0_layout() {
        // 0xE4 = codes 0,1,2,3 at bit pairs 0..3 → element 128g + 32l + m = l − 1.
        let b = [&[0xE4u8; 64][..], &ONE].concat();
        let mut y = [0f32; 256];
        dequantize_tq2_0(&b, &mut y);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, ((i % 128) / 32) as f32 - 1.0, "{i}");
        }
    }

    #[test]
    fn tq1_0_layout_from_doc_encoding() {
        // Encode per the doc: q = Σ trit_k·3^(n−1−k) (qh: times 3), byte = ceil(q·256/243).
        fn enc(trits: &[u8]) -> u8 {
            let mut q = trits.iter().fold(0u32, |a, &t| a * 3 + u32::from(t));
            if trits.len() == 4 {
                q *= 3;
            }
            (q * 256).div_ceil(243) as u8
        }
        let mut seed = 0x1234_5678u32;
        let want: Vec<u8> = (0..256)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed % 3) as u8
            })
            .collect();
        let mut b = vec![0u8; 54];
        for m in 0..32 {
            b[m] = enc(&(0..5).map(|k| want[m + 32 * k]).collect::<Vec<_>>());
        }
        for m in 0..16 {
            b[32 + m] = enc(&(0..5).map(|k| want[160 + m + 16 * k]).collect::<Vec<_>>());
        }
        for j in 0..4 {
            b[48 + j] = enc(&(0..4).map(|k| want[240 + j + 4 * k]).collect::<Vec<_>>());
        }
        b[52..].copy_from_slice(&[0x00, 0x40]); // d = 2
        let mut y = [0f32; 256];
        dequantize_tq1_0(&b, &mut y);
        for (i, (v, t)) in y.iter().zip(&want).enumerate() {
            assert_eq!(*v, (f32::from(*t) - 1.0) * 2.0, "element {i}");
        }
    }

    #[test]
    fn mxfp4_hand_block() {
        // e = 128 → scale 2^0 (halved table convention: value = E2M1 · 2^(e−127)).
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let mut y = [0f32; 32];
        for (e, unit) in [(128u8, 1.0f32), (127, 0.5), (130, 4.0)] {
            dequantize_mxfp4(&[&[e][..], &qs].concat(), &mut y);
            for j in 0..16u8 {
                assert_eq!(y[usize::from(j)], e2m1(j) * 2.0 * unit);
                assert_eq!(y[usize::from(j) + 16], e2m1(15 - j) * 2.0 * unit);
            }
        }
    }

    #[test]
    fn nvfp4_hand_block() {
        // Scales: 0x38 = 1.0, 0x40 = 2.0, 0x01 = 2^-9 (subnormal), 0x7F = NaN code → 0.
        // ue4m3_to_f32_half halves them to match the doubled table, so y = E2M1 · scale.
        let scales = [0x38u8, 0x40, 0x01, 0x7F];
        let unit = [1.0f32, 2.0, 1.0 / 512.0, 0.0];
        let qs: Vec<u8> = (0..32u8).map(|i| (i % 8) | (((i % 8) + 8) << 4)).collect();
        let mut y = [0f32; 64];
        dequantize_nvfp4(&[&scales[..], &qs].concat(), &mut y);
        for (s, &u) in unit.iter().enumerate() {
            for j in 0..8u8 {
                let i = 16 * s + usize::from(j);
                assert_eq!(y[i], e2m1(j) * u, "{i}");
                assert_eq!(y[i + 8], e2m1(j + 8) * u, "{}", i + 8);
            }
        }
    }

    #[test]
    fn q1_0_and_q2_0_hand_blocks() {
        // Q1_0: d = 2; qs[0] = 0b0000_0101, qs[1] = 0xFF, rest 0.
        let mut qs = [0u8; 16];
        qs[0] = 0b0000_0101;
        qs[1] = 0xFF;
        let mut y = [0f32; 128];
        dequantize_q1_0(&[&[0x00, 0x40][..], &qs].concat(), &mut y);
        for (i, v) in y.iter().enumerate() {
            let set = i == 0 || i == 2 || (8..16).contains(&i);
            assert_eq!(*v, if set { 2.0 } else { -2.0 }, "{i}");
        }
        // Q2_0: d = 0.5; byte 0xE4 = codes 0,1,2,3 → -0.5, 0, 0.5, 1.0 for elements 4k..4k+3.
        let mut y = [0f32; 64];
        dequantize_q2_0(&[&[0x00, 0x38][..], &[0xE4; 16]].concat(), &mut y);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, ((i % 4) as f32 - 1.0) * 0.5, "{i}");
        }
    }
}
