//! An independent restatement of the dequantization formulas, one block at a time, written from
//! the layouts and formulas in `shared/reference/ggml-gguf-safetensors.md` §2.2–§3.1 and ggml
//! `src/ggml-quants.c` `dequantize_row_*` @ d99724f2 (read, restated in our own words). It
//! shares no code with `crate::quant`: its fp16 decoder is a plain field decode (not the
//! Maratyszcza trick), sub-block scales are unpacked element by element from the documented
//! bit positions (not with ggml's 32-bit mask tricks), and element order follows the doc's
//! per-element description. A fault planted in the codec (or in every codec path) therefore
//! shows up as a disagreement with this module.
//!
//! Invariants: every value is computed with the operation order ggml uses (`(d·sc)·q − dmin·m`,
//! `(d·sc)·q` for Q6_K, `x·d + m` for Q4_1/Q5_1), in plain f32 arithmetic without fused
//! multiply-add; [`dequantize_block`] returns false for types it does not restate (the IQ grid
//! types and TQ1_0), which the hunt then checks across paths only.

use crate::dtype::GgmlType;

/// fp16 bits → f32 by field decode: subnormals as `m·2^-24`, normals by re-biasing the
/// exponent, Inf kept, NaN quieted with its payload kept (what ggml's software path gives on
/// x86).
pub fn f16(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1F);
    let man = u32::from(bits & 0x3FF);
    match exp {
        0 => {
            let mag = man as f32 * (1.0 / 16_777_216.0); // exact: man < 2^10, times 2^-24
            f32::from_bits(sign | mag.to_bits())
        }
        0x1F if man == 0 => f32::from_bits(sign | 0x7F80_0000),
        0x1F => f32::from_bits(sign | 0x7FC0_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// bf16 bits → f32 (the top half of the f32).
pub fn bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// ggml `kvalues_iq4nl`.
const IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
/// ggml `kvalues_mxfp4` (E2M1 doubled).
const FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// E8M0 scale, halved: 2^(e−128).
fn e8m0_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

/// UE4M3 scale, halved (0 and 0x7F are 0; bit 7 ignored).
fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = i32::from((x >> 3) & 0xF);
    let man = f32::from(x & 7);
    let raw = if exp == 0 {
        man * (1.0 / 512.0)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    raw * 0.5
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn h_at(b: &[u8], at: usize) -> f32 {
    f16(u16_at(b, at))
}

/// Whether [`dequantize_block`] restates `t`.
pub fn has_spec(t: GgmlType) -> bool {
    let mut y = vec![0f32; t.block_size()];
    let b = vec![0u8; t.type_size()];
    dequantize_block(t, &b, &mut y)
}

/// Dequantizes one block `b` (`type_size` bytes) into `y` (`block_size` floats). False (and
/// `y` untouched) when the type is not restated here or the lengths are wrong.
pub fn dequantize_block(t: GgmlType, b: &[u8], y: &mut [f32]) -> bool {
    if b.len() != t.type_size() || y.len() != t.block_size() {
        return false;
    }
    match t {
        GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => y[0] = f16(u16_at(b, 0)),
        GgmlType::BF16 => y[0] = bf16(u16_at(b, 0)),
        GgmlType::Q4_0 => {
            let d = h_at(b, 0);
            for j in 0..16 {
                y[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (h_at(b, 0), h_at(b, 2));
            for j in 0..16 {
                y[j] = f32::from(b[4 + j] & 0xF) * d + m;
                y[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let one = t == GgmlType::Q5_1;
            let (d, m) = (h_at(b, 0), if one { h_at(b, 2) } else { 0.0 });
            let qh_at = if one { 4 } else { 2 };
            let qh = u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]]);
            let qs = &b[qh_at + 4..qh_at + 20];
            for i in 0..32 {
                // Element i: low 4 bits from the split-halves nibble, bit 4 from qh bit i.
                let nib = if i < 16 { qs[i] & 0xF } else { qs[i - 16] >> 4 };
                let q = i32::from(nib) | (((qh >> i) & 1) as i32) << 4;
                y[i] = if one {
                    q as f32 * d + m
                } else {
                    (q - 16) as f32 * d
                };
            }
        }
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let d = h_at(b, 0);
            let at = if t == GgmlType::Q8_0 { 2 } else { 4 };
            for (j, v) in y.iter_mut().enumerate() {
                *v = f32::from(b[at + j] as i8) * d;
            }
        }
        GgmlType::Q2_K => q2_k(b, y),
        GgmlType::Q3_K => q3_k(b, y),
        GgmlType::Q4_K => q45_k::<false>(b, y),
        GgmlType::Q5_K => q45_k::<true>(b, y),
        GgmlType::Q6_K => q6_k(b, y),
        GgmlType::Q8_K => {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            for (j, v) in y.iter_mut().enumerate() {
                *v = d * f32::from(b[4 + j] as i8);
            }
        }
        GgmlType::IQ4_NL => {
            let d = h_at(b, 0);
            for j in 0..16 {
                y[j] = d * f32::from(IQ4NL[usize::from(b[2 + j] & 0xF)]);
                y[j + 16] = d * f32::from(IQ4NL[usize::from(b[2 + j] >> 4)]);
            }
        }
        GgmlType::IQ4_XS => {
            let d = h_at(b, 0);
            let sh = u16_at(b, 2);
            for ib in 0..8 {
                let lo = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF;
                let hi = ((sh >> (2 * ib)) & 3) as u8;
                let dl = d * (i32::from(lo | hi << 4) - 32) as f32;
                for j in 0..16 {
                    let q = b[8 + 16 * ib + j];
                    y[32 * ib + j] = dl * f32::from(IQ4NL[usize::from(q & 0xF)]);
                    y[32 * ib + 16 + j] = dl * f32::from(IQ4NL[usize::from(q >> 4)]);
                }
            }
        }
        GgmlType::TQ2_0 => {
            let d = h_at(b, 64);
            for (e, v) in y.iter_mut().enumerate() {
                // Element 128g + 32l + m sits in byte 32g + m, bits 2l..2l+1.
                let (g, l, m) = (e / 128, (e % 128) / 32, e % 32);
                let q = (b[32 * g + m] >> (2 * l)) & 3;
                *v = (i32::from(q) - 1) as f32 * d;
            }
        }
        GgmlType::MXFP4 => {
            let d = e8m0_half(b[0]);
            for j in 0..16 {
                y[j] = f32::from(FP4[usize::from(b[1 + j] & 0xF)]) * d;
                y[j + 16] = f32::from(FP4[usize::from(b[1 + j] >> 4)]) * d;
            }
        }
        GgmlType::NVFP4 => {
            for s in 0..4 {
                let d = ue4m3_half(b[s]);
                for j in 0..8 {
                    let q = b[4 + 8 * s + j];
                    y[16 * s + j] = f32::from(FP4[usize::from(q & 0xF)]) * d;
                    y[16 * s + 8 + j] = f32::from(FP4[usize::from(q >> 4)]) * d;
                }
            }
        }
        GgmlType::Q1_0 => {
            let d = h_at(b, 0);
            for (j, v) in y.iter_mut().enumerate() {
                *v = if (b[2 + j / 8] >> (j % 8)) & 1 == 1 {
                    d
                } else {
                    -d
                };
            }
        }
        GgmlType::Q2_0 => {
            let d = h_at(b, 0);
            for (j, v) in y.iter_mut().enumerate() {
                let q = (b[2 + j / 4] >> (2 * (j % 4))) & 3;
                *v = (i32::from(q) - 1) as f32 * d;
            }
        }
        GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64 => return false,
    }
    true
}

/// Q2_K / Q3_K element order: for half n (128 elements, `qs[32n..32n+32]`) and shift index j
/// (bits 2j..2j+1), elements 128n + 32j + l (l < 16) read `qs[32n + l]` with sub-block
/// 8n + 2j, and elements 128n + 32j + 16 + l read `qs[32n + 16 + l]` with sub-block 8n + 2j + 1.
/// Calls `f(first element, qs offset, shift, sub-block)` for each run of 16.
fn k2_runs(mut f: impl FnMut(usize, usize, u32, usize)) {
    for n in 0..2 {
        for j in 0..4 {
            for h in 0..2 {
                f(
                    128 * n + 32 * j + 16 * h,
                    32 * n + 16 * h,
                    2 * j as u32,
                    8 * n + 2 * j + h,
                );
            }
        }
    }
}

fn q2_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h_at(b, 80), h_at(b, 82));
    k2_runs(|e0, q0, shift, sb| {
        let sc = b[sb];
        let dl = d * f32::from(sc & 0xF);
        let ml = dmin * f32::from(sc >> 4);
        for l in 0..16 {
            let q = (b[16 + q0 + l] >> shift) & 3;
            y[e0 + l] = dl * f32::from(q) - ml;
        }
    });
}

/// Q3_K's 16 six-bit scales (stored +32): low 4 bits in byte j (j < 8, low nibble) or byte
/// j − 8 (high nibble); high 2 bits in byte 8 + j % 4 at bit 2·(j / 4).
fn q3_scale(s: &[u8], j: usize) -> i32 {
    let lo = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
    let hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    i32::from(lo | hi << 4) - 32
}

fn q3_k(b: &[u8], y: &mut [f32]) {
    let d = h_at(b, 108);
    let scales = &b[96..108];
    k2_runs(|e0, q0, shift, sb| {
        let dl = d * q3_scale(scales, sb) as f32;
        for l in 0..16 {
            let e = e0 + l;
            let q = i32::from((b[32 + q0 + l] >> shift) & 3);
            // The high bit lives in hmask[e % 32], bit e / 32; when clear, 4 is subtracted.
            let high = (b[e % 32] >> (e / 32)) & 1 == 1;
            y[e] = dl * (q - if high { 0 } else { 4 }) as f32;
        }
    });
}

/// Q4_K/Q5_K 6-bit scale and min of sub-block j (reference §2.3 "12-byte scale packing").
fn k4_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn q45_k<const FIVE: bool>(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h_at(b, 0), h_at(b, 2));
    let scales = &b[4..16];
    let qs_at = if FIVE { 48 } else { 16 };
    let qh = &b[16..48];
    // Sub-block sb (32 elements from 32·sb): chunk c = sb / 2 of qs (32 bytes at 32c); even
    // sub-blocks take the low nibbles, odd ones the high nibbles; Q5_K's bit 4 of element
    // 32·sb + l is bit sb of qh[l].
    for (sb, ys) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k4_scale_min(scales, sb);
        let d1 = d * f32::from(sc);
        let m1 = dmin * f32::from(m);
        let qs = &b[qs_at + 32 * (sb / 2)..qs_at + 32 * (sb / 2) + 32];
        let shift = 4 * (sb % 2);
        for ((yv, &qb), &hb) in ys.iter_mut().zip(qs).zip(qh) {
            let mut q = (qb >> shift) & 0xF;
            if FIVE {
                q |= ((hb >> sb) & 1) << 4;
            }
            *yv = d1 * f32::from(q) - m1;
        }
    }
}

fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = h_at(b, 208);
    // Half n, quarter k: elements 128n + 32k + l (l < 32). Low 4 bits: ql[64n + l] (k = 0, 2)
    // or ql[64n + 32 + l] (k = 1, 3), low nibble for k < 2, high nibble for k ≥ 2; high 2 bits:
    // qh[32n + l] >> 2k; scale: scales[8n + 2k + l / 16] (i8); value (d·sc)·(q − 32).
    for (n, yh) in y.chunks_exact_mut(128).enumerate() {
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        for (k, yk) in yh.chunks_exact_mut(32).enumerate() {
            let ql = &b[64 * n + 32 * (k % 2)..64 * n + 32 * (k % 2) + 32];
            let shift = if k >= 2 { 4 } else { 0 };
            for (half, ys) in yk.chunks_exact_mut(16).enumerate() {
                let sc = b[192 + 8 * n + 2 * k + half] as i8;
                let ds = d * f32::from(sc);
                let lo = &ql[16 * half..16 * half + 16];
                let hi = &qh[16 * half..16 * half + 16];
                for ((yv, &l4), &h2) in ys.iter_mut().zip(lo).zip(hi) {
                    let q = i32::from(((l4 >> shift) & 0xF) | ((h2 >> (2 * k)) & 3) << 4) - 32;
                    *yv = ds * q as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_decode_matches_hand_values() {
        assert_eq!(f16(0x3C00), 1.0);
        assert_eq!(f16(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16(0x0001), 2f32.powi(-24));
        assert_eq!(f16(0x7BFF), 65504.0);
        assert_eq!(f16(0xFC00), f32::NEG_INFINITY);
        assert_eq!(f16(0x7C01).to_bits(), 0x7FC0_2000);
    }

    #[test]
    fn q4_0_hand_block() {
        // d = 1.0, qs[0] = 0x9F: element 0 = 15 − 8 = 7, element 16 = 9 − 8 = 1.
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&0x3C00u16.to_le_bytes());
        b[2] = 0x9F;
        let mut y = [0f32; 32];
        assert!(dequantize_block(GgmlType::Q4_0, &b, &mut y));
        assert_eq!((y[0], y[16], y[1]), (7.0, 1.0, -8.0));
    }
}
