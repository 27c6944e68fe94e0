//! `diff A B`: two models of any formats, tensors matched by canonical (GGUF) name, shapes in
//! canonical order. Equal dtypes compare raw bytes; otherwise (or with a tolerance > 0) the
//! dequantized values, chunk by chunk. Missing/extra tensors and metadata differences listed.

use rayon::prelude::*;

use super::fingerprint::StatsAcc;
use super::values::Chunking;
use crate::model::kv_json::encode_kv;
use crate::model::{Model, Tensor};
use crate::quant::QuantError;

/// One matched tensor's comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorDiff {
    /// GGUF name.
    pub name: String,
    /// Types (A, B).
    pub dtype: (String, String),
    /// Row-major shapes (A, B).
    pub shape: (Vec<u64>, Vec<u64>),
    /// Raw bytes equal (only meaningful for equal dtypes and shapes).
    pub raw_equal: bool,
    /// First differing byte offset within the tensor, for equal dtypes.
    pub first_byte_diff: Option<u64>,
    /// Largest |a − b| over the values (NaN vs number = inf; NaN vs NaN = 0).
    pub max_abs: f64,
    /// Mean |a − b|.
    pub mean_abs: f64,
    /// Values that differ (bitwise, NaN = NaN).
    pub n_differ: u64,
    /// First differing value index (row-major).
    pub first_index: Option<u64>,
    /// Values (a, b) at `first_index`.
    pub first_values: Option<(f32, f32)>,
    /// NaN counts (A, B).
    pub nan: (u64, u64),
    /// Inf counts (A, B).
    pub inf: (u64, u64),
    /// Whether this tensor differs beyond the tolerance.
    pub differs: bool,
}

/// A metadata key whose value differs (or exists on one side only).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MetaDiff {
    /// Key.
    pub key: String,
    /// A's value (JSON encoding), `None` when absent.
    pub a: Option<String>,
    /// B's value.
    pub b: Option<String>,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DiffReport {
    /// Tolerance on max|Δ| used.
    pub tolerance: f64,
    /// Matched tensors that differ (all matched tensors when `all` was asked).
    pub tensors: Vec<TensorDiff>,
    /// Matched tensor count.
    pub n_matched: usize,
    /// In A, not in B.
    pub missing: Vec<String>,
    /// In B, not in A.
    pub extra: Vec<String>,
    /// Metadata differences.
    pub metadata: Vec<MetaDiff>,
    /// Largest max|Δ| over matched tensors.
    pub max_abs: f64,
}

impl DiffReport {
    /// Whether anything differs beyond the tolerance.
    pub fn differs(&self) -> bool {
        !self.missing.is_empty()
            || !self.extra.is_empty()
            || !self.metadata.is_empty()
            || self.tensors.iter().any(|t| t.differs)
    }
}

fn values_diff(
    a: &Model,
    ta: &Tensor,
    b: &Model,
    tb: &Tensor,
    d: &mut TensorDiff,
) -> Result<(), QuantError> {
    let (Some(ca), Some(cb)) = (Chunking::of(ta), Chunking::of(tb)) else {
        return Ok(());
    };
    let (ba, bb) = (a.tensor_data(ta), b.tensor_data(tb));
    let mut xa = vec![0f32; ca.max_values()];
    let mut xb = vec![0f32; cb.max_values()];
    let (mut sa, mut sb) = (StatsAcc::default(), StatsAcc::default());
    let mut sum = 0f64;
    let mut n = 0u64;
    for i in 0..ca.n_chunks().min(cb.n_chunks()) {
        let va = ca.chunk(ta, ba, i, &mut xa)?;
        let vb = cb.chunk(tb, bb, i, &mut xb)?;
        sa.add(va);
        sb.add(vb);
        let base = ca.first_index(i);
        for (j, (&x, &y)) in va.iter().zip(vb).enumerate() {
            n += 1;
            if x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()) {
                continue;
            }
            let delta = if x.is_nan() || y.is_nan() {
                f64::INFINITY
            } else {
                (f64::from(x) - f64::from(y)).abs()
            };
            d.n_differ += 1;
            sum += delta;
            if delta > d.max_abs || d.max_abs.is_nan() {
                d.max_abs = delta;
            }
            if d.first_index.is_none() {
                d.first_index = Some(base + j as u64);
                d.first_values = Some((x, y));
            }
        }
    }
    let (sa, sb) = (sa.finish(), sb.finish());
    d.nan = (sa.nan, sb.nan);
    d.inf = (sa.inf, sb.inf);
    d.mean_abs = if n == 0 { 0.0 } else { sum / n as f64 };
    Ok(())
}

fn tensor_diff(
    a: &Model,
    ta: &Tensor,
    b: &Model,
    tb: &Tensor,
    tolerance: f64,
) -> Result<TensorDiff, QuantError> {
    let mut d = TensorDiff {
        name: ta.name.clone(),
        dtype: (ta.dtype.name().into(), tb.dtype.name().into()),
        shape: (ta.shape(), tb.shape()),
        raw_equal: false,
        first_byte_diff: None,
        max_abs: 0.0,
        mean_abs: 0.0,
        n_differ: 0,
        first_index: None,
        first_values: None,
        nan: (0, 0),
        inf: (0, 0),
        differs: false,
    };
    if d.shape.0 != d.shape.1 {
        d.differs = true;
        return Ok(d);
    }
    if ta.dtype == tb.dtype {
        let (ra, rb) = (a.tensor_data(ta), b.tensor_data(tb));
        d.raw_equal = ra == rb;
        d.first_byte_diff = ra
            .iter()
            .zip(rb)
            .position(|(x, y)| x != y)
            .map(|p| p as u64);
    }
    values_diff(a, ta, b, tb, &mut d)?;
    d.differs = if ta.dtype == tb.dtype && tolerance == 0.0 {
        !d.raw_equal
    } else {
        let within = matches!(
            d.max_abs.partial_cmp(&tolerance),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        );
        !within || d.nan.0 != d.nan.1 || d.inf.0 != d.inf.1
    };
    Ok(d)
}

fn meta_diff(a: &Model, b: &Model) -> Vec<MetaDiff> {
    let enc = |m: &Model| -> Vec<(String, String)> {
        let j = encode_kv(&m.metadata);
        j.as_array()
            .into_iter()
            .flatten()
            .zip(&m.metadata)
            .map(|(v, (k, _))| (k.clone(), v.to_string()))
            .collect()
    };
    let (ea, eb) = (enc(a), enc(b));
    let find =
        |e: &[(String, String)], k: &str| e.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    for (k, va) in &ea {
        match find(&eb, k) {
            Some(vb) if &vb == va => {}
            other => out.push(MetaDiff {
                key: k.clone(),
                a: Some(clip(va)),
                b: other.map(|v| clip(&v)),
            }),
        }
    }
    for (k, vb) in &eb {
        if find(&ea, k).is_none() {
            out.push(MetaDiff {
                key: k.clone(),
                a: None,
                b: Some(clip(vb)),
            });
        }
    }
    out
}

fn clip(s: &str) -> String {
    if s.len() <= 200 {
        s.to_string()
    } else {
        format!(
            "{}… ({} bytes)",
            s.chars().take(160).collect::<String>(),
            s.len()
        )
    }
}

/// Compares `a` with `b`; `all` keeps equal tensors in the report too.
pub fn diff(a: &Model, b: &Model, tolerance: f64, all: bool) -> Result<DiffReport, QuantError> {
    let missing: Vec<String> = a
        .tensors
        .iter()
        .filter(|t| b.tensor(&t.name).is_none())
        .map(|t| t.name.clone())
        .collect();
    let extra: Vec<String> = b
        .tensors
        .iter()
        .filter(|t| a.tensor(&t.name).is_none())
        .map(|t| t.name.clone())
        .collect();
    let pairs: Vec<(&Tensor, &Tensor)> = a
        .tensors
        .iter()
        .filter_map(|t| b.tensor(&t.name).map(|u| (t, u)))
        .collect();
    let diffs: Vec<TensorDiff> = pairs
        .par_iter()
        .map(|(ta, tb)| tensor_diff(a, ta, b, tb, tolerance))
        .collect::<Result<_, _>>()?;
    let max_abs = diffs.iter().map(|d| d.max_abs).fold(0.0, f64::max);
    Ok(DiffReport {
        tolerance,
        n_matched: diffs.len(),
        tensors: diffs.into_iter().filter(|d| all || d.differs).collect(),
        missing,
        extra,
        metadata: meta_diff(a, b),
        max_abs,
    })
}
