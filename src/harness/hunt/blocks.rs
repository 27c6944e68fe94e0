//! The block property: every dequantization path agrees with the reference, bit for bit.
//!
//! Paths, per chunk of blocks (64 blocks; one row of `plain_row` elements for F32/F16/BF16):
//! - `scalar-reference` — `quant::dequantize`, compared with the independent restatement
//!   [`super::spec`] where one exists (expected = spec bits, actual = reference bits);
//! - `<level>-decode` — `Matrix::decode_row` at every SIMD level this CPU runs (AVX2, AVX-512),
//!   against the reference values;
//! - `<level>-matvec` — the fused decode + dot product `Matrix::matvec_rows` (one block per row;
//!   one `plain_row`-element row for plain types, so the tail path runs too), against the same
//!   level's contract dot product `kernels::dot_f32` over the reference values;
//! - `<level>-dot` — that contract dot product against the scalar statement
//!   `kernels::reference::dot_f32`, on the first row of every chunk.
//!
//! Values are compared as f32 bit patterns. NaN payloads are compared exactly for the plain
//! types (F32/F16/BF16: a NaN is converted, never computed, so its payload must survive every
//! path). Where a NaN is *computed* — a quantized value from a NaN or infinite scale, a dot
//! product — any NaN equals any NaN unless `strict_nan` is set: when several operands are NaN,
//! or ∞·0 creates the default NaN, the NaN an operation returns depends on operand order,
//! which the compiler may commute (`a + b`), and Rust (RFC 3514) and C leave that payload
//! unspecified. ggml rejects such blocks (`ggml_validate_row_data`). The check stops at the
//! first mismatch and says which block, value, path and bits — which is what the
//! shrinker minimises.

use std::fmt;

use crate::dtype::GgmlType;
use crate::infer::kernels::{self, Matrix, SimdLevel};
use crate::quant::{can_dequantize, dequantize};

use super::gen::Rng;
use super::spec;

/// Blocks per chunk for block-quantized types.
pub const CHUNK_BLOCKS: usize = 64;

/// One differing value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// Block (element, for plain types) index within the checked bytes where the difference is.
    pub unit: usize,
    /// The path that differs (see the module doc).
    pub path: String,
    /// What is compared: `value` (element `index` of block `unit`) or `dot` (the dot product
    /// of the row starting at block `unit` with the hunt's activation vector).
    pub what: &'static str,
    /// Element index within the block (`value`), 0 for `dot`.
    pub index: usize,
    /// Expected f32 bits.
    pub expected: u32,
    /// Actual f32 bits.
    pub actual: u32,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} of block {}: expected {:#010x} ({:e}), got {:#010x} ({:e})",
            self.path,
            self.what,
            self.index,
            self.unit,
            self.expected,
            f32::from_bits(self.expected),
            self.actual,
            f32::from_bits(self.actual)
        )
    }
}

/// The paths the check runs on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// SIMD levels other than scalar that this CPU runs.
    pub levels: Vec<SimdLevel>,
    /// Compare computed NaNs by payload too (see the module doc).
    pub strict_nan: bool,
}

impl Paths {
    /// Every SIMD level this CPU runs (the scalar level is the reference itself).
    pub fn detect() -> Self {
        Self {
            levels: SimdLevel::all_available()
                .into_iter()
                .filter(|l| *l != SimdLevel::Scalar)
                .collect(),
            strict_nan: false,
        }
    }

    /// Path names checked for `t`.
    pub fn names(&self, t: GgmlType) -> Vec<String> {
        let mut v = Vec::new();
        if spec::has_spec(t) {
            v.push("scalar-reference (vs spec)".to_string());
        }
        for l in &self.levels {
            v.push(format!("{l}-decode"));
            v.push(format!("{l}-matvec"));
        }
        v
    }
}

/// Reusable buffers of one worker.
#[derive(Default)]
pub struct Scratch {
    reference: Vec<f32>,
    alt: Vec<f32>,
    one: Vec<f32>,
    dots: Vec<f32>,
    want: Vec<f32>,
    x: Vec<f32>,
}

/// The activation vector of a batch: `n` tame floats in [-1, 1) from `seed`.
fn fill_x(x: &mut Vec<f32>, n: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x0005_EED0_FAC7);
    x.clear();
    x.extend((0..n).map(|_| rng.unit_f32()));
}

/// Units (blocks, or elements for plain types) per chunk, and per matvec row.
pub fn chunk_shape(t: GgmlType, plain_row: usize) -> (usize, usize) {
    if t.block_size() == 1 {
        let r = plain_row.max(1);
        (r, r)
    } else {
        (CHUNK_BLOCKS, 1)
    }
}

fn mismatch(
    unit: usize,
    path: String,
    what: &'static str,
    index: usize,
    e: f32,
    a: f32,
) -> Mismatch {
    Mismatch {
        unit,
        path,
        what,
        index,
        expected: e.to_bits(),
        actual: a.to_bits(),
    }
}

/// Computed values agree: same bits, or both NaN (see the module doc).
pub fn same_dot(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// First index where the values differ: by bits, or (`nan_class`) treating NaNs as equal.
fn first_diff(a: &[f32], b: &[f32], nan_class: bool) -> Option<usize> {
    if nan_class {
        a.iter().zip(b).position(|(x, y)| !same_dot(*x, *y))
    } else {
        a.iter()
            .zip(b)
            .position(|(x, y)| x.to_bits() != y.to_bits())
    }
}

/// Checks every path on `bytes` (whole blocks of `t`). `x_seed` seeds the activation vector;
/// `plain_row` is the row length used for plain types. Types without a dequantizer pass.
pub fn check(
    t: GgmlType,
    bytes: &[u8],
    x_seed: u64,
    plain_row: usize,
    paths: &Paths,
    s: &mut Scratch,
) -> Result<(), Mismatch> {
    if !can_dequantize(t) {
        return Ok(());
    }
    let (ts, bs) = (t.type_size(), t.block_size());
    let (chunk_units, row_units) = chunk_shape(t, plain_row);
    fill_x(&mut s.x, row_units * bs, x_seed);
    for (c, chunk) in bytes.chunks(chunk_units * ts).enumerate() {
        check_chunk(t, chunk, c * chunk_units, row_units, paths, s)?;
    }
    Ok(())
}

fn check_chunk(
    t: GgmlType,
    chunk: &[u8],
    first: usize,
    row_units: usize,
    paths: &Paths,
    s: &mut Scratch,
) -> Result<(), Mismatch> {
    let (ts, bs) = (t.type_size(), t.block_size());
    let nan_class = bs > 1 && !paths.strict_nan;
    let units = chunk.len() / ts;
    let n = units * bs;
    s.reference.resize(n, 0.0);
    s.alt.resize(n, 0.0);
    let err = |unit: usize, path: &str, detail: String| Mismatch {
        unit,
        path: format!("{path}: {detail}"),
        what: "error",
        index: 0,
        expected: 0,
        actual: 0,
    };
    dequantize(t, chunk, &mut s.reference)
        .map_err(|e| err(first, "scalar-reference", e.to_string()))?;
    // The independent restatement.
    s.one.resize(bs, 0.0);
    for (u, block) in chunk.chunks_exact(ts).enumerate() {
        if !spec::dequantize_block(t, block, &mut s.one) {
            break;
        }
        let got = &s.reference[u * bs..(u + 1) * bs];
        if let Some(i) = first_diff(&s.one, got, nan_class) {
            let path = "scalar-reference".to_string();
            return Err(mismatch(first + u, path, "value", i, s.one[i], got[i]));
        }
    }
    // Decode paths: the chunk as one row.
    for &level in &paths.levels {
        let m = Matrix::new("hunt", t, n, 1, chunk)
            .map_err(|e| err(first, &format!("{level}-decode"), e.to_string()))?;
        m.decode_row(level, 0, &mut s.alt)
            .map_err(|e| err(first, &format!("{level}-decode"), e.to_string()))?;
        if let Some(i) = first_diff(&s.reference, &s.alt, nan_class) {
            let path = format!("{level}-decode");
            return Err(mismatch(
                first + i / bs,
                path,
                "value",
                i % bs,
                s.reference[i],
                s.alt[i],
            ));
        }
    }
    // Fused decode + dot, one row per `row_units` units, against the contract's dot product of
    // the reference values (computed at the best level; every level's dot product is checked
    // against the scalar statement on the chunk's first row).
    let Some(&best) = paths.levels.last() else {
        return Ok(());
    };
    let n_in = row_units * bs;
    let rows = units / row_units;
    if rows == 0 {
        return Ok(());
    }
    let x = &s.x[..n_in];
    let same = |a: f32, b: f32| same_dot(a, b) && (!paths.strict_nan || a.to_bits() == b.to_bits());
    s.want.clear();
    for r in 0..rows {
        s.want.push(kernels::dot_f32(
            best,
            &s.reference[r * n_in..(r + 1) * n_in],
            x,
        ));
    }
    let scalar = kernels::reference::dot_f32(&s.reference[..n_in], x);
    s.dots.resize(rows, 0.0);
    for &level in &paths.levels {
        let w0 = kernels::dot_f32(level, &s.reference[..n_in], x);
        if !same(scalar, w0) {
            return Err(mismatch(
                first,
                format!("{level}-dot"),
                "dot",
                0,
                scalar,
                w0,
            ));
        }
        let mv = Matrix::new("hunt", t, n_in, rows, &chunk[..rows * row_units * ts])
            .map_err(|e| err(first, &format!("{level}-matvec"), e.to_string()))?;
        mv.matvec_rows(level, x, 0, &mut s.dots);
        for (r, (&want, &got)) in s.want.iter().zip(&s.dots).enumerate() {
            if !same(want, got) {
                let path = format!("{level}-matvec");
                return Err(mismatch(first + r * row_units, path, "dot", 0, want, got));
            }
        }
    }
    Ok(())
}

/// The scalar contract's dot product of the matvec row starting at block `unit` of `bytes`
/// (reference values) with the activation vector of `x_seed` — what a `dot` mismatch recorded.
pub fn reference_dot(
    t: GgmlType,
    bytes: &[u8],
    unit: usize,
    x_seed: u64,
    plain_row: usize,
) -> Option<f32> {
    let (ts, bs) = (t.type_size(), t.block_size());
    let (_, row_units) = chunk_shape(t, plain_row);
    let row = bytes.get(unit * ts..(unit + row_units) * ts)?;
    let mut w = vec![0f32; row_units * bs];
    dequantize(t, row, &mut w).ok()?;
    let mut x = Vec::new();
    fill_x(&mut x, row_units * bs, x_seed);
    Some(kernels::reference::dot_f32(&w, &x))
}
