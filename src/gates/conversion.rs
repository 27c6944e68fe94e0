//! Conversion gates: pairs (F-CONV-X-Y), round trips, idempotence, commutativity, tensor
//! count, layout and determinism. Lossless conversions are judged on raw bytes: a tensor
//! whose dtype changed is a falsification even when every value survived (the seeds' Q4_K →
//! F32 bug kept every value and every logit).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{Fmt, GateCtx, Judgement};
use crate::convert::diff::{diff, DiffReport};
use crate::convert::DtypeChoice;
use crate::metrics;

/// The route from the GGUF source to a file of format `f`.
pub fn route_to(f: Fmt) -> Vec<Fmt> {
    match f {
        Fmt::Gguf => vec![Fmt::Gguf],
        other => vec![Fmt::Gguf, other],
    }
}

fn letters(id: &str) -> Result<(Fmt, Fmt), String> {
    let mut parts = id.trim_start_matches("F-CONV-").chars();
    let from = parts.next().and_then(Fmt::from_letter);
    let _dash = parts.next();
    let to = parts.next().and_then(Fmt::from_letter);
    from.zip(to)
        .ok_or_else(|| format!("{id} names no format pair"))
}

/// First differing byte of two files (None: identical), with both sizes.
pub fn compare_files(a: &Path, b: &Path) -> Result<(Option<u64>, u64, u64), String> {
    let x = std::fs::read(a).map_err(|e| format!("{}: {e}", a.display()))?;
    let y = std::fs::read(b).map_err(|e| format!("{}: {e}", b.display()))?;
    let first = x.iter().zip(&y).position(|(p, q)| p != q).map(|p| p as u64);
    let first = first.or_else(|| (x.len() != y.len()).then_some(x.len().min(y.len()) as u64));
    Ok((first, x.len() as u64, y.len() as u64))
}

/// Metrics and the verdict text of a model diff (input vs output).
pub fn diff_metrics(r: &DiffReport) -> (bool, String, Map<String, Value>) {
    let dtype_changes: Vec<String> = r
        .tensors
        .iter()
        .filter(|t| t.dtype.0 != t.dtype.1)
        .map(|t| format!("{}: {} -> {}", t.name, t.dtype.0, t.dtype.1))
        .collect();
    let differing: Vec<&crate::convert::diff::TensorDiff> = r
        .tensors
        .iter()
        .filter(|t| t.differs || t.dtype.0 != t.dtype.1)
        .collect();
    let mut m = metrics! {
        "tensors_compared" => r.n_matched,
        "tensors_differing" => differing.len(),
        "max_abs_diff" => finite_or_str(r.max_abs),
        "tolerance" => r.tolerance,
        "missing_tensors" => r.missing,
        "extra_tensors" => r.extra,
        "metadata_differences" => r.metadata.iter().map(|d| json!({"key": d.key, "input": d.a, "output": d.b})).collect::<Vec<_>>(),
        "dtype_changes" => dtype_changes,
    };
    if let Some(t) = differing.first() {
        m.insert(
            "first_difference".into(),
            json!({
                "tensor": t.name, "dtype": [t.dtype.0, t.dtype.1], "shape": [t.shape.0, t.shape.1],
                "first_byte_offset": t.first_byte_diff, "first_index": t.first_index,
                "values": t.first_values.map(|(a, b)| [a.to_string(), b.to_string()]),
                "max_abs_diff": finite_or_str(t.max_abs), "n_differ": t.n_differ, "nan": [t.nan.0, t.nan.1], "inf": [t.inf.0, t.inf.1],
            }),
        );
    }
    let falsified = r.differs() || !differing.is_empty();
    let reason = if !falsified {
        format!(
            "{} tensors and every metadata key identical (max|Δ| {:e})",
            r.n_matched, r.max_abs
        )
    } else {
        let mut parts = Vec::new();
        if let Some(t) = differing.first() {
            parts.push(format!(
                "{} tensor(s) differ, first {} ({} -> {}, max|Δ| {:.3e}, first byte {:?})",
                differing.len(),
                t.name,
                t.dtype.0,
                t.dtype.1,
                t.max_abs,
                t.first_byte_diff
            ));
        }
        if !r.missing.is_empty() {
            parts.push(format!(
                "{} tensor(s) lost, first {}",
                r.missing.len(),
                r.missing[0]
            ));
        }
        if !r.extra.is_empty() {
            parts.push(format!(
                "{} unexpected tensor(s), first {}",
                r.extra.len(),
                r.extra[0]
            ));
        }
        if let Some(d) = r.metadata.first() {
            parts.push(format!(
                "{} metadata difference(s), first key {}",
                r.metadata.len(),
                d.key
            ));
        }
        parts.join("; ")
    };
    (falsified, reason, m)
}

fn finite_or_str(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(x.to_string())
    }
}

fn file_verdict(a: &Path, b: &Path, what: &str, ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let (first, la, lb) = compare_files(a, b)?;
    let mut m = metrics! { "bytes_a" => la, "bytes_b" => lb, "first_differing_byte" => first };
    match first {
        None => Ok(Judgement::verdict(
            false,
            format!("{what}: {la} bytes identical"),
            m,
        )),
        Some(off) => {
            let ma = ctx.art.model(a)?;
            let mb = ctx.art.model(b)?;
            let r = diff(&ma, &mb, 0.0, false).map_err(|e| e.to_string())?;
            let (_, why, dm) = diff_metrics(&r);
            m.extend(dm);
            Ok(Judgement::verdict(
                true,
                format!("{what}: files differ from byte {off} ({la} vs {lb} bytes): {why}"),
                m,
            ))
        }
    }
}

/// F-CONV-X-Y.
pub fn pair(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let (from, to) = letters(ctx.gate_id)?;
    for f in [from, to] {
        if !ctx.formats.contains(&f) {
            return Ok(Judgement::skipped(format!(
                "format {} is not in the playbook's formats",
                f.ext()
            )));
        }
    }
    let start = route_to(from);
    let input = ctx.art.route(&start)?;
    // A converted input (every format but the GGUF source) that our strict reader refuses is
    // already a conversion that did not preserve the model.
    let mi = match ctx.art.model(&input) {
        Ok(m) => m,
        Err(e) if from != Fmt::Gguf => return Ok(unreadable(ctx, &input, &start, &e)),
        Err(e) => return Err(e),
    };
    let mut r = start.clone();
    r.push(to);
    let output = if from == to {
        ctx.art.convert_fresh(&input, to, DtypeChoice::Keep)?.0
    } else {
        ctx.art.route(&r)?
    };
    if from == to {
        return file_verdict(
            &input,
            &output,
            &format!("{} rewritten as {}", from.ext(), to.ext()),
            ctx,
        );
    }
    let mo = match ctx.art.model(&output) {
        Ok(m) => m,
        Err(e) => return Ok(unreadable(ctx, &output, &r, &e)),
    };
    let report = diff(&mi, &mo, ctx.tolerance, false).map_err(|e| e.to_string())?;
    let (falsified, reason, mut m) = diff_metrics(&report);
    let (bi, bo) = (file_len(&input), file_len(&output));
    m.insert("bytes_in".into(), json!(bi));
    m.insert("bytes_out".into(), json!(bo));
    m.insert("size_ratio".into(), json!(bo as f64 / bi.max(1) as f64));
    Ok(Judgement::verdict(
        falsified,
        format!("{} -> {}: {reason}", from.ext(), to.ext()),
        m,
    ))
}

/// Falsified: the file a conversion along `route` wrote does not read back (`why`: the
/// reader's error, which names the tensor and offset it refused). The run's temp dir is cut
/// from the text so the evidence is the same in every run.
fn unreadable(ctx: &GateCtx<'_>, path: &Path, route: &[Fmt], why: &str) -> Judgement {
    let dir = format!("{}/", ctx.art.dir().display());
    let why = why.replace(&dir, "");
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let names: Vec<&str> = route.iter().map(|f| f.ext()).collect();
    let route = names.join(" -> ");
    Judgement::verdict(
        true,
        format!("{route}: the converted file {file} does not read back: {why}"),
        metrics! { "route" => route, "unreadable_file" => file, "reader_error" => why },
    )
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// F-CONV-RT-001..003.
pub fn round_trip(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    use Fmt::{Apr as A, Gguf as G, Safetensors as S};
    let (start, end): (Vec<Fmt>, Vec<Fmt>) = match ctx.gate_id {
        "F-CONV-RT-001" => (vec![G], vec![G, A, S, G]),
        "F-CONV-RT-002" => (vec![G, S], vec![G, S, A, G, S]),
        _ => (vec![G, S], vec![G, S, A, G, A, S]),
    };
    let names: Vec<&str> = end.iter().skip(start.len() - 1).map(|f| f.ext()).collect();
    let (a, b) = (ctx.art.route(&start)?, ctx.art.route(&end)?);
    file_verdict(&a, &b, &names.join("->"), ctx)
}

/// F-CONV-IDEM-001: GGUF→APR twice.
pub fn idempotence(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let first = ctx.art.route(&[Fmt::Gguf, Fmt::Apr])?;
    let (second, _) = ctx
        .art
        .convert_fresh(&ctx.art.source, Fmt::Apr, DtypeChoice::Keep)?;
    file_verdict(&first, &second, "gguf->apr twice", ctx)
}

/// F-CONV-COM-001: GGUF→APR equals GGUF→SafeTensors→APR.
pub fn commutativity(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let direct = ctx.art.route(&[Fmt::Gguf, Fmt::Apr])?;
    let via = ctx.art.route(&[Fmt::Gguf, Fmt::Safetensors, Fmt::Apr])?;
    file_verdict(&direct, &via, "gguf->apr vs gguf->safetensors->apr", ctx)
}

/// F-STAB-001: GGUF→SafeTensors twice, fresh.
pub fn determinism(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let (a, _) = ctx
        .art
        .convert_fresh(&ctx.art.source, Fmt::Safetensors, DtypeChoice::Keep)?;
    let (b, _) = ctx
        .art
        .convert_fresh(&ctx.art.source, Fmt::Safetensors, DtypeChoice::Keep)?;
    file_verdict(&a, &b, "gguf->safetensors in two runs", ctx)
}

/// F-GOLDEN-RULE-002: every format holds as many tensors as the source.
pub fn tensor_count(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let n = ctx.art.model(&ctx.art.source)?.tensors.len();
    let mut counts = Map::new();
    let mut bad = Vec::new();
    for f in ctx.formats {
        let m = ctx.art.route_model(&route_to(*f))?;
        counts.insert(f.ext().into(), json!(m.tensors.len()));
        if m.tensors.len() != n {
            bad.push(format!("{} holds {} tensors", f.ext(), m.tensors.len()));
        }
    }
    let m = metrics! { "source_tensors" => n, "tensors_by_format" => counts };
    let reason = if bad.is_empty() {
        format!("{n} tensors in every format")
    } else {
        format!("source holds {n}; {}", bad.join(", "))
    };
    Ok(Judgement::verdict(!bad.is_empty(), reason, m))
}

/// F-LAYOUT-002: no converted tensor is transposed or reordered: every 2-D tensor keeps its
/// row-major shape and its bytes.
pub fn layout(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let src = ctx.art.model(&ctx.art.source)?;
    let mut bad = Vec::new();
    let mut checked = 0usize;
    for f in ctx.formats.iter().filter(|f| **f != Fmt::Gguf) {
        let m = ctx.art.route_model(&route_to(*f))?;
        for t in src
            .tensors
            .iter()
            .filter(|t| t.ne.iter().filter(|d| **d > 1).count() >= 2)
        {
            checked += 1;
            match m.tensor(&t.name) {
                None => bad.push(format!("{}: {} missing", f.ext(), t.name)),
                Some(u) if u.shape() != t.shape() => bad.push(format!(
                    "{}: {} shape {:?} != {:?}",
                    f.ext(),
                    t.name,
                    u.shape(),
                    t.shape()
                )),
                Some(u) if m.tensor_data(u) != src.tensor_data(t) => {
                    bad.push(format!("{}: {} rows reordered or changed", f.ext(), t.name))
                }
                Some(_) => {}
            }
        }
    }
    let reason = if bad.is_empty() {
        format!("{checked} 2-D tensors keep their shape and rows in every format")
    } else {
        format!(
            "{} tensor(s) transposed or reordered, first {}",
            bad.len(),
            bad[0]
        )
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "tensors_checked" => checked, "problems" => bad },
    ))
}
