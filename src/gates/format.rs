//! Format gates: the APR container (F-APR-FORMAT-001..003), the dtype contract (I-3) and
//! tensor names (GH-190).

use std::collections::BTreeSet;

use super::{Fmt, GateCtx, Judgement};
use crate::dtype::{AprDtype, GgmlType};
use crate::formats::apr::{AprFile, Footer};
use crate::formats::names::canonical_name;
use crate::formats::safetensors::SafetensorsModel;
use crate::metrics;

fn apr_file(ctx: &GateCtx<'_>) -> Result<(std::path::PathBuf, Result<AprFile, String>), String> {
    let path = ctx.art.route(&[Fmt::Gguf, Fmt::Apr])?;
    let f = AprFile::open(&path).map_err(|e| e.to_string());
    Ok((path, f))
}

/// F-APR-FORMAT-001..003 on the APR file the engine wrote.
pub fn apr(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    if !ctx.formats.contains(&Fmt::Apr) {
        return Ok(Judgement::skipped("apr is not in the playbook's formats"));
    }
    let (path, f) = apr_file(ctx)?;
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            return Ok(Judgement::verdict(
                true,
                format!("the APR file {} does not read back: {e}", path.display()),
                metrics! {},
            ))
        }
    };
    let src = ctx.art.model(&ctx.art.source)?;
    match ctx.gate_id {
        "F-APR-FORMAT-001" => {
            // Read under the file's own table (GGML ids when marked), each byte must name the
            // source tensor's dtype and match its size; foreign readings are findings only.
            let mut bad = Vec::new();
            for e in &f.entries {
                let want = src.tensor(&canonical_name(&e.name)).map(|t| t.dtype);
                let size_ok = e.dtype.byte_size(e.n_elements()) == Some(e.size);
                match (want, e.dtype) {
                    (Some(w), AprDtype::Ggml(got)) if w == got && size_ok && f.ggml_dtype_table => {
                    }
                    (w, got) => bad.push(format!(
                        "{}: byte {} read as {} (source {:?}), size {}",
                        e.name,
                        e.byte,
                        got.name(),
                        w.map(|t| t.name()),
                        e.size
                    )),
                }
            }
            let interop: Vec<String> = f
                .interop
                .iter()
                .map(|i| {
                    format!(
                        "{}: byte {} read by {} as {:?}",
                        i.tensor,
                        i.byte,
                        i.reader.name(),
                        i.theirs.map(|d| d.name())
                    )
                })
                .collect();
            let m = metrics! {
                "entries" => f.entries.len(), "dtype_table_ggml" => f.ggml_dtype_table, "problems" => bad,
                "interop_findings" => interop.len(), "interop_examples" => interop.iter().take(8).collect::<Vec<_>>(), "findings" => f.findings,
            };
            let reason = if bad.is_empty() {
                format!("{} entries: every dtype byte names the source dtype and matches its size ({} interop findings for other readers)", f.entries.len(), interop.len())
            } else {
                format!(
                    "{} entries disagree with their size or the source dtype, first {}",
                    bad.len(),
                    bad[0]
                )
            };
            Ok(Judgement::verdict(!bad.is_empty(), reason, m))
        }
        "F-APR-FORMAT-002" => {
            let misaligned: Vec<String> = f
                .entries
                .iter()
                .filter(|e| e.offset % 64 != 0)
                .map(|e| format!("{} at {}", e.name, e.offset))
                .collect();
            let data_ok = f.data_offset % 64 == 0;
            let m = metrics! { "data_offset" => f.data_offset, "misaligned" => misaligned };
            let bad = !data_ok || !misaligned.is_empty();
            let reason = if bad {
                format!(
                    "data offset {} / {} misaligned tensors",
                    f.data_offset,
                    misaligned.len()
                )
            } else {
                format!(
                    "data section and {} tensors 64-byte aligned",
                    f.entries.len()
                )
            };
            Ok(Judgement::verdict(bad, reason, m))
        }
        _ => {
            let magic_ok = f.header.magic == crate::formats::apr::MAGIC;
            let row_major = f.flags & crate::formats::apr::flag::LAYOUT_ROW_MAJOR != 0;
            let footer_ok = f.footer == Footer::Valid;
            let m = metrics! { "magic" => String::from_utf8_lossy(&f.header.magic).to_string(), "version" => [f.version.0, f.version.1], "flags" => format!("{:#06x}", f.flags), "footer" => format!("{:?}", f.footer) };
            let bad = !magic_ok || f.version != (2, 0) || !row_major || !footer_ok;
            Ok(Judgement::verdict(bad, format!("magic ok {magic_ok}, version {:?}, ROW_MAJOR {row_major}, header CRC verified, footer {:?}", f.version, f.footer), m))
        }
    }
}

/// F-CONTRACT-I3-001: the dtype table round-trips, unknown ids are refused, and every tensor of
/// every converted file reads back with the source's dtype.
pub fn dtype_contract(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let mut bad = Vec::new();
    for t in GgmlType::ALL {
        if GgmlType::try_from(t.id()) != Ok(t) || t.name().parse::<GgmlType>() != Ok(t) {
            bad.push(format!("{t} does not round-trip"));
        }
    }
    let unknown: Vec<u32> = crate::dtype::RETIRED_GGML_IDS
        .iter()
        .copied()
        .chain([100, 255, u32::MAX])
        .collect();
    for id in &unknown {
        if GgmlType::try_from(*id).is_ok() {
            bad.push(format!("unknown id {id} accepted"));
        }
    }
    let src = ctx.art.model(&ctx.art.source)?;
    let mut checked = 0usize;
    for f in ctx.formats.iter().filter(|f| **f != Fmt::Gguf) {
        let m = ctx.art.route_model(&super::conversion::route_to(*f))?;
        for t in &src.tensors {
            checked += 1;
            match m.tensor(&t.name) {
                Some(u) if u.dtype == t.dtype => {}
                Some(u) => bad.push(format!(
                    "{}: {} written as {} read back as {}",
                    f.ext(),
                    t.name,
                    t.dtype,
                    u.dtype
                )),
                None => bad.push(format!("{}: {} missing", f.ext(), t.name)),
            }
        }
    }
    let reason = if bad.is_empty() {
        format!("{} dtypes round-trip, {} unknown ids refused, {checked} converted tensors read back as written", GgmlType::ALL.len(), unknown.len())
    } else {
        format!("{} violation(s), first {}", bad.len(), bad[0])
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "types" => GgmlType::ALL.len(), "tensors_checked" => checked, "violations" => bad },
    ))
}

/// F-NAMES-001 (GH-190): the names stored in APR and SafeTensors map back to the source names
/// one to one.
pub fn names(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let src = ctx.art.model(&ctx.art.source)?;
    let want: BTreeSet<String> = src.tensors.iter().map(|t| t.name.clone()).collect();
    let mut bad = Vec::new();
    for f in ctx.formats.iter().filter(|f| **f != Fmt::Gguf) {
        let path = ctx.art.route(&super::conversion::route_to(*f))?;
        // (stored name, row-major shape) as the file itself says, without the carried lists.
        let stored: Vec<(String, Vec<u64>)> = match f {
            Fmt::Apr => AprFile::open(&path)
                .map_err(|e| e.to_string())?
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.dims.clone()))
                .collect(),
            Fmt::Safetensors => SafetensorsModel::open(&path)
                .map_err(|e| e.to_string())?
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
            Fmt::Gguf => continue,
        };
        for (n, shape) in &stored {
            let canon = canonical_name(n);
            if let Some(t) = src.tensor(&canon) {
                if t.shape() != *shape {
                    bad.push(format!(
                        "{}: stored {n} maps to {canon}, whose shape is {:?}, but holds {shape:?}",
                        f.ext(),
                        t.shape()
                    ));
                }
            }
        }
        let stored: Vec<String> = stored.into_iter().map(|(n, _)| n).collect();
        let mapped: Vec<String> = stored.iter().map(|n| canonical_name(n)).collect();
        let set: BTreeSet<String> = mapped.iter().cloned().collect();
        if set.len() != mapped.len() {
            bad.push(format!("{}: two stored names map to one", f.ext()));
        }
        for n in want.difference(&set) {
            bad.push(format!(
                "{}: {n} has no stored name mapping back to it",
                f.ext()
            ));
        }
        for n in set.difference(&want) {
            bad.push(format!("{}: stored name maps to unknown {n}", f.ext()));
        }
    }
    let reason = if bad.is_empty() {
        format!("{} names map back one to one in every format", want.len())
    } else {
        format!("{} naming problem(s), first {}", bad.len(), bad[0])
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "names" => want.len(), "problems" => bad },
    ))
}
