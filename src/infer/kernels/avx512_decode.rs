//! AVX-512 block decoders: each yields a block's values as 16-lane vectors, bit-identical to
//! [`crate::quant::dequantize`] (tested in `matrix.rs`). Each formula is the dequantizer's,
//! evaluated in its order (see `quant/legacy.rs`, `quant/kquants.rs`).
//!
//! 4-bit and 5-bit codes go through a per-block (or per-sub-block) table: the 16 or 32
//! possible values are computed once with the dequantizer's formula (`(q − 8)·d`,
//! `q·d + m`, `(d·sc)·q − dmin·m`, …), then a lane permute maps each code to its value, so
//! each weight costs one permute instead of convert + multiply (+ add).

// AVX-512 intrinsics are stable since Rust 1.89: building this module needs rustc ≥ 1.89,
// above the crate's declared rust-version (1.85).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::f16::f16;
use crate::quant::kquants::through_bf16;

/// Decodes blocks of one dtype. `visit(p, f)` calls `f(i, v)` for i = 0..BLOCK/16 in order,
/// `v` being values `16i..16i+16` of the block starting at `p`.
pub(super) trait Dec512 {
    /// Values per block (a multiple of 16).
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// # Safety
    /// AVX-512F/VL, AVX2, FMA and F16C must be available; `p` must point at `BYTES` readable bytes.
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, f: F);
}

#[inline(always)]
unsafe fn rd16(p: *const u8) -> u16 {
    // SAFETY: caller guarantees 2 readable bytes.
    u16::from_le(unsafe { std::ptr::read_unaligned(p.cast::<u16>()) })
}

#[inline(always)]
unsafe fn rd32(p: *const u8) -> u32 {
    // SAFETY: caller guarantees 4 readable bytes.
    u32::from_le(unsafe { std::ptr::read_unaligned(p.cast::<u32>()) })
}

/// fp16 at `p` as f32 (the table equals the codec's conversion, tested), broadcast.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn bcast_f16(p: *const u8) -> __m512 {
    // SAFETY: 2 readable bytes at p (caller).
    _mm512_set1_ps(f16(unsafe { rd16(p) }))
}

/// 16 bytes at `p` zero-extended to 16 dwords.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn bytes16(p: *const u8) -> __m512i {
    // SAFETY: 16 readable bytes at p (caller).
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) })
}

#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn iota(start: f32) -> __m512 {
    let mut a = [0f32; 16];
    for (i, v) in a.iter_mut().enumerate() {
        *v = start + i as f32;
    }
    // SAFETY: `a` holds 16 floats.
    unsafe { _mm512_loadu_ps(a.as_ptr()) }
}

/// F32 rows, 16 values per "block".
pub(super) struct F32;
impl Dec512 for F32 {
    const BLOCK: usize = 16;
    const BYTES: usize = 64;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 64 readable bytes.
        f(0, unsafe { _mm512_loadu_ps(p.cast()) });
    }
}

/// F16 rows (F16C conversion is exact).
pub(super) struct F16;
impl Dec512 for F16 {
    const BLOCK: usize = 16;
    const BYTES: usize = 32;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 32 readable bytes.
        f(0, _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) }));
    }
}

/// BF16 rows: the bits shifted into the high half of an f32.
pub(super) struct Bf16;
impl Dec512 for Bf16 {
    const BLOCK: usize = 16;
    const BYTES: usize = 32;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 32 readable bytes.
        let h = _mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(p.cast()) });
        f(0, _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h)));
    }
}

/// Q8_0: `q·d`.
pub(super) struct Q8_0;
impl Dec512 for Q8_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 34;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 34 readable bytes (caller).
        unsafe {
            let d = bcast_f16(p);
            let q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(2).cast()));
            f(0, _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d));
            let q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(18).cast()));
            f(1, _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d));
        }
    }
}

/// Q4_0: table `(q − 8)·d`; first 16 values are the low nibbles, next 16 the high nibbles.
pub(super) struct Q4_0;
impl Dec512 for Q4_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 18;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 18 readable bytes (caller).
        unsafe {
            let t = _mm512_mul_ps(iota(-8.0), bcast_f16(p));
            let b = bytes16(p.add(2));
            f(0, _mm512_permutexvar_ps(b, t));
            f(1, _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(b), t));
        }
    }
}

/// Q4_1: table `q·d + m`.
pub(super) struct Q4_1;
impl Dec512 for Q4_1 {
    const BLOCK: usize = 32;
    const BYTES: usize = 20;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 20 readable bytes (caller).
        unsafe {
            let t = _mm512_add_ps(_mm512_mul_ps(iota(0.0), bcast_f16(p)), bcast_f16(p.add(2)));
            let b = bytes16(p.add(4));
            f(0, _mm512_permutexvar_ps(b, t));
            f(1, _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(b), t));
        }
    }
}

/// Picks `t_lo[idx & 15]`, or `t_hi[idx & 15]` where the mask bit is set.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn pick32(idx: __m512i, k: __mmask16, t_lo: __m512, t_hi: __m512) -> __m512 {
    _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(idx, t_lo), k, idx, t_hi)
}

/// The permute indices of values 0..16 and 16..32 of a Q5 block from its 16 `qs` bytes (one
/// per dword): low nibbles then high nibbles (the permutes read bits 0..4 only); `SWAP`: the
/// Q5-NIBBLE-ORDER mutant's reversed order.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn nibble_halves<const SWAP: bool>(b: __m512i) -> (__m512i, __m512i) {
    let hi = _mm512_srli_epi32::<4>(b);
    if SWAP {
        (hi, b)
    } else {
        (b, hi)
    }
}

/// Q5_0: tables `(q − 16)·d` for q < 16 and q ≥ 16; bit j of `qh` is the fifth bit of value j.
/// `SWAP = true` is the Q5-NIBBLE-ORDER mutant (`crate::fault`): high nibbles first.
pub(super) struct Q5_0<const SWAP: bool = false>;
impl<const SWAP: bool> Dec512 for Q5_0<SWAP> {
    const BLOCK: usize = 32;
    const BYTES: usize = 22;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 22 readable bytes (caller).
        unsafe {
            let d = bcast_f16(p);
            let qh = rd32(p.add(2));
            let t_lo = _mm512_mul_ps(iota(-16.0), d);
            let t_hi = _mm512_mul_ps(iota(0.0), d);
            let (first, second) = nibble_halves::<SWAP>(bytes16(p.add(6)));
            f(0, pick32(first, qh as u16, t_lo, t_hi));
            f(1, pick32(second, (qh >> 16) as u16, t_lo, t_hi));
        }
    }
}

/// Q5_1: tables `q·d + m`. `SWAP = true` is the Q5-NIBBLE-ORDER mutant (`crate::fault`).
pub(super) struct Q5_1<const SWAP: bool = false>;
impl<const SWAP: bool> Dec512 for Q5_1<SWAP> {
    const BLOCK: usize = 32;
    const BYTES: usize = 24;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 24 readable bytes (caller).
        unsafe {
            let (d, m) = (bcast_f16(p), bcast_f16(p.add(2)));
            let qh = rd32(p.add(4));
            let t_lo = _mm512_add_ps(_mm512_mul_ps(iota(0.0), d), m);
            let t_hi = _mm512_add_ps(_mm512_mul_ps(iota(16.0), d), m);
            let (first, second) = nibble_halves::<SWAP>(bytes16(p.add(8)));
            f(0, pick32(first, qh as u16, t_lo, t_hi));
            f(1, pick32(second, (qh >> 16) as u16, t_lo, t_hi));
        }
    }
}

/// The Q4_K/Q5_K scale header: `d·sc[j]` and `dmin·m[j]` for the eight sub-blocks. The 6-bit
/// fields are unpacked four at a time in 32-bit words (the layout of
/// `quant::kquants::get_scale_min_k4`: bytes 0..4 hold sc0..3 and the high bits of sc4..7, bytes
/// 4..8 m0..3 and the high bits of m4..7, bytes 8..12 the low nibbles of sc4..7 | m4..7 << 4),
/// then converted and multiplied in one vector each.
///
/// `TRUNC`: the FP16-SCALE-TRUNC mutant (`d`, `dmin` through bf16).
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn k4_scales<const TRUNC: bool>(p: *const u8) -> ([f32; 8], [f32; 8]) {
    // SAFETY: 16 readable bytes at p (caller).
    let (mut d, mut dmin, a, b, c) = unsafe {
        (
            f16(rd16(p)),
            f16(rd16(p.add(2))),
            rd32(p.add(4)),
            rd32(p.add(8)),
            rd32(p.add(12)),
        )
    };
    if TRUNC {
        (d, dmin) = (through_bf16(d), through_bf16(dmin));
    }
    let sc =
        u64::from(a & 0x3F3F_3F3F) | u64::from((c & 0x0F0F_0F0F) | ((a >> 2) & 0x3030_3030)) << 32;
    let m = u64::from(b & 0x3F3F_3F3F)
        | u64::from(((c >> 4) & 0x0F0F_0F0F) | ((b >> 2) & 0x3030_3030)) << 32;
    let to_f32 = |v: u64, s: f32| {
        let q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)));
        let mut o = [0f32; 8];
        // SAFETY: `o` holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(_mm256_set1_ps(s), q)) };
        o
    };
    (to_f32(sc, d), to_f32(m, dmin))
}

/// Q4_K: per sub-block table `(d·sc)·q − dmin·m`; chunk c (64 values) = low nibbles of
/// `qs[32c..32c+32]` (sub-block 2c), then their high nibbles (sub-block 2c+1).
/// `TRUNC = true` is the FP16-SCALE-TRUNC mutant (`crate::fault`).
pub(super) struct Q4K<const TRUNC: bool = false>;
impl<const TRUNC: bool> Dec512 for Q4K<TRUNC> {
    const BLOCK: usize = 256;
    const BYTES: usize = 144;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 144 readable bytes (caller).
        unsafe {
            let (ds, ms) = k4_scales::<TRUNC>(p);
            let io = iota(0.0);
            for c in 0..4 {
                let q = p.add(16 + 32 * c);
                let b0 = bytes16(q);
                let b1 = bytes16(q.add(16));
                let t1 = _mm512_sub_ps(
                    _mm512_mul_ps(_mm512_set1_ps(ds[2 * c]), io),
                    _mm512_set1_ps(ms[2 * c]),
                );
                let t2 = _mm512_sub_ps(
                    _mm512_mul_ps(_mm512_set1_ps(ds[2 * c + 1]), io),
                    _mm512_set1_ps(ms[2 * c + 1]),
                );
                f(4 * c, _mm512_permutexvar_ps(b0, t1));
                f(4 * c + 1, _mm512_permutexvar_ps(b1, t1));
                f(
                    4 * c + 2,
                    _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(b0), t2),
                );
                f(
                    4 * c + 3,
                    _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(b1), t2),
                );
            }
        }
    }
}

/// `(a & 0x0F) | (b & !0x0F)`: a's low nibble with b's bit 4 (the permute ignores bits ≥ 5).
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn nib_with_bit4(a: __m512i, b: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0xE4>(a, b, _mm512_set1_epi32(0x0F))
}

/// Shifts each dword so that bit `BIT` lands on bit 4.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn bit_to_4<const BIT: u32>(h: __m512i) -> __m512i {
    match BIT {
        0 => _mm512_slli_epi32::<4>(h),
        1 => _mm512_slli_epi32::<3>(h),
        2 => _mm512_slli_epi32::<2>(h),
        3 => _mm512_slli_epi32::<1>(h),
        4 => h,
        5 => _mm512_srli_epi32::<1>(h),
        6 => _mm512_srli_epi32::<2>(h),
        _ => _mm512_srli_epi32::<3>(h),
    }
}

/// Q5_K: per sub-block tables `(d·sc)·q − dmin·m` for q in 0..16 and 16..32; the fifth bit of
/// value l of sub-block s is bit s of `qh[l % 32]`.
pub(super) struct Q5K;
impl Q5K {
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn chunk<const C: usize, const B0: u32, const B1: u32, F: FnMut(usize, __m512)>(
        p: *const u8,
        h: (__m512i, __m512i),
        ds: &[f32; 8],
        ms: &[f32; 8],
        f: &mut F,
    ) {
        // SAFETY: 176 readable bytes at p (caller).
        unsafe {
            let q = p.add(48 + 32 * C);
            let b0 = bytes16(q);
            let b1 = bytes16(q.add(16));
            let (lo, hi) = (iota(0.0), iota(16.0));
            for (s, nib_hi) in [(2 * C, false), (2 * C + 1, true)] {
                let (d1, m1) = (_mm512_set1_ps(ds[s]), _mm512_set1_ps(ms[s]));
                let t_lo = _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1);
                let t_hi = _mm512_sub_ps(_mm512_mul_ps(d1, hi), m1);
                let (a0, a1, h0, h1) = if nib_hi {
                    (
                        _mm512_srli_epi32::<4>(b0),
                        _mm512_srli_epi32::<4>(b1),
                        bit_to_4::<B1>(h.0),
                        bit_to_4::<B1>(h.1),
                    )
                } else {
                    (b0, b1, bit_to_4::<B0>(h.0), bit_to_4::<B0>(h.1))
                };
                let base = 4 * C + if nib_hi { 2 } else { 0 };
                f(
                    base,
                    _mm512_permutex2var_ps(t_lo, nib_with_bit4(a0, h0), t_hi),
                );
                f(
                    base + 1,
                    _mm512_permutex2var_ps(t_lo, nib_with_bit4(a1, h1), t_hi),
                );
            }
        }
    }
}
impl Dec512 for Q5K {
    const BLOCK: usize = 256;
    const BYTES: usize = 176;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 176 readable bytes (caller).
        unsafe {
            let (ds, ms) = k4_scales::<false>(p);
            let h = (bytes16(p.add(16)), bytes16(p.add(32)));
            Self::chunk::<0, 0, 1, F>(p, h, &ds, &ms, &mut f);
            Self::chunk::<1, 2, 3, F>(p, h, &ds, &ms, &mut f);
            Self::chunk::<2, 4, 5, F>(p, h, &ds, &ms, &mut f);
            Self::chunk::<3, 6, 7, F>(p, h, &ds, &ms, &mut f);
        }
    }
}

/// Q6_K: `(d·sc)·(q − 32)`, q = low/high nibble of `ql` | two bits of `qh` << 4; run R
/// (32 values) of half n = R/4, k = R%4 reads `ql[64n + 32(k%2)..]` nibble k/2 and bits 2k of
/// `qh[32n..]`; its two 16-value halves use scales 2R and 2R+1.
pub(super) struct Q6K;
impl Q6K {
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    fn run<const K: usize>(
        l: (__m512i, __m512i),
        h: (__m512i, __m512i),
        s: (f32, f32),
    ) -> (__m512, __m512) {
        let m32 = _mm512_set1_epi32(32);
        let c30 = _mm512_set1_epi32(0x30);
        let one = |l: __m512i, h: __m512i, s: f32| {
            let nib = if K < 2 {
                _mm512_and_si512(l, _mm512_set1_epi32(0x0F))
            } else {
                _mm512_srli_epi32::<4>(l)
            };
            let hs = match K {
                0 => _mm512_slli_epi32::<4>(h),
                1 => _mm512_slli_epi32::<2>(h),
                2 => h,
                _ => _mm512_srli_epi32::<2>(h),
            };
            // nib | (hs & 0x30)
            let q = _mm512_ternarylogic_epi32::<0xF8>(nib, hs, c30);
            let q = _mm512_cvtepi32_ps(_mm512_sub_epi32(q, m32));
            _mm512_mul_ps(_mm512_set1_ps(s), q)
        };
        (one(l.0, h.0, s.0), one(l.1, h.1, s.1))
    }
}
impl Dec512 for Q6K {
    const BLOCK: usize = 256;
    const BYTES: usize = 210;
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m512)>(p: *const u8, mut f: F) {
        // SAFETY: 210 readable bytes (caller).
        unsafe {
            // d · sc[j] for the 16 signed scales, in one vector (same products as the codec).
            let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(192).cast())));
            let mut ds = [0f32; 16];
            _mm512_storeu_ps(
                ds.as_mut_ptr(),
                _mm512_mul_ps(_mm512_set1_ps(f16(rd16(p.add(208)))), sc),
            );
            for n in 0..2 {
                let ql = p.add(64 * n);
                let l0 = (bytes16(ql), bytes16(ql.add(16)));
                let l1 = (bytes16(ql.add(32)), bytes16(ql.add(48)));
                let qh = p.add(128 + 32 * n);
                let h = (bytes16(qh), bytes16(qh.add(16)));
                let r = 4 * n;
                let (a, b) = Self::run::<0>(l0, h, (ds[2 * r], ds[2 * r + 1]));
                f(2 * r, a);
                f(2 * r + 1, b);
                let (a, b) = Self::run::<1>(l1, h, (ds[2 * r + 2], ds[2 * r + 3]));
                f(2 * r + 2, a);
                f(2 * r + 3, b);
                let (a, b) = Self::run::<2>(l0, h, (ds[2 * r + 4], ds[2 * r + 5]));
                f(2 * r + 4, a);
                f(2 * r + 5, b);
                let (a, b) = Self::run::<3>(l1, h, (ds[2 * r + 6], ds[2 * r + 7]));
                f(2 * r + 6, a);
                f(2 * r + 7, b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fault mutants of this decoder (`Q4K<true>`, `Q5_0<true>`, `Q5_1<true>`) equal the
    //! codec's (`quant::*_with(.., true)`) on ggml's oracle blocks, so an injected fault hits
    //! every path alike; the clean ones equal the clean codec. NaN equals NaN here (payloads
    //! are not part of the kernel contract).
    use super::*;
    use crate::dtype::GgmlType;
    use crate::gates::quant::{parse, ORACLE_FILES};
    use crate::infer::kernels::SimdLevel;
    use crate::quant::{kquants, legacy};

    fn blocks(t: GgmlType) -> Vec<u8> {
        let (f, b) = ORACLE_FILES
            .into_iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(t.name()))
            .expect("oracle file");
        let v = parse(f, b).expect("parses");
        v.sections.iter().flat_map(|s| s.blocks.to_vec()).collect()
    }

    fn decode<D: Dec512>(b: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; b.len() / D::BYTES * D::BLOCK];
        for (blk, o) in b.chunks_exact(D::BYTES).zip(out.chunks_exact_mut(D::BLOCK)) {
            // SAFETY: AVX-512 checked by the caller; `blk` holds BYTES bytes.
            unsafe {
                D::visit(blk.as_ptr(), |i, v| {
                    _mm512_storeu_ps(o.as_mut_ptr().add(16 * i), v);
                })
            };
        }
        out
    }

    fn same(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what}: value {i}: {x:e} vs {y:e}"
            );
        }
    }

    #[test]
    fn mutant_decoders_equal_the_codec_mutants() {
        if !SimdLevel::Avx512.available() {
            return;
        }
        type Codec = fn(&[u8], &mut [f32], bool);
        let run = |t: GgmlType,
                   codec: Codec,
                   clean: fn(&[u8]) -> Vec<f32>,
                   mutant: fn(&[u8]) -> Vec<f32>| {
            let b = blocks(t);
            for (m, simd) in [(false, clean(&b)), (true, mutant(&b))] {
                let mut want = vec![0f32; simd.len()];
                codec(&b, &mut want, m);
                same(&simd, &want, &format!("{t} mutant={m}"));
            }
        };
        run(
            GgmlType::Q4_K,
            kquants::dequantize_q4_k_with,
            decode::<Q4K>,
            decode::<Q4K<true>>,
        );
        run(
            GgmlType::Q5_0,
            legacy::dequantize_q5_0_with,
            decode::<Q5_0>,
            decode::<Q5_0<true>>,
        );
        run(
            GgmlType::Q5_1,
            legacy::dequantize_q5_1_with,
            decode::<Q5_1>,
            decode::<Q5_1<true>>,
        );
    }
}
