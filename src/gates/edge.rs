//! Edge gates: hostile inputs get a clear error naming the problem — never a panic, a hang or
//! a wrong success. Each builds its hostile copy in the run dir from the source model.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use super::{GateCtx, Judgement};
use crate::convert::{convert, DtypeChoice, Target};
use crate::dtype::RETIRED_GGML_IDS;
use crate::formats::gguf::GgufFile;
use crate::metrics;
use crate::model::Model;

/// Opens `path` as a model, turning a panic into `Err("panicked: …")`.
fn open_guarded(path: &Path) -> Result<Result<Model, String>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        Model::open(path).map_err(|e| e.to_string())
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("panicked: {}", msg.unwrap_or_default())
    })
}

/// Expects `path` to be refused with an error containing every needle.
fn expect_refusal(path: &Path, needles: &[&str], what: &str) -> Judgement {
    match open_guarded(path) {
        Err(panic) => Judgement::verdict(
            true,
            format!("{what}: the reader {panic}"),
            metrics! { "file" => path.display().to_string() },
        ),
        Ok(Ok(_)) => Judgement::verdict(
            true,
            format!("{what}: accepted as a valid model"),
            metrics! { "file" => path.display().to_string() },
        ),
        Ok(Err(e)) => {
            let missing: Vec<&&str> = needles.iter().filter(|n| !e.contains(**n)).collect();
            Judgement::verdict(
                !missing.is_empty(),
                if missing.is_empty() {
                    format!("{what}: refused: {e}")
                } else {
                    format!("{what}: refused, but the error does not name {missing:?}: {e}")
                },
                metrics! { "error" => e, "must_name" => needles },
            )
        }
    }
}

/// Byte position of tensor `i`'s `type` field (its `offset` field follows it).
fn info_field(f: &GgufFile, i: usize) -> Option<usize> {
    let size =
        |t: &crate::formats::gguf::GgufTensorInfo| 8 + t.name.len() + 4 + 8 * t.ne.len() + 4 + 8;
    let total: usize = f.tensors.iter().map(size).sum();
    let start = usize::try_from(f.infos_end).ok()?.checked_sub(total)?;
    let before: usize = f.tensors.iter().take(i).map(size).sum();
    let t = f.tensors.get(i)?;
    Some(start + before + 8 + t.name.len() + 4 + 8 * t.ne.len())
}

/// A copy of the source's header (patched) in a sparse file of the source's length (or `len`):
/// readers validate the header against the file size, so the data bytes need not be copied.
fn patched_copy(
    ctx: &GateCtx<'_>,
    name: &str,
    len: Option<u64>,
    patch: &dyn Fn(&mut Vec<u8>) -> Result<(), String>,
) -> Result<PathBuf, String> {
    use std::io::Read;
    let src = GgufFile::open(&ctx.art.source).map_err(|e| e.to_string())?;
    let full = src.file_size;
    let want = len.unwrap_or(full);
    let head = src.data_offset.min(want);
    let mut bytes = Vec::with_capacity(head as usize);
    std::fs::File::open(&ctx.art.source)
        .and_then(|f| f.take(head).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    patch(&mut bytes)?;
    let out = ctx.art.scratch(name);
    let f = std::fs::File::create(&out).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut &f, &bytes).map_err(|e| e.to_string())?;
    f.set_len(want).map_err(|e| e.to_string())?;
    Ok(out)
}

/// F-EDGE-001..005.
pub fn run(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let src = GgufFile::open(&ctx.art.source).map_err(|e| e.to_string())?;
    match ctx.gate_id {
        "F-EDGE-001" => {
            // Cut inside the header, inside the tensor infos and inside the data.
            let cuts = [
                10u64,
                src.infos_end / 2,
                src.data_offset + (src.file_size - src.data_offset) / 2,
            ];
            let mut results = Vec::new();
            for cut in cuts {
                let p = patched_copy(
                    ctx,
                    &format!("truncated-{cut}.gguf"),
                    Some(cut),
                    &|_| Ok(()),
                )?;
                let j = expect_refusal(&p, &[&p.display().to_string()], &format!("cut at {cut}"));
                results.push(j);
            }
            let bad: Vec<&Judgement> = results
                .iter()
                .filter(|j| j.outcome == crate::evidence::Outcome::Falsified)
                .collect();
            let reasons: Vec<&str> = results.iter().map(|j| j.reason.as_str()).collect();
            Ok(Judgement::verdict(
                !bad.is_empty(),
                reasons.join(" | "),
                metrics! { "cuts" => cuts, "results" => reasons },
            ))
        }
        "F-EDGE-002" => {
            let i = usize::from(src.tensors.len() > 1);
            let name = src
                .tensors
                .get(i)
                .map(|t| t.name.clone())
                .ok_or("the model has no tensors")?;
            let align = src.alignment;
            let p = patched_copy(ctx, "misaligned.gguf", None, &|b| {
                let at = info_field(&src, i).ok_or("cannot locate the tensor info")? + 4;
                let old = u64::from_le_bytes(
                    b.get(at..at + 8)
                        .and_then(|s| s.try_into().ok())
                        .ok_or("short header")?,
                );
                b[at..at + 8].copy_from_slice(&(old + align / 2).to_le_bytes());
                Ok(())
            })?;
            Ok(expect_refusal(
                &p,
                &[&name],
                &format!("offset of {name} moved by {}", align / 2),
            ))
        }
        "F-EDGE-003" => {
            let dir = ctx.art.scratch("a-model-directory");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let shown = dir.display().to_string();
            let mut j = expect_refusal(&dir, &[&shown, "directory"], "a directory as the model");
            if j.outcome == crate::evidence::Outcome::Corroborated {
                let out = ctx.art.scratch("from-dir.apr");
                let r = catch_unwind(AssertUnwindSafe(|| {
                    convert(&dir, &out, Target::Apr, DtypeChoice::Keep)
                }));
                let ok = matches!(&r, Ok(Err(e)) if e.to_string().contains(&shown));
                if !ok {
                    j = Judgement::verdict(
                        true,
                        "convert accepted a directory or did not name it",
                        metrics! { "dir" => shown },
                    );
                }
            }
            Ok(j)
        }
        "F-EDGE-004" => {
            let dir = ctx.art.scratch("dotted");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let out = dir.join("Qwen2.5-Coder-0.5B.apr");
            convert(&ctx.art.source, &out, Target::Apr, DtypeChoice::Keep)
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let ok = out.is_file() && names == ["Qwen2.5-Coder-0.5B.apr"];
            Ok(Judgement::verdict(
                !ok,
                format!("output directory holds {names:?}"),
                metrics! { "files" => names },
            ))
        }
        _ => {
            let id = RETIRED_GGML_IDS[0];
            let name = src
                .tensors
                .first()
                .map(|t| t.name.clone())
                .ok_or("the model has no tensors")?;
            let p = patched_copy(ctx, "unknown-dtype.gguf", None, &|b| {
                let at = info_field(&src, 0).ok_or("cannot locate the tensor info")?;
                b[at..at + 4].copy_from_slice(&id.to_le_bytes());
                Ok(())
            })?;
            // The needles are whole phrases: a bare "4" also matches the run dir's random name.
            Ok(expect_refusal(
                &p,
                &[&format!("{name:?}"), &format!("dtype id {id}")],
                &format!("dtype id {id} on {name}"),
            ))
        }
    }
}
