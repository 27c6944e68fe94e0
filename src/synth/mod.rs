//! Synthetic models (`apr-qa synth`): a tiny qwen2 or llama GGUF v3, made in seconds from a
//! seed, with no download, that llama.cpp loads and runs.
//!
//! What a file holds (see [`synthesize`]):
//! - the metadata llama.cpp's qwen2/llama loaders read, a byte-level BPE tokenizer
//!   ([`vocab`]) with the architecture's special tokens and chat template;
//! - tensors named and shaped as llama.cpp expects (GGUF `ne` order: a weight `W[out, in]` has
//!   `ne = [in, out]`), in the order `token_embd`, the blocks in layer order, `output_norm`,
//!   `output` (absent when embeddings are tied); within a block in the order of the HF names, as
//!   convert_hf_to_gguf writes them: `attn_norm`, `ffn_down`, `ffn_gate`, `ffn_up`, `ffn_norm`,
//!   `attn_k`, `attn_output`, `attn_q`, `attn_v` (qwen2: each bias before its weight);
//! - F32 values from `weights.rs`, quantized with the crate's reference quantizers to the types
//!   llama-quantize would choose ([`mix`]).
//!
//! Invariants: the output depends only on the options (same options ⇒ byte-identical file, on
//! any platform and thread count); the file is written atomically and read back before it
//! replaces `out`; [`plan_tensors`] gives every tensor's name, shape and type without writing.
//!
//! Which options give all five quant types Q4_K, Q5_0, Q5_1, Q6_K and Q8_0: `quant: Mixed`,
//! `hidden` a multiple of 32 but not of 256, `ffn` a multiple of 256, `layers ≥ 2`. Then
//! `ffn_down` is Q4_K/Q6_K (by `use_more_bits`), `attn_q/k`, `ffn_gate/up` Q5_0, `attn_v`
//! Q5_0/Q8_0, `attn_output` Q5_1 and the tied `token_embd` (or `output`) Q8_0. The default
//! options ([`SynthOptions::default`]) are such a model.

pub mod mix;
mod rng;
pub mod vocab;
mod weights;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::dtype::GgmlType;
use crate::formats::gguf::{GgufArray, GgufValue, GgufValueType};
use crate::formats::gguf_write::{write_gguf, GgufTensorSpec};
use crate::formats::FormatError;
use crate::quant::quantize;

/// The architectures a synthetic model can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynthArch {
    /// Qwen2 (Qwen2.5): q/k/v biases, ChatML template, `qwen2` pre-tokenizer.
    Qwen2,
    /// Llama (Llama-3 style): no biases, llama-3 template, `llama-bpe` pre-tokenizer.
    Llama,
}

impl SynthArch {
    /// The GGUF `general.architecture` name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }

    /// The `tokenizer.ggml.pre` value.
    pub const fn pre_tokenizer(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama-bpe",
        }
    }

    /// The usual RoPE base of the family (Qwen2.5: 1e6, Llama 3: 5e5), never 10000.
    pub const fn default_rope_theta(self) -> f32 {
        match self {
            Self::Qwen2 => 1_000_000.0,
            Self::Llama => 500_000.0,
        }
    }
}

/// How the synthetic model's tensors are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynthQuant {
    /// llama-quantize's Q4_K_M mix (see [`mix`]).
    Q4KM,
    /// Every 2-d weight Q8_0 (llama-quantize Q8_0).
    Q8_0,
    /// Every 2-d weight F16 (norms and biases F32).
    F16,
    /// Everything F32.
    F32,
    /// Q4_K_M with `attn_output` forced to Q5_K (→ Q5_1 when `hidden % 256 != 0`); see [`mix`].
    Mixed,
}

/// What to synthesize.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Architecture.
    pub arch: SynthArch,
    /// Number of blocks.
    pub layers: u32,
    /// Embedding length (`n_embd`).
    pub hidden: u32,
    /// Attention heads (`hidden / heads` is the head size; it must be even).
    pub heads: u32,
    /// KV heads (divides `heads`).
    pub kv_heads: u32,
    /// Feed-forward length.
    pub ffn: u32,
    /// Vocabulary size (≥ [`vocab::min_vocab`]).
    pub vocab: u32,
    /// No `output.weight`: the output reuses `token_embd`.
    pub tied_embeddings: bool,
    /// Tensor storage.
    pub quant: SynthQuant,
    /// Seed of the weights and of the merge tie-breaks.
    pub seed: u64,
    /// RoPE base (`rope.freq_base`).
    pub rope_theta: f32,
    /// Training context length.
    pub context_length: u32,
}

impl Default for SynthOptions {
    /// The default playbook's model: qwen2, 2 layers, hidden 384 (6 heads of 64, 2 KV heads),
    /// ffn 1024, vocab 1024, tied embeddings, `Mixed` (Q4_K, Q5_0, Q5_1, Q6_K, Q8_0 and F32),
    /// rope theta 1e6, context 4096, seed 42. About 3 M parameters, a 2 MB file.
    fn default() -> Self {
        Self {
            arch: SynthArch::Qwen2,
            layers: 2,
            hidden: 384,
            heads: 6,
            kv_heads: 2,
            ffn: 1024,
            vocab: 1024,
            tied_embeddings: true,
            quant: SynthQuant::Mixed,
            seed: 42,
            rope_theta: SynthArch::Qwen2.default_rope_theta(),
            context_length: 4096,
        }
    }
}

/// What [`synthesize`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthReport {
    /// Number of tensors.
    pub n_tensors: usize,
    /// Tensors per type name (`"Q4_K"`, …).
    pub dtype_histogram: BTreeMap<String, usize>,
    /// File size in bytes.
    pub bytes: u64,
}

/// Errors of the synthetic model generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// An option is out of range or inconsistent with another.
    #[error("invalid synthetic model option `{field}`: {detail}")]
    Options {
        /// The option.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Writing the file failed.
    #[error("writing the synthetic model")]
    Format(#[from] FormatError),
    /// A broken invariant of the generator itself.
    #[error("synthetic model generator: {detail}")]
    Internal {
        /// What went wrong.
        detail: String,
    },
}

/// What a tensor is for (its values and type depend on it).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorRole {
    TokenEmbd,
    Output,
    OutputNorm,
    AttnNorm,
    AttnQ,
    AttnQBias,
    AttnK,
    AttnKBias,
    AttnV,
    AttnVBias,
    AttnOutput,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
}

/// One tensor of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTensor {
    /// GGUF name.
    pub name: String,
    /// Dimensions in GGUF order (`ne[0]` contiguous).
    pub ne: Vec<u64>,
    /// Storage type.
    pub dtype: GgmlType,
    /// What the tensor is for.
    pub role: TensorRole,
    /// Its block index (0 for tensors outside the blocks).
    pub layer: u32,
}

fn bad(field: &'static str, detail: impl Into<String>) -> SynthError {
    SynthError::Options {
        field,
        detail: detail.into(),
    }
}

/// Checks the options' ranges and consistency.
pub fn validate(o: &SynthOptions) -> Result<(), SynthError> {
    // llama.cpp LLAMA_MAX_LAYERS.
    if o.layers == 0 || o.layers > 512 {
        return Err(bad("layers", format!("{} is not in 1..=512", o.layers)));
    }
    if o.heads == 0 || o.hidden == 0 || !o.hidden.is_multiple_of(o.heads) {
        return Err(bad(
            "heads",
            format!("hidden {} is not a multiple of heads {}", o.hidden, o.heads),
        ));
    }
    if !(o.hidden / o.heads).is_multiple_of(2) {
        return Err(bad(
            "heads",
            format!(
                "head size {} is odd (RoPE rotates pairs)",
                o.hidden / o.heads
            ),
        ));
    }
    if o.kv_heads == 0 || !o.heads.is_multiple_of(o.kv_heads) {
        return Err(bad(
            "kv_heads",
            format!("{} does not divide heads {}", o.kv_heads, o.heads),
        ));
    }
    if o.ffn == 0 {
        return Err(bad("ffn", "must be positive"));
    }
    let min = vocab::min_vocab(o.arch);
    if o.vocab < min {
        return Err(bad(
            "vocab",
            format!("{} is below the minimum {min}", o.vocab),
        ));
    }
    if !(o.rope_theta.is_finite() && o.rope_theta > 0.0) {
        return Err(bad(
            "rope_theta",
            format!("{} is not a positive number", o.rope_theta),
        ));
    }
    if o.context_length == 0 {
        return Err(bad("context_length", "must be positive"));
    }
    Ok(())
}

/// Every tensor's name, shape, type and role, in file order, without generating any data.
pub fn plan_tensors(o: &SynthOptions) -> Result<Vec<PlannedTensor>, SynthError> {
    validate(o)?;
    let (h, f, v) = (u64::from(o.hidden), u64::from(o.ffn), u64::from(o.vocab));
    let kv = h / u64::from(o.heads) * u64::from(o.kv_heads);
    let bias = o.arch == SynthArch::Qwen2;
    let mut list: Vec<(String, Vec<u64>, TensorRole, u32)> = Vec::new();
    list.push((
        "token_embd.weight".into(),
        vec![h, v],
        TensorRole::TokenEmbd,
        0,
    ));
    for i in 0..o.layers {
        let t = |s: &str| format!("blk.{i}.{s}");
        list.push((t("attn_norm.weight"), vec![h], TensorRole::AttnNorm, i));
        list.push((t("ffn_down.weight"), vec![f, h], TensorRole::FfnDown, i));
        list.push((t("ffn_gate.weight"), vec![h, f], TensorRole::FfnGate, i));
        list.push((t("ffn_up.weight"), vec![h, f], TensorRole::FfnUp, i));
        list.push((t("ffn_norm.weight"), vec![h], TensorRole::FfnNorm, i));
        if bias {
            list.push((t("attn_k.bias"), vec![kv], TensorRole::AttnKBias, i));
        }
        list.push((t("attn_k.weight"), vec![h, kv], TensorRole::AttnK, i));
        list.push((
            t("attn_output.weight"),
            vec![h, h],
            TensorRole::AttnOutput,
            i,
        ));
        if bias {
            list.push((t("attn_q.bias"), vec![h], TensorRole::AttnQBias, i));
        }
        list.push((t("attn_q.weight"), vec![h, h], TensorRole::AttnQ, i));
        if bias {
            list.push((t("attn_v.bias"), vec![kv], TensorRole::AttnVBias, i));
        }
        list.push((t("attn_v.weight"), vec![h, kv], TensorRole::AttnV, i));
    }
    list.push((
        "output_norm.weight".into(),
        vec![h],
        TensorRole::OutputNorm,
        0,
    ));
    if !o.tied_embeddings {
        list.push(("output.weight".into(), vec![h, v], TensorRole::Output, 0));
    }
    let ctx = mix::MixContext {
        quant: o.quant,
        arch: o.arch,
        n_layers: o.layers,
        heads: o.heads,
        kv_heads: o.kv_heads,
        tied: o.tied_embeddings,
    };
    list.into_iter()
        .map(|(name, ne, role, layer)| {
            let dtype = mix::tensor_type(&ctx, role, layer, &name, &ne)?;
            Ok(PlannedTensor {
                name,
                ne,
                dtype,
                role,
                layer,
            })
        })
        .collect()
}

fn string(s: &str) -> GgufValue {
    GgufValue::String(s.as_bytes().to_vec())
}

/// The metadata, in the order convert_hf_to_gguf + llama-quantize write it.
fn metadata(o: &SynthOptions, voc: &vocab::Vocab) -> Vec<(String, GgufValue)> {
    let a = o.arch.name();
    let quant_name = match o.quant {
        SynthQuant::Q4KM => "Q4_K_M",
        SynthQuant::Q8_0 => "Q8_0",
        SynthQuant::F16 => "F16",
        SynthQuant::F32 => "F32",
        SynthQuant::Mixed => "Mixed",
    };
    let mut md: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), string(a)),
        ("general.type".into(), string("model")),
        (
            "general.name".into(),
            string(&format!(
                "apr-qa synthetic {a} {quant_name} seed {}",
                o.seed
            )),
        ),
        (format!("{a}.block_count"), GgufValue::U32(o.layers)),
        (
            format!("{a}.context_length"),
            GgufValue::U32(o.context_length),
        ),
        (format!("{a}.embedding_length"), GgufValue::U32(o.hidden)),
        (format!("{a}.feed_forward_length"), GgufValue::U32(o.ffn)),
        (format!("{a}.attention.head_count"), GgufValue::U32(o.heads)),
        (
            format!("{a}.attention.head_count_kv"),
            GgufValue::U32(o.kv_heads),
        ),
        (format!("{a}.rope.freq_base"), GgufValue::F32(o.rope_theta)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            GgufValue::F32(1e-6),
        ),
    ];
    if let Some(ft) = mix::file_type(o.quant) {
        md.push(("general.file_type".into(), GgufValue::U32(ft)));
    }
    if o.arch == SynthArch::Llama {
        // convert_hf_to_gguf's LlamaModel also writes these two.
        md.push((format!("{a}.vocab_size"), GgufValue::U32(o.vocab)));
        md.push((
            format!("{a}.rope.dimension_count"),
            GgufValue::U32(o.hidden / o.heads),
        ));
    }
    let arr = |elem_type, items| GgufValue::Array(GgufArray { elem_type, items });
    md.push(("tokenizer.ggml.model".into(), string("gpt2")));
    md.push(("tokenizer.ggml.pre".into(), string(o.arch.pre_tokenizer())));
    md.push((
        "tokenizer.ggml.tokens".into(),
        arr(
            GgufValueType::String,
            voc.tokens.iter().map(|t| string(t)).collect(),
        ),
    ));
    md.push((
        "tokenizer.ggml.token_type".into(),
        arr(
            GgufValueType::I32,
            voc.token_types.iter().map(|&t| GgufValue::I32(t)).collect(),
        ),
    ));
    md.push((
        "tokenizer.ggml.merges".into(),
        arr(
            GgufValueType::String,
            voc.merges.iter().map(|m| string(m)).collect(),
        ),
    ));
    md.push((
        "tokenizer.ggml.eos_token_id".into(),
        GgufValue::U32(voc.eos),
    ));
    md.push((
        "tokenizer.ggml.padding_token_id".into(),
        GgufValue::U32(voc.pad),
    ));
    md.push((
        "tokenizer.ggml.bos_token_id".into(),
        GgufValue::U32(voc.bos),
    ));
    md.push((
        "tokenizer.ggml.add_bos_token".into(),
        GgufValue::Bool(u8::from(o.arch == SynthArch::Llama)),
    ));
    md.push((
        "tokenizer.chat_template".into(),
        string(vocab::chat_template(o.arch)),
    ));
    if matches!(
        o.quant,
        SynthQuant::Q4KM | SynthQuant::Q8_0 | SynthQuant::Mixed
    ) {
        // ggml GGML_QNT_VERSION.
        md.push(("general.quantization_version".into(), GgufValue::U32(2)));
    }
    md
}

/// Writes the synthetic model described by `opts` to `out` (atomically, via
/// [`write_gguf`]) and reports what it holds.
pub fn synthesize(opts: &SynthOptions, out: &Path) -> Result<SynthReport, SynthError> {
    let plan = plan_tensors(opts)?;
    let voc = vocab::build(opts.arch, opts.vocab, opts.seed)?;
    let md = metadata(opts, &voc);
    let specs: Vec<GgufTensorSpec<'_>> = plan
        .iter()
        .map(|t| GgufTensorSpec {
            name: &t.name,
            ne: &t.ne,
            dtype: t.dtype,
        })
        .collect();
    let seed = opts.seed;
    let quiet = voc.reserved.clone();
    let mut data = |i: usize, sink: &mut dyn Write| -> std::io::Result<()> {
        let t = plan
            .get(i)
            .ok_or_else(|| std::io::Error::other(format!("no planned tensor {i}")))?;
        let bytes = tensor_bytes(seed, t, &quiet).map_err(std::io::Error::other)?;
        sink.write_all(&bytes)
    };
    write_gguf(out, 3, &md, &specs, &mut data)?;
    let mut dtype_histogram = BTreeMap::new();
    for t in &plan {
        *dtype_histogram.entry(t.dtype.to_string()).or_insert(0) += 1;
    }
    let bytes = std::fs::metadata(out)
        .map_err(|e| SynthError::Internal {
            detail: format!("stat {}: {e}", out.display()),
        })?
        .len();
    Ok(SynthReport {
        n_tensors: plan.len(),
        dtype_histogram,
        bytes,
    })
}

/// One tensor's stored bytes: its values quantized row-block by row-block.
fn tensor_bytes(
    seed: u64,
    t: &PlannedTensor,
    quiet_rows: &std::ops::Range<u32>,
) -> Result<Vec<u8>, String> {
    let vals = weights::values(seed, &t.name, t.role, &t.ne, quiet_rows);
    let ne0 = t.ne.first().copied().unwrap_or(1);
    let row_bytes = t
        .dtype
        .row_bytes(ne0)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("{}: rows of {ne0} are not whole {} blocks", t.name, t.dtype))?;
    let ne0 = usize::try_from(ne0).map_err(|e| e.to_string())?;
    let n_rows = vals.len() / ne0.max(1);
    let mut out = vec![0u8; n_rows * row_bytes];
    use rayon::prelude::*;
    out.par_chunks_mut(row_bytes.max(1))
        .zip(vals.par_chunks(ne0.max(1)))
        .try_for_each(|(dst, src)| quantize(t.dtype, src, dst))
        .map_err(|e| format!("{}: {e}", t.name))?;
    Ok(out)
}
