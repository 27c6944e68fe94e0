//! CPU compute kernels: matrix × vector (decode), matrix × matrix (prefill), and the small
//! element-wise ops of the forward pass.
//!
//! # The exact kernel contract (DESIGN §2.4)
//!
//! Every dot product of a weight row `w` (any stored dtype) with an f32 activation `x` of
//! length `n` is computed as follows, on every SIMD level and for every weight dtype:
//!
//! 1. each weight is decoded to exactly the f32 that [`crate::quant::dequantize`] produces
//!    (F32/F16/BF16: the stored value; quantized: the block formula, evaluated with ggml's
//!    operation order, e.g. Q4_K `(d·sc)·q − dmin·m`);
//! 2. sixteen f32 lane accumulators start at +0; element `j` (in increasing `j`) updates lane
//!    `j % 16` with one fused multiply-add: `acc = fma(w_j, x_j, acc)`;
//! 3. the lanes are summed by a fixed tree: `a[i] += a[i+8]` (i < 8), `a[i] += a[i+4]` (i < 4),
//!    `a[i] += a[i+2]` (i < 2), result `a[0] + a[1]`.
//!
//! So a quantized model and its F32 export give bit-identical results, and every SIMD level
//! (AVX-512, AVX2, portable scalar with `f32::mul_add`) agrees bit for bit. Matrix products
//! compute each output with the same dot product (prefill equals decode bit for bit); work is
//! split across threads by output rows only, so results do not depend on the thread count.
//! [`reference`] is the scalar oracle the SIMD paths are tested against.

pub mod f16;
pub mod matrix;
pub mod ops;
pub mod pool;
pub mod reference;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_decode;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_decode;

pub use matrix::{KernelError, Matrix};

/// Number of f32 lane accumulators of the contract.
pub const LANES: usize = 16;

/// An instruction-set level for the kernels. All levels give bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimdLevel {
    /// Portable Rust (`f32::mul_add`), the fallback on every target.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512F + AVX-512VL (+ AVX2, FMA, F16C).
    Avx512,
}

impl SimdLevel {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                Self::Avx2.available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx2 | Self::Avx512 => false,
        }
    }

    /// The best level this CPU runs.
    pub fn detect() -> Self {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|l| l.available())
            .unwrap_or(Self::Scalar)
    }

    /// Every level this CPU runs, best last.
    pub fn all_available() -> Vec<Self> {
        [Self::Scalar, Self::Avx2, Self::Avx512]
            .into_iter()
            .filter(|l| l.available())
            .collect()
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SimdLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scalar" => Ok(Self::Scalar),
            "avx2" => Ok(Self::Avx2),
            "avx512" => Ok(Self::Avx512),
            other => Err(format!(
                "unknown SIMD level {other:?} (scalar, avx2, avx512)"
            )),
        }
    }
}

/// The contract's dot product of two f32 vectors of equal length (attention scores use it).
pub fn dot_f32(level: SimdLevel, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.available() => {
            // SAFETY: the level was checked available on this CPU.
            unsafe { avx512::dot_f32(a, b) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: the level was checked available on this CPU.
            unsafe { avx2::dot_f32(a, b) }
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => reference::dot_f32(a, b),
    }
}

/// The contract's dot products of `a` with `out.len()` rows of `b`:
/// `out[j] = a · b[j·ldb .. j·ldb + a.len()]` (attention scores over cached keys).
pub fn dot_rows(level: SimdLevel, a: &[f32], b: &[f32], ldb: usize, out: &mut [f32]) {
    let n = a.len();
    let need = match out.len() {
        0 => return,
        m => (m - 1) * ldb + n,
    };
    assert!(
        b.len() >= need,
        "dot_rows: {} floats given, {need} needed",
        b.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if SimdLevel::Avx512.available() => {
            // SAFETY: level available; b holds every row (asserted).
            unsafe { avx512::dot_rows(a, b.as_ptr(), ldb, out) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: as above.
            unsafe { avx2::dot_rows(a, b.as_ptr(), ldb, out) }
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = reference::dot_f32(a, &b[j * ldb..j * ldb + n]);
            }
        }
    }
}

/// `y = fma(p, v, y)` element-wise (the attention value accumulation); identical on every level.
pub fn axpy(level: SimdLevel, p: f32, v: &[f32], y: &mut [f32]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 | SimdLevel::Avx2 if SimdLevel::Avx2.available() => {
            // SAFETY: AVX2+FMA checked available (both levels use the 256-bit version).
            unsafe { avx2::axpy(p, v, y) }
        }
        SimdLevel::Scalar | SimdLevel::Avx2 | SimdLevel::Avx512 => {
            for (y, &v) in y.iter_mut().zip(v) {
                *y = p.mul_add(v, *y);
            }
        }
    }
}
