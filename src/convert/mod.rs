//! Format conversion. Lossless by default: GGUF ↔ APR ↔ SafeTensors never move a tensor byte
//! (quantized blocks pass through, shapes are translated between GGUF `ne` order and
//! row-major), for every architecture. Dtype changes happen only when asked (`--dtype`) and
//! report their measured error per tensor.
//!
//! Invariants: the input is never modified and is never the output; every output is written
//! to a temp file in the target directory and renamed (a killed conversion leaves nothing
//! under the final name); output bytes depend only on the input bytes and the options (no
//! time, host or path), so converting twice or by two routes gives identical files.

pub mod apr_meta;
pub mod diff;
pub mod fingerprint;
pub mod hf_config;
pub mod hf_export;
pub mod hf_import;
pub mod hf_rows;
pub mod hf_tokenizer;
pub mod hf_tokenizer_import;
pub mod requant;
pub mod validate;
pub mod values;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::dtype::AprDtype;
use crate::formats::apr_write::{add_apr_qa_keys, write_apr, AprTensorSpec};
use crate::formats::gguf_write::{write_gguf, GgufTensorSpec};
use crate::formats::names::storage_name;
use crate::formats::safetensors::StDtype;
use crate::formats::safetensors_write::{write_safetensors, StTensorSpec};
use crate::model::{Carried, Model, ModelError, Tensor};

pub use requant::{DtypeChoice, TensorChange};

/// The format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// GGUF v2/v3.
    Gguf,
    /// APR v2.
    Apr,
    /// One SafeTensors file.
    Safetensors,
    /// A Hugging Face model directory.
    Hf,
}

impl Target {
    /// The target a file name implies, by its extension (only used when `--to` is absent).
    pub fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "gguf" => Some(Self::Gguf),
            "apr" => Some(Self::Apr),
            "safetensors" => Some(Self::Safetensors),
            _ => None,
        }
    }
}

/// Errors of a conversion.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading the input failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Writing failed.
    #[error("writing {path}: {detail}")]
    Write {
        /// The output.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The request itself is wrong (bad paths, same file, unsupported target).
    #[error("{0}")]
    Usage(String),
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// What a conversion did, per tensor where a dtype changed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ConvertReport {
    /// Tensors written.
    pub n_tensors: usize,
    /// Bytes of the output file.
    pub out_bytes: u64,
    /// Tensors whose dtype changed, with the measured error.
    pub changes: Vec<TensorChange>,
}

/// Refuses an output that is the input (same path, or the same file through another name),
/// an output that is a directory, and a missing output directory.
pub fn check_paths(input: &Path, output: &Path) -> Result<(), ConvertError> {
    if output.is_dir() {
        return Err(ConvertError::Usage(format!(
            "output {} is a directory; a file is meant here",
            output.display()
        )));
    }
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        if a == b {
            return Err(ConvertError::Usage(format!(
                "output {} is the input file; refusing to overwrite it",
                output.display()
            )));
        }
    }
    same_inode(input, output)?;
    if let Some(dir) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(ConvertError::Usage(format!(
                "output directory {} does not exist",
                dir.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_inode(input: &Path, output: &Path) -> Result<(), ConvertError> {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Err(ConvertError::Usage(format!(
                "output {} is the input file (a hard link); refusing to overwrite it",
                output.display()
            )));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> Result<(), ConvertError> {
    Ok(())
}

/// Converts the model at `input` into `output` as `to`, changing dtypes as `dtype` says.
pub fn convert(
    input: &Path,
    output: &Path,
    to: Target,
    dtype: DtypeChoice,
) -> Result<ConvertReport, ConvertError> {
    if to == Target::Hf {
        let model = open_input(input, output)?;
        return export_hf_report(&model, output, dtype);
    }
    check_paths(input, output)?;
    let model = open_input(input, output)?;
    write_model(&model, output, to, dtype)
}

/// Opens a conversion input: a model file, or an HF directory (imported through a temporary
/// GGUF written beside the output).
fn open_input(input: &Path, output: &Path) -> Result<Model, ConvertError> {
    if hf_import::is_hf_dir(input) {
        let scratch = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return hf_import::open_hf_dir(input, scratch);
    }
    Ok(Model::open(input)?)
}

/// HF export of `model` into the directory `output`, reported like any conversion.
fn export_hf_report(
    model: &Model,
    output: &Path,
    dtype: DtypeChoice,
) -> Result<ConvertReport, ConvertError> {
    let r = hf_export::export_hf(model, output, hf_export::HfDtype::from_choice(dtype)?)?;
    Ok(ConvertReport {
        n_tensors: r.tensors.len(),
        out_bytes: r.out_bytes,
        changes: r
            .tensors
            .iter()
            .filter(|t| t.from != t.to)
            .map(|t| TensorChange {
                name: t.gguf_name.clone(),
                from: t.from.clone(),
                to: t.to.clone(),
                max_abs_err: t.max_abs_err,
                mean_abs_err: t.mean_abs_err,
                n_values: t.n_values,
            })
            .collect(),
    })
}

/// Writes `model` to `output` as `to`.
pub fn write_model(
    model: &Model,
    output: &Path,
    to: Target,
    dtype: DtypeChoice,
) -> Result<ConvertReport, ConvertError> {
    let plan = requant::plan(model, dtype)?;
    let tensors = plan.tensors(model);
    let metadata = plan.metadata(model);
    let mut report = ConvertReport {
        n_tensors: tensors.len(),
        ..ConvertReport::default()
    };
    let mut data = |i: usize, w: &mut dyn std::io::Write| -> std::io::Result<()> {
        plan.write_tensor(model, i, w)
    };
    let carried = || {
        Carried::of(
            &metadata,
            &tensors,
            model.alignment,
            model.gguf_version,
            &model.original_format,
        )
    };
    match to {
        Target::Gguf => {
            let specs: Vec<GgufTensorSpec> = tensors
                .iter()
                .map(|t| GgufTensorSpec {
                    name: &t.name,
                    ne: &t.ne,
                    dtype: t.dtype,
                })
                .collect();
            write_gguf(output, model.gguf_version, &metadata, &specs, &mut data)
                .map_err(|e| write_err(output, e))?;
        }
        Target::Apr => {
            let (names, shapes) = stored_layout(model, &tensors);
            let specs: Vec<AprTensorSpec> = tensors
                .iter()
                .zip(names.iter().zip(&shapes))
                .map(|(t, (n, d))| AprTensorSpec {
                    name: n,
                    dtype: AprDtype::Ggml(t.dtype),
                    dims: d,
                })
                .collect();
            let mut md = apr_meta::typed_metadata(&metadata, &tensors);
            carried().insert_json(&mut md);
            add_apr_qa_keys(&mut md);
            write_apr(output, &md, &specs, &mut data).map_err(|e| write_err(output, e))?;
        }
        Target::Safetensors => {
            let (names, shapes) = stored_layout(model, &tensors);
            let specs: Vec<StTensorSpec> = tensors
                .iter()
                .zip(names.iter().zip(&shapes))
                .map(|(t, (n, s))| StTensorSpec {
                    name: n,
                    dtype: StDtype::Ggml(t.dtype),
                    shape: s,
                })
                .collect();
            let mut md: IndexMap<String, String> = IndexMap::new();
            md.insert("format".into(), "pt".into());
            carried().insert_strings(&mut md);
            write_safetensors(output, &md, &specs, &mut data).map_err(|e| write_err(output, e))?;
        }
        Target::Hf => return export_hf_report(model, output, dtype),
    }
    report.changes = plan.take_changes();
    report.out_bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    Ok(report)
}

/// Names and row-major shapes of `tensors` inside APR / SafeTensors: HF names for qwen2, GGUF
/// names otherwise (see `formats::names`).
fn stored_layout(model: &Model, tensors: &[Tensor]) -> (Vec<String>, Vec<Vec<u64>>) {
    let arch = model.arch().unwrap_or_default();
    let name = |n: &str| {
        if crate::fault::active(crate::fault::Fault::NameSwap) {
            // GH-190 mutant: q and k projections trade names.
            let swapped = if n.contains(".attn_q.") {
                n.replace(".attn_q.", ".attn_k.")
            } else {
                n.replace(".attn_k.", ".attn_q.")
            };
            return storage_name(arch, &swapped);
        }
        storage_name(arch, n)
    };
    (
        tensors.iter().map(|t| name(&t.name)).collect(),
        tensors.iter().map(Tensor::shape).collect(),
    )
}
