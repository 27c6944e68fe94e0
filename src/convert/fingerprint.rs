//! Per-tensor fingerprints: sha256 of the raw bytes and of the dequantized little-endian f32
//! values, plus value statistics. The canonical name is the GGUF name and the canonical row
//! order GGUF's, so the same values in any format give the same f32 hash.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::values::for_each_chunk;
use crate::model::{Model, Tensor};
use crate::quant::QuantError;

/// Value statistics of one tensor (over the dequantized f32 values; NaN/Inf excluded from the
/// moments and extremes, counted apart).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Mean of the finite values.
    pub mean: f64,
    /// Population standard deviation of the finite values.
    pub std: f64,
    /// Smallest finite value (0 when none).
    pub min: f64,
    /// Largest finite value (0 when none).
    pub max: f64,
    /// NaN count.
    pub nan: u64,
    /// ±Inf count.
    pub inf: u64,
    /// Exact zeros (either sign).
    pub zeros: u64,
    /// Values seen.
    pub n: u64,
}

/// Accumulates [`Stats`] in index order (deterministic).
#[derive(Default)]
pub struct StatsAcc {
    sum: f64,
    sumsq: f64,
    finite: u64,
    s: Stats,
    any: bool,
}

impl StatsAcc {
    /// Adds values.
    pub fn add(&mut self, xs: &[f32]) {
        for &x in xs {
            self.s.n += 1;
            if x.is_nan() {
                self.s.nan += 1;
                continue;
            }
            if x.is_infinite() {
                self.s.inf += 1;
                continue;
            }
            if x == 0.0 {
                self.s.zeros += 1;
            }
            let v = f64::from(x);
            self.sum += v;
            self.sumsq += v * v;
            self.finite += 1;
            if !self.any || v < self.s.min {
                self.s.min = v;
            }
            if !self.any || v > self.s.max {
                self.s.max = v;
            }
            self.any = true;
        }
    }
    /// The statistics.
    pub fn finish(mut self) -> Stats {
        if self.finite > 0 {
            let n = self.finite as f64;
            self.s.mean = self.sum / n;
            self.s.std = (self.sumsq / n - self.s.mean * self.s.mean).max(0.0).sqrt();
        }
        self.s
    }
}

/// One tensor's fingerprint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorPrint {
    /// GGUF name.
    pub name: String,
    /// Stored type.
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// sha256 of the stored bytes.
    pub sha256_raw: String,
    /// sha256 of the dequantized values as little-endian f32 (`None`: no dequantizer).
    pub sha256_f32: Option<String>,
    /// Statistics of the dequantized values (`None`: no dequantizer).
    pub stats: Option<Stats>,
}

/// Lower-case hex of a digest.
pub fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that only hashes (sha256) what is written to it: for tensors produced by a
/// `write_tensor`-style callback, hashed without being held in memory.
#[derive(Default)]
pub struct Sha256Sink(Sha256);

impl Sha256Sink {
    /// The lower-case hex digest of everything written.
    pub fn hex_digest(self) -> String {
        hex(self.0.finalize())
    }
}

impl std::io::Write for Sha256Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fingerprints one tensor.
pub fn fingerprint_tensor(model: &Model, t: &Tensor) -> Result<TensorPrint, QuantError> {
    let raw = hex(Sha256::digest(model.tensor_data(t)));
    let mut h = Sha256::new();
    let mut acc = StatsAcc::default();
    let mut le = Vec::new();
    let ok = for_each_chunk(model, t, |_, xs| {
        le.clear();
        le.extend(xs.iter().flat_map(|x| x.to_le_bytes()));
        h.update(&le);
        acc.add(xs);
    })?;
    Ok(TensorPrint {
        name: t.name.clone(),
        dtype: t.dtype.name().to_string(),
        shape: t.shape(),
        sha256_raw: raw,
        sha256_f32: ok.then(|| hex(h.finalize())),
        stats: ok.then(|| acc.finish()),
    })
}

/// Fingerprints every tensor (in parallel; output in model order).
pub fn fingerprint(model: &Model) -> Result<Vec<TensorPrint>, QuantError> {
    model
        .tensors
        .par_iter()
        .map(|t| fingerprint_tensor(model, t))
        .collect()
}
