//! Legacy 32-element block codecs: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! Ported from ggml `src/ggml-quants.c` @ d99724f2 (`dequantize_row_q*` and
//! `quantize_row_q*_ref`); algorithms restated, not copied.
//!
//! Invariants:
//! - Callers (`quant::dequantize` / `quant::quantize`) pass whole, matching blocks; every kernel
//!   walks `chunks_exact` pairs, so indexing inside a block is always in bounds.
//! - Element order is "split halves": for j < 16, element j is the low nibble of `qs[j]` and
//!   element j + 16 the high nibble (Q5_x: bit 4 of element i is bit i of the LE u32 `qh`).
//! - Arithmetic is f32, in ggml's order, with no fused multiply-add (ggml built with
//!   `-ffp-contract=off` on baseline x86-64), so every output is bit-identical to ggml's.
//! - Quantizers compute q from the f32 `id`, not from the fp16-rounded stored `d`.

use super::float::{f16_to_f32, f32_to_f16};
use super::{le16, le32};
use crate::dtype::GgmlType;
use crate::fault::Fault;

/// Values per legacy block.
const QK: usize = 32;
/// Half a block: the split point of the nibble order.
const HALF: usize = QK / 2;

const Q4_0_SIZE: usize = GgmlType::Q4_0.type_size();
const Q4_1_SIZE: usize = GgmlType::Q4_1.type_size();
const Q5_0_SIZE: usize = GgmlType::Q5_0.type_size();
const Q5_1_SIZE: usize = GgmlType::Q5_1.type_size();
const Q8_0_SIZE: usize = GgmlType::Q8_0.type_size();
const Q8_1_SIZE: usize = GgmlType::Q8_1.type_size();

// The layouts below (ggml-common.h `block_q*`) must agree with the dtype table.
const _: () = {
    assert!(Q4_0_SIZE == 2 + HALF);
    assert!(Q4_1_SIZE == 4 + HALF);
    assert!(Q5_0_SIZE == 6 + HALF);
    assert!(Q5_1_SIZE == 8 + HALF);
    assert!(Q8_0_SIZE == 2 + QK);
    assert!(Q8_1_SIZE == 4 + QK);
    assert!(GgmlType::Q4_0.block_size() == QK);
    assert!(GgmlType::Q4_1.block_size() == QK);
    assert!(GgmlType::Q5_0.block_size() == QK);
    assert!(GgmlType::Q5_1.block_size() == QK);
    assert!(GgmlType::Q8_0.block_size() == QK);
    assert!(GgmlType::Q8_1.block_size() == QK);
};

// ---------------------------------------------------------------------------------------------
// Dequantization (ggml `dequantize_row_*`)
// ---------------------------------------------------------------------------------------------

/// Q4_0 → f32: y = (nib − 8) · h(d).
pub fn dequantize_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q4_0_SIZE).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(le16(b, 0));
        let (lo, hi) = y.split_at_mut(HALF);
        for ((&q, l), h) in b[2..].iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
            *l = (i32::from(q & 0x0F) - 8) as f32 * d;
            *h = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

/// Q4_1 → f32: y = nib · h(d) + h(m).
pub fn dequantize_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(Q4_1_SIZE).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(le16(b, 0));
        let m = f16_to_f32(le16(b, 2));
        let (lo, hi) = y.split_at_mut(HALF);
        for ((&q, l), h) in b[4..].iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
            *l = f32::from(q & 0x0F) * d + m;
            *h = f32::from(q >> 4) * d + m;
        }
    }
}

/// Q5_0 → f32: y = ((nib | hbit << 4) − 16) · h(d).
pub fn dequantize_q5_0(src: &[u8], dst: &mut [f32]) {
    dequantize_q5_0_with(src, dst, crate::fault::active(Fault::Q5NibbleOrder));
}

/// [`dequantize_q5_0`], or with `swap` its Q5-NIBBLE-ORDER mutant (element j takes the high
/// nibble of `qs[j]`, element j + 16 the low one; the `qh` bits stay in place). Tests pass
/// the mutation explicitly instead of flipping the fault switch.
pub fn dequantize_q5_0_with(src: &[u8], dst: &mut [f32], swap: bool) {
    let rot = if swap { 4 } else { 0 };
    for (b, y) in src.chunks_exact(Q5_0_SIZE).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(le16(b, 0));
        let qh = le32(b, 2);
        let (lo, hi) = y.split_at_mut(HALF);
        for (j, ((&q, l), h)) in b[6..]
            .iter()
            .zip(lo.iter_mut())
            .zip(hi.iter_mut())
            .enumerate()
        {
            let (q0, q1) = q5_values(q.rotate_left(rot), qh, j);
            *l = (q0 - 16) as f32 * d;
            *h = (q1 - 16) as f32 * d;
        }
    }
}

/// Q5_1 → f32: y = (nib | hbit << 4) · h(d) + h(m).
pub fn dequantize_q5_1(src: &[u8], dst: &mut [f32]) {
    dequantize_q5_1_with(src, dst, crate::fault::active(Fault::Q5NibbleOrder));
}

/// [`dequantize_q5_1`], or with `swap` its Q5-NIBBLE-ORDER mutant (as [`dequantize_q5_0_with`]).
pub fn dequantize_q5_1_with(src: &[u8], dst: &mut [f32], swap: bool) {
    let rot = if swap { 4 } else { 0 };
    for (b, y) in src.chunks_exact(Q5_1_SIZE).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(le16(b, 0));
        let m = f16_to_f32(le16(b, 2));
        let qh = le32(b, 4);
        let (lo, hi) = y.split_at_mut(HALF);
        for (j, ((&q, l), h)) in b[8..]
            .iter()
            .zip(lo.iter_mut())
            .zip(hi.iter_mut())
            .enumerate()
        {
            let (q0, q1) = q5_values(q.rotate_left(rot), qh, j);
            *l = q0 as f32 * d + m;
            *h = q1 as f32 * d + m;
        }
    }
}

/// The two 5-bit values (elements j and j + 16) held by `qs[j]` and bits j, j + 16 of `qh`.
#[inline(always)]
fn q5_values(q: u8, qh: u32, j: usize) -> (i32, i32) {
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (
        i32::from(q & 0x0F) | h0 as i32,
        i32::from(q >> 4) | h1 as i32,
    )
}

/// Q8_0 → f32: y = qs · h(d).
pub fn dequantize_q8_0(src: &[u8], dst: &mut [f32]) {
    dequantize_q8(src, dst, Q8_0_SIZE);
}

/// Q8_1 → f32: y = qs · h(d); the stored sum `s` (offset 2) is not used. ggml has no
/// `dequantize_row_q8_1`; this is the Q8_0 formula on the Q8_1 layout.
pub fn dequantize_q8_1(src: &[u8], dst: &mut [f32]) {
    dequantize_q8(src, dst, Q8_1_SIZE);
}

/// Shared Q8 kernel: `d` at 0, the 32 `i8` quants in the last 32 bytes of each block.
#[inline(always)]
fn dequantize_q8(src: &[u8], dst: &mut [f32], size: usize) {
    let qs_at = size - QK;
    for (b, y) in src.chunks_exact(size).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(le16(b, 0));
        for (&q, v) in b[qs_at..].iter().zip(y.iter_mut()) {
            *v = f32::from(q as i8) * d;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference quantization (ggml `quantize_row_*_ref`)
// ---------------------------------------------------------------------------------------------

/// C's `(int8_t)f` / `(uint8_t)f`, as gcc -O2 compiles it for x86-64: `cvttss2si` (or the packed
/// `cvttps2dq`) truncates toward zero into an i32, returning the "integer indefinite" value
/// 0x8000_0000 for NaN, ±inf and anything outside the i32 range; only the low byte is kept.
/// Out-of-range casts are undefined behaviour in C, so this is a choice: we match what ggml's
/// x86-64 release builds actually produce (checked against gcc 12 output), e.g. NaN → 0,
/// 300.7 → 44, −1.5 → 0xFF. Rust's saturating `as` would differ (NaN → 0 but 300.7 → 127).
#[inline(always)]
fn x86_cast_byte(f: f32) -> u8 {
    let i = if (-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        f as i32
    } else {
        i32::MIN
    };
    i as u8
}

/// C `MIN(hi, (int8_t)f)` with the result stored as `uint8_t`: the signed byte is clamped
/// from above only, so a negative value (never produced by finite in-range input) wraps.
#[inline(always)]
fn min_i8_to_u8(hi: i8, f: f32) -> u8 {
    let t = x86_cast_byte(f) as i8;
    (if hi < t { hi } else { t }) as u8
}

/// The value with the largest |x| and that |x|; the first wins ties and NaNs are skipped
/// (strict `amax < |v|`), as in Q4_0/Q5_0.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// min and max by strict comparisons from ±FLT_MAX, so NaNs are skipped (Q4_1/Q5_1).
#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C `d ? 1.0f/d : 0.0f` (a NaN `d` is truthy).
#[inline(always)]
fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// f32 → Q4_0: d = max/−8 with max the signed extreme, q = min(15, (i8)(x·id + 8.5)).
/// The extreme value maps to nibble 0, so all of −8..+7 is used.
pub fn quantize_q4_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_0_SIZE)) {
        let d = signed_absmax(x) / -8.0;
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let (lo, hi) = x.split_at(HALF);
        for ((q, &x0), &x1) in b[2..].iter_mut().zip(lo).zip(hi) {
            let xi0 = min_i8_to_u8(15, x0 * id + 8.5);
            let xi1 = min_i8_to_u8(15, x1 * id + 8.5);
            *q = xi0 | (xi1 << 4);
        }
    }
}

/// f32 → Q4_1: d = (max − min)/15, m = min, q = min(15, (i8)((x − min)·id + 0.5)).
pub fn quantize_q4_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q4_1_SIZE)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        b[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
        let (lo, hi) = x.split_at(HALF);
        for ((q, &x0), &x1) in b[4..].iter_mut().zip(lo).zip(hi) {
            let xi0 = min_i8_to_u8(15, (x0 - min) * id + 0.5);
            let xi1 = min_i8_to_u8(15, (x1 - min) * id + 0.5);
            *q = xi0 | (xi1 << 4);
        }
    }
}

/// Packs the 5-bit codes of elements j and j + 16: low nibbles into `qs[j]`, bits 4 into
/// bits j and j + 16 of the returned `qh` contribution.
#[inline(always)]
fn pack_q5(xi0: u8, xi1: u8, j: usize) -> (u8, u32) {
    let q = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
    let h = (u32::from(xi0 & 0x10) >> 4) << j | (u32::from(xi1 & 0x10) >> 4) << (j + HALF);
    (q, h)
}

/// f32 → Q5_0: d = max/−16, q = min(31, (i8)(x·id + 16.5)).
pub fn quantize_q5_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_0_SIZE)) {
        let d = signed_absmax(x) / -16.0;
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let (lo, hi) = x.split_at(HALF);
        let mut qh = 0u32;
        for (j, ((q, &x0), &x1)) in b[6..].iter_mut().zip(lo).zip(hi).enumerate() {
            let xi0 = min_i8_to_u8(31, x0 * id + 16.5);
            let xi1 = min_i8_to_u8(31, x1 * id + 16.5);
            let (qs, h) = pack_q5(xi0, xi1, j);
            *q = qs;
            qh |= h;
        }
        b[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// f32 → Q5_1: d = (max − min)/31, m = min, q = (u8)((x − min)·id + 0.5) — no clamp to 31
/// in ggml's ref (a 32 would keep only its low 5 bits).
pub fn quantize_q5_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q5_1_SIZE)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        b[2..4].copy_from_slice(&f32_to_f16(min).to_le_bytes());
        let (lo, hi) = x.split_at(HALF);
        let mut qh = 0u32;
        for (j, ((q, &x0), &x1)) in b[8..].iter_mut().zip(lo).zip(hi).enumerate() {
            let xi0 = x86_cast_byte((x0 - min) * id + 0.5);
            let xi1 = x86_cast_byte((x1 - min) * id + 0.5);
            let (qs, h) = pack_q5(xi0, xi1, j);
            *q = qs;
            qh |= h;
        }
        b[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q8 scale: amax by C `MAX(amax, |v|)` = `amax > |v| ? amax : |v|`, so a NaN replaces amax
/// and is itself replaced by the next |v| (only a trailing NaN survives); d = amax/127.
#[inline(always)]
fn q8_scale(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    amax / 127.0
}

/// One Q8 code: C `(int8_t)roundf(x·id)`; `f32::round` is roundf (half away from zero).
#[inline(always)]
fn q8_code(v: f32, id: f32) -> i8 {
    x86_cast_byte((v * id).round()) as i8
}

/// f32 → Q8_0: d = amax/127, qs = roundf(x·id).
pub fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_0_SIZE)) {
        let d = q8_scale(x);
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        for (q, &v) in b[2..].iter_mut().zip(x) {
            *q = q8_code(v, id) as u8;
        }
    }
}

/// f32 → Q8_1: as Q8_0, plus s = H(Σqs · d) at offset 2 using the f32 d.
pub fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(Q8_1_SIZE)) {
        let d = q8_scale(x);
        let id = inverse_or_zero(d);
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let mut sum = 0i32;
        for (q, &v) in b[4..].iter_mut().zip(x) {
            let c = q8_code(v, id);
            sum += i32::from(c);
            *q = c as u8;
        }
        // |sum| ≤ 32·128, so the int → float conversion is exact.
        b[2..4].copy_from_slice(&f32_to_f16(sum as f32 * d).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    //! Oracles here are hand-derived from the layouts and formulas in
    //! `shared/reference/ggml-gguf-safetensors.md` §2.3/§3; the bit-exact comparison with ggml
    //! itself is the crate's oracle-vector test.
    use super::*;

    const ONE: u16 = 0x3C00; // fp16 1.0
    const HALF_F16: u16 = 0x3800; // 0.5
    const TWO: u16 = 0x4000; // 2.0
    const MINUS_ONE: u16 = 0xBC00; // -1.0

    fn block(head: &[u8], qs: &[u8]) -> Vec<u8> {
        [head, qs].concat()
    }

    fn xorshift(seed: &mut u32) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    }

    #[test]
    fn q4_0_hand_block_split_halves() {
        // low nibble of qs[j] = j, high nibble = 15 - j; d = 1.
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let b = block(&ONE.to_le_bytes(), &qs);
        let mut y = [0f32; 32];
        dequantize_q4_0(&b, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 - 8.0);
            assert_eq!(y[16 + j], 7.0 - j as f32);
        }
    }

    #[test]
    fn q4_1_q5_hand_blocks() {
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let mut y = [0f32; 32];
        // Q4_1: d = 0.5, m = -1 → nib/2 - 1.
        dequantize_q4_1(
            &block(
                &[HALF_F16.to_le_bytes(), MINUS_ONE.to_le_bytes()].concat(),
                &qs,
            ),
            &mut y,
        );
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.5 - 1.0);
            assert_eq!(y[16 + j], (15 - j) as f32 * 0.5 - 1.0);
        }
        // Q5_0: d = 2, qh bits 16..31 set → second half gets +16, first half does not.
        let qh = 0xFFFF_0000u32.to_le_bytes();
        dequantize_q5_0(&block(&[&TWO.to_le_bytes()[..], &qh].concat(), &qs), &mut y);
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 16.0) * 2.0);
            assert_eq!(y[16 + j], (15 - j) as f32 * 2.0);
        }
        // Q5_1: d = 1, m = 0.5, qh = bit 0 and bit 31 only.
        let qh = 0x8000_0001u32.to_le_bytes();
        let head = [&ONE.to_le_bytes()[..], &HALF_F16.to_le_bytes(), &qh].concat();
        dequantize_q5_1(&block(&head, &qs), &mut y);
        for j in 0..16 {
            let h0 = if j == 0 { 16.0 } else { 0.0 };
            let h1 = if j == 15 { 16.0 } else { 0.0 };
            assert_eq!(y[j], j as f32 + h0 + 0.5);
            assert_eq!(y[16 + j], (15 - j) as f32 + h1 + 0.5);
        }
    }

    #[test]
    fn q8_hand_blocks() {
        let qs: Vec<u8> = (0..32).map(|j: i32| (j * 8 - 128) as i8 as u8).collect();
        let mut y = [0f32; 32];
        dequantize_q8_0(&block(&0x3400u16.to_le_bytes(), &qs), &mut y); // d = 0.25
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, (j as f32 * 8.0 - 128.0) * 0.25);
        }
        // Q8_1: `s` (here garbage 0xFFFF) is ignored.
        dequantize_q8_1(&block(&[0x00, 0x34, 0xFF, 0xFF], &qs), &mut y);
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, (j as f32 * 8.0 - 128.0) * 0.25);
        }
    }

    #[test]
    fn q4_0_full_range_extreme_maps_to_nibble_0() {
        // -8..7 then 7..-8: max = -8 (first), d = 1, nibble = x + 8.
        let x: Vec<f32> = (0..16)
            .map(|j| j as f32 - 8.0)
            .chain((0..16).map(|j| 7.0 - j as f32))
            .collect();
        let mut b = [0u8; 18];
        quantize_q4_0(&x, &mut b);
        assert_eq!(le16(&b, 0), ONE);
        for j in 0..16 {
            assert_eq!(b[2 + j], j as u8 | ((15 - j as u8) << 4));
        }
        // A positive extreme +8 gives d = -1 and nibble 0; -7 → 15.5 → 15; -8 would clamp to 15.
        let mut x = [0.5f32; 32];
        x[3] = 8.0;
        x[20] = -7.0;
        quantize_q4_0(&x, &mut b);
        assert_eq!(le16(&b, 0), MINUS_ONE);
        assert_eq!(b[2 + 3] & 0x0F, 0);
        assert_eq!(b[2 + 4] & 0x0F, 8); // 0.5·(-1) + 8.5 = 8
        assert_eq!(b[2 + 4] >> 4, 15);
    }

    #[test]
    fn all_zero_blocks() {
        let x = [0f32; 32];
        let mut b = [0xAAu8; 36];
        quantize_q4_0(&x, &mut b[..18]);
        // d = 0/-8 = -0.0 (fp16 0x8000), id = 0, (i8)8.5 = 8.
        assert_eq!(&b[..18], &[&[0, 0x80][..], &[0x88; 16]].concat()[..]);
        quantize_q4_1(&x, &mut b[..20]);
        assert_eq!(&b[..20], &[0u8; 20]);
        quantize_q5_0(&x, &mut b[..22]);
        // d = -0.0 again; (i8)16.5 = 16: low nibbles 0, every qh bit set.
        let want = [&[0, 0x80, 0xFF, 0xFF, 0xFF, 0xFF][..], &[0; 16]].concat();
        assert_eq!(&b[..22], &want[..]);
        quantize_q5_1(&x, &mut b[..24]);
        assert_eq!(&b[..24], &[0u8; 24]);
        quantize_q8_0(&x, &mut b[..34]);
        assert_eq!(&b[..34], &[0u8; 34]);
        quantize_q8_1(&x, &mut b[..36]);
        assert_eq!(&b[..36], &[0u8; 36]);
    }

    #[test]
    fn nan_and_inf_inputs() {
        // All NaN, Q4_1: min/max stay at ±FLT_MAX, d = -inf/15 = -inf, id = -0, every code 0.
        let x = [f32::NAN; 32];
        let mut b = [0xAAu8; 36];
        quantize_q4_1(&x, &mut b[..20]);
        assert_eq!(&b[..4], &[0x00, 0xFC, 0x00, 0x7C]); // H(-inf), H(FLT_MAX) = +inf
        assert_eq!(&b[4..20], &[0u8; 16]);
        // Q4_0 skips NaN in the max search: d = -0.0, NaN·0 is NaN → cast gives 0, zeros → 8.
        let mut x = [0f32; 32];
        x[0] = f32::NAN;
        quantize_q4_0(&x, &mut b[..18]);
        assert_eq!(&b[..4], &[0, 0x80, 0x80, 0x88]);
        // Q8_0: a leading NaN is replaced by the next |v|; a trailing NaN makes d NaN.
        let mut x = [0f32; 32];
        x[0] = f32::NAN;
        x[1] = 1.0;
        quantize_q8_0(&x, &mut b[..34]);
        assert_eq!(le16(&b, 0), f32_to_f16(1.0 / 127.0));
        assert_eq!(&b[2..5], &[0, 127, 0]);
        x[31] = f32::NAN;
        quantize_q8_1(&x, &mut b);
        assert_eq!(le16(&b, 0), 0x7E00);
        assert_eq!(&b[4..], &[0u8; 32]);
        assert_eq!(le16(&b, 2), 0x7E00); // 0 · NaN
                                         // ±inf and subnormal extremes (1/d overflows) must not panic.
        for v in [f32::INFINITY, -f32::INFINITY, 1e-45, f32::MAX] {
            let mut x = [0.25f32; 32];
            x[7] = v;
            let mut b = [0u8; 24];
            quantize_q4_0(&x, &mut b[..18]);
            quantize_q4_1(&x, &mut b[..20]);
            quantize_q5_0(&x, &mut b[..22]);
            quantize_q5_1(&x, &mut b);
        }
    }

    #[test]
    fn x86_cast_matches_cvttss2si_low_byte() {
        assert_eq!(x86_cast_byte(f32::NAN), 0);
        assert_eq!(x86_cast_byte(f32::INFINITY), 0);
        assert_eq!(x86_cast_byte(f32::NEG_INFINITY), 0);
        assert_eq!(x86_cast_byte(3.0e9), 0); // beyond i32: 0x8000_0000
        assert_eq!(x86_cast_byte(300.7), 44); // 300 = 0x12C
        assert_eq!(x86_cast_byte(-1.5), 0xFF); // -1
        assert_eq!(x86_cast_byte(-0.9), 0);
        assert_eq!(x86_cast_byte(15.99), 15);
        assert_eq!(min_i8_to_u8(15, 200.0), 200); // (i8)200 = -56 < 15 survives the MIN
        assert_eq!(min_i8_to_u8(15, 16.5), 15);
    }

    #[test]
    fn round_trip_within_one_step() {
        type Q = fn(&[f32], &mut [u8]);
        type D = fn(&[u8], &mut [f32]);
        let codecs: [(Q, D, usize); 6] = [
            (quantize_q4_0, dequantize_q4_0, Q4_0_SIZE),
            (quantize_q4_1, dequantize_q4_1, Q4_1_SIZE),
            (quantize_q5_0, dequantize_q5_0, Q5_0_SIZE),
            (quantize_q5_1, dequantize_q5_1, Q5_1_SIZE),
            (quantize_q8_0, dequantize_q8_0, Q8_0_SIZE),
            (quantize_q8_1, dequantize_q8_1, Q8_1_SIZE),
        ];
        let mut seed = 0x2545_F491;
        let n_blocks = 2000;
        let x: Vec<f32> = (0..n_blocks * QK)
            .map(|i| xorshift(&mut seed) * (1 + i / 320) as f32)
            .collect();
        for (k, (q, dq, size)) in codecs.into_iter().enumerate() {
            let mut b = vec![0u8; n_blocks * size];
            let mut y = vec![0f32; x.len()];
            q(&x, &mut b);
            dq(&b, &mut y);
            for ((xb, yb), bb) in x.chunks(QK).zip(y.chunks(QK)).zip(b.chunks(size)) {
                let step = f16_to_f32(le16(bb, 0)).abs();
                assert!(step > 0.0);
                // One step: Q4_0/Q5_0 clamp the value opposite the extreme by up to a full step;
                // the 1/128 covers fp16 rounding of d (≤ 2^-11 relative, times ≤ 16 codes).
                let tol = step * (1.0 + 1.0 / 128.0);
                for (a, r) in xb.iter().zip(yb) {
                    assert!((a - r).abs() <= tol, "codec {k}: {a} → {r}, step {step}");
                }
            }
        }
    }
}
