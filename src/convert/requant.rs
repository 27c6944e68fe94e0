//! Explicit dtype changes (`--dtype`): which tensors change, and the measured error of each.
//!
//! Rules: `keep` changes nothing. `f32` dequantizes every tensor that has a dequantizer (the
//! export the exact-kernel contract is tested on). `f16`/`bf16` convert tensors of rank ≥ 2
//! (1-d norms and biases stay as they are, as llama.cpp's converter keeps them). A
//! block-quantized target converts rank ≥ 2 tensors whose rows are whole blocks; the others
//! keep their dtype and are listed as kept. Integer tensors never change.

use std::borrow::Cow;
use std::sync::Mutex;

use crate::dtype::GgmlType;
use crate::fault::{self, Fault};
use crate::formats::gguf::GgufValue;
use crate::model::{Model, Tensor};
use crate::quant::{can_dequantize, can_quantize, dequantize, quantize};

use super::ConvertError;

/// What `--dtype` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtypeChoice {
    /// No change: a lossless conversion.
    Keep,
    /// Convert to this type where the rules allow.
    To(GgmlType),
}

impl std::str::FromStr for DtypeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("keep") {
            return Ok(Self::Keep);
        }
        let t: GgmlType = s.parse().map_err(|e| format!("{e}"))?;
        if !can_quantize(t) {
            return Err(format!(
                "cannot convert to {t}: no reference quantizer for it"
            ));
        }
        Ok(Self::To(t))
    }
}

/// One tensor whose dtype changed, with the error measured on its values.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorChange {
    /// GGUF name.
    pub name: String,
    /// Type before.
    pub from: String,
    /// Type after.
    pub to: String,
    /// Largest |new − old| over the tensor's values (NaN-aware: a NaN pair counts as 0, a NaN
    /// against a number as infinity).
    pub max_abs_err: f64,
    /// Mean |new − old|.
    pub mean_abs_err: f64,
    /// Values compared.
    pub n_values: u64,
}

/// The per-tensor target types of one conversion.
pub struct Plan {
    targets: Vec<GgmlType>,
    changes: Mutex<Vec<TensorChange>>,
}

/// Decides each tensor's output type.
pub fn plan(model: &Model, choice: DtypeChoice) -> Result<Plan, ConvertError> {
    let targets = model.tensors.iter().map(|t| target_of(t, choice)).collect();
    Ok(Plan {
        targets,
        changes: Mutex::new(Vec::new()),
    })
}

fn target_of(t: &Tensor, choice: DtypeChoice) -> GgmlType {
    if fault::active(Fault::SilentDequant) && choice == DtypeChoice::Keep && t.dtype.is_quantized()
    {
        return GgmlType::F32;
    }
    let DtypeChoice::To(to) = choice else {
        return t.dtype;
    };
    if t.dtype == to || !can_dequantize(t.dtype) {
        return t.dtype;
    }
    let rank2 = t.ne.iter().skip(1).any(|&d| d > 1);
    match to {
        GgmlType::F32 => to,
        GgmlType::F16 | GgmlType::BF16 if rank2 => to,
        q if q.is_quantized() && rank2 && t.row_len().is_multiple_of(q.block_size() as u64) => q,
        _ => t.dtype,
    }
}

impl Plan {
    /// The tensors as they will be written (types and sizes after the change).
    pub fn tensors(&self, model: &Model) -> Vec<Tensor> {
        model
            .tensors
            .iter()
            .zip(&self.targets)
            .map(|(t, &to)| {
                let mut out = t.clone();
                out.dtype = to;
                out.n_bytes = to.row_bytes(t.n_elements()).unwrap_or(t.n_bytes);
                out
            })
            .collect()
    }

    /// The metadata to write: unchanged (borrowed), except `general.file_type` when every
    /// changed tensor went to one type that has a llama ftype.
    pub fn metadata<'m>(&self, model: &'m Model) -> Cow<'m, [(String, GgufValue)]> {
        let changed: Vec<GgmlType> = model
            .tensors
            .iter()
            .zip(&self.targets)
            .filter(|(t, to)| t.dtype != **to)
            .map(|(_, to)| *to)
            .collect();
        let mut md = Cow::Borrowed(model.metadata.as_slice());
        if fault::active(Fault::DropTokenizer) {
            md.to_mut().retain(|(k, _)| !k.starts_with("tokenizer."));
        }
        if fault::active(Fault::VocabTruncate) {
            for (k, v) in md.to_mut().iter_mut() {
                if let (true, GgufValue::Array(a)) = (
                    k.starts_with("tokenizer.ggml.") && k != "tokenizer.ggml.merges",
                    v,
                ) {
                    a.items.pop();
                }
            }
        }
        if let Some(ftype) = changed.first().and_then(|t| t.llama_ftype()) {
            for (k, v) in md.to_mut().iter_mut() {
                if k == "general.file_type" {
                    *v = GgufValue::U32(ftype);
                }
            }
        }
        md
    }

    /// Writes tensor `i`: its stored bytes, or its values re-encoded in the target type.
    pub fn write_tensor(
        &self,
        model: &Model,
        i: usize,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let (Some(t), Some(&to)) = (model.tensors.get(i), self.targets.get(i)) else {
            return Err(std::io::Error::other(format!("no tensor {i}")));
        };
        let src = model.tensor_data(t);
        if t.dtype == to {
            return match mutated(model, t, i, src) {
                Some(bytes) => w.write_all(&bytes),
                None => w.write_all(src),
            };
        }
        let n = usize::try_from(t.n_elements()).map_err(std::io::Error::other)?;
        let mut values = vec![0f32; n];
        dequantize(t.dtype, src, &mut values)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", t.name)))?;
        let n_bytes = to
            .row_bytes(n as u64)
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or(0);
        let mut out = vec![0u8; n_bytes];
        quantize(to, &values, &mut out)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", t.name)))?;
        let mut back = vec![0f32; n];
        dequantize(to, &out, &mut back)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", t.name)))?;
        let (max, sum) = abs_err(&values, &back);
        if let Ok(mut c) = self.changes.lock() {
            c.push(TensorChange {
                name: t.name.clone(),
                from: t.dtype.name().into(),
                to: to.name().into(),
                max_abs_err: max,
                mean_abs_err: if n == 0 { 0.0 } else { sum / n as f64 },
                n_values: n as u64,
            });
        }
        w.write_all(&out)
    }

    /// The measured changes, in tensor order.
    pub fn take_changes(&self) -> Vec<TensorChange> {
        let mut c = self
            .changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        c.sort_by(|a, b| a.name.cmp(&b.name));
        c
    }
}

/// (max, sum) of |a − b|, NaN-aware.
pub fn abs_err(a: &[f32], b: &[f32]) -> (f64, f64) {
    let mut max = 0f64;
    let mut sum = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (false, false) if x == y => 0.0,
            (false, false) => (f64::from(x) - f64::from(y)).abs(),
            _ => f64::INFINITY,
        };
        max = max.max(d);
        sum += d;
    }
    (max, sum)
}

/// The bytes an active conversion fault writes for tensor `i` instead of `src` (None: none
/// applies). Off by default: one atomic load per tensor.
fn mutated(model: &Model, t: &Tensor, i: usize, src: &[u8]) -> Option<Vec<u8>> {
    let first_f32 = || {
        model
            .tensors
            .iter()
            .position(|u| u.dtype == GgmlType::F32 && u.n_elements() > 1)
            == Some(i)
    };
    match fault::current()? {
        Fault::NanInject | Fault::InfInject if first_f32() => {
            let v = if fault::active(Fault::NanInject) {
                f32::NAN
            } else {
                f32::INFINITY
            };
            let mut b = src.to_vec();
            b.get_mut(4..8)?.copy_from_slice(&v.to_le_bytes());
            Some(b)
        }
        Fault::Requant if t.dtype.is_quantized() && can_quantize(t.dtype) => {
            let n = usize::try_from(t.n_elements()).ok()?;
            let mut values = vec![0f32; n];
            dequantize(t.dtype, src, &mut values).ok()?;
            let mut out = vec![0u8; src.len()];
            quantize(t.dtype, &values, &mut out).ok()?;
            Some(out)
        }
        Fault::QkTranspose
            if t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_k.weight") =>
        {
            let row = usize::try_from(t.dtype.row_bytes(t.row_len())?).ok()?;
            Some(src.chunks(row.max(1)).rev().flatten().copied().collect())
        }
        _ => None,
    }
}
