//! Rosetta gates: the same model in every format has the same per-tensor fingerprints
//! (sha256 of raw bytes and of dequantized f32) and statistics; and the F32 export holds
//! exactly the dequantized values (F-QUANT-002, the export path against the dequantizer).

use std::collections::BTreeMap;

use super::conversion::route_to;
use super::{Fmt, GateCtx, Judgement};

use crate::convert::fingerprint::{Sha256Sink, TensorPrint};
use crate::convert::requant;
use crate::convert::DtypeChoice;
use crate::dtype::GgmlType;
use crate::metrics;

fn prints(ctx: &GateCtx<'_>, f: Fmt) -> Result<BTreeMap<String, TensorPrint>, String> {
    let prints = ctx.art.fingerprints(&ctx.art.route(&route_to(f))?)?;
    Ok(prints.iter().map(|p| (p.name.clone(), p.clone())).collect())
}

fn compare(
    ctx: &GateCtx<'_>,
    check: &dyn Fn(&TensorPrint, &TensorPrint) -> Option<String>,
) -> Result<Judgement, String> {
    let base = prints(ctx, Fmt::Gguf)?;
    let mut bad = Vec::new();
    for f in ctx.formats.iter().filter(|f| **f != Fmt::Gguf) {
        let other = prints(ctx, *f)?;
        for (name, p) in &base {
            match other.get(name) {
                None => bad.push(format!("{}: {name} missing", f.ext())),
                Some(q) => {
                    if let Some(why) = check(p, q) {
                        bad.push(format!("{}: {name}: {why}", f.ext()));
                    }
                }
            }
        }
    }
    let reason = if bad.is_empty() {
        format!(
            "{} tensors agree across {} formats",
            base.len(),
            ctx.formats.len()
        )
    } else {
        format!("{} disagreement(s), first {}", bad.len(), bad[0])
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "tensors" => base.len(), "disagreements" => bad },
    ))
}

/// F-ROSETTA-FP-001.
pub fn fingerprints(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    compare(ctx, &|p, q| {
        if p.sha256_raw != q.sha256_raw {
            Some(format!(
                "raw sha256 {} != {}",
                &p.sha256_raw[..16],
                &q.sha256_raw[..16]
            ))
        } else if p.sha256_f32 != q.sha256_f32 {
            Some("dequantized f32 sha256 differs".into())
        } else {
            None
        }
    })
}

/// F-ROSETTA-STATS-001 (relative tolerance on mean/std/min/max; counts exact).
pub fn stats(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let tol = ctx.tolerance;
    compare(ctx, &|p, q| {
        let (Some(a), Some(b)) = (&p.stats, &q.stats) else {
            return (p.stats.is_some() != q.stats.is_some())
                .then(|| "stats on one side only".into());
        };
        let close = |x: f64, y: f64| (x - y).abs() <= tol * x.abs().max(y.abs()) || x == y;
        if (a.nan, a.inf, a.zeros, a.n) != (b.nan, b.inf, b.zeros, b.n) {
            Some(format!(
                "counts nan/inf/zeros {:?} != {:?}",
                (a.nan, a.inf, a.zeros),
                (b.nan, b.inf, b.zeros)
            ))
        } else if !(close(a.mean, b.mean)
            && close(a.std, b.std)
            && close(a.min, b.min)
            && close(a.max, b.max))
        {
            Some(format!(
                "mean/std/min/max {:?} != {:?}",
                (a.mean, a.std, a.min, a.max),
                (b.mean, b.std, b.min, b.max)
            ))
        } else {
            None
        }
    })
}

/// F-QUANT-002: the `--dtype f32` export path writes exactly the dequantizer's values: each
/// tensor is streamed through the export's writer into a hash (no file), and compared with the
/// hash of the source's dequantized values.
pub fn f32_export(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let model = ctx.art.model(&ctx.art.source)?;
    let src = ctx.art.fingerprints(&ctx.art.source)?;
    let export =
        requant::plan(&model, DtypeChoice::To(GgmlType::F32)).map_err(|e| e.to_string())?;
    let written = export.tensors(&model);
    let mut bad = Vec::new();
    let mut checked = 0;
    for (i, p) in src.iter().enumerate() {
        let Some(want) = &p.sha256_f32 else { continue };
        checked += 1;
        let mut h = Sha256Sink::default();
        export
            .write_tensor(&model, i, &mut h)
            .map_err(|e| e.to_string())?;
        let got = h.hex_digest();
        let dtype = written.get(i).map(|t| t.dtype);
        if dtype != Some(GgmlType::F32) || &got != want {
            bad.push(format!(
                "{} ({} -> {:?}): exported values differ from the dequantizer's",
                p.name, p.dtype, dtype
            ));
        }
    }
    let reason = if bad.is_empty() {
        format!("{checked} tensors: the F32 export writes the dequantized values bit for bit")
    } else {
        format!("{} tensor(s) differ, first {}", bad.len(), bad[0])
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "tensors_checked" => checked, "differing" => bad },
    ))
}
