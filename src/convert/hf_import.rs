//! HF directory import (`apr-qa convert DIR -o X.gguf|X.apr`, DESIGN §2.2–2.3): `config.json`,
//! one or sharded safetensors, `tokenizer.json` / `tokenizer_config.json` → GGUF metadata and
//! tensors.
//!
//! Invariants:
//! - Tensor bytes are never converted: F32/F16/BF16 (and our GGML-scheme U8 tensors) pass
//!   through as stored. Only rows move: llama Q/K stored under HF names are re-permuted
//!   (llama.cpp's `permute`, [`super::hf_rows`]), whole rows at a time.
//! - When the safetensors carry our GGUF lists (`gguf_kv`, `gguf_tensors`, … written by HF
//!   export), the metadata, tensor order, `ne`, version and alignment are restored exactly, so
//!   `GGUF → HF → GGUF` at one dtype equals `convert GGUF --dtype <that dtype>` byte for byte.
//!   `config.json` must then agree with the carried hyper-parameters (an edited directory is
//!   refused, naming the field), and every carried tensor must be present with its type and
//!   element count, and no other.
//! - Without carried lists (a directory from the Hub), metadata is derived as llama.cpp's
//!   converter derives it ([`super::hf_config`], [`super::hf_tokenizer_import`]); tensors keep
//!   the file order; `rotary_emb.inv_freq` buffers are skipped (noted); any other tensor without
//!   a GGUF name is refused, named.
//! - Memory: O(header + one row); the stored bytes are mapped.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::hf_config::HfHparams;
use super::hf_rows::{n_rows, permute_source, qk_heads};
use super::hf_tokenizer_import::{gguf_tokenizer_kv, Metadata};
use super::ConvertError;
use crate::dtype::GgmlType;
use crate::formats::gguf::{alignment_of, GgufValue};
use crate::formats::gguf_write::{write_gguf, GgufTensorSpec};
use crate::formats::names::{hf_to_gguf, MappedArch};
use crate::formats::safetensors::{SafetensorsModel, StDtype};
use crate::model::{Carried, Model, ModelError, SourceFormat};

/// Options of [`import_hf_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HfImportOptions {
    /// Restore the carried GGUF lists when present (default). `false` derives everything from
    /// the HF files, as for a directory from the Hub.
    pub use_carried: bool,
}

impl Default for HfImportOptions {
    fn default() -> Self {
        Self { use_carried: true }
    }
}

/// One tensor of an import, in GGUF terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedTensor {
    /// GGUF name.
    pub name: String,
    /// Name in the safetensors file.
    pub stored_name: String,
    /// Type (as stored).
    pub dtype: GgmlType,
    /// GGUF dims.
    pub ne: Vec<u64>,
    /// Byte length.
    pub n_bytes: u64,
    /// Heads by which rows are re-permuted (llama Q/K under HF names).
    pub permute_heads: Option<u64>,
    st_index: usize,
}

/// An HF directory in GGUF terms: metadata and tensors, over the mapped safetensors.
#[derive(Debug)]
pub struct HfImport {
    /// The directory.
    pub dir: PathBuf,
    /// Architecture.
    pub arch: MappedArch,
    /// GGUF metadata, in order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensors, in GGUF order.
    pub tensors: Vec<ImportedTensor>,
    /// GGUF version to write.
    pub gguf_version: u32,
    /// GGUF alignment.
    pub alignment: u64,
    /// Format of the first file in the conversion history.
    pub original_format: String,
    /// Whether carried GGUF lists were restored.
    pub carried: bool,
    /// What was inferred or skipped.
    pub findings: Vec<String>,
    st: SafetensorsModel,
}

fn usage(msg: impl Into<String>) -> ConvertError {
    ConvertError::Usage(msg.into())
}

fn read_json(path: &Path) -> Result<Value, ConvertError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| usage(format!("{} is not JSON: {e}", path.display())))
}

fn read_json_opt(path: &Path) -> Result<Option<Value>, ConvertError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Whether `path` is an HF model directory (a directory with `config.json`).
pub fn is_hf_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

/// Imports the HF directory `dir` (restoring carried GGUF lists when present).
pub fn import_hf(dir: &Path) -> Result<HfImport, ConvertError> {
    import_hf_with(dir, &HfImportOptions::default())
}

/// Imports and opens `dir` as a [`Model`] (for `write_model`): the GGUF is written once to a
/// temp file in `scratch`, mapped and unlinked (on Unix the mapping outlives the name). The
/// model's `path` is `dir` and its `format` is SafeTensors.
pub fn open_hf_dir(dir: &Path, scratch: &Path) -> Result<Model, ConvertError> {
    import_hf(dir)?.into_model(scratch)
}

/// [`import_hf`] with options.
pub fn import_hf_with(dir: &Path, opts: &HfImportOptions) -> Result<HfImport, ConvertError> {
    if !is_hf_dir(dir) {
        return Err(usage(format!(
            "{} is not an HF model directory (no config.json)",
            dir.display()
        )));
    }
    let cfg = read_json(&dir.join("config.json"))?;
    let hp = HfHparams::from_config(&cfg)?;
    let st = SafetensorsModel::open(dir).map_err(|e| ConvertError::Model(ModelError::from(e)))?;
    let mut findings = Vec::new();
    let mut tensors = Vec::with_capacity(st.tensors.len());
    for (i, t) in st.tensors.iter().enumerate() {
        let dtype = match t.dtype {
            StDtype::Ggml(g) => g,
            StDtype::Other(o) => {
                return Err(usage(format!(
                    "tensor {:?} has SafeTensors dtype {}, which has no GGML type",
                    t.name,
                    o.name()
                )))
            }
        };
        let (name, hf_named) = match hf_to_gguf(&t.name) {
            Some(g) => (g, true),
            None if t.name.ends_with("rotary_emb.inv_freq") => {
                findings.push(format!(
                    "skipped {} (a buffer llama.cpp recomputes)",
                    t.name
                ));
                continue;
            }
            None => {
                return Err(usage(format!(
                    "tensor {:?} has no GGUF name for {}",
                    t.name,
                    hp.arch.gguf_name()
                )))
            }
        };
        let ne: Vec<u64> = t.shape.iter().rev().copied().collect();
        let permute_heads = if hf_named {
            qk_heads(
                hp.arch,
                &name,
                hp.num_attention_heads,
                hp.num_key_value_heads,
            )
        } else {
            None
        };
        tensors.push(ImportedTensor {
            name,
            stored_name: t.name.clone(),
            dtype,
            ne,
            n_bytes: t.end - t.start,
            permute_heads,
            st_index: i,
        });
    }
    let carried = if opts.use_carried {
        Carried::from_string_map(&st.metadata)
            .map_err(|e| usage(format!("{}: {e}", dir.display())))?
    } else {
        Carried::default()
    };
    let mut imp = match (
        carried.kv.clone().map(std::borrow::Cow::into_owned),
        carried.tensors.clone(),
    ) {
        (Some(kv), Some(infos)) => {
            let tensors = apply_carried(tensors, &infos)?;
            check_against_config(&hp, &kv, &tensors)?;
            let alignment = match carried.alignment {
                Some(a) => a,
                None => alignment_of(&kv).map_err(|k| usage(format!("general.alignment: {k}")))?,
            };
            HfImport {
                dir: dir.to_path_buf(),
                arch: hp.arch,
                metadata: kv,
                tensors,
                gguf_version: carried.version.unwrap_or(3),
                alignment,
                original_format: carried.original_format.unwrap_or_else(|| "gguf".into()),
                carried: true,
                findings: Vec::new(),
                st,
            }
        }
        _ => {
            let (metadata, mut notes) = derive_metadata(dir, &hp, &cfg, &tensors)?;
            findings.append(&mut notes);
            HfImport {
                dir: dir.to_path_buf(),
                arch: hp.arch,
                metadata,
                tensors,
                gguf_version: 3,
                alignment: crate::model::DEFAULT_ALIGNMENT,
                original_format: "safetensors".into(),
                carried: false,
                findings: Vec::new(),
                st,
            }
        }
    };
    for t in &imp.tensors {
        if let Some(h) = t.permute_heads {
            permute_source(n_rows(&t.ne), h)
                .map_err(|e| usage(format!("tensor {:?}: {e}", t.name)))?;
        }
    }
    imp.findings = findings;
    Ok(imp)
}

/// Orders tensors as the carried list says, with its `ne`; refuses missing, extra or
/// mismatched tensors.
fn apply_carried(
    tensors: Vec<ImportedTensor>,
    infos: &[crate::model::carry::CarriedTensor],
) -> Result<Vec<ImportedTensor>, ConvertError> {
    let mut by_name: indexmap::IndexMap<String, ImportedTensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let mut t = by_name.shift_remove(&info.name).ok_or_else(|| {
            usage(format!(
                "carried gguf_tensors names {:?}, which the directory lacks",
                info.name
            ))
        })?;
        let n: u64 = info.ne.iter().product();
        let have: u64 = t.ne.iter().product();
        if t.dtype != info.dtype || have != n {
            return Err(usage(format!(
                "tensor {:?} is {} with {have} elements but gguf_tensors says {} {:?}",
                info.name, t.dtype, info.dtype, info.ne
            )));
        }
        t.ne = info.ne.clone();
        out.push(t);
    }
    if let Some(extra) = by_name.values().next() {
        return Err(usage(format!(
            "tensor {:?} is not in the carried gguf_tensors",
            extra.stored_name
        )));
    }
    Ok(out)
}

fn vocab_rows(tensors: &[ImportedTensor]) -> Option<u64> {
    tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .and_then(|t| t.ne.get(1).copied())
}

/// `config.json` must state the hyper-parameters the carried metadata holds.
fn check_against_config(
    hp: &HfHparams,
    kv: &[(String, GgufValue)],
    tensors: &[ImportedTensor],
) -> Result<(), ConvertError> {
    let rows = vocab_rows(tensors).unwrap_or(hp.vocab_size);
    let carried = HfHparams::from_gguf(hp.arch, kv, rows)?;
    let pairs: [(&str, String, String); 10] = [
        (
            "hidden_size",
            hp.hidden_size.to_string(),
            carried.hidden_size.to_string(),
        ),
        (
            "intermediate_size",
            hp.intermediate_size.to_string(),
            carried.intermediate_size.to_string(),
        ),
        (
            "num_hidden_layers",
            hp.num_hidden_layers.to_string(),
            carried.num_hidden_layers.to_string(),
        ),
        (
            "num_attention_heads",
            hp.num_attention_heads.to_string(),
            carried.num_attention_heads.to_string(),
        ),
        (
            "num_key_value_heads",
            hp.num_key_value_heads.to_string(),
            carried.num_key_value_heads.to_string(),
        ),
        (
            "head_dim",
            hp.head_dim().to_string(),
            carried.head_dim().to_string(),
        ),
        (
            "rms_norm_eps",
            hp.rms_norm_eps.to_bits().to_string(),
            carried.rms_norm_eps.to_bits().to_string(),
        ),
        (
            "rope_theta",
            hp.rope_theta.to_bits().to_string(),
            carried.rope_theta.to_bits().to_string(),
        ),
        (
            "max_position_embeddings",
            hp.max_position_embeddings.to_string(),
            carried.max_position_embeddings.to_string(),
        ),
        (
            "vocab_size",
            hp.vocab_size.to_string(),
            carried.vocab_size.to_string(),
        ),
    ];
    for (field, cfg, car) in pairs {
        if cfg != car {
            return Err(usage(format!(
                "config.json {field} ({cfg}) disagrees with the carried gguf_kv ({car}); the directory was edited after export"
            )));
        }
    }
    Ok(())
}

/// Metadata for a directory without carried lists, as llama.cpp's converter writes it.
fn derive_metadata(
    dir: &Path,
    hp: &HfHparams,
    cfg: &Value,
    tensors: &[ImportedTensor],
) -> Result<(Metadata, Vec<String>), ConvertError> {
    let tok = read_json_opt(&dir.join("tokenizer.json"))?
        .ok_or_else(|| usage(format!("{} has no tokenizer.json", dir.display())))?;
    let tok_cfg = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let jinja = dir.join("chat_template.jinja");
    let template_file = if jinja.is_file() {
        Some(
            std::fs::read_to_string(&jinja)
                .map_err(|e| usage(format!("reading {}: {e}", jinja.display())))?,
        )
    } else {
        None
    };
    let mut md: Vec<(String, GgufValue)> = vec![
        (
            "general.architecture".into(),
            GgufValue::String(hp.arch.gguf_name().as_bytes().to_vec()),
        ),
        ("general.type".into(), GgufValue::String(b"model".to_vec())),
    ];
    let mut hkv = hp.gguf_kv();
    let split = hkv.len().min(8);
    let tail = hkv.split_off(split);
    md.extend(hkv);
    let matrices = || {
        tensors
            .iter()
            .filter(|t| t.ne.iter().skip(1).any(|&d| d > 1))
    };
    let ftype = if matrices().any(|t| t.dtype == GgmlType::BF16) {
        GgmlType::BF16.llama_ftype()
    } else if matrices().any(|t| t.dtype == GgmlType::F16) {
        GgmlType::F16.llama_ftype()
    } else if matrices().all(|t| t.dtype == GgmlType::F32) {
        GgmlType::F32.llama_ftype()
    } else {
        None
    };
    if let Some(f) = ftype {
        md.push(("general.file_type".into(), GgufValue::U32(f)));
    }
    md.extend(tail);
    let (tkv, notes) = gguf_tokenizer_kv(hp.arch, &tok, tok_cfg.as_ref(), cfg, template_file)?;
    md.extend(tkv);
    Ok((md, notes))
}

impl HfImport {
    /// The stored bytes of tensor `i` (HF row order).
    pub fn stored_bytes(&self, i: usize) -> &[u8] {
        self.tensors
            .get(i)
            .and_then(|t| self.st.tensors.get(t.st_index))
            .and_then(|s| self.st.try_tensor_data(s))
            .unwrap_or(&[])
    }

    /// Writes tensor `i` in GGUF row order.
    pub fn write_tensor(&self, i: usize, w: &mut dyn Write) -> std::io::Result<()> {
        let t = self
            .tensors
            .get(i)
            .ok_or_else(|| std::io::Error::other(format!("no tensor {i}")))?;
        let bytes = self.stored_bytes(i);
        match t.permute_heads {
            None => w.write_all(bytes),
            Some(h) => {
                let src = permute_source(n_rows(&t.ne), h).map_err(std::io::Error::other)?;
                super::hf_rows::write_rows(bytes, &src, w)
            }
        }
    }

    /// Writes the import as a GGUF file (atomically); returns its size.
    pub fn write_gguf(&self, out: &Path) -> Result<u64, ConvertError> {
        let specs: Vec<GgufTensorSpec> = self
            .tensors
            .iter()
            .map(|t| GgufTensorSpec {
                name: &t.name,
                ne: &t.ne,
                dtype: t.dtype,
            })
            .collect();
        let mut data = |i: usize, w: &mut dyn Write| self.write_tensor(i, w);
        write_gguf(out, self.gguf_version, &self.metadata, &specs, &mut data).map_err(|e| {
            ConvertError::Write {
                path: out.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
    }

    /// The import as a [`Model`], through a temp GGUF in `scratch` (see [`open_hf_dir`]).
    pub fn into_model(self, scratch: &Path) -> Result<Model, ConvertError> {
        let tmp = tempfile::Builder::new()
            .prefix(".apr-qa-hf-import.")
            .tempdir_in(scratch)
            .map_err(|e| ConvertError::Write {
                path: scratch.to_path_buf(),
                detail: format!("create temp directory: {e}"),
            })?;
        let path = tmp.path().join("model.gguf");
        self.write_gguf(&path)?;
        let mut model = Model::open(&path)?;
        drop(tmp);
        model.path = self.dir.clone();
        model.format = SourceFormat::Safetensors;
        model.original_format = self.original_format.clone();
        model.alignment = self.alignment;
        model.findings = self.findings;
        Ok(model)
    }
}
