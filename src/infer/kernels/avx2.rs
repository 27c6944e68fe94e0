//! AVX2 kernels: the contract's 16 lanes are two `__m256` accumulators (lanes 0..8, 8..16).

use std::arch::x86_64::*;

use super::avx2_decode::{Bf16, Dec256, F16, F32, Q4K, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K, Q8_0};
use super::matrix::{Fast, TILE_ROWS, TILE_TOKENS};
use super::LANES;
use crate::fault::{self, Fault};

/// Rows ahead to prefetch in matrix × vector (the matrix is row-major and contiguous).
const PREFETCH_ROWS: usize = 32;

#[derive(Clone, Copy)]
struct Acc(__m256, __m256);

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn zero() -> Acc {
    Acc(_mm256_setzero_ps(), _mm256_setzero_ps())
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn lanes(a: Acc) -> [f32; LANES] {
    let mut l = [0f32; LANES];
    // SAFETY: `l` holds 16 floats.
    unsafe {
        _mm256_storeu_ps(l.as_mut_ptr(), a.0);
        _mm256_storeu_ps(l.as_mut_ptr().add(8), a.1);
    }
    l
}

/// The contract's tree sum of the lanes (see `avx512::hsum`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum(a: Acc) -> f32 {
    let s8 = _mm256_add_ps(a.0, a.1);
    let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn rows_lanes<D: Dec256, const R: usize>(
    rows: [*const u8; R],
    row_stride: usize,
    x: *const f32,
    n_blocks: usize,
) -> [f32; R] {
    let mut acc = [zero(); R];
    for b in 0..n_blocks {
        // SAFETY: x holds n_blocks·BLOCK floats and each row n_blocks·BYTES bytes (caller).
        unsafe {
            let xb = x.add(b * D::BLOCK);
            for (a, &row) in acc.iter_mut().zip(&rows) {
                let ahead = row.add(b * D::BYTES + PREFETCH_ROWS * row_stride);
                for off in (0..D::BYTES).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.add(off).cast());
                }
                D::visit(row.add(b * D::BYTES), |i, lo, hi| {
                    a.0 = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xb.add(16 * i)), a.0);
                    a.1 = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xb.add(16 * i + 8)), a.1);
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

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn matvec_t<D: Dec256>(
    data: *const u8,
    row_bytes: usize,
    x: *const f32,
    n_blocks: usize,
    first: usize,
    out: &mut [f32],
) {
    let row = |r: usize| {
        // SAFETY: r < n_out (caller).
        unsafe { data.add((first + r) * row_bytes) }
    };
    let n = out.len();
    let mut r = 0;
    // Fetch the rows the in-loop prefetch does not cover (see `avx512::matvec_t`).
    for off in (0..PREFETCH_ROWS.min(n) * row_bytes).step_by(64) {
        // SAFETY: inside the rows of this call.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(row(0).add(off).cast()) };
    }
    // SAFETY (all calls): rows and x as the caller guarantees.
    unsafe {
        while r + 2 <= n {
            let l = rows_lanes::<D, 2>([row(r), row(r + 1)], row_bytes, x, n_blocks);
            out[r..r + 2].copy_from_slice(&l);
            r += 2;
        }
        if r < n {
            out[r..].copy_from_slice(&rows_lanes::<D, 1>([row(r)], row_bytes, x, n_blocks));
        }
    }
}

/// The contract's dot products of rows `first..first + out.len()` (whole blocks) with `x`.
///
/// # Safety
/// AVX2/FMA/F16C available; `data` holds the rows (`row_bytes` each, `n_blocks` blocks of
/// `fast`); `x` holds at least `n_blocks × block` floats.
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

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn decode_t<D: Dec256>(p: *const u8, n_blocks: usize, out: *mut f32) {
    for b in 0..n_blocks {
        // SAFETY: p holds n_blocks blocks and out n_blocks·BLOCK floats (caller).
        unsafe {
            let o = out.add(b * D::BLOCK);
            D::visit(p.add(b * D::BYTES), |i, lo, hi| {
                _mm256_storeu_ps(o.add(16 * i), lo);
                _mm256_storeu_ps(o.add(16 * i + 8), hi);
            });
        }
    }
}

/// Decodes `n_blocks` blocks of `fast` at `p` into `out`.
///
/// # Safety
/// AVX2/FMA/F16C available; `p` holds `n_blocks` blocks; `out` has room for
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

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile<const RG: usize, const TT: usize>(
    w: *const f32,
    ldw: usize,
    x: *const f32,
    ldx: usize,
    n16: usize,
    out: &mut [[[f32; LANES]; TT]; RG],
) {
    let mut acc = [[zero(); TT]; RG];
    for k in 0..n16 {
        // SAFETY: rows/tokens hold n16·16 floats at their strides (caller).
        unsafe {
            for t in 0..TT {
                let x0 = _mm256_loadu_ps(x.add(t * ldx + 16 * k));
                let x1 = _mm256_loadu_ps(x.add(t * ldx + 16 * k + 8));
                for (r, row) in acc.iter_mut().enumerate() {
                    let a = &mut row[t];
                    a.0 = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(r * ldw + 16 * k)), x0, a.0);
                    a.1 = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(r * ldw + 16 * k + 8)), x1, a.1);
                }
            }
        }
    }
    for (o, row) in out.iter_mut().zip(&acc) {
        for (o, &a) in o.iter_mut().zip(row) {
            *o = lanes(a);
        }
    }
}

/// The contract's dot products of a tile of `rg` decoded rows × `tt` tokens, each of length
/// `n`; `out[r * TILE_TOKENS + t]`. The values past the last whole 16 are added to the lanes in
/// scalar code.
///
/// # Safety
/// AVX2/FMA/F16C available; `w` holds `rg` rows of stride `ldw`, `x` `tt` rows of stride
/// `ldx`, each with at least `n` floats.
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
    let n16 = n / 16;
    // Two rows × three tokens fill 12 of the 16 ymm registers; larger tiles go in pieces.
    let mut r0 = 0;
    while r0 < rg {
        let r = (rg - r0).min(2);
        let mut t0 = 0;
        while t0 < tt {
            let t = (tt - t0).min(3);
            let mut o = [[[0f32; LANES]; 3]; 2];
            // SAFETY: sub-tile of the caller's tile.
            unsafe {
                let (wp, xp) = (w.add(r0 * ldw), x.add(t0 * ldx));
                macro_rules! go {
                    ($r:literal, $t:literal) => {{
                        let mut s = [[[0f32; LANES]; $t]; $r];
                        tile::<$r, $t>(wp, ldw, xp, ldx, n16, &mut s);
                        for (o, s) in o.iter_mut().zip(&s) {
                            o[..$t].copy_from_slice(s);
                        }
                    }};
                }
                match (r, t) {
                    (2, 3) => go!(2, 3),
                    (2, 2) => go!(2, 2),
                    (2, _) => go!(2, 1),
                    (_, 3) => go!(1, 3),
                    (_, 2) => go!(1, 2),
                    _ => go!(1, 1),
                }
            }
            for i in 0..r {
                for j in 0..t {
                    let l = &mut o[i][j];
                    // SAFETY: row r0 + i and token t0 + j hold n floats (caller).
                    let (wt, xt) = unsafe {
                        (
                            std::slice::from_raw_parts(
                                w.add((r0 + i) * ldw + 16 * n16),
                                n - 16 * n16,
                            ),
                            std::slice::from_raw_parts(
                                x.add((t0 + j) * ldx + 16 * n16),
                                n - 16 * n16,
                            ),
                        )
                    };
                    super::reference::fma_lanes(l, wt, xt);
                    out[(r0 + i) * TILE_TOKENS + t0 + j] = super::reference::hsum(*l);
                }
            }
            t0 += t;
        }
        r0 += r;
    }
}

/// The contract's dot products of `a` (length `n`) with `R` rows of `b` at stride `ldb`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dots<const R: usize>(a: *const f32, b: *const f32, ldb: usize, n: usize) -> [f32; R] {
    let mut acc = [zero(); R];
    let n16 = n / 16;
    for k in 0..n16 {
        // SAFETY: a and each row of b hold n floats (caller).
        unsafe {
            let (a0, a1) = (
                _mm256_loadu_ps(a.add(16 * k)),
                _mm256_loadu_ps(a.add(16 * k + 8)),
            );
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = b.add(r * ldb + 16 * k);
                acc.0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(p), acc.0);
                acc.1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(p.add(8)), acc.1);
            }
        }
    }
    let mut out = [0f32; R];
    for (r, (o, acc)) in out.iter_mut().zip(acc).enumerate() {
        let mut l = lanes(acc);
        // SAFETY: the remaining n − 16·n16 floats of a and of row r.
        let (at, bt) = unsafe {
            (
                std::slice::from_raw_parts(a.add(16 * n16), n - 16 * n16),
                std::slice::from_raw_parts(b.add(r * ldb + 16 * n16), n - 16 * n16),
            )
        };
        super::reference::fma_lanes(&mut l, at, bt);
        *o = super::reference::hsum(l);
    }
    out
}

/// The contract's dot products `out[j] = a · b[j·ldb .. j·ldb + a.len()]`.
///
/// # Safety
/// AVX2/FMA/F16C available; `b` holds `(out.len() − 1)·ldb + a.len()` floats.
#[target_feature(enable = "avx2,fma,f16c")]
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
/// AVX2/FMA/F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both hold n floats.
    unsafe { dots::<1>(a.as_ptr(), b.as_ptr(), 0, n)[0] }
}

/// `y = fma(p, v, y)` element-wise.
///
/// # Safety
/// AVX2/FMA available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn axpy(p: f32, v: &[f32], y: &mut [f32]) {
    let n = v.len().min(y.len());
    let n8 = n / 8;
    let pv = _mm256_set1_ps(p);
    for k in 0..n8 {
        // SAFETY: 8(k+1) ≤ n.
        unsafe {
            let py = y.as_mut_ptr().add(8 * k);
            let r = _mm256_fmadd_ps(
                pv,
                _mm256_loadu_ps(v.as_ptr().add(8 * k)),
                _mm256_loadu_ps(py),
            );
            _mm256_storeu_ps(py, r);
        }
    }
    for i in 8 * n8..n {
        y[i] = p.mul_add(v[i], y[i]);
    }
}
