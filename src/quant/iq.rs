//! IQ-family dequantizers (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL,
//! IQ4_XS), bit-exact with ggml `src/ggml-quants.c` `dequantize_row_iq*` (llama-cpp-python 0.3.36
//! sdist copy; algorithms restated, not copied).
//!
//! Invariants:
//! - Callers ([`crate::quant::dequantize`]) pass whole blocks: `src.len()` is `n × type_size` and
//!   `dst.len()` is `n × block_size` for the same `n`; only then is in-block indexing used.
//!   Every index into a lookup table is masked to the table's length, so any byte pattern decodes.
//! - The f32 operations and their order are ggml's: scale = `(d · (0.5 + s)) · k` or
//!   `d · (float)int`, then value = `±(scale · grid)` (or `scale · (grid + δ)` for IQ1), with no
//!   fused multiply-add. Signs are applied as a sign flip, as gcc -O2 compiles ggml's `· (±1.0f)`;
//!   NaN outputs (from a NaN/Inf fp16 d) therefore match the oracle build bit for bit too.
//! - Grid entries pack one value per byte, little-endian (see `iq_grids`).

use super::float::f16_to_f32;
use super::iq_grids::{
    IQ1S_DELTA, IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KMASK_IQ2XS,
    KSIGNS_IQ2XS, KVALUES_IQ4NL,
};
use super::{le16, le32};
use crate::dtype::GgmlType;

/// Values per super-block (ggml `QK_K`).
const QK_K: usize = 256;
/// Values per IQ4_NL block (ggml `QK4_NL`).
const QK4_NL: usize = 32;

/// Byte `j` of a packed grid entry, as an unsigned magnitude.
#[inline(always)]
fn grid_u8(entry: u64, j: usize) -> f32 {
    f32::from((entry >> (8 * j)) as u8)
}

/// `v`, negated where bit `j` of `signs` is set. ggml multiplies by ±1.0f; gcc -O2 (the oracle
/// build) compiles that to a sign flip, which differs from a true multiply only in the sign of a
/// NaN, so the flip is written out here to make debug and release builds agree with it.
#[inline(always)]
fn signed(v: f32, signs: u8, j: usize) -> f32 {
    if signs & KMASK_IQ2XS[j] != 0 {
        -v
    } else {
        v
    }
}

/// Writes the 8 values `±(db · grid[j])` of one packed 8-byte grid entry.
#[inline(always)]
fn put8(out: &mut [f32], db: f32, entry: u64, signs: u8) {
    for (j, y) in out.iter_mut().enumerate().take(8) {
        *y = signed(db * grid_u8(entry, j), signs, j);
    }
}

/// Writes 8 values from two 4-byte grid entries (low half, high half) sharing one sign byte.
#[inline(always)]
fn put4x2(out: &mut [f32], db: f32, g1: u32, g2: u32, signs: u8) {
    for j in 0..4 {
        out[j] = signed(db * grid_u8(u64::from(g1), j), signs, j);
        out[j + 4] = signed(db * grid_u8(u64::from(g2), j), signs, j + 4);
    }
}

/// Writes 8 IQ1 values `dl · (grid_i8[j] + delta)`.
#[inline(always)]
fn put_iq1(out: &mut [f32], dl: f32, entry: u64, delta: f32) {
    for (j, y) in out.iter_mut().enumerate().take(8) {
        *y = dl * (f32::from((entry >> (8 * j)) as u8 as i8) + delta);
    }
}

/// Pairs each block of `t` in `src` with its output values in `dst`.
fn blocks<'a>(
    t: GgmlType,
    src: &'a [u8],
    dst: &'a mut [f32],
) -> impl Iterator<Item = (&'a [u8], &'a mut [f32])> {
    src.chunks_exact(t.type_size())
        .zip(dst.chunks_exact_mut(t.block_size()))
}

/// IQ2_XXS (66 B / 256): fp16 d, then per 32 values 8 bytes: 4 grid indices, and a u32 holding
/// four 7-bit sign fields and a 4-bit scale s (top bits); scale = d·(0.5+s)·0.25.
/// ggml `dequantize_row_iq2_xxs`.
pub fn dequantize_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ2_XXS, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        for ib in 0..QK_K / 32 {
            let q = &b[2 + 8 * ib..2 + 8 * ib + 8];
            let aux = le32(q, 4);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
            for l in 0..4 {
                let entry = IQ2XXS_GRID[usize::from(q[l])];
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                put8(&mut y[32 * ib + 8 * l..], db, entry, signs);
            }
        }
    }
}

/// IQ2_XS (74 B / 256): fp16 d, 32 u16 (9-bit grid index | 7-bit sign field << 9), then 8 bytes of
/// two 4-bit scales per 32 values (low nibble: first 16). ggml `dequantize_row_iq2_xs`.
pub fn dequantize_iq2_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ2_XS, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        for ib in 0..QK_K / 32 {
            let sc = b[66 + ib];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            for l in 0..4 {
                let q = le16(b, 2 + 2 * (4 * ib + l));
                let entry = IQ2XS_GRID[usize::from(q & 511)];
                let signs = KSIGNS_IQ2XS[usize::from(q >> 9)];
                put8(&mut y[32 * ib + 8 * l..], db[l / 2], entry, signs);
            }
        }
    }
}

/// IQ2_S (82 B / 256): fp16 d, 32 grid-index low bytes, 32 sign bytes, 8 qh bytes (2 high index bits
/// per group of 8), 8 bytes of two 4-bit scales. ggml `dequantize_row_iq2_s`.
pub fn dequantize_iq2_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ2_S, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let (qs, signs, qh, scales) = (&b[2..34], &b[34..66], &b[66..74], &b[74..82]);
        for ib in 0..QK_K / 32 {
            let sc = scales[ib];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            for l in 0..4 {
                let hi = (usize::from(qh[ib]) << (8 - 2 * l)) & 0x300;
                let entry = IQ2S_GRID[usize::from(qs[4 * ib + l]) | hi];
                put8(
                    &mut y[32 * ib + 8 * l..],
                    db[l / 2],
                    entry,
                    signs[4 * ib + l],
                );
            }
        }
    }
}

/// IQ3_XXS (98 B / 256): fp16 d, 64 grid indices (4 values each), then per 32 values a u32 of four
/// 7-bit sign fields and a 4-bit scale s; scale = d·(0.5+s)·0.5. ggml `dequantize_row_iq3_xxs`.
pub fn dequantize_iq3_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ3_XXS, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let qs = &b[2..66];
        for ib in 0..QK_K / 32 {
            let aux = le32(b, 66 + 4 * ib);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                let g1 = IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l])];
                let g2 = IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l + 1])];
                put4x2(&mut y[32 * ib + 8 * l..], db, g1, g2, signs);
            }
        }
    }
}

/// IQ3_S (110 B / 256): fp16 d, 64 grid-index low bytes, 8 qh bytes (one high index bit per grid
/// index), 32 sign bytes, 4 bytes of two 4-bit scales; scale = d·(1+2s).
/// ggml `dequantize_row_iq3_s`.
pub fn dequantize_iq3_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ3_S, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let (qs, qh, signs, scales) = (&b[2..66], &b[66..74], &b[74..106], &b[106..110]);
        for ib in 0..QK_K / 32 {
            let s = (scales[ib / 2] >> (4 * (ib % 2))) & 0xf;
            let db = d * (1 + 2 * i32::from(s)) as f32;
            let h = usize::from(qh[ib]);
            for l in 0..4 {
                let i1 = usize::from(qs[8 * ib + 2 * l]) | ((h << (8 - 2 * l)) & 256);
                let i2 = usize::from(qs[8 * ib + 2 * l + 1]) | ((h << (7 - 2 * l)) & 256);
                let (g1, g2) = (IQ3S_GRID[i1], IQ3S_GRID[i2]);
                put4x2(&mut y[32 * ib + 8 * l..], db, g1, g2, signs[4 * ib + l]);
            }
        }
    }
}

/// IQ1_S (50 B / 256): fp16 d, 32 grid-index low bytes, then per 32 values a u16 with four 3-bit
/// high index parts, a 3-bit scale s (bits 12..=14) and the delta sign (bit 15);
/// value = d·(2s+1) · (grid + ±IQ1S_DELTA). ggml `dequantize_row_iq1_s`.
pub fn dequantize_iq1_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ1_S, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let qs = &b[2..34];
        for ib in 0..QK_K / 32 {
            let qh = le16(b, 34 + 2 * ib);
            let dl = d * (2 * i32::from((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            };
            for l in 0..4 {
                let idx = usize::from(qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
                put_iq1(&mut y[32 * ib + 8 * l..], dl, IQ1S_GRID[idx], delta);
            }
        }
    }
}

/// IQ1_M (56 B / 256): 32 grid-index low bytes, 16 qh bytes (per group of 8: 3 high index bits and
/// a delta-sign bit, two groups a byte), 8 scale bytes read as 4 u16: bits 0..12 of each hold four
/// 3-bit sub-scales (one per 16 values), the top nibbles together form the fp16 d.
/// ggml `dequantize_row_iq1_m` (which uses `IQ1S_DELTA`).
pub fn dequantize_iq1_m(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ1_M, src, dst) {
        let (qs, qh) = (&b[0..32], &b[32..48]);
        let sc = [le16(b, 48), le16(b, 50), le16(b, 52), le16(b, 54)];
        let d_bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16_to_f32(d_bits);
        for ib in 0..QK_K / 32 {
            let s = sc[ib / 2] >> (6 * (ib % 2));
            let dl1 = d * (2 * i32::from(s & 7) + 1) as f32;
            let dl2 = d * (2 * i32::from((s >> 3) & 7) + 1) as f32;
            let (h0, h1) = (usize::from(qh[2 * ib]), usize::from(qh[2 * ib + 1]));
            let q = &qs[4 * ib..4 * ib + 4];
            let groups = [
                (usize::from(q[0]) | ((h0 << 8) & 0x700), h0 & 0x08, dl1),
                (usize::from(q[1]) | ((h0 << 4) & 0x700), h0 & 0x80, dl1),
                (usize::from(q[2]) | ((h1 << 8) & 0x700), h1 & 0x08, dl2),
                (usize::from(q[3]) | ((h1 << 4) & 0x700), h1 & 0x80, dl2),
            ];
            for (l, (idx, neg, dl)) in groups.into_iter().enumerate() {
                let delta = if neg != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
                put_iq1(&mut y[32 * ib + 8 * l..], dl, IQ1S_GRID[idx], delta);
            }
        }
    }
}

/// IQ4_NL (18 B / 32): fp16 d and 16 bytes; byte j holds value j (low nibble) and value j+16 (high
/// nibble), each an index into `KVALUES_IQ4NL`; value = d·kvalue. ggml `dequantize_row_iq4_nl`.
pub fn dequantize_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ4_NL, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        for j in 0..QK4_NL / 2 {
            let q = b[2 + j];
            y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
            y[j + QK4_NL / 2] = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
        }
    }
}

/// IQ4_XS (136 B / 256): fp16 d, u16 scales_h (2 high bits per 32 values), 4 bytes scales_l (a low
/// nibble per 32 values), 128 bytes of nibbles laid out as IQ4_NL per 32 values;
/// value = (d·(ls−32))·kvalue with ls the 6-bit scale. ggml `dequantize_row_iq4_xs`.
pub fn dequantize_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks(GgmlType::IQ4_XS, src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let scales_h = le16(b, 2);
        let (scales_l, qs) = (&b[4..8], &b[8..136]);
        for ib in 0..QK_K / 32 {
            let lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf;
            let hi = (scales_h >> (2 * ib)) & 3;
            let ls = i32::from(lo) | (i32::from(hi) << 4);
            let dl = d * (ls - 32) as f32;
            for j in 0..16 {
                let q = qs[16 * ib + j];
                y[32 * ib + j] = dl * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
                y[32 * ib + j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Oracles here are hand-derived from ggml's block layouts and the first/last grid entries as
    //! printed in ggml `src/ggml-common.h`; the bulk bit-exact comparison against compiled ggml
    //! lives in the scratch harness (see the helper report).
    use super::super::iq_grids::*;
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // fp16 1.0

    fn run(t: GgmlType, b: &[u8], f: fn(&[u8], &mut [f32])) -> Vec<f32> {
        assert_eq!(b.len(), t.type_size());
        let mut y = vec![f32::NAN; t.block_size()];
        f(b, &mut y);
        y
    }

    /// FNV-1a 64 over the little-endian bytes of a table.
    fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
        bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, c| {
            (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn grid_tables_hash_to_ggml_values() {
        // Expected values: FNV-1a 64 of each table's bytes as gcc lays out ggml-common.h's
        // `static const` arrays (little-endian), printed by a C program that includes the header
        // with GGML_COMMON_IMPL_C (scratch `iq/tables.c`, llama-cpp-python 0.3.36 sdist); a Python
        // parse of the header's text gave the same nine values.
        let u64s = |t: &[u64]| fnv(t.iter().flat_map(|v| v.to_le_bytes()));
        let u32s = |t: &[u32]| fnv(t.iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(fnv(KMASK_IQ2XS), 0x0af7_003a_53c2_5e16);
        assert_eq!(fnv(KSIGNS_IQ2XS), 0xf19b_a8f8_c329_2ba5);
        assert_eq!(fnv(KVALUES_IQ4NL.map(|v| v as u8)), 0x055d_06d2_d8fa_0f75);
        assert_eq!(u64s(&IQ2XXS_GRID), 0xbb4e_e025_b5ac_6e8e);
        assert_eq!(u64s(&IQ2XS_GRID), 0xc9b1_ee61_e799_09bd);
        assert_eq!(u64s(&IQ2S_GRID), 0x123e_dd38_a3b6_2b90);
        assert_eq!(u32s(&IQ3XXS_GRID), 0xdfa5_dc83_d6a1_55d5);
        assert_eq!(u32s(&IQ3S_GRID), 0xfa37_020c_25b4_4829);
        assert_eq!(u64s(&IQ1S_GRID), 0x6703_ed86_3501_ae2e);
        assert_eq!(IQ1S_DELTA.to_bits(), 0.125f32.to_bits());
        assert_eq!(IQ1M_DELTA.to_bits(), 0.125f32.to_bits());
    }

    #[test]
    fn iq4_nl_nibbles_decode_in_split_halves_order() {
        // ggml-common.h kvalues_iq4nl, copied by hand.
        const KV: [f32; 16] = [
            -127., -104., -83., -65., -49., -35., -22., -10., 1., 13., 25., 38., 53., 69., 89.,
            113.,
        ];
        let mut b = ONE.to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = run(GgmlType::IQ4_NL, &b, dequantize_iq4_nl);
        for j in 0..16 {
            assert_eq!(y[j].to_bits(), KV[j].to_bits(), "low nibble of byte {j}");
            assert_eq!(
                y[j + 16].to_bits(),
                KV[15 - j].to_bits(),
                "high nibble of byte {j}"
            );
        }
        // d = 0.5 (fp16 0x3800) halves every value exactly.
        b[..2].copy_from_slice(&[0x00, 0x38]);
        let y = run(GgmlType::IQ4_NL, &b, dequantize_iq4_nl);
        assert_eq!(y[0], -63.5);
        assert_eq!(y[31], -63.5);
    }

    #[test]
    fn iq4_xs_scale_packing() {
        // Six-bit scales ls per 32 values: low nibble in scales_l (even ib: low nibble of byte ib/2,
        // odd ib: high nibble), two high bits at bits 2ib..2ib+1 of scales_h. Value = (ls-32)·kv.
        let ls: [u16; 8] = [0, 1, 31, 32, 33, 47, 63, 16];
        let (mut lo, mut hi) = ([0u8; 4], 0u16);
        for (ib, &s) in ls.iter().enumerate() {
            lo[ib / 2] |= ((s & 15) as u8) << (4 * (ib % 2));
            hi |= (s >> 4) << (2 * ib);
        }
        let mut b = ONE.to_vec();
        b.extend(hi.to_le_bytes());
        b.extend(lo);
        b.extend([0x08u8; 128]); // low nibble 8 → kvalue 1, high nibble 0 → kvalue −127
        let y = run(GgmlType::IQ4_XS, &b, dequantize_iq4_xs);
        for (ib, &s) in ls.iter().enumerate() {
            let dl = f32::from(s) - 32.0;
            for j in 0..16 {
                assert_eq!(y[32 * ib + j], dl, "ib {ib}");
                assert_eq!(y[32 * ib + 16 + j], dl * -127.0, "ib {ib}");
            }
        }
        assert_eq!(&y[0..2], &[-32.0, -32.0]);
        assert_eq!(y[32 * 6], 31.0);
    }

    #[test]
    fn iq2_grids_first_and_last_entries() {
        // Entry 1 of every IQ2 grid is 0x…082b: value 0 is 43, the rest 8. Scale nibble 1 → 0.375.
        let mut b = ONE.to_vec();
        b.extend([1, 0, 0, 0]); // grid indices of group 0..3 in the first 32 values
        b.extend(((1u32 << 28) | 1).to_le_bytes()); // s = 1, group 0 sign field 1 → bits 0 and 7
        b.resize(66, 0);
        let y = run(GgmlType::IQ2_XXS, &b, dequantize_iq2_xxs);
        let mut want = [3.0f32; 8];
        want[0] = -16.125;
        want[7] = -3.0;
        assert_eq!(&y[0..8], &want);
        assert_eq!(&y[8..32], &[3.0; 24]);
        assert_eq!(&y[32..], &[1.0; 224]); // s = 0 → 0.125 · 8

        // IQ2_XS: index 511 (0x2b… = all 43), sign field 0; scale nibbles 1 (groups 0,1), 3 (2,3).
        let mut b = ONE.to_vec();
        b.extend(511u16.to_le_bytes());
        b.resize(66, 0);
        b.push(0x31);
        b.resize(74, 0);
        let y = run(GgmlType::IQ2_XS, &b, dequantize_iq2_xs);
        assert_eq!(&y[0..8], &[16.125; 8]);
        assert_eq!(&y[8..16], &[3.0; 8]);
        assert_eq!(&y[16..32], &[7.0; 16]); // (0.5+3)·0.25·8

        // IQ2_S: index 1023 = low byte 255 + qh bits 0..1 = 3; sign byte 0x80 negates value 7.
        let mut b = ONE.to_vec();
        b.push(255);
        b.resize(34, 0);
        b.push(0x80);
        b.resize(66, 0);
        b.push(0x03);
        b.resize(82, 0);
        let y = run(GgmlType::IQ2_S, &b, dequantize_iq2_s);
        assert_eq!(&y[0..7], &[5.375; 7]); // 0.125 · 43
        assert_eq!(y[7], -5.375);
        assert_eq!(&y[8..256], &[1.0; 248]);
    }

    #[test]
    fn iq3_grids_first_and_last_entries() {
        // IQ3_XXS: grid[0] = 0x04040404; s = 1 → db = 1.5 · 0.5 = 0.75; sign field 2 → bits 1, 7.
        let mut b = ONE.to_vec();
        b.resize(66, 0);
        b.extend(((1u32 << 28) | 2).to_le_bytes());
        b.resize(98, 0);
        let y = run(GgmlType::IQ3_XXS, &b, dequantize_iq3_xxs);
        assert_eq!(&y[0..8], &[3.0, -3.0, 3.0, 3.0, 3.0, 3.0, 3.0, -3.0]);
        assert_eq!(&y[32..], &[1.0; 224]); // s = 0 → 0.25 · 4

        // IQ3_S: grid[511] = 0x0f0f0101 → [1, 1, 15, 15] via low byte 255 + qh bit; scale nibble 2
        // → db = 5. Value pair 0 of group 0 uses qh bit 0, pair 1 uses qh bit 1.
        let mut b = ONE.to_vec();
        b.extend([255, 255]);
        b.resize(66, 0);
        b.push(0x01); // qh[0]: only the first index gets bit 8
        b.resize(74, 0);
        b.push(0x01); // signs[0]: negate value 0
        b.resize(106, 0);
        b.push(0x02);
        b.resize(110, 0);
        let y = run(GgmlType::IQ3_S, &b, dequantize_iq3_s);
        // Second index: 255 without the high bit; ggml-common.h iq3s_grid[255] = 0x05090501.
        assert_eq!(&y[4..8], &[5.0, 25.0, 45.0, 25.0]);
        assert_eq!(&y[8..32], &[5.0; 24]); // grid[0] = 0x01010101
        assert_eq!(&y[32..64], &[1.0; 32]); // scale nibble 0 (high half of byte 0) → db = 1
    }

    #[test]
    fn iq1_grids_first_and_last_entries() {
        // IQ1_S: grid[0] = all −1, grid[2047] = all +1. qh scale 1 → dl = 3; bit 15 → δ = −0.125.
        let mut b = ONE.to_vec();
        b.push(255);
        b.resize(34, 0);
        b.extend((7u16 | (1 << 12) | 0x8000).to_le_bytes());
        b.resize(50, 0);
        let y = run(GgmlType::IQ1_S, &b, dequantize_iq1_s);
        assert_eq!(&y[0..8], &[2.625; 8]); // 3 · (1 − 0.125)
        assert_eq!(&y[8..32], &[-3.375; 24]); // 3 · (−1 − 0.125)
        assert_eq!(&y[32..], &[-0.875; 224]); // 1 · (−1 + 0.125)

        // IQ1_M: d = 1.0 = 0x3c00 spread over the top nibbles of the four scale words
        // (word k holds nibble k); group 0 → index 2047 with δ sign; sub-scale 2 → dl1 = 5.
        let mut b = vec![255u8];
        b.resize(32, 0);
        b.push(0x0f); // qh[0]: high bits 7 for group 0, δ negative for group 0
        b.resize(48, 0);
        let sc: [u16; 4] = [0x0002, 0x0000, 0xc000, 0x3000];
        b.extend(sc.iter().flat_map(|w| w.to_le_bytes()));
        let y = run(GgmlType::IQ1_M, &b, dequantize_iq1_m);
        assert_eq!(&y[0..8], &[4.375; 8]); // 5 · (1 − 0.125)
        assert_eq!(&y[8..16], &[-4.375; 8]); // 5 · (−1 + 0.125)
        assert_eq!(&y[16..], &[-0.875; 240]);
    }

    #[test]
    fn zero_d_gives_zeros() {
        type F = fn(&[u8], &mut [f32]);
        let cases: [(GgmlType, F); 9] = [
            (GgmlType::IQ2_XXS, dequantize_iq2_xxs),
            (GgmlType::IQ2_XS, dequantize_iq2_xs),
            (GgmlType::IQ2_S, dequantize_iq2_s),
            (GgmlType::IQ3_XXS, dequantize_iq3_xxs),
            (GgmlType::IQ3_S, dequantize_iq3_s),
            (GgmlType::IQ1_S, dequantize_iq1_s),
            (GgmlType::IQ1_M, dequantize_iq1_m),
            (GgmlType::IQ4_NL, dequantize_iq4_nl),
            (GgmlType::IQ4_XS, dequantize_iq4_xs),
        ];
        for (t, f) in cases {
            for d in [0x0000u16, 0x8000] {
                let mut b: Vec<u8> = (0..t.type_size()).map(|i| (i * 37 + 11) as u8).collect();
                if t == GgmlType::IQ1_M {
                    for k in 0..4 {
                        let w = (u16::from_le_bytes([b[48 + 2 * k], b[49 + 2 * k]]) & 0x0fff)
                            | (((d >> (4 * k)) & 0xf) << 12);
                        b[48 + 2 * k..50 + 2 * k].copy_from_slice(&w.to_le_bytes());
                    }
                } else {
                    b[..2].copy_from_slice(&d.to_le_bytes());
                }
                let y = run(t, &b, f);
                assert!(y.iter().all(|v| *v == 0.0), "{t} d={d:#06x}");
            }
        }
    }

    #[test]
    fn nan_d_sign_follows_the_value_sign() {
        // gcc -O2 ggml flips the sign bit of NaN outputs where the sign field is set.
        let mut b = vec![0x00, 0x7e]; // fp16 quiet NaN
        b.extend([0, 0, 0, 0]);
        b.extend(1u32.to_le_bytes()); // group 0 sign field 1 → values 0 and 7 negative
        b.resize(66, 0);
        let y = run(GgmlType::IQ2_XXS, &b, dequantize_iq2_xxs);
        assert_eq!(y[0].to_bits(), 0xffc0_0000);
        assert_eq!(y[1].to_bits(), 0x7fc0_0000);
        assert_eq!(y[7].to_bits(), 0xffc0_0000);
    }
}
