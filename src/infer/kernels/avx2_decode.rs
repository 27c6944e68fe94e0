//! AVX2 block decoders: each yields a block's values as pairs of 8-lane vectors (values
//! 16i..16i+8 and 16i+8..16i+16), bit-identical to [`crate::quant::dequantize`]: every value is
//! the dequantizer's formula evaluated in its order (convert, multiply, add/subtract).

use std::arch::x86_64::*;

use super::f16::f16;
use crate::quant::kquants::{through_bf16, unpack_scales_min_k4};

/// Decodes blocks of one dtype: `visit(p, f)` calls `f(i, lo, hi)` for i = 0..BLOCK/16.
pub(super) trait Dec256 {
    /// Values per block (a multiple of 16).
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// # Safety
    /// AVX2, FMA and F16C must be available; `p` must point at `BYTES` readable bytes.
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, f: F);
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

/// 8 bytes at `p` zero-extended to 8 dwords.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn bytes8(p: *const u8) -> __m256i {
    // SAFETY: 8 readable bytes (caller).
    _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(p.cast()) })
}

/// fp16 at `p` as f32 (the table equals the codec's conversion), broadcast.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> __m256 {
    // SAFETY: 2 readable bytes (caller); AVX is implied by the callers' features.
    unsafe { _mm256_set1_ps(f16(rd16(p))) }
}

/// Bits `first..first + 8` of `bits`, one per dword, moved to bit 4.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn bits_to_4(bits: u32, first: u32) -> __m256i {
    let v = _mm256_set1_epi32((bits >> first) as i32);
    let sh = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_slli_epi32::<4>(_mm256_and_si256(
        _mm256_srlv_epi32(v, sh),
        _mm256_set1_epi32(1),
    ))
}

/// F32 rows.
pub(super) struct F32;
impl Dec256 for F32 {
    const BLOCK: usize = 16;
    const BYTES: usize = 64;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 64 readable bytes.
        unsafe {
            f(
                0,
                _mm256_loadu_ps(p.cast()),
                _mm256_loadu_ps(p.add(32).cast()),
            )
        };
    }
}

/// F16 rows (F16C conversion is exact).
pub(super) struct F16;
impl Dec256 for F16 {
    const BLOCK: usize = 16;
    const BYTES: usize = 32;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 32 readable bytes.
        unsafe {
            f(
                0,
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(16).cast())),
            );
        }
    }
}

/// BF16 rows.
pub(super) struct Bf16;
impl Dec256 for Bf16 {
    const BLOCK: usize = 16;
    const BYTES: usize = 32;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 32 readable bytes.
        unsafe {
            let a = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            let b = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(16).cast()));
            f(
                0,
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(a)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(b)),
            );
        }
    }
}

/// Q8_0: `q·d`.
pub(super) struct Q8_0;
impl Dec256 for Q8_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 34;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 34 readable bytes.
        unsafe {
            let d = f16_at(p);
            let q = |o: usize| {
                let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(2 + o).cast()));
                _mm256_mul_ps(_mm256_cvtepi32_ps(v), d)
            };
            f(0, q(0), q(8));
            f(1, q(16), q(24));
        }
    }
}

/// `(code − off)·d` (Q4_0, Q5_0) on 8 codes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn sym(code: __m256i, off: i32, d: __m256) -> __m256 {
    _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_sub_epi32(code, _mm256_set1_epi32(off))),
        d,
    )
}

/// `code·d + m` (Q4_1, Q5_1) on 8 codes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn affine(code: __m256i, d: __m256, m: __m256) -> __m256 {
    _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(code), d), m)
}

/// `a·code − m` (Q4_K, Q5_K) on 8 codes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn kaffine(code: __m256i, a: __m256, m: __m256) -> __m256 {
    _mm256_sub_ps(_mm256_mul_ps(a, _mm256_cvtepi32_ps(code)), m)
}

/// The four 8-value nibble groups of 16 bytes: low nibbles 0..8, 8..16, high nibbles 0..8, 8..16.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles16(p: *const u8) -> [__m256i; 4] {
    // SAFETY: 16 readable bytes (caller).
    let (a, b) = unsafe { (bytes8(p), bytes8(p.add(8))) };
    let m = _mm256_set1_epi32(0x0F);
    [
        _mm256_and_si256(a, m),
        _mm256_and_si256(b, m),
        _mm256_srli_epi32::<4>(a),
        _mm256_srli_epi32::<4>(b),
    ]
}

/// Q4_0: `(q − 8)·d`.
pub(super) struct Q4_0;
impl Dec256 for Q4_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 18;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 18 readable bytes.
        unsafe {
            let d = f16_at(p);
            let n = nibbles16(p.add(2));
            f(0, sym(n[0], 8, d), sym(n[1], 8, d));
            f(1, sym(n[2], 8, d), sym(n[3], 8, d));
        }
    }
}

/// Q4_1: `q·d + m`.
pub(super) struct Q4_1;
impl Dec256 for Q4_1 {
    const BLOCK: usize = 32;
    const BYTES: usize = 20;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 20 readable bytes.
        unsafe {
            let (d, m) = (f16_at(p), f16_at(p.add(2)));
            let n = nibbles16(p.add(4));
            f(0, affine(n[0], d, m), affine(n[1], d, m));
            f(1, affine(n[2], d, m), affine(n[3], d, m));
        }
    }
}

/// The four 8-value 5-bit code groups of a Q5 block (nibbles | qh bit << 4); `SWAP`: the
/// Q5-NIBBLE-ORDER mutant (high nibbles first).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn codes5<const SWAP: bool>(qs: *const u8, qh: u32) -> [__m256i; 4] {
    // SAFETY: 16 readable bytes (caller).
    let n = unsafe { nibbles16(qs) };
    let n = if SWAP { [n[2], n[3], n[0], n[1]] } else { n };
    [
        _mm256_or_si256(n[0], bits_to_4(qh, 0)),
        _mm256_or_si256(n[1], bits_to_4(qh, 8)),
        _mm256_or_si256(n[2], bits_to_4(qh, 16)),
        _mm256_or_si256(n[3], bits_to_4(qh, 24)),
    ]
}

/// Q5_0: `(q − 16)·d`. `SWAP = true` is the Q5-NIBBLE-ORDER mutant (`crate::fault`).
pub(super) struct Q5_0<const SWAP: bool = false>;
impl<const SWAP: bool> Dec256 for Q5_0<SWAP> {
    const BLOCK: usize = 32;
    const BYTES: usize = 22;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 22 readable bytes.
        unsafe {
            let d = f16_at(p);
            let c = codes5::<SWAP>(p.add(6), rd32(p.add(2)));
            f(0, sym(c[0], 16, d), sym(c[1], 16, d));
            f(1, sym(c[2], 16, d), sym(c[3], 16, d));
        }
    }
}

/// Q5_1: `q·d + m`. `SWAP = true` is the Q5-NIBBLE-ORDER mutant (`crate::fault`).
pub(super) struct Q5_1<const SWAP: bool = false>;
impl<const SWAP: bool> Dec256 for Q5_1<SWAP> {
    const BLOCK: usize = 32;
    const BYTES: usize = 24;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 24 readable bytes.
        unsafe {
            let (d, m) = (f16_at(p), f16_at(p.add(2)));
            let c = codes5::<SWAP>(p.add(8), rd32(p.add(4)));
            f(0, affine(c[0], d, m), affine(c[1], d, m));
            f(1, affine(c[2], d, m), affine(c[3], d, m));
        }
    }
}

/// `d·sc[j]`, `dmin·m[j]` of a Q4_K/Q5_K header; `TRUNC`: the FP16-SCALE-TRUNC mutant
/// (`d`, `dmin` through bf16).
#[inline(always)]
unsafe fn k4_scales<const TRUNC: bool>(p: *const u8) -> ([f32; 8], [f32; 8]) {
    // SAFETY: 16 readable bytes (caller).
    let (mut d, mut dmin, q) = unsafe {
        (
            f16(rd16(p)),
            f16(rd16(p.add(2))),
            &*p.add(4).cast::<[u8; 12]>(),
        )
    };
    if TRUNC {
        (d, dmin) = (through_bf16(d), through_bf16(dmin));
    }
    let (sc, m) = unpack_scales_min_k4(q);
    let mut ds = [0f32; 8];
    let mut ms = [0f32; 8];
    for j in 0..8 {
        ds[j] = d * f32::from(sc[j]);
        ms[j] = dmin * f32::from(m[j]);
    }
    (ds, ms)
}

/// Q4_K: `(d·sc)·q − dmin·m`. `TRUNC = true` is the FP16-SCALE-TRUNC mutant (`crate::fault`).
pub(super) struct Q4K<const TRUNC: bool = false>;
impl<const TRUNC: bool> Dec256 for Q4K<TRUNC> {
    const BLOCK: usize = 256;
    const BYTES: usize = 144;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 144 readable bytes.
        unsafe {
            let (ds, ms) = k4_scales::<TRUNC>(p);
            for c in 0..4 {
                let q = p.add(16 + 32 * c);
                let (a, b) = (nibbles16(q), nibbles16(q.add(16)));
                let (d1, m1) = (_mm256_set1_ps(ds[2 * c]), _mm256_set1_ps(ms[2 * c]));
                let (d2, m2) = (_mm256_set1_ps(ds[2 * c + 1]), _mm256_set1_ps(ms[2 * c + 1]));
                f(4 * c, kaffine(a[0], d1, m1), kaffine(a[1], d1, m1));
                f(4 * c + 1, kaffine(b[0], d1, m1), kaffine(b[1], d1, m1));
                f(4 * c + 2, kaffine(a[2], d2, m2), kaffine(a[3], d2, m2));
                f(4 * c + 3, kaffine(b[2], d2, m2), kaffine(b[3], d2, m2));
            }
        }
    }
}

/// Q5_K: `(d·sc)·(q | hbit << 4) − dmin·m`; the fifth bit of value l of sub-block s is bit s
/// of `qh[l]`.
pub(super) struct Q5K;
impl Dec256 for Q5K {
    const BLOCK: usize = 256;
    const BYTES: usize = 176;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 176 readable bytes.
        unsafe {
            let (ds, ms) = k4_scales::<false>(p);
            let qh = [
                bytes8(p.add(16)),
                bytes8(p.add(24)),
                bytes8(p.add(32)),
                bytes8(p.add(40)),
            ];
            let one = _mm256_set1_epi32(1);
            for c in 0..4 {
                let q = p.add(48 + 32 * c);
                let (a, b) = (nibbles16(q), nibbles16(q.add(16)));
                for (s, nib) in [(2 * c, 0), (2 * c + 1, 2)] {
                    let sh = _mm_cvtsi32_si128(s as i32);
                    let hb = |g: usize| {
                        _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srl_epi32(qh[g], sh), one))
                    };
                    let (d1, m1) = (_mm256_set1_ps(ds[s]), _mm256_set1_ps(ms[s]));
                    let v = |code: __m256i, g: usize| kaffine(_mm256_or_si256(code, hb(g)), d1, m1);
                    f(4 * c + nib, v(a[nib], 0), v(a[nib + 1], 1));
                    f(4 * c + nib + 1, v(b[nib], 2), v(b[nib + 1], 3));
                }
            }
        }
    }
}

/// Q6_K: `(d·sc)·(q − 32)` (layout as in the AVX-512 decoder).
pub(super) struct Q6K;
impl Dec256 for Q6K {
    const BLOCK: usize = 256;
    const BYTES: usize = 210;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn visit<F: FnMut(usize, __m256, __m256)>(p: *const u8, mut f: F) {
        // SAFETY: 210 readable bytes.
        unsafe {
            let d = f16(rd16(p.add(208)));
            let mut ds = [0f32; 16];
            for (j, o) in ds.iter_mut().enumerate() {
                *o = d * f32::from(*p.add(192 + j) as i8);
            }
            let m0f = _mm256_set1_epi32(0x0F);
            let m3 = _mm256_set1_epi32(3);
            let m32 = _mm256_set1_epi32(32);
            for n in 0..2 {
                for k in 0..4 {
                    let r = 4 * n + k;
                    let ql = p.add(64 * n + 32 * (k % 2));
                    let qh = p.add(128 + 32 * n);
                    let hs = _mm_cvtsi32_si128(2 * k as i32);
                    let code = |o: usize| {
                        let l = bytes8(ql.add(o));
                        let nib = if k < 2 {
                            _mm256_and_si256(l, m0f)
                        } else {
                            _mm256_srli_epi32::<4>(l)
                        };
                        let h = _mm256_and_si256(_mm256_srl_epi32(bytes8(qh.add(o)), hs), m3);
                        let q = _mm256_or_si256(nib, _mm256_slli_epi32::<4>(h));
                        _mm256_cvtepi32_ps(_mm256_sub_epi32(q, m32))
                    };
                    let (s0, s1) = (_mm256_set1_ps(ds[2 * r]), _mm256_set1_ps(ds[2 * r + 1]));
                    f(
                        2 * r,
                        _mm256_mul_ps(s0, code(0)),
                        _mm256_mul_ps(s0, code(8)),
                    );
                    f(
                        2 * r + 1,
                        _mm256_mul_ps(s1, code(16)),
                        _mm256_mul_ps(s1, code(24)),
                    );
                }
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
    use crate::quant::{kquants, legacy};

    fn blocks(t: GgmlType) -> Vec<u8> {
        let (f, b) = ORACLE_FILES
            .into_iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(t.name()))
            .expect("oracle file");
        let v = parse(f, b).expect("parses");
        v.sections.iter().flat_map(|s| s.blocks.to_vec()).collect()
    }

    fn decode<D: Dec256>(b: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; b.len() / D::BYTES * D::BLOCK];
        for (blk, o) in b.chunks_exact(D::BYTES).zip(out.chunks_exact_mut(D::BLOCK)) {
            // SAFETY: AVX2/FMA/F16C checked by the caller; `blk` holds BYTES bytes.
            unsafe {
                D::visit(blk.as_ptr(), |i, lo, hi| {
                    _mm256_storeu_ps(o.as_mut_ptr().add(16 * i), lo);
                    _mm256_storeu_ps(o.as_mut_ptr().add(16 * i + 8), hi);
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
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
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
