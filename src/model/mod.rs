//! The model view every format lowers to: GGUF semantics (key/value metadata in file order,
//! tensor infos in file order with GGUF names and `ne` dims) over zero-copy byte views.
//!
//! Sits above `formats` (it asks each reader for its file) and below `convert`/`infer`, which
//! both read models only through it. Invariants:
//! - a tensor's bytes are exactly the stored bytes: no reader here decodes, reorders rows or
//!   changes a dtype; `ne` is GGUF order (`ne[0]` = row length) with trailing 1s kept;
//! - metadata, tensor order, version and alignment of a GGUF origin survive every format
//!   (APR and SafeTensors carry them as `gguf_kv`, `gguf_tensors`, `gguf_alignment`,
//!   `gguf_version`; see [`carry`]), so converting back gives the original bytes;
//! - a file that lacks the carried lists is read from its own names and shapes, and every
//!   value we had to assume is recorded in `findings`.

pub mod carry;
pub mod kv_json;

use std::path::{Path, PathBuf};

use crate::dtype::{AprDtype, GgmlType};
use crate::formats::apr::{AprError, AprFile};
use crate::formats::gguf::{GgufFile, GgufValue};
use crate::formats::safetensors::{SafetensorsError, SafetensorsModel, StDtype};
use crate::formats::{detect, FormatError};

pub use carry::Carried;

/// The file format a model was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// GGUF.
    Gguf,
    /// APR v2.
    Apr,
    /// SafeTensors (one file, or a sharded set).
    Safetensors,
}

impl SourceFormat {
    /// Lower-case name, as carried in `original_format`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::Apr => "apr",
            Self::Safetensors => "safetensors",
        }
    }
}

/// Errors opening a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A GGUF file or format detection failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An APR file failed.
    #[error(transparent)]
    Apr(#[from] AprError),
    /// A SafeTensors file failed.
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    /// The file is valid but cannot be a model view.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl ModelError {
    pub(crate) fn invalid(path: &Path, detail: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// One tensor of a [`Model`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// GGUF name (canonical).
    pub name: String,
    /// Stored type.
    pub dtype: GgmlType,
    /// GGUF dims, `ne[0]` the row length; trailing 1s as the origin recorded them.
    pub ne: Vec<u64>,
    /// Exact byte length.
    pub n_bytes: u64,
    loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Loc {
    /// Index into the source's own tensor list.
    Index(usize),
}

impl Tensor {
    /// Row-major shape (`ne` reversed).
    pub fn shape(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }
    /// Element count.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
    /// Row length (`ne[0]`), 1 for a 0-d tensor.
    pub fn row_len(&self) -> u64 {
        self.ne.first().copied().unwrap_or(1)
    }
}

enum Source {
    Gguf(GgufFile),
    Apr(AprFile),
    Safetensors(SafetensorsModel),
}

/// A model: metadata and tensors in GGUF terms, over the mapped bytes of its file(s).
pub struct Model {
    /// The path opened.
    pub path: PathBuf,
    /// The format it was read from.
    pub format: SourceFormat,
    /// The format of the first file in its conversion history (carried through conversions).
    pub original_format: String,
    /// GGUF version to write back (carried; 3 when unknown).
    pub gguf_version: u32,
    /// GGUF alignment to write back (carried; else `general.alignment`; else 32).
    pub alignment: u64,
    /// Key/value metadata in GGUF terms and order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensors in GGUF file order.
    pub tensors: Vec<Tensor>,
    /// What the reader had to assume or noticed (never errors).
    pub findings: Vec<String>,
    source: Source,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("n_tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

/// GGUF's default alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

impl Model {
    /// Opens a GGUF, APR or SafeTensors file (or sharded SafeTensors set), detected by magic.
    /// A directory is accepted only where it holds SafeTensors; use `convert::hf` for HF
    /// directories with `config.json`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        match detect(path)? {
            crate::formats::Format::Gguf => Ok(Self::from_gguf(GgufFile::open(path)?)),
            crate::formats::Format::Apr => Self::from_apr(AprFile::open(path)?),
            crate::formats::Format::SafeTensors => Self::from_safetensors(SafetensorsModel::open(path)?),
            crate::formats::Format::Directory if crate::fault::active(crate::fault::Fault::DirPath) => {
                // aprender #202 mutant: an error that does not say which path, or why.
                Err(ModelError::invalid(std::path::Path::new(""), "No file extension found"))
            }
            crate::formats::Format::Directory => Err(ModelError::invalid(
                path,
                "is a directory; a model file is meant here (an HF directory converts with `apr-qa convert DIR -o FILE`)",
            )),
        }
    }

    /// The view of a GGUF file.
    pub fn from_gguf(f: GgufFile) -> Self {
        let tensors = f
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| Tensor {
                name: t.name.clone(),
                dtype: t.dtype,
                ne: t.ne.clone(),
                n_bytes: t.n_bytes,
                loc: Loc::Index(i),
            })
            .collect();
        let findings = f.layout_notes.iter().map(|n| format!("{n:?}")).collect();
        Self {
            path: f.path.clone(),
            format: SourceFormat::Gguf,
            original_format: SourceFormat::Gguf.name().to_string(),
            gguf_version: f.version,
            alignment: f.alignment,
            metadata: f.metadata.clone(),
            tensors,
            findings,
            source: Source::Gguf(f),
        }
    }

    /// The view of an APR file.
    pub fn from_apr(f: AprFile) -> Result<Self, ModelError> {
        let carried = Carried::from_json_map(&f.metadata)
            .map_err(|e| ModelError::invalid(&f.path, e.to_string()))?;
        let mut findings = f.findings.clone();
        let mut tensors = Vec::with_capacity(f.entries.len());
        for (i, e) in f.entries.iter().enumerate() {
            let dtype = match e.dtype {
                AprDtype::Ggml(t) => t,
                AprDtype::U8 | AprDtype::AprQ4 | AprDtype::AprQ8 => {
                    return Err(ModelError::invalid(
                        &f.path,
                        format!(
                            "tensor {:?} is {} (aprender-native), which has no GGML type",
                            e.name,
                            e.dtype.name()
                        ),
                    ))
                }
            };
            let ne: Vec<u64> = e.dims.iter().rev().copied().collect();
            tensors.push(Tensor {
                name: crate::formats::names::canonical_name(&e.name),
                dtype,
                ne,
                n_bytes: e.size,
                loc: Loc::Index(i),
            });
        }
        let path = f.path.clone();
        Self::assemble(
            path,
            SourceFormat::Apr,
            carried,
            tensors,
            &mut findings,
            Source::Apr(f),
        )
    }

    /// The view of a SafeTensors file or sharded set.
    pub fn from_safetensors(m: SafetensorsModel) -> Result<Self, ModelError> {
        let path = m
            .index
            .clone()
            .or_else(|| m.shards.first().cloned())
            .unwrap_or_default();
        let carried = Carried::from_string_map(&m.metadata)
            .map_err(|e| ModelError::invalid(&path, e.to_string()))?;
        // HF-named tensors without the carried GGUF lists are an HF checkpoint: llama Q/K rows
        // are in HF order there, so reading them under GGUF names would be silently wrong.
        let hf_export = m.metadata.get("apr_qa_qk_rows").is_some_and(|v| v == "hf");
        let hf_named = m
            .tensors
            .iter()
            .any(|t| crate::formats::names::hf_to_gguf(&t.name).is_some());
        if hf_export || (hf_named && carried.tensors.is_none()) {
            return Err(ModelError::invalid(
                &path,
                "holds an HF checkpoint (HF tensor names and row order); convert its directory with `apr-qa convert DIR -o FILE`",
            ));
        }
        let mut tensors = Vec::with_capacity(m.tensors.len());
        for (i, t) in m.tensors.iter().enumerate() {
            let dtype = match t.dtype {
                StDtype::Ggml(g) => g,
                StDtype::Other(o) => {
                    return Err(ModelError::invalid(
                        &path,
                        format!(
                            "tensor {:?} has SafeTensors dtype {}, which has no GGML type",
                            t.name,
                            o.name()
                        ),
                    ))
                }
            };
            tensors.push(Tensor {
                name: crate::formats::names::canonical_name(&t.name),
                dtype,
                ne: t.shape.iter().rev().copied().collect(),
                n_bytes: t.end - t.start,
                loc: Loc::Index(i),
            });
        }
        let mut findings = Vec::new();
        Self::assemble(
            path,
            SourceFormat::Safetensors,
            carried,
            tensors,
            &mut findings,
            Source::Safetensors(m),
        )
    }

    /// Applies the carried GGUF lists (order, `ne`, metadata) to tensors read from APR/ST.
    fn assemble(
        path: PathBuf,
        format: SourceFormat,
        carried: Carried,
        mut tensors: Vec<Tensor>,
        findings: &mut Vec<String>,
        source: Source,
    ) -> Result<Self, ModelError> {
        let metadata = match carried.kv {
            Some(kv) => kv.into_owned(),
            None => {
                findings.push("no carried gguf_kv: metadata is empty in GGUF terms".into());
                Vec::new()
            }
        };
        if let Some(infos) = &carried.tensors {
            tensors = carry::apply_tensor_infos(&path, tensors, infos)?;
        } else {
            findings
                .push("no carried gguf_tensors: tensor order and dims taken from this file".into());
        }
        let alignment = match carried.alignment {
            Some(a) => a,
            None => crate::formats::gguf::alignment_of(&metadata)
                .map_err(|k| ModelError::invalid(&path, format!("general.alignment: {k}")))?,
        };
        Ok(Self {
            path,
            format,
            original_format: carried
                .original_format
                .unwrap_or_else(|| format.name().to_string()),
            gguf_version: carried.version.unwrap_or(3),
            alignment,
            metadata,
            tensors,
            findings: std::mem::take(findings),
            source,
        })
    }

    /// The stored bytes of `t` (a tensor of this model).
    pub fn tensor_data(&self, t: &Tensor) -> &[u8] {
        let Loc::Index(i) = t.loc;
        match &self.source {
            Source::Gguf(f) => f.tensors.get(i).map_or(&[][..], |info| f.tensor_data(info)),
            Source::Apr(f) => f.entries.get(i).map_or(&[][..], |e| f.tensor_data(e)),
            Source::Safetensors(m) => m.tensors.get(i).map_or(&[][..], |s| m.tensor_data(s)),
        }
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `general.architecture`, if present and UTF-8.
    pub fn arch(&self) -> Option<&str> {
        self.get("general.architecture").and_then(GgufValue::as_str)
    }

    /// A tensor by GGUF name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Size of the largest tensor in bytes (the memory bound of streaming conversions).
    pub fn largest_tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).max().unwrap_or(0)
    }
}
