//! A weight matrix in its stored dtype (never expanded in memory) and its products with f32
//! activations, under the exact kernel contract of [`super`].
//!
//! Dtypes with a hand-written SIMD decoder ([`Fast`]) are decoded block by block in registers;
//! every other dtype the codecs can dequantize is decoded one row at a time into a scratch
//! buffer with [`crate::quant::dequantize`] — the same values, so the same results. Dtypes
//! without a dequantizer (integer, F64) are refused when the matrix is built.

use std::ops::Range;

use super::pool::{n_chunks, split, Pool, SharedOut};
use super::reference::{fma_lanes, hsum};
use super::{SimdLevel, LANES};
use crate::dtype::GgmlType;
use crate::quant::{can_dequantize, dequantize};

/// Errors building or using a weight matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// No kernel (and no dequantizer) for this dtype.
    #[error("tensor {tensor}: dtype {dtype} is not supported for inference (no dequantizer)")]
    UnsupportedDtype {
        /// Tensor name.
        tensor: String,
        /// Its dtype.
        dtype: GgmlType,
    },
    /// Shape and bytes disagree.
    #[error("tensor {tensor}: {detail}")]
    Shape {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
}

/// Dtypes with a SIMD decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Fast {
    /// Values per decoder block (16 for the plain float types).
    pub(crate) fn block(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::Bf16 => 16,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => 32,
            Self::Q4K | Self::Q5K | Self::Q6K => 256,
        }
    }
}

/// How a dtype is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Fast(Fast),
    /// Row decoded with `quant::dequantize`, then the F32 kernel.
    Generic,
}

fn classify(t: GgmlType) -> Option<Kind> {
    let fast = match t {
        GgmlType::F32 => Fast::F32,
        GgmlType::F16 => Fast::F16,
        GgmlType::BF16 => Fast::Bf16,
        GgmlType::Q4_0 => Fast::Q4_0,
        GgmlType::Q4_1 => Fast::Q4_1,
        GgmlType::Q5_0 => Fast::Q5_0,
        GgmlType::Q5_1 => Fast::Q5_1,
        GgmlType::Q8_0 => Fast::Q8_0,
        GgmlType::Q4_K => Fast::Q4K,
        GgmlType::Q5_K => Fast::Q5K,
        GgmlType::Q6_K => Fast::Q6K,
        GgmlType::Q8_1
        | GgmlType::Q2_K
        | GgmlType::Q3_K
        | GgmlType::Q8_K
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64 => {
            return can_dequantize(t).then_some(Kind::Generic);
        }
    };
    Some(Kind::Fast(fast))
}

/// Whether inference can use a tensor of this dtype as a weight matrix.
pub fn supported(t: GgmlType) -> bool {
    classify(t).is_some()
}

/// A weight matrix `W[n_out, n_in]` (GGUF `ne = [n_in, n_out]`) over its stored bytes.
#[derive(Clone, Debug)]
pub struct Matrix<'a> {
    name: String,
    dtype: GgmlType,
    n_in: usize,
    n_out: usize,
    row_bytes: usize,
    data: &'a [u8],
    kind: Kind,
}

impl<'a> Matrix<'a> {
    /// A matrix of `n_out` rows of `n_in` values of `dtype`, stored in `data`.
    pub fn new(
        name: &str,
        dtype: GgmlType,
        n_in: usize,
        n_out: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        let kind = classify(dtype).ok_or_else(|| KernelError::UnsupportedDtype {
            tensor: name.to_string(),
            dtype,
        })?;
        let shape_err = |detail: String| KernelError::Shape {
            tensor: name.to_string(),
            detail,
        };
        let row_bytes = dtype
            .row_bytes(n_in as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                shape_err(format!(
                    "row of {n_in} values is not whole {dtype} blocks of {}",
                    dtype.block_size()
                ))
            })?;
        let need = row_bytes
            .checked_mul(n_out)
            .ok_or_else(|| shape_err("size overflows".into()))?;
        if data.len() != need || n_in == 0 {
            return Err(shape_err(format!(
                "{n_out} rows × {n_in} values of {dtype} need {need} bytes, found {}",
                data.len()
            )));
        }
        Ok(Self {
            name: name.to_string(),
            dtype,
            n_in,
            n_out,
            row_bytes,
            data,
            kind,
        })
    }

    /// Tensor name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Stored dtype.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }
    /// Row length (input dimension).
    pub fn n_in(&self) -> usize {
        self.n_in
    }
    /// Number of rows (output dimension).
    pub fn n_out(&self) -> usize {
        self.n_out
    }
    /// The stored bytes of row `r`, if it exists.
    pub fn row(&self, r: usize) -> Option<&'a [u8]> {
        let start = r.checked_mul(self.row_bytes)?;
        self.data.get(start..start.checked_add(self.row_bytes)?)
    }

    /// Decodes row `r` into `out` (`n_in` floats): exactly the dequantizer's values.
    pub fn decode_row(
        &self,
        level: SimdLevel,
        r: usize,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let row = self.row(r).ok_or_else(|| KernelError::Shape {
            tensor: self.name.clone(),
            detail: format!("row {r} out of range (rows: {})", self.n_out),
        })?;
        let out = out.get_mut(..self.n_in).ok_or_else(|| KernelError::Shape {
            tensor: self.name.clone(),
            detail: format!("output buffer shorter than a row of {}", self.n_in),
        })?;
        self.decode_into(level, row, out);
        Ok(())
    }

    /// `row` (this matrix's row bytes) decoded into `out` (`n_in` floats).
    fn decode_into(&self, level: SimdLevel, row: &[u8], out: &mut [f32]) {
        if let Kind::Fast(fast) = self.kind {
            let n_blocks = self.n_in / fast.block();
            let done = n_blocks * fast.block();
            if simd_decode(level, fast, row, n_blocks, out) {
                if done < self.n_in {
                    // Plain dtypes only (block size 1): the values past the last 16.
                    let at = done * self.dtype.type_size();
                    let _ = dequantize(self.dtype, &row[at..], &mut out[done..self.n_in]);
                }
                return;
            }
        }
        // Lengths were checked in `new`, so this cannot fail.
        let _ = dequantize(self.dtype, row, out);
    }

    /// `out[i] = W[first + i] · x` (`x`: `n_in` floats).
    pub fn matvec_rows(&self, level: SimdLevel, x: &[f32], first: usize, out: &mut [f32]) {
        let n = out.len().min(self.n_out.saturating_sub(first));
        let x = &x[..self.n_in];
        if let Kind::Fast(fast) = self.kind {
            // Rows of whole decoder blocks (a plain-dtype row with a tail takes the row path).
            if self.n_in.is_multiple_of(fast.block()) {
                let n_blocks = self.n_in / fast.block();
                let out = &mut out[..n];
                if simd_matvec(
                    level,
                    fast,
                    self.data,
                    self.row_bytes,
                    x,
                    n_blocks,
                    first,
                    out,
                ) {
                    return;
                }
            }
        }
        let mut buf = vec![0f32; self.n_in];
        for (i, o) in out[..n].iter_mut().enumerate() {
            if let Some(row) = self.row(first + i) {
                self.decode_into(level, row, &mut buf);
                *o = super::dot_f32(level, &buf, x);
            }
        }
    }

    /// `out[t·n_out + r] = W[r] · x[t]` for `r` in `rows`, `t < n_tok` (`x`: `n_tok × n_in`,
    /// `out`: `n_tok × n_out`).
    ///
    /// # Safety
    /// No other thread may touch the written indices of `out` during the call.
    pub(crate) unsafe fn matmul_rows_into(
        &self,
        level: SimdLevel,
        x: &[f32],
        n_tok: usize,
        rows: Range<usize>,
        out: &SharedOut<'_>,
    ) {
        let n_in = self.n_in;
        if n_tok == 1 {
            // SAFETY: exclusive rows (caller).
            let o = unsafe { out.slice(rows.clone()) };
            self.matvec_rows(level, x, rows.start, o);
            return;
        }
        let mut wbuf = vec![0f32; TILE_ROWS * n_in];
        let mut sums = [0f32; TILE_ROWS * TILE_TOKENS];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let rg = TILE_ROWS.min(rows.end - r0);
            for r in 0..rg {
                if let Some(row) = self.row(r0 + r) {
                    self.decode_into(level, row, &mut wbuf[r * n_in..(r + 1) * n_in]);
                }
            }
            let mut t0 = 0;
            while t0 < n_tok {
                let tt = TILE_TOKENS.min(n_tok - t0);
                let xt = &x[t0 * n_in..(t0 + tt) * n_in];
                gemm_tile(level, &wbuf, n_in, rg, xt, tt, &mut sums);
                for r in 0..rg {
                    for t in 0..tt {
                        // SAFETY: row r0 + r belongs to this call's exclusive rows.
                        unsafe {
                            out.write((t0 + t) * self.n_out + r0 + r, sums[r * TILE_TOKENS + t])
                        };
                    }
                }
                t0 += tt;
            }
            r0 += rg;
        }
    }

    /// `out[t·n_out + r] = W[r] · x[t]` for all rows and `t < n_tok`, rows split over `pool`.
    /// `x` holds `n_tok × n_in` floats and `out` `n_tok × n_out`.
    pub fn matmul(&self, pool: &Pool, level: SimdLevel, x: &[f32], n_tok: usize, out: &mut [f32]) {
        assert!(
            x.len() >= n_tok * self.n_in,
            "matmul {}: input too short",
            self.name
        );
        assert!(
            out.len() >= n_tok * self.n_out,
            "matmul {}: output too short",
            self.name
        );
        let shared = SharedOut::new(out);
        let nc = n_chunks(self.n_out, pool.n_threads(), TILE_ROWS);
        pool.chunks(nc, &|c| {
            let rows = split(self.n_out, nc, c, TILE_ROWS);
            // SAFETY: the chunks are disjoint row ranges, and a row's outputs are written only
            // by the call that owns it.
            unsafe { self.matmul_rows_into(level, x, n_tok, rows, &shared) };
        });
    }
}

/// Rows per GEMM tile.
pub(super) const TILE_ROWS: usize = 4;
/// Tokens per GEMM tile.
pub(super) const TILE_TOKENS: usize = 6;

/// Decodes with the level's SIMD decoder; false when the level has none (scalar).
fn simd_decode(level: SimdLevel, fast: Fast, row: &[u8], n_blocks: usize, out: &mut [f32]) -> bool {
    debug_assert!(out.len() >= n_blocks * fast.block());
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.available() => {
            // SAFETY: level available; `row` holds n_blocks blocks (matrix invariant) and
            // `out` n_blocks·block floats.
            unsafe { super::avx512::decode(fast, row.as_ptr(), n_blocks, out.as_mut_ptr()) };
            true
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: as above.
            unsafe { super::avx2::decode(fast, row.as_ptr(), n_blocks, out.as_mut_ptr()) };
            true
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => false,
    }
}

/// Fused decode + FMA dot products of rows `first..first + out.len()`; false without SIMD.
#[allow(clippy::too_many_arguments)]
fn simd_matvec(
    level: SimdLevel,
    fast: Fast,
    data: &[u8],
    row_bytes: usize,
    x: &[f32],
    n_blocks: usize,
    first: usize,
    out: &mut [f32],
) -> bool {
    debug_assert!((first + out.len()) * row_bytes <= data.len());
    debug_assert!(x.len() >= n_blocks * fast.block());
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.available() => {
            // SAFETY: level available; rows and x cover n_blocks blocks (asserted above,
            // guaranteed by the matrix invariants).
            unsafe {
                super::avx512::matvec(
                    fast,
                    data.as_ptr(),
                    row_bytes,
                    x.as_ptr(),
                    n_blocks,
                    first,
                    out,
                )
            };
            true
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: as above.
            unsafe {
                super::avx2::matvec(
                    fast,
                    data.as_ptr(),
                    row_bytes,
                    x.as_ptr(),
                    n_blocks,
                    first,
                    out,
                )
            };
            true
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => false,
    }
}

/// The contract's dot products of a tile of `rg` decoded rows (`w`, stride and length `n`) ×
/// `tt` tokens (`x`, same): `out[r·TILE_TOKENS + t]`.
fn gemm_tile(
    level: SimdLevel,
    w: &[f32],
    n: usize,
    rg: usize,
    x: &[f32],
    tt: usize,
    out: &mut [f32; TILE_ROWS * TILE_TOKENS],
) {
    assert!(
        w.len() >= rg * n && x.len() >= tt * n,
        "gemm tile buffers too short"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.available() => {
            // SAFETY: level available; buffers hold rg / tt rows of n floats (asserted).
            unsafe { super::avx512::gemm_tile(w.as_ptr(), n, rg, x.as_ptr(), n, tt, n, out) };
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: as above.
            unsafe { super::avx2::gemm_tile(w.as_ptr(), n, rg, x.as_ptr(), n, tt, n, out) };
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => {
            for r in 0..rg {
                for t in 0..tt {
                    let mut l = [0f32; LANES];
                    fma_lanes(&mut l, &w[r * n..(r + 1) * n], &x[t * n..(t + 1) * n]);
                    out[r * TILE_TOKENS + t] = hsum(l);
                }
            }
        }
    }
}
