//! AVX-512 kernels: fused decode + FMA matrix × vector, block decoding into f32 buffers, and
//! the f32 GEMM tile of prefill. One `__m512` accumulator holds the contract's 16 lanes.

// AVX-512 intrinsics are stable since Rust 1.89: building this module needs rustc ≥ 1.89,
// above the crate's declared rust-version (1.85).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::avx512_decode::{Bf16, Dec512, F16, F32, Q4K, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K, Q8_0};
use super::matrix::{Fast, TILE_ROWS, TILE_TOKENS};
use crate::fault::{self, Fault};

/// Row groups ahead to prefetch: while a group of R rows is computed, the same positions of
/// the rows that many groups later are prefetched, so the (row-major, contiguous) matrix
/// streams from memory ahead of use.
const PREFETCH_GROUPS: usize = 8;

/// The contract's dot products of `R` rows (each `n_blocks` blocks of `D` at `rows[r]`) with `x`.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn rows_lanes<D: Dec512, const R: usize>(
    rows: [*const u8; R],
    row_stride: usize,
    x: *const f32,
    n_blocks: usize,
) -> [f32; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..n_blocks {
        // SAFETY: x holds n_blocks·BLOCK floats and each row n_blocks·BYTES bytes (caller).
        unsafe {
            let xb = x.add(b * D::BLOCK);
            for (a, &row) in acc.iter_mut().zip(&rows) {
                let ahead = row.add(b * D::BYTES + R * row_stride * PREFETCH_GROUPS);
                for off in (0..D::BYTES).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.add(off).cast());
                }
                D::visit(row.add(b * D::BYTES), |i, w| {
                    *a = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb.add(16 * i)), *a);
                });
            }
        }
    }
    let mut out = [0f32; R];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum(a);
    }
    out
}

/// Dot products of rows `first..first + out.len()` of a matrix of `D` blocks with `x`.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn matvec_t<D: Dec512>(
    data: *const u8,
    row_bytes: usize,
    x: *const f32,
    n_blocks: usize,
    first: usize,
    out: &mut [f32],
) {
    let row = |r: usize| {
        // SAFETY: r < n_out (caller), so the row start is inside the matrix.
        unsafe { data.add((first + r) * row_bytes) }
    };
    let mut r = 0;
    let n = out.len();
    // The rows the in-loop prefetch (PREFETCH_GROUPS groups ahead) does not cover: fetch them
    // now, so a chunk that starts cold does not wait on memory for its first groups.
    let warm = (4 * PREFETCH_GROUPS).min(n) * row_bytes;
    for off in (0..warm).step_by(64) {
        // SAFETY: inside the rows of this call.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(row(0).add(off).cast()) };
    }
    // SAFETY (all calls): rows and x as the caller guarantees.
    unsafe {
        while r + 4 <= n {
            let l = rows_lanes::<D, 4>(
                [row(r), row(r + 1), row(r + 2), row(r + 3)],
                row_bytes,
                x,
                n_blocks,
            );
            out[r..r + 4].copy_from_slice(&l);
            r += 4;
        }
        match n - r {
            3 => out[r..].copy_from_slice(&rows_lanes::<D, 3>(
                [row(r), row(r + 1), row(r + 2)],
                row_bytes,
                x,
                n_blocks,
            )),
            2 => out[r..].copy_from_slice(&rows_lanes::<D, 2>(
                [row(r), row(r + 1)],
                row_bytes,
                x,
                n_blocks,
            )),
            1 => out[r..].copy_from_slice(&rows_lanes::<D, 1>([row(r)], row_bytes, x, n_blocks)),
            _ => {}
        }
    }
}

/// The contract's dot products of rows `first..first + out.len()` (whole blocks) with `x`.
///
/// # Safety
/// AVX-512F/VL, AVX2, FMA and F16C available; `data` holds the rows (`row_bytes` each) of whole blocks
/// of `fast` covering `n_blocks` blocks; `x` holds at least `n_blocks × block` floats.
pub(super) unsafe fn matvec(
    fast: Fast,
    data: *const u8,
    row_bytes: usize,
    x: *const f32,
    n_blocks: usize,
    first: usize,
    out: &mut [f32],
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        match fast {
            Fast::F32 => matvec_t::<F32>(data, row_bytes, x, n_blocks, first, out),
            Fast::F16 => matvec_t::<F16>(data, row_bytes, x, n_blocks, first, out),
            Fast::Bf16 => matvec_t::<Bf16>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q4_0 => matvec_t::<Q4_0>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q4_1 => matvec_t::<Q4_1>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q5_0 if fault::active(Fault::Q5NibbleOrder) => {
                matvec_t::<Q5_0<true>>(data, row_bytes, x, n_blocks, first, out)
            }
            Fast::Q5_0 => matvec_t::<Q5_0>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q5_1 if fault::active(Fault::Q5NibbleOrder) => {
                matvec_t::<Q5_1<true>>(data, row_bytes, x, n_blocks, first, out)
            }
            Fast::Q5_1 => matvec_t::<Q5_1>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q8_0 => matvec_t::<Q8_0>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q4K if fault::active(Fault::Fp16ScaleTrunc) => {
                matvec_t::<Q4K<true>>(data, row_bytes, x, n_blocks, first, out)
            }
            Fast::Q4K => matvec_t::<Q4K>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q5K => matvec_t::<Q5K>(data, row_bytes, x, n_blocks, first, out),
            Fast::Q6K => matvec_t::<Q6K>(data, row_bytes, x, n_blocks, first, out),
        }
    }
}

#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn decode_t<D: Dec512>(p: *const u8, n_blocks: usize, out: *mut f32) {
    for b in 0..n_blocks {
        // SAFETY: p holds n_blocks blocks and out n_blocks·BLOCK floats (caller).
        unsafe {
            let o = out.add(b * D::BLOCK);
            D::visit(p.add(b * D::BYTES), |i, w| {
                _mm512_storeu_ps(o.add(16 * i), w)
            });
        }
    }
}

/// Decodes `n_blocks` blocks of `fast` at `p` into `out` (the dequantizer's exact values).
///
/// # Safety
/// AVX-512F/VL, AVX2, FMA and F16C available; `p` holds `n_blocks` blocks; `out` has room for
/// `n_blocks × block` floats.
pub(super) unsafe fn decode(fast: Fast, p: *const u8, n_blocks: usize, out: *mut f32) {
    // SAFETY: forwarded caller contract.
    unsafe {
        match fast {
            Fast::F32 => decode_t::<F32>(p, n_blocks, out),
            Fast::F16 => decode_t::<F16>(p, n_blocks, out),
            Fast::Bf16 => decode_t::<Bf16>(p, n_blocks, out),
            Fast::Q4_0 => decode_t::<Q4_0>(p, n_blocks, out),
            Fast::Q4_1 => decode_t::<Q4_1>(p, n_blocks, out),
            Fast::Q5_0 if fault::active(Fault::Q5NibbleOrder) => {
                decode_t::<Q5_0<true>>(p, n_blocks, out)
            }
            Fast::Q5_0 => decode_t::<Q5_0>(p, n_blocks, out),
            Fast::Q5_1 if fault::active(Fault::Q5NibbleOrder) => {
                decode_t::<Q5_1<true>>(p, n_blocks, out)
            }
            Fast::Q5_1 => decode_t::<Q5_1>(p, n_blocks, out),
            Fast::Q8_0 => decode_t::<Q8_0>(p, n_blocks, out),
            Fast::Q4K if fault::active(Fault::Fp16ScaleTrunc) => {
                decode_t::<Q4K<true>>(p, n_blocks, out)
            }
            Fast::Q4K => decode_t::<Q4K>(p, n_blocks, out),
            Fast::Q5K => decode_t::<Q5K>(p, n_blocks, out),
            Fast::Q6K => decode_t::<Q6K>(p, n_blocks, out),
        }
    }
}

/// The contract's tree sum of the 16 lanes: `a[i] + a[i+8]`, then `+ [i+4]`, `+ [i+2]`, `+ [i+1]`
/// (the same additions, in the same pairs, as [`super::reference::hsum`]).
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
fn hsum(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s8 = _mm256_add_ps(lo, hi);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
}

/// GEMM tile: the contract's dot products of `RG` decoded f32 rows (`w`, stride `ldw`) with
/// `TT` tokens (`x`, stride `ldx`), each of length `n`, into `out[r][t]`. The values past the
/// last whole 16 go through masked loads and a masked FMA that leaves the other lanes as they
/// are, exactly as the scalar contract leaves them.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn tile<const RG: usize, const TT: usize>(
    w: *const f32,
    ldw: usize,
    x: *const f32,
    ldx: usize,
    n: usize,
    out: &mut [[f32; TT]; RG],
) {
    let n16 = n / 16;
    let mut acc = [[_mm512_setzero_ps(); TT]; RG];
    for k in 0..n16 {
        // SAFETY: rows/tokens hold n floats at their strides (caller).
        unsafe {
            let mut wv = [_mm512_setzero_ps(); RG];
            for (r, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(w.add(r * ldw + 16 * k));
            }
            for t in 0..TT {
                let xv = _mm512_loadu_ps(x.add(t * ldx + 16 * k));
                for (row, &w) in acc.iter_mut().zip(&wv) {
                    row[t] = _mm512_fmadd_ps(w, xv, row[t]);
                }
            }
        }
    }
    let tail = n % 16;
    if tail > 0 {
        let m: __mmask16 = (1u16 << tail) - 1;
        // SAFETY: masked loads touch only the n − 16·n16 remaining floats.
        unsafe {
            for t in 0..TT {
                let xv = _mm512_maskz_loadu_ps(m, x.add(t * ldx + 16 * n16));
                for (r, row) in acc.iter_mut().enumerate() {
                    let wv = _mm512_maskz_loadu_ps(m, w.add(r * ldw + 16 * n16));
                    row[t] = _mm512_mask3_fmadd_ps(wv, xv, row[t], m);
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, &a) in o.iter_mut().zip(a) {
            *o = hsum(a);
        }
    }
}

/// The contract's dot products of a tile of `rg ≤ 4` decoded rows and `tt ≤ 6` tokens, each of
/// length `n`; `out[r * TILE_TOKENS + t]`.
///
/// # Safety
/// AVX-512F/VL, AVX2, FMA and F16C available; `w` holds `rg` rows of stride `ldw`, `x` `tt` rows of
/// stride `ldx`, each with at least `n` floats.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_tile(
    w: *const f32,
    ldw: usize,
    rg: usize,
    x: *const f32,
    ldx: usize,
    tt: usize,
    n: usize,
    out: &mut [f32; TILE_ROWS * TILE_TOKENS],
) {
    macro_rules! go {
        ($r:literal, $t:literal) => {{
            let mut o = [[0f32; $t]; $r];
            // SAFETY: forwarded caller contract.
            unsafe { tile::<$r, $t>(w, ldw, x, ldx, n, &mut o) };
            for (r, row) in o.iter().enumerate() {
                out[r * TILE_TOKENS..r * TILE_TOKENS + $t].copy_from_slice(row);
            }
        }};
    }
    macro_rules! by_t {
        ($r:literal) => {
            match tt {
                6 => go!($r, 6),
                5 => go!($r, 5),
                4 => go!($r, 4),
                3 => go!($r, 3),
                2 => go!($r, 2),
                1 => go!($r, 1),
                _ => {}
            }
        };
    }
    match rg {
        4 => by_t!(4),
        3 => by_t!(3),
        2 => by_t!(2),
        1 => by_t!(1),
        _ => {}
    }
}

/// The contract's dot products of `a` (length `n`) with `R` rows of `b` at stride `ldb`.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn dots<const R: usize>(a: *const f32, b: *const f32, ldb: usize, n: usize) -> [f32; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    let n16 = n / 16;
    for k in 0..n16 {
        // SAFETY: a and each row of b hold n floats (caller).
        unsafe {
            let av = _mm512_loadu_ps(a.add(16 * k));
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(av, _mm512_loadu_ps(b.add(r * ldb + 16 * k)), *acc);
            }
        }
    }
    let tail = n % 16;
    if tail > 0 {
        let m: __mmask16 = (1u16 << tail) - 1;
        // SAFETY: masked loads touch only the remaining floats.
        unsafe {
            let av = _mm512_maskz_loadu_ps(m, a.add(16 * n16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let bv = _mm512_maskz_loadu_ps(m, b.add(r * ldb + 16 * n16));
                *acc = _mm512_mask3_fmadd_ps(av, bv, *acc, m);
            }
        }
    }
    let mut out = [0f32; R];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum(a);
    }
    out
}

/// The contract's dot products `out[j] = a · b[j·ldb .. j·ldb + a.len()]`.
///
/// # Safety
/// AVX-512F/VL, AVX2, FMA and F16C available; `b` holds `(out.len() − 1)·ldb + a.len()`
/// floats.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows(a: &[f32], b: *const f32, ldb: usize, out: &mut [f32]) {
    let n = a.len();
    let mut j = 0;
    // SAFETY (all calls): row j of b holds n floats (caller).
    unsafe {
        while j + 4 <= out.len() {
            out[j..j + 4].copy_from_slice(&dots::<4>(a.as_ptr(), b.add(j * ldb), ldb, n));
            j += 4;
        }
        while j < out.len() {
            out[j] = dots::<1>(a.as_ptr(), b.add(j * ldb), ldb, n)[0];
            j += 1;
        }
    }
}

/// The contract's dot product of two f32 slices of equal length.
///
/// # Safety
/// AVX-512F/VL, AVX2, FMA and F16C available.
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both hold n floats.
    unsafe { dots::<1>(a.as_ptr(), b.as_ptr(), 0, n)[0] }
}
