//! K-quant dequantizers (Q2_K … Q6_K, Q8_K), bit-exact with ggml `dequantize_row_q*_K`
//! (`src/ggml-quants.c` @ d99724f2; layouts in `shared/reference/ggml-gguf-safetensors.md` §2.3).
//!
//! Invariants:
//! - Callers pass whole super-blocks: `src.len() == n × type_size` and `dst.len() == n × 256`
//!   ([`super::dequantize`] checks this). Any trailing partial block would be left untouched.
//! - Every output equals ggml's for every input byte pattern, NaN/Inf/subnormal fp16 scales
//!   included: each value is computed with the same f32 operations in the same order. In
//!   particular Q6_K is `(d·sc)·q`, whose product can round, so the order matters; the other
//!   types' products are exact and only the final subtraction rounds.
//! - Per sub-block factors (`d·sc`, `dmin·m`) are computed once, then a branch-free inner loop
//!   over 16 or 32 elements writes contiguous output, which the compiler vectorizes.

use super::float::f16_to_f32;
use super::le16;
use crate::fault::Fault;

/// Elements per K-quant super-block (`QK_K`).
pub const QK_K: usize = 256;

/// Bytes per block, from ggml `ggml-common.h` (`sizeof(block_q*_K)`).
const Q2_K_BYTES: usize = 84;
const Q3_K_BYTES: usize = 110;
const Q4_K_BYTES: usize = 144;
const Q5_K_BYTES: usize = 176;
const Q6_K_BYTES: usize = 210;
const Q8_K_BYTES: usize = 292;

const _: () = {
    use crate::dtype::GgmlType;
    assert!(GgmlType::Q2_K.type_size() == Q2_K_BYTES && GgmlType::Q2_K.block_size() == QK_K);
    assert!(GgmlType::Q3_K.type_size() == Q3_K_BYTES && GgmlType::Q3_K.block_size() == QK_K);
    assert!(GgmlType::Q4_K.type_size() == Q4_K_BYTES && GgmlType::Q4_K.block_size() == QK_K);
    assert!(GgmlType::Q5_K.type_size() == Q5_K_BYTES && GgmlType::Q5_K.block_size() == QK_K);
    assert!(GgmlType::Q6_K.type_size() == Q6_K_BYTES && GgmlType::Q6_K.block_size() == QK_K);
    assert!(GgmlType::Q8_K.type_size() == Q8_K_BYTES && GgmlType::Q8_K.block_size() == QK_K);
};

/// Pairs each whole `BYTES`-byte block of `src` with its 256 outputs in `dst`, as fixed-size
/// arrays so that every constant index below is checked at compile time.
#[inline(always)]
fn blocks<'a, const BYTES: usize>(
    src: &'a [u8],
    dst: &'a mut [f32],
) -> impl Iterator<Item = (&'a [u8; BYTES], &'a mut [f32; QK_K])> {
    src.chunks_exact(BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
        .filter_map(|(b, y)| Some((b.first_chunk::<BYTES>()?, y.first_chunk_mut::<QK_K>()?)))
}

/// Scale and min of sub-block `j` (0..8) from the 12-byte Q4_K/Q5_K scale field, each 6 bits
/// (ggml `get_scale_min_k4`; packing in the reference doc §2.3).
///
/// # Panics
/// If `j >= 8` (there are eight sub-blocks).
#[inline(always)]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight (scale, min) pairs of a Q4_K/Q5_K scale field, as two arrays.
#[inline(always)]
pub fn unpack_scales_min_k4(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (sc[j], m[j]) = get_scale_min_k4(j, q);
    }
    (sc, m)
}

/// The 16 Q3_K scales as stored (0..63, i.e. scale + 32), from the 12-byte field: low nibble of
/// `l_j` in byte `j % 8` (low nibble for j < 8, high for j ≥ 8), high 2 bits in byte
/// `8 + j % 4` at bit `2·(j / 4)`.
#[inline(always)]
pub fn unpack_scales_q3_k(s: &[u8; 12]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = low | (high << 4);
    }
    out
}

/// Calls `$run::<R>(args)` for the eight 32-element runs R = 0..8 of a super-block. A const
/// run index makes every shift a constant, so each run compiles to straight-line SIMD code.
macro_rules! for_each_run {
    ($run:ident($($arg:expr),*)) => {{
        $run::<0>($($arg),*);
        $run::<1>($($arg),*);
        $run::<2>($($arg),*);
        $run::<3>($($arg),*);
        $run::<4>($($arg),*);
        $run::<5>($($arg),*);
        $run::<6>($($arg),*);
        $run::<7>($($arg),*);
    }};
}

/// `y[l] = a·c[l]` over 16 signed codes.
#[inline(always)]
fn linear16(y: &mut [f32], c: &[i8], a: f32) {
    for (o, &c) in y.iter_mut().zip(c) {
        *o = a * f32::from(c);
    }
}

/// Q2_K run R (elements 32R..32R+32): half n = R / 4 of `qs`, shift 2·(R % 4); the first 16
/// use sub-block 2R, the next 16 sub-block 2R + 1.
#[inline(always)]
fn q2_k_run<const R: usize>(
    b: &[u8; Q2_K_BYTES],
    dl: &[f32; 16],
    ml: &[f32; 16],
    y: &mut [f32; QK_K],
) {
    let (n, shift) = (R / 4, 2 * (R % 4));
    let q = &b[16 + 32 * n..48 + 32 * n];
    let (a0, m0, a1, m1) = (dl[2 * R], ml[2 * R], dl[2 * R + 1], ml[2 * R + 1]);
    let (lo, hi) = y[32 * R..32 * R + 32].split_at_mut(16);
    for (((lo, hi), &q0), &q1) in lo.iter_mut().zip(hi.iter_mut()).zip(&q[..16]).zip(&q[16..]) {
        *lo = a0 * f32::from((q0 >> shift) & 3) - m0;
        *hi = a1 * f32::from((q1 >> shift) & 3) - m1;
    }
}

/// Q2_K: `y = (d·(sc & 15))·q − dmin·(sc >> 4)`, q ∈ 0..3 (ggml `dequantize_row_q2_K`).
pub fn dequantize_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<Q2_K_BYTES>(src, dst) {
        let d = f16_to_f32(le16(b, 80));
        let dmin = f16_to_f32(le16(b, 82));
        let mut dl = [0f32; 16];
        let mut ml = [0f32; 16];
        for ((dl, ml), &sc) in dl.iter_mut().zip(ml.iter_mut()).zip(&b[..16]) {
            *dl = d * f32::from(sc & 0xF);
            *ml = dmin * f32::from(sc >> 4);
        }
        for_each_run!(q2_k_run(b, &dl, &ml, y));
    }
}

/// Q3_K: `y = (d·(l − 32))·(q2 − 4·!hbit)` (ggml `dequantize_row_q3_K`). Codes are decoded
/// into signed bytes first (q2 | hbit << 2, minus 4), then scaled per 16.
pub fn dequantize_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<Q3_K_BYTES>(src, dst) {
        let d_all = f16_to_f32(le16(b, 108));
        let scales = b[96..108]
            .first_chunk::<12>()
            .map_or([32; 16], unpack_scales_q3_k);
        let hm = &b[..32];
        let mut codes = [0i8; QK_K];
        for (n, c128) in codes.chunks_exact_mut(128).enumerate() {
            let q = &b[32 + 32 * n..64 + 32 * n];
            for (j, c32) in c128.chunks_exact_mut(32).enumerate() {
                let (shift, hbit) = (2 * j, 4 * n + j);
                for ((o, &qb), &h) in c32.iter_mut().zip(q).zip(hm) {
                    *o = (((qb >> shift) & 3) | (((h >> hbit) & 1) << 2)) as i8 - 4;
                }
            }
        }
        for ((y16, c16), &s) in y
            .chunks_exact_mut(16)
            .zip(codes.chunks_exact(16))
            .zip(&scales)
        {
            linear16(y16, c16, d_all * (i32::from(s) - 32) as f32);
        }
    }
}

/// Q4_K: `y = (d·sc)·q − dmin·m`, q ∈ 0..15 (ggml `dequantize_row_q4_K`).
pub fn dequantize_q4_k(src: &[u8], dst: &mut [f32]) {
    dequantize_q4_k_with(src, dst, crate::fault::active(Fault::Fp16ScaleTrunc));
}

/// `x` truncated to bf16 (its low 16 bits cleared) and widened back: the FP16-SCALE-TRUNC
/// mutant's view of an fp16 scale (#181: `d`/`dmin` lose the 3 low bits of their mantissa).
#[inline(always)]
pub fn through_bf16(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xFFFF_0000)
}

/// [`dequantize_q4_k`], or with `trunc` its FP16-SCALE-TRUNC mutant (`d`, `dmin` through
/// [`through_bf16`]); tests pass the mutation explicitly instead of flipping the fault switch.
pub fn dequantize_q4_k_with(src: &[u8], dst: &mut [f32], trunc: bool) {
    for (b, y) in blocks::<Q4_K_BYTES>(src, dst) {
        let mut d = f16_to_f32(le16(b, 0));
        let mut dmin = f16_to_f32(le16(b, 2));
        if trunc {
            (d, dmin) = (through_bf16(d), through_bf16(dmin));
        }
        let (sc, m) = b[4..16]
            .first_chunk::<12>()
            .map_or(([0; 8], [0; 8]), unpack_scales_min_k4);
        for (c, y64) in y.chunks_exact_mut(64).enumerate() {
            let q = &b[16 + 32 * c..48 + 32 * c];
            let (d1, m1) = (d * f32::from(sc[2 * c]), dmin * f32::from(m[2 * c]));
            let (d2, m2) = (d * f32::from(sc[2 * c + 1]), dmin * f32::from(m[2 * c + 1]));
            let (y_lo, y_hi) = y64.split_at_mut(32);
            for ((lo, hi), &qb) in y_lo.iter_mut().zip(y_hi.iter_mut()).zip(q) {
                *lo = d1 * f32::from(qb & 0xF) - m1;
                *hi = d2 * f32::from(qb >> 4) - m2;
            }
        }
    }
}

/// Q5_K chunk C (elements 64C..64C+64): low nibbles of `qs[32C..]` plus bit 2C of `qh`, then
/// high nibbles plus bit 2C + 1; sub-blocks 2C and 2C + 1.
#[inline(always)]
fn q5_k_chunk<const C: usize>(
    b: &[u8; Q5_K_BYTES],
    sc: &[u8; 8],
    m: &[u8; 8],
    d: f32,
    dmin: f32,
    y: &mut [f32; QK_K],
) {
    let ql = &b[48 + 32 * C..80 + 32 * C];
    let qh = &b[16..48];
    let mut c_lo = [0u8; 32];
    let mut c_hi = [0u8; 32];
    for (((lo, hi), &qb), &hb) in c_lo.iter_mut().zip(c_hi.iter_mut()).zip(ql).zip(qh) {
        *lo = (qb & 0xF) | (((hb >> (2 * C)) & 1) << 4);
        *hi = (qb >> 4) | (((hb >> (2 * C + 1)) & 1) << 4);
    }
    let (y_lo, y_hi) = y[64 * C..64 * C + 64].split_at_mut(32);
    affine32(
        y_lo,
        &c_lo,
        d * f32::from(sc[2 * C]),
        dmin * f32::from(m[2 * C]),
    );
    affine32(
        y_hi,
        &c_hi,
        d * f32::from(sc[2 * C + 1]),
        dmin * f32::from(m[2 * C + 1]),
    );
}

/// `y[l] = a·c[l] − m` over 32 codes.
#[inline(always)]
fn affine32(y: &mut [f32], c: &[u8; 32], a: f32, m: f32) {
    for (o, &c) in y.iter_mut().zip(c) {
        *o = a * f32::from(c) - m;
    }
}

/// Q5_K: `y = (d·sc)·(q4 + 16·hbit) − dmin·m` (ggml `dequantize_row_q5_K`).
pub fn dequantize_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<Q5_K_BYTES>(src, dst) {
        let d = f16_to_f32(le16(b, 0));
        let dmin = f16_to_f32(le16(b, 2));
        let (sc, m) = b[4..16]
            .first_chunk::<12>()
            .map_or(([0; 8], [0; 8]), unpack_scales_min_k4);
        q5_k_chunk::<0>(b, &sc, &m, d, dmin, y);
        q5_k_chunk::<1>(b, &sc, &m, d, dmin, y);
        q5_k_chunk::<2>(b, &sc, &m, d, dmin, y);
        q5_k_chunk::<3>(b, &sc, &m, d, dmin, y);
    }
}

/// Q6_K run R (elements 32R..32R+32), half n = R / 4 and k = R % 4: nibble k / 2 of
/// `ql[64n + 32(k % 2)..]`, bits 2k..2k+2 of `qh[32n..]`; sub-blocks 2R and 2R + 1.
#[inline(always)]
fn q6_k_run<const R: usize>(b: &[u8; Q6_K_BYTES], ds: &[f32; 16], y: &mut [f32; QK_K]) {
    let (n, k) = (R / 4, R % 4);
    let ql = &b[64 * n + 32 * (k % 2)..64 * n + 32 * (k % 2) + 32];
    let qh = &b[128 + 32 * n..160 + 32 * n];
    let (nib_shift, h_shift) = (4 * (k / 2), 2 * k);
    let mut c = [0i8; 32];
    for ((o, &lb), &hb) in c.iter_mut().zip(ql).zip(qh) {
        *o = (((lb >> nib_shift) & 0xF) | (((hb >> h_shift) & 3) << 4)) as i8 - 32;
    }
    let (lo, hi) = y[32 * R..32 * R + 32].split_at_mut(16);
    let (a0, a1) = (ds[2 * R], ds[2 * R + 1]);
    for (((lo, hi), &c0), &c1) in lo.iter_mut().zip(hi.iter_mut()).zip(&c[..16]).zip(&c[16..]) {
        *lo = a0 * f32::from(c0);
        *hi = a1 * f32::from(c1);
    }
}

/// Q6_K: `y = (d·sc)·(q6 − 32)`, evaluated in that order (ggml `dequantize_row_q6_K`).
pub fn dequantize_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<Q6_K_BYTES>(src, dst) {
        let d = f16_to_f32(le16(b, 208));
        let mut ds = [0f32; 16];
        for (o, &s) in ds.iter_mut().zip(&b[192..208]) {
            *o = d * f32::from(s as i8);
        }
        for_each_run!(q6_k_run(b, &ds, y));
    }
}

/// Q8_K: `y = d·q` with an f32 `d` (ggml `dequantize_row_q8_K`).
pub fn dequantize_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<Q8_K_BYTES>(src, dst) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (o, &q) in y.iter_mut().zip(&b[4..260]) {
            *o = d * f32::from(q as i8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sub-block scales sc = [1, 2, 3, 4, 33, 34, 35, 63] and mins m = [5, 6, 7, 8, 40, 41, 42, 60],
    /// packed by hand from the layout in reference doc §2.3.
    const K4_SCALES: [u8; 12] = [
        0x81, 0x82, 0x83, 0xC4, 0x85, 0x86, 0x87, 0xC8, 0x81, 0x92, 0xA3, 0xCF,
    ];
    const K4_SC: [u8; 8] = [1, 2, 3, 4, 33, 34, 35, 63];
    const K4_M: [u8; 8] = [5, 6, 7, 8, 40, 41, 42, 60];

    fn dq(f: fn(&[u8], &mut [f32]), block: &[u8]) -> Vec<f32> {
        let mut y = vec![f32::NAN; QK_K];
        f(block, &mut y);
        y
    }

    /// Asserts `y` is zero except at `pos`, where it equals `want`.
    fn only_at(y: &[f32], pos: usize, want: f32) {
        for (i, &v) in y.iter().enumerate() {
            let expect = if i == pos { want } else { 0.0 };
            assert_eq!(v, expect, "element {i}");
        }
    }

    #[test]
    fn scale_min_k4_unpacks_hand_packed_bytes() {
        for j in 0..8 {
            assert_eq!(
                get_scale_min_k4(j, &K4_SCALES),
                (K4_SC[j], K4_M[j]),
                "j={j}"
            );
        }
        assert_eq!(unpack_scales_min_k4(&K4_SCALES), (K4_SC, K4_M));
    }

    #[test]
    fn q3_k_scales_unpack_hand_packed_bytes() {
        // Every l_j = 33 (low nibble 1, high bits 2), except l_5 = 0 and l_14 = 63.
        let mut s = [0x11u8; 12];
        s[8..12].copy_from_slice(&[0xAA; 4]);
        s[5] = 0x10; // l_5 low nibble 0
        s[9] &= !(3 << 2); // l_5: byte 8 + 1, bits 2..3
        s[6] |= 0xF0; // l_14 low nibble 15 (high nibble of byte 6)
        s[10] |= 3 << 6; // l_14: byte 8 + 2, bits 6..7
        let mut want = [33u8; 16];
        want[5] = 0;
        want[14] = 63;
        assert_eq!(unpack_scales_q3_k(&s), want);
    }

    #[test]
    fn q4_k_block_decodes_to_layout_values() {
        let mut b = vec![0u8; Q4_K_BYTES];
        b[0..2].copy_from_slice(&0x3C00u16.to_le_bytes()); // d = 1
        b[2..4].copy_from_slice(&0x3800u16.to_le_bytes()); // dmin = 0.5
        b[4..16].copy_from_slice(&K4_SCALES);
        for (i, q) in b[16..].iter_mut().enumerate() {
            let l = (i % 32) as u8 % 16;
            *q = l | ((15 - l) << 4);
        }
        let y = dq(dequantize_q4_k, &b);
        for c in 0..4 {
            for l in 0..32 {
                let q = (l % 16) as f32;
                let lo = f32::from(K4_SC[2 * c]) * q - 0.5 * f32::from(K4_M[2 * c]);
                let hi =
                    f32::from(K4_SC[2 * c + 1]) * (15.0 - q) - 0.5 * f32::from(K4_M[2 * c + 1]);
                assert_eq!(y[64 * c + l], lo, "element {}", 64 * c + l);
                assert_eq!(y[64 * c + 32 + l], hi, "element {}", 64 * c + 32 + l);
            }
        }
    }

    #[test]
    fn q2_k_element_order() {
        // qs[32 + 17] bits 4..5 = 3: half 1, shift 4 (j = 2), second 16 → element 128 + 64 + 16 + 1.
        let mut b = vec![0u8; Q2_K_BYTES];
        b[..16].fill(0x01);
        b[80..82].copy_from_slice(&0x3C00u16.to_le_bytes());
        b[16 + 32 + 17] = 3 << 4;
        only_at(&dq(dequantize_q2_k, &b), 209, 3.0);
    }

    #[test]
    fn q3_k_element_order_and_high_bit() {
        let mut b = vec![0u8; Q3_K_BYTES];
        b[..32].fill(0xFF); // all high bits set: q = q2
        b[96..104].fill(0x11);
        b[104..108].fill(0xAA); // every scale 33 − 32 = 1
        b[108..110].copy_from_slice(&0x3C00u16.to_le_bytes());
        // qs[5] bits 6..7 = 2: half 0, j = 3 → element 96 + 5.
        b[32 + 5] = 2 << 6;
        only_at(&dq(dequantize_q3_k, &b), 101, 2.0);
        // Clearing hmask[21] bit 6 subtracts 4 at element 32·6 + 21 (half 1, j = 2, second 16).
        b[32 + 5] = 0;
        b[21] &= !(1 << 6);
        only_at(&dq(dequantize_q3_k, &b), 213, -4.0);
    }

    #[test]
    fn q5_k_element_order_and_high_bit() {
        let mut b = vec![0u8; Q5_K_BYTES];
        b[0..2].copy_from_slice(&0x3C00u16.to_le_bytes());
        b[4..8].fill(1); // sc[0..4] = 1, m = 0
        b[12..16].fill(0x01); // sc[4..8] = 1
                              // qh[7] bit 5 (= 2c + 1 with c = 2): element 64·2 + 32 + 7 gets +16.
        b[16 + 7] = 1 << 5;
        only_at(&dq(dequantize_q5_k, &b), 167, 16.0);
    }

    #[test]
    fn q6_k_element_order_and_extremes() {
        let mut b = vec![0u8; Q6_K_BYTES];
        // Every 6-bit code 32 (value 0): ql nibbles 0, qh pairs 2 → qh = 0b10101010.
        b[128..192].fill(0xAA);
        b[192..208].fill(1);
        b[208..210].copy_from_slice(&0x3C00u16.to_le_bytes());
        // Element 128 + 64 + 20: half 1, l = 20, third quarter → high nibble of ql[64 + 20],
        // bits 4..5 of qh[32 + 20]. Code 3 | (3 << 4) = 51 → value 19.
        b[64 + 20] = 3 << 4;
        b[128 + 32 + 20] = (0xAA & !(3 << 4)) | (3 << 4);
        only_at(&dq(dequantize_q6_k, &b), 212, 19.0);
        // Extremes: d = 65504, sc = −128, code 0 (q = −32) → 65504·128·32, exact in f32.
        let mut b = vec![0u8; Q6_K_BYTES];
        b[192..208].fill(0x80);
        b[208..210].copy_from_slice(&0x7BFFu16.to_le_bytes());
        assert!(dq(dequantize_q6_k, &b)
            .iter()
            .all(|&v| v == 65504.0 * 128.0 * 32.0));
    }

    #[test]
    fn q8_k_is_d_times_q() {
        let mut b = vec![0u8; Q8_K_BYTES];
        b[..4].copy_from_slice(&0.25f32.to_le_bytes());
        for (i, q) in b[4..260].iter_mut().enumerate() {
            *q = (i as i8).wrapping_sub(100) as u8;
        }
        let y = dq(dequantize_q8_k, &b);
        for (i, &v) in y.iter().enumerate() {
            assert_eq!(
                v,
                0.25 * f32::from((i as i8).wrapping_sub(100)),
                "element {i}"
            );
        }
    }

    #[test]
    fn nan_scale_propagates() {
        let mut b = vec![0u8; Q4_K_BYTES];
        b[0..2].copy_from_slice(&0x7E00u16.to_le_bytes());
        assert!(dq(dequantize_q4_k, &b).iter().all(|v| v.is_nan()));
    }
}
