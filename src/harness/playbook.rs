//! Playbooks: strict YAML (`deny_unknown_fields` everywhere). Every field drives execution or
//! the playbook is rejected with the line and column of the problem.
//!
//! ```yaml
//! name: synthetic                    # required
//! description: …                     # optional
//! ticket: "#172"                     # verify playbooks: the ticket reproduced
//! model:
//!   synth: { arch: qwen2, layers: 2, hidden: 256, heads: 4, kv_heads: 2, ffn: 768,
//!            vocab: 1024, tied_embeddings: true, quant: mixed, seed: 7 }
//!   # or: path: ${APR_QA_MODELS}/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf
//!   expect: { arch: qwen2, tensors: 291 }   # optional: checked before any gate runs
//! formats: [gguf, apr, safetensors]  # default: all three
//! backends: [cpu]                    # cpu, cuda; default [cpu]
//! seed: 42                           # default 0 (--seed overrides)
//! timeout_s: 120                     # per gate, default 120
//! inference: { prompts: ["…"], chat: false, max_tokens: 32, threads: 2, references: path }
//! gates:
//!   - id: F-CONV-G-A                 # catalogue id or alias
//!     required: true                 # default true; gates of an absent backend default false
//!     tolerance: 0.0                 # default: the catalogue's
//!     timeout_s: 30                  # default: the playbook's
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::lookup;

pub use crate::gates::Fmt;

/// A compute backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// CPU (always present).
    Cpu,
    /// CUDA (feature `cuda` and a device).
    Cuda,
}

/// A synthetic model spec (`apr-qa synth` options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    /// `qwen2` or `llama`.
    pub arch: String,
    /// Layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Attention heads.
    pub heads: u32,
    /// KV heads.
    pub kv_heads: u32,
    /// FFN size.
    pub ffn: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Tie the output to the token embedding.
    pub tied_embeddings: bool,
    /// `q4_k_m`, `q8_0`, `f16`, `f32`, `mixed`.
    pub quant: String,
    /// Weight seed.
    pub seed: u64,
}

/// What the model must be, checked before any gate runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `general.architecture`.
    #[serde(default)]
    pub arch: Option<String>,
    /// Tensor count.
    #[serde(default)]
    pub tensors: Option<usize>,
}

/// The model under qualification: a file, or a synthetic spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Path to a model file (`~` and `${VAR}` expanded).
    #[serde(default)]
    pub path: Option<String>,
    /// Synthesize the model into the run's temp dir instead.
    #[serde(default)]
    pub synth: Option<SynthSpec>,
    /// Checked before the gates run.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// Inference settings for the inference-driven gates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSpec {
    /// Prompts.
    pub prompts: Vec<String>,
    /// Render prompts with the model's chat template.
    #[serde(default)]
    pub chat: bool,
    /// Tokens per prompt.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Threads.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// llama.cpp reference file (tokens + top-8 logits per step), relative to the playbook.
    #[serde(default)]
    pub references: Option<String>,
}

fn default_max_tokens() -> usize {
    32
}
fn default_threads() -> usize {
    2
}

/// One gate entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateEntry {
    /// Catalogue id or alias.
    pub id: String,
    /// Whether the run is incomplete (exit 3) when this gate is not judged.
    #[serde(default)]
    pub required: Option<bool>,
    /// Tolerance (default: the catalogue's).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Time limit (default: the playbook's).
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// A playbook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The ticket a verify playbook reproduces.
    #[serde(default)]
    pub ticket: Option<String>,
    /// The model.
    pub model: ModelSpec,
    /// Formats to convert through.
    #[serde(default = "all_formats")]
    pub formats: Vec<Fmt>,
    /// Backends.
    #[serde(default = "cpu_only")]
    pub backends: Vec<BackendName>,
    /// Seed.
    #[serde(default)]
    pub seed: u64,
    /// Per-gate time limit.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Inference settings.
    #[serde(default)]
    pub inference: Option<InferenceSpec>,
    /// The gates.
    pub gates: Vec<GateEntry>,
}

fn all_formats() -> Vec<Fmt> {
    vec![Fmt::Gguf, Fmt::Apr, Fmt::Safetensors]
}
fn cpu_only() -> Vec<BackendName> {
    vec![BackendName::Cpu]
}
fn default_timeout() -> u64 {
    120
}

/// A playbook that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct PlaybookError {
    /// The playbook file.
    pub path: String,
    /// (line, column), 1-based, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

/// Expands `~/` and `${VAR}` (unset variables are an error naming them).
pub fn expand(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    if let Some(r) = rest.strip_prefix("~/") {
        out.push_str(&std::env::var("HOME").map_err(|_| "HOME is not set".to_string())?);
        out.push('/');
        rest = r;
    }
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        let var = &after[..end];
        let val = match (var, std::env::var(var)) {
            (_, Ok(v)) => v,
            ("APR_QA_MODELS", Err(_)) => format!(
                "{}/.cache/apr-qa/models",
                std::env::var("HOME").unwrap_or_default()
            ),
            (_, Err(_)) => return Err(format!("environment variable {var} is not set")),
        };
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The 1-based line of the first line of `text` whose trimmed start begins with `key:`.
fn line_of(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let t = l.trim_start();
        t.starts_with(&format!("{key}:"))
            .then(|| (i + 1, l.len() - t.len() + 1))
    })
}

impl Playbook {
    /// Parses and validates playbook text. `path` is for messages; `check_model` also requires
    /// a model path to exist.
    pub fn parse(text: &str, path: &str, check_model: bool) -> Result<Self, PlaybookError> {
        let err = |location, message: String| PlaybookError {
            path: path.to_string(),
            location,
            message,
        };
        let pb: Playbook = serde_yaml_ng::from_str(text).map_err(|e| {
            let loc = e.location().map(|l| (l.line(), l.column()));
            err(loc, e.to_string())
        })?;
        match (&pb.model.path, &pb.model.synth) {
            (Some(_), Some(_)) => {
                return Err(err(
                    line_of(text, "model"),
                    "model: give either path or synth, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    line_of(text, "model"),
                    "model: a path or a synth spec is required".into(),
                ))
            }
            (Some(p), None) if check_model => {
                let expanded = expand(p).map_err(|m| err(line_of(text, "path"), m))?;
                let pp = Path::new(&expanded);
                if !pp.exists() {
                    return Err(err(
                        line_of(text, "path"),
                        format!("model path {expanded} does not exist"),
                    ));
                }
            }
            _ => {}
        }
        if pb.gates.is_empty() {
            return Err(err(
                line_of(text, "gates"),
                "gates: at least one gate is required".into(),
            ));
        }
        for g in &pb.gates {
            if lookup(&g.id).is_none() {
                return Err(err(
                    line_of(text, &format!("- id: {}", g.id)).or_else(|| find_text(text, &g.id)),
                    format!("unknown gate id {:?} (see `apr-qa gates`)", g.id),
                ));
            }
            if let Some(t) = g.tolerance {
                if !t.is_finite() || t < 0.0 {
                    return Err(err(
                        find_text(text, &g.id),
                        format!("gate {}: tolerance {t} must be finite and ≥ 0", g.id),
                    ));
                }
            }
        }
        if pb.formats.is_empty() {
            return Err(err(
                line_of(text, "formats"),
                "formats: at least one format is required".into(),
            ));
        }
        Ok(pb)
    }

    /// Reads and parses a playbook file.
    pub fn load(path: &Path, check_model: bool) -> Result<(Self, String), PlaybookError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlaybookError {
            path: path.display().to_string(),
            location: None,
            message: format!("cannot read: {e}"),
        })?;
        Ok((
            Self::parse(&text, &path.display().to_string(), check_model)?,
            text,
        ))
    }

    /// The model path with `~`/`${VAR}` expanded (None for synthetic models).
    pub fn model_path(&self) -> Option<PathBuf> {
        self.model
            .path
            .as_deref()
            .and_then(|p| expand(p).ok())
            .map(PathBuf::from)
    }
}

fn find_text(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "name: t\nmodel:\n  synth: {arch: qwen2, layers: 1, hidden: 64, heads: 2, kv_heads: 1, ffn: 128, vocab: 300, tied_embeddings: true, quant: f32, seed: 1}\ngates:\n  - id: F-CONV-G-A\n";

    #[test]
    fn a_valid_playbook_parses() {
        let pb = Playbook::parse(OK, "t.yaml", true).expect("valid");
        assert_eq!(pb.formats.len(), 3);
        assert_eq!(pb.timeout_s, 120);
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_line() {
        let bad = OK.replace("gates:", "gatez: []\ngates:");
        let e = Playbook::parse(&bad, "t.yaml", true).expect_err("unknown field");
        assert_eq!(e.location.map(|l| l.0), Some(4), "{e}");
        assert!(e.message.contains("gatez"), "{e}");
        let bad = OK.replace("layers: 1", "layers: one");
        let e = Playbook::parse(&bad, "t.yaml", true).expect_err("wrong type");
        assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");
        let bad = OK.replace("- id: F-CONV-G-A", "- id: F-CONV-G-A\n    requird: true");
        let e = Playbook::parse(&bad, "t.yaml", true).expect_err("nested unknown field");
        assert_eq!(e.location.map(|l| l.0), Some(6), "{e}");
    }

    #[test]
    fn missing_model_path_and_unknown_gates_are_named() {
        let bad = "name: t\nmodel:\n  path: /nonexistent/model.gguf\ngates:\n  - id: F-CONV-G-A\n";
        let e = Playbook::parse(bad, "t.yaml", true).expect_err("missing model");
        assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");
        assert!(e.message.contains("/nonexistent/model.gguf"));
        let bad = OK.replace("F-CONV-G-A", "F-NOT-A-GATE");
        let e = Playbook::parse(&bad, "t.yaml", true).expect_err("unknown gate");
        assert_eq!(e.location.map(|l| l.0), Some(5), "{e}");
    }
}
