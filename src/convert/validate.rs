//! `validate FILE`: what a reader accepts can still be a broken model. Structure and
//! dtype/size consistency are enforced by the readers; this adds value checks (NaN, Inf,
//! all-zero tensors) and metadata-vs-shape checks (vocabulary, width, depth).

use rayon::prelude::*;

use super::fingerprint::StatsAcc;
use super::values::for_each_chunk;
use crate::formats::gguf::GgufValue;
use crate::model::Model;
use crate::quant::QuantError;

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Short machine-readable kind (`nan`, `inf`, `all_zero`, `vocab_mismatch`, …).
    pub kind: String,
    /// The tensor or key concerned.
    pub subject: String,
    /// Human-readable detail with the numbers.
    pub detail: String,
}

fn finding(kind: &str, subject: &str, detail: String) -> Finding {
    Finding {
        kind: kind.into(),
        subject: subject.into(),
        detail,
    }
}

/// Value checks on every tensor, in parallel; findings in model order.
fn value_findings(model: &Model) -> Result<Vec<Finding>, QuantError> {
    let per: Vec<Vec<Finding>> = model
        .tensors
        .par_iter()
        .map(|t| {
            let mut acc = StatsAcc::default();
            let mut first_bad: Option<u64> = None;
            let judged = for_each_chunk(model, t, |base, xs| {
                if first_bad.is_none() {
                    if let Some(j) = xs.iter().position(|x| !x.is_finite()) {
                        first_bad = Some(base + j as u64);
                    }
                }
                acc.add(xs);
            })?;
            let mut out = Vec::new();
            if !judged {
                return Ok(out);
            }
            let s = acc.finish();
            if s.nan > 0 {
                out.push(finding(
                    "nan",
                    &t.name,
                    format!(
                        "{} NaN values (first non-finite at index {})",
                        s.nan,
                        first_bad.unwrap_or(0)
                    ),
                ));
            }
            if s.inf > 0 {
                out.push(finding(
                    "inf",
                    &t.name,
                    format!(
                        "{} Inf values (first non-finite at index {})",
                        s.inf,
                        first_bad.unwrap_or(0)
                    ),
                ));
            }
            if s.n > 0 && s.zeros == s.n {
                out.push(finding(
                    "all_zero",
                    &t.name,
                    format!("all {} values are zero", s.n),
                ));
            }
            Ok(out)
        })
        .collect::<Result<_, QuantError>>()?;
    Ok(per.into_iter().flatten().collect())
}

fn meta_u64(model: &Model, key: &str) -> Option<u64> {
    model.get(key).and_then(GgufValue::as_u64)
}

/// Metadata-vs-shape checks.
fn shape_findings(model: &Model) -> Vec<Finding> {
    let mut out = Vec::new();
    let arch = model.arch().unwrap_or_default().to_string();
    let vocab = model
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_array)
        .map(|a| a.items.len() as u64);
    for name in ["token_embd.weight", "output.weight"] {
        let Some(t) = model.tensor(name) else {
            continue;
        };
        let rows = t.ne.get(1).copied().unwrap_or(1);
        if let Some(v) = vocab {
            if rows != v {
                out.push(finding(
                    "vocab_mismatch",
                    name,
                    format!("{rows} rows but tokenizer.ggml.tokens has {v} entries"),
                ));
            }
        }
        if let Some(v) = meta_u64(model, &format!("{arch}.vocab_size")) {
            if rows != v {
                out.push(finding(
                    "vocab_mismatch",
                    name,
                    format!("{rows} rows but {arch}.vocab_size = {v}"),
                ));
            }
        }
        if let Some(h) = meta_u64(model, &format!("{arch}.embedding_length")) {
            if t.row_len() != h {
                out.push(finding(
                    "width_mismatch",
                    name,
                    format!(
                        "rows of {} values but {arch}.embedding_length = {h}",
                        t.row_len()
                    ),
                ));
            }
        }
    }
    if let Some(n) = meta_u64(model, &format!("{arch}.block_count")) {
        let layers = model
            .tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix("blk.")?
                    .split('.')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .map(|m| m + 1);
        if let Some(found) = layers {
            if found != n {
                out.push(finding(
                    "depth_mismatch",
                    &format!("{arch}.block_count"),
                    format!("says {n} layers, tensors cover {found}"),
                ));
            }
        }
    }
    out
}

/// All findings for `model` (empty = valid).
pub fn validate(model: &Model) -> Result<Vec<Finding>, QuantError> {
    let mut f = shape_findings(model);
    f.extend(value_findings(model)?);
    Ok(f)
}
