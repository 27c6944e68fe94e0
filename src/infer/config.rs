//! Model hyper-parameters from GGUF metadata (`{arch}.*` keys), and the inference error type.
//!
//! Absent and invalid are kept apart: an absent optional key takes its documented default and
//! the default is recorded in [`Config::defaults`]; a present key of the wrong type or value
//! is an error naming the key. Only `qwen2` and `llama` are supported.

use crate::formats::gguf::GgufValue;
use crate::model::Model;

pub use super::kernels::ops::RopeStyle;
use super::kernels::KernelError;

/// Errors of the inference engine.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The architecture has no forward pass here.
    #[error("unsupported architecture {arch:?}: inference supports qwen2 and llama")]
    UnsupportedArch {
        /// `general.architecture` (or "<missing>").
        arch: String,
    },
    /// A metadata key is missing or has the wrong type/value.
    #[error("metadata key {key}: {detail}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A tensor is missing or has the wrong shape.
    #[error("tensor {tensor}: {detail}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
    /// A weight matrix cannot be used (unsupported dtype, bad size).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The tokens do not fit in the session's context.
    #[error("context full: {needed} positions needed ({past} already used + {new} new), but the context holds {n_ctx}")]
    ContextFull {
        /// Positions needed in total.
        needed: usize,
        /// Positions already in the KV cache.
        past: usize,
        /// Tokens being added.
        new: usize,
        /// Context size of the session.
        n_ctx: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {token} is outside the vocabulary of {n_vocab}")]
    BadToken {
        /// The id.
        token: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// A kernel level was asked for that this CPU cannot run.
    #[error("this CPU cannot run the {level} kernels")]
    SimdUnavailable {
        /// The level asked for.
        level: super::kernels::SimdLevel,
    },
    /// An empty token list where at least one token is needed.
    #[error("no tokens given to {what}")]
    Empty {
        /// The operation.
        what: &'static str,
    },
}

/// A supported architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Qwen2 / Qwen2.5: q/k/v biases, NeoX RoPE.
    Qwen2,
    /// Llama family (incl. SmolLM2): no biases, adjacent-pair RoPE on permuted Q/K rows.
    Llama,
}

impl Arch {
    /// GGUF name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }
    /// RoPE pairing llama.cpp uses for the architecture.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Self::Qwen2 => RopeStyle::Neox,
            Self::Llama => RopeStyle::Norm,
        }
    }
}

/// Hyper-parameters of a model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Config {
    /// Architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA).
    pub n_head_kv: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Dimensions rotated by RoPE (≤ head_dim).
    pub n_rot: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Training context length (`{arch}.context_length`), if present.
    pub n_ctx_train: Option<usize>,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub n_vocab: usize,
    /// Defaults taken for absent keys, as "key = value (reason)".
    pub defaults: Vec<String>,
}

impl Config {
    /// Reads the configuration of `model`; refuses any architecture but qwen2 and llama.
    pub fn from_model(model: &Model) -> Result<Self, InferError> {
        let arch_name = model.arch().unwrap_or("<missing>");
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "llama" => Arch::Llama,
            other => {
                return Err(InferError::UnsupportedArch {
                    arch: other.to_string(),
                })
            }
        };
        let a = arch.name();
        let mut defaults = Vec::new();
        let n_layer = req_usize(model, &format!("{a}.block_count"))?;
        let n_embd = req_usize(model, &format!("{a}.embedding_length"))?;
        let n_ff = req_usize(model, &format!("{a}.feed_forward_length"))?;
        let n_head = req_usize(model, &format!("{a}.attention.head_count"))?;
        let key_kv = format!("{a}.attention.head_count_kv");
        let n_head_kv = match opt_usize(model, &key_kv)? {
            Some(v) => v,
            None => {
                defaults.push(format!("{key_kv} = {n_head} (absent: no GQA)"));
                n_head
            }
        };
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(meta_err(
                &key_kv,
                format!("{n_head} query heads are not a multiple of {n_head_kv} kv heads"),
            ));
        }
        let key_len = format!("{a}.attention.key_length");
        let head_dim = match opt_usize(model, &key_len)? {
            Some(v) => v,
            None => {
                if n_embd % n_head != 0 {
                    return Err(meta_err(
                        &key_len,
                        format!("absent, and {n_embd} is not a multiple of {n_head} heads"),
                    ));
                }
                defaults.push(format!(
                    "{key_len} = {} (absent: embedding_length / head_count)",
                    n_embd / n_head
                ));
                n_embd / n_head
            }
        };
        let key_rot = format!("{a}.rope.dimension_count");
        let n_rot = match opt_usize(model, &key_rot)? {
            Some(v) if v <= head_dim && v % 2 == 0 => v,
            Some(v) => {
                return Err(meta_err(
                    &key_rot,
                    format!("{v} must be even and at most the head size {head_dim}"),
                ))
            }
            None => {
                defaults.push(format!("{key_rot} = {head_dim} (absent: the head size)"));
                head_dim
            }
        };
        let key_eps = format!("{a}.attention.layer_norm_rms_epsilon");
        let rms_eps = req_f32(model, &key_eps)?;
        let key_base = format!("{a}.rope.freq_base");
        let rope_base = match opt_f32(model, &key_base)? {
            Some(v) => v,
            None => {
                defaults.push(format!("{key_base} = 10000 (absent: llama.cpp's default)"));
                10000.0
            }
        };
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(meta_err(
                &key_base,
                format!("{rope_base} is not a positive number"),
            ));
        }
        let n_ctx_train = opt_usize(model, &format!("{a}.context_length"))?;
        let embd = model
            .tensor("token_embd.weight")
            .ok_or_else(|| InferError::Tensor {
                tensor: "token_embd.weight".into(),
                detail: "missing".into(),
            })?;
        let n_vocab = embd
            .ne
            .get(1)
            .and_then(|&v| usize::try_from(v).ok())
            .ok_or_else(|| InferError::Tensor {
                tensor: "token_embd.weight".into(),
                detail: format!("shape {:?} has no row count", embd.ne),
            })?;
        for (name, v) in [
            ("block_count", n_layer),
            ("embedding_length", n_embd),
            ("feed_forward_length", n_ff),
        ] {
            if v == 0 {
                return Err(meta_err(&format!("{a}.{name}"), "is 0".into()));
            }
        }
        Ok(Self {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            rms_eps,
            rope_base,
            rope_style: arch.rope_style(),
            n_ctx_train,
            n_vocab,
            defaults,
        })
    }

    /// Width of all query heads.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// Width of all key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

fn meta_err(key: &str, detail: String) -> InferError {
    InferError::Metadata {
        key: key.to_string(),
        detail,
    }
}

fn opt_usize(model: &Model, key: &str) -> Result<Option<usize>, InferError> {
    match model.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .map(Some)
            .ok_or_else(|| {
                meta_err(
                    key,
                    format!("expected an unsigned integer, found {}", v.describe()),
                )
            }),
    }
}

fn req_usize(model: &Model, key: &str) -> Result<usize, InferError> {
    opt_usize(model, key)?.ok_or_else(|| meta_err(key, "missing".into()))
}

fn opt_f32(model: &Model, key: &str) -> Result<Option<f32>, InferError> {
    match model.get(key) {
        None => Ok(None),
        Some(GgufValue::F32(v)) => Ok(Some(*v)),
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| meta_err(key, format!("expected a number, found {}", v.describe()))),
    }
}

fn req_f32(model: &Model, key: &str) -> Result<f32, InferError> {
    opt_f32(model, key)?.ok_or_else(|| meta_err(key, "missing".into()))
}
