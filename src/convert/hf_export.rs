//! HF directory export (`apr-qa convert M -o DIR --to hf`, DESIGN §2.2): a directory that
//! `transformers.AutoModelForCausalLM` and `AutoTokenizer` load.
//!
//! Contents: `model.safetensors` (or `model-0000K-of-0000N.safetensors` + index when sharded),
//! `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`.
//!
//! Invariants:
//! - Only architectures in [`MappedArch`] (qwen2, llama) are exported; any other is refused,
//!   named. Every tensor must have an HF name (`names::gguf_to_hf`) and a dequantizer.
//! - Values: every tensor is dequantized (bit-exact with ggml) and written as F32 — or, when
//!   asked, as F16/BF16 with exactly the rule and encoding of `convert --dtype f16|bf16`
//!   (`requant`: rank ≥ 2 tensors change, 1-d norms and biases stay as they are). The measured
//!   error of each tensor is reported (F32: 0 by construction).
//! - Layout: row-major HF shapes (GGUF `ne` reversed, trailing 1s dropped); llama Q/K rows are
//!   un-permuted ([`super::hf_rows`]); nothing else moves. Tied embeddings: no `lm_head.weight`
//!   exactly when the GGUF has no `output.weight`, and then `tie_word_embeddings: true`.
//! - The safetensors `__metadata__` carries `format: pt` plus our GGUF lists (`gguf_kv`,
//!   `gguf_tensors`, … as `model::Carried` writes them) describing the GGUF that
//!   `convert M --dtype <same>` would write, and `apr_qa_qk_rows: hf` marking that Q/K rows are
//!   in HF order. HF import restores that GGUF byte for byte.
//! - Atomic: the directory is built in a temp directory beside `DIR` and renamed into place.
//!   `DIR` must not exist or must be an empty directory (then it is replaced by the rename);
//!   anything else is refused. A failed export leaves `DIR` as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value;

use super::hf_config::{generation_config_json, HfHparams};
use super::hf_rows::{n_rows, qk_heads, unpermute_source, write_rows};
use super::hf_tokenizer::GgufVocab;
use super::requant::{self, DtypeChoice};
use super::ConvertError;
use crate::dtype::GgmlType;
use crate::formats::names::{gguf_to_hf, MappedArch};
use crate::formats::safetensors::StDtype;
use crate::formats::safetensors_write::{
    write_safetensors, write_safetensors_sharded, StTensorSpec,
};
use crate::model::{Carried, Model};

/// Metadata key marking that Q/K rows in this file are in HF order (not GGUF's).
pub const KEY_QK_ROWS: &str = "apr_qa_qk_rows";

/// The float type of an HF export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HfDtype {
    /// F32 (the default; exact).
    #[default]
    F32,
    /// F16 for rank ≥ 2 tensors.
    F16,
    /// BF16 for rank ≥ 2 tensors.
    Bf16,
}

impl HfDtype {
    /// The GGML type.
    pub fn ggml(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Bf16 => GgmlType::BF16,
        }
    }

    /// `torch_dtype` in `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
        }
    }

    /// The export type a `--dtype` choice asks for: `keep` and `f32` → F32, `f16`, `bf16`;
    /// anything else is refused (transformers loads float tensors only).
    pub fn from_choice(c: DtypeChoice) -> Result<Self, ConvertError> {
        match c {
            DtypeChoice::Keep => Ok(Self::F32),
            DtypeChoice::To(GgmlType::F32) => Ok(Self::F32),
            DtypeChoice::To(GgmlType::F16) => Ok(Self::F16),
            DtypeChoice::To(GgmlType::BF16) => Ok(Self::Bf16),
            DtypeChoice::To(t) => Err(ConvertError::Usage(format!(
                "--to hf writes f32, f16 or bf16 tensors, not {t}"
            ))),
        }
    }
}

/// Options of [`export_hf_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HfExportOptions {
    /// Tensor float type.
    pub dtype: HfDtype,
    /// Number of safetensors files: 1 writes `model.safetensors`; more write HF shards and
    /// `model.safetensors.index.json`.
    pub shards: usize,
}

impl Default for HfExportOptions {
    fn default() -> Self {
        Self {
            dtype: HfDtype::F32,
            shards: 1,
        }
    }
}

/// One exported tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HfTensorReport {
    /// GGUF name.
    pub gguf_name: String,
    /// HF name.
    pub hf_name: String,
    /// Type before.
    pub from: String,
    /// Type written.
    pub to: String,
    /// Row-major HF shape.
    pub shape: Vec<u64>,
    /// Heads by which the rows were un-permuted (llama Q/K), if any.
    pub unpermuted_heads: Option<u64>,
    /// Values in the tensor.
    pub n_values: u64,
    /// Largest |written − dequantized original| (0 when the type did not change).
    pub max_abs_err: f64,
    /// Mean of the same.
    pub mean_abs_err: f64,
}

/// What an HF export wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HfExportReport {
    /// The directory.
    pub dir: PathBuf,
    /// Architecture (GGUF name).
    pub arch: String,
    /// Files written, by name, sorted.
    pub files: Vec<String>,
    /// Bytes of all files.
    pub out_bytes: u64,
    /// Whether `lm_head` is tied to the embedding (no `output.weight` in the GGUF).
    pub tie_word_embeddings: bool,
    /// Tensors, in file order.
    pub tensors: Vec<HfTensorReport>,
    /// Notes (e.g. duplicate tokens dropped from tokenizer.json).
    pub findings: Vec<String>,
}

fn usage(msg: impl Into<String>) -> ConvertError {
    ConvertError::Usage(msg.into())
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Exports `model` to the HF directory `dir` as `dtype` (one `model.safetensors`).
pub fn export_hf(
    model: &Model,
    dir: &Path,
    dtype: HfDtype,
) -> Result<HfExportReport, ConvertError> {
    export_hf_with(model, dir, &HfExportOptions { dtype, shards: 1 })
}

/// Checks `dir` can receive an export: absent (its parent present) or an empty directory.
fn check_dir(dir: &Path) -> Result<(), ConvertError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(usage(format!(
                "{} exists and is not a directory; --to hf writes a directory",
                dir.display()
            )));
        }
        let mut entries = std::fs::read_dir(dir).map_err(|e| write_err(dir, e))?;
        if entries.next().is_some() {
            return Err(usage(format!(
                "{} is not empty; --to hf writes a new directory (or fills an empty one)",
                dir.display()
            )));
        }
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) if !p.is_dir() => Err(usage(format!(
            "output directory {} does not exist",
            p.display()
        ))),
        _ => Ok(()),
    }
}

/// Row-major HF shape of GGUF dims: trailing 1s dropped (one kept), reversed.
pub fn hf_shape(ne: &[u64]) -> Vec<u64> {
    let mut v = ne.to_vec();
    while v.len() > 1 && v.last() == Some(&1) {
        v.pop();
    }
    v.reverse();
    v
}

struct Planned {
    hf_name: String,
    shape: Vec<u64>,
    target: GgmlType,
    /// For un-permuted tensors: for each output row, its source row.
    rows: Option<(u64, Vec<usize>)>,
}

/// [`export_hf`] with explicit options.
pub fn export_hf_with(
    model: &Model,
    dir: &Path,
    opts: &HfExportOptions,
) -> Result<HfExportReport, ConvertError> {
    let arch_name = model.arch().unwrap_or("").to_string();
    let arch = MappedArch::from_gguf(&arch_name).ok_or_else(|| {
        usage(format!(
            "HF export supports the qwen2 and llama architectures; {} is {arch_name:?}",
            model.path.display()
        ))
    })?;
    check_dir(dir)?;
    let vocab_rows = model
        .tensor("token_embd.weight")
        .and_then(|t| t.ne.get(1).copied())
        .ok_or_else(|| usage("the model has no 2-d token_embd.weight"))?;
    let hp = HfHparams::from_gguf(arch, &model.metadata, vocab_rows)?;
    let vocab = GgufVocab::read(&model.metadata)?;
    let plan = requant::plan(model, DtypeChoice::To(opts.dtype.ggml()))?;
    let out_tensors = plan.tensors(model);
    let mut planned = Vec::with_capacity(out_tensors.len());
    for t in &out_tensors {
        let hf_name = gguf_to_hf(&t.name).ok_or_else(|| {
            usage(format!(
                "tensor {:?} has no Hugging Face name; HF export cannot place it",
                t.name
            ))
        })?;
        if !matches!(t.dtype, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(usage(format!(
                "tensor {:?} would be written as {}, which transformers cannot load",
                t.name, t.dtype
            )));
        }
        let rows = match qk_heads(
            arch,
            &t.name,
            hp.num_attention_heads,
            hp.num_key_value_heads,
        ) {
            Some(heads) => {
                let r = n_rows(&t.ne);
                let src = unpermute_source(r, heads)
                    .map_err(|e| usage(format!("tensor {:?}: {e}", t.name)))?;
                Some((heads, src))
            }
            None => None,
        };
        planned.push(Planned {
            hf_name,
            shape: hf_shape(&t.ne),
            target: t.dtype,
            rows,
        });
    }
    if arch == MappedArch::Qwen2 {
        for l in 0..hp.num_hidden_layers {
            for p in ["attn_q", "attn_k", "attn_v"] {
                let name = format!("blk.{l}.{p}.bias");
                if model.tensor(&name).is_none() {
                    return Err(usage(format!(
                        "qwen2 model lacks {name}: transformers' Qwen2 always has q/k/v biases"
                    )));
                }
            }
        }
    }
    let attention_bias = model
        .tensors
        .iter()
        .any(|t| t.name.ends_with(".attn_q.bias"));
    let tie = model.tensor("output.weight").is_none();
    let metadata = plan.metadata(model);

    // safetensors metadata: format, carried GGUF lists, Q/K row marker
    let mut md: IndexMap<String, String> = IndexMap::new();
    md.insert("format".into(), "pt".into());
    Carried::of(
        &metadata,
        &out_tensors,
        model.alignment,
        model.gguf_version,
        &model.original_format,
    )
    .insert_strings(&mut md);
    md.insert(KEY_QK_ROWS.into(), "hf".into());

    let parent = match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hf".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempdir_in(&parent)
        .map_err(|e| write_err(dir, format!("create temp directory: {e}")))?;

    let specs: Vec<StTensorSpec> = planned
        .iter()
        .map(|p| StTensorSpec {
            name: &p.hf_name,
            dtype: StDtype::Ggml(p.target),
            shape: &p.shape,
        })
        .collect();
    let mut data = |i: usize, w: &mut dyn Write| -> std::io::Result<()> {
        match planned.get(i).and_then(|p| p.rows.as_ref()) {
            None => plan.write_tensor(model, i, w),
            Some((_, src)) => {
                let mut buf = Vec::new();
                plan.write_tensor(model, i, &mut buf)?;
                write_rows(&buf, src, w)
            }
        }
    };
    if opts.shards <= 1 {
        let out = tmp.path().join("model.safetensors");
        write_safetensors(&out, &md, &specs, &mut data).map_err(|e| write_err(dir, e))?;
    } else {
        write_safetensors_sharded(tmp.path(), "model", opts.shards, &md, &specs, &mut data)
            .map_err(|e| write_err(dir, e))?;
    }

    let (tok_json, findings) = vocab.tokenizer_json();
    let files: [(&str, Value); 4] = [
        (
            "config.json",
            hp.config_json(
                tie,
                attention_bias,
                vocab.bos,
                vocab.eos,
                opts.dtype.torch_name(),
            ),
        ),
        (
            "generation_config.json",
            generation_config_json(vocab.bos, vocab.eos, vocab.pad),
        ),
        ("tokenizer.json", tok_json),
        (
            "tokenizer_config.json",
            vocab.tokenizer_config_json(hp.max_position_embeddings),
        ),
    ];
    for (file, value) in files {
        if file == "config.json" && crate::fault::active(crate::fault::Fault::DropConfig) {
            continue;
        }
        write_json(&tmp.path().join(file), &value)?;
    }
    let (names, out_bytes) = list_files(tmp.path())?;
    publish(tmp, dir)?;

    let changes = plan.take_changes();
    let tensors = model
        .tensors
        .iter()
        .zip(&planned)
        .map(|(t, p)| {
            let c = changes.iter().find(|c| c.name == t.name);
            HfTensorReport {
                gguf_name: t.name.clone(),
                hf_name: p.hf_name.clone(),
                from: t.dtype.name().into(),
                to: p.target.name().into(),
                shape: p.shape.clone(),
                unpermuted_heads: p.rows.as_ref().map(|(h, _)| *h),
                n_values: t.n_elements(),
                max_abs_err: c.map_or(0.0, |c| c.max_abs_err),
                mean_abs_err: c.map_or(0.0, |c| c.mean_abs_err),
            }
        })
        .collect();
    Ok(HfExportReport {
        dir: dir.to_path_buf(),
        arch: arch_name,
        files: names,
        out_bytes,
        tie_word_embeddings: tie,
        tensors,
        findings,
    })
}

/// Pretty JSON, newline-terminated, synced.
fn write_json(path: &Path, v: &Value) -> Result<(), ConvertError> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| write_err(path, e))?;
    bytes.push(b'\n');
    let mut f = std::fs::File::create(path).map_err(|e| write_err(path, e))?;
    f.write_all(&bytes).map_err(|e| write_err(path, e))?;
    f.sync_all().map_err(|e| write_err(path, e))
}

fn list_files(dir: &Path) -> Result<(Vec<String>, u64), ConvertError> {
    let mut names = Vec::new();
    let mut total = 0u64;
    for e in std::fs::read_dir(dir).map_err(|e| write_err(dir, e))? {
        let e = e.map_err(|e| write_err(dir, e))?;
        total += e.metadata().map(|m| m.len()).unwrap_or(0);
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok((names, total))
}

/// Renames the finished temp directory onto `dir` (absent, or empty: rename(2) replaces an
/// empty directory on Unix; elsewhere the empty directory is removed first).
fn publish(tmp: tempfile::TempDir, dir: &Path) -> Result<(), ConvertError> {
    if cfg!(not(unix)) && dir.is_dir() {
        std::fs::remove_dir(dir).map_err(|e| write_err(dir, e))?;
    }
    std::fs::rename(tmp.path(), dir)
        .map_err(|e| write_err(dir, format!("rename into place: {e}")))?;
    let _ = tmp.keep();
    Ok(())
}
