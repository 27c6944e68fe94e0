//! Per-tensor types of the synthetic model, chosen as `llama-quantize` would choose them.
//!
//! Restated from llama.cpp `src/llama-quant.cpp` (vendored in llama-cpp-python 0.3.36):
//! `tensor_allows_quantization`, `llama_tensor_get_type`, `llama_tensor_get_type_impl` and
//! `tensor_type_fallback`, for the tensors of a dense qwen2/llama model (no experts, no fused
//! QKV, no Falcon) and the ftypes Q4_K_M (15), Q8_0 (7), F16 (1) and ALL_F32 (0).
//!
//! Rules (Q4_K_M):
//! - only tensors whose name ends in `weight`, with ≥ 2 dims (ggml `ggml_n_dims`), and not a
//!   `_norm.weight`, are candidates; the others keep their source type (F32 here);
//! - the default is Q4_K; `output.weight`, or `token_embd.weight` when there is no
//!   `output.weight` (tied embeddings), is Q6_K, or Q8_0 when `ne0 % 256 != 0`;
//! - `attn_v.weight` is Q6_K where `use_more_bits(i, n)` holds (i: the attn_v tensors counted in
//!   processing order, which llama-quantize makes layer order); in a "70B" model (80 layers, and
//!   for llama GQA) a Q4_K attn_v becomes Q5_K;
//! - `ffn_down.weight` is Q6_K where `use_more_bits(layer, n_layer)` holds;
//! - then the fallback for rows that are not whole blocks: Q4_K → Q5_0, Q5_K → Q5_1,
//!   Q6_K → Q8_0 (32-block types stay), and F16 when the fallback still does not fit.
//!
//! `Mixed` is exactly `llama-quantize --tensor-type attn_output=q5_k … Q4_K_M`: a manual override
//! skips the rules for that tensor, the fallback still applies, so with `hidden % 256 != 0`
//! `attn_output` becomes Q5_1 — the one way Q5_1 arises from llama-quantize's K-quant mixes
//! (Q5_K fallback).

use crate::dtype::GgmlType;

use super::{SynthArch, SynthError, SynthQuant, TensorRole};

/// llama.cpp `LLAMA_FTYPE_MOSTLY_Q4_K_M`, the `general.file_type` of a Q4_K_M mix (an ftype,
/// not a GGML type id).
pub const LLAMA_FTYPE_MOSTLY_Q4_K_M: u32 = 15;

/// The model facts the type choice reads.
#[derive(Clone, Copy, Debug)]
pub struct MixContext {
    /// The requested quantization.
    pub quant: SynthQuant,
    /// The architecture.
    pub arch: SynthArch,
    /// Number of layers (llama-quantize's `n_attention_wv` and `n_ffn_down` here).
    pub n_layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// KV heads.
    pub kv_heads: u32,
    /// Whether the model has no `output.weight`.
    pub tied: bool,
}

/// The `general.file_type` llama-quantize writes for `quant`.
pub fn file_type(quant: SynthQuant) -> Option<u32> {
    match quant {
        SynthQuant::Q4KM | SynthQuant::Mixed => Some(LLAMA_FTYPE_MOSTLY_Q4_K_M),
        SynthQuant::Q8_0 => GgmlType::Q8_0.llama_ftype(),
        SynthQuant::F16 => GgmlType::F16.llama_ftype(),
        SynthQuant::F32 => GgmlType::F32.llama_ftype(),
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third
/// layer in between.
pub fn use_more_bits(i: u32, n: u32) -> bool {
    let (i, n) = (i64::from(i), i64::from(n));
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// ggml `ggml_n_dims`: dimensions up to the last one that is not 1 (at least 1).
fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&d| d != 1).map_or(1, |p| p + 1)
}

/// Whether `ne0` is whole blocks of `t`.
fn fits(ne0: u64, t: GgmlType) -> bool {
    ne0.is_multiple_of(t.block_size() as u64)
}

/// The type of one tensor (`layer` is its block index, for per-layer roles).
pub fn tensor_type(
    ctx: &MixContext,
    role: TensorRole,
    layer: u32,
    name: &str,
    ne: &[u64],
) -> Result<GgmlType, SynthError> {
    let source = GgmlType::F32;
    let candidate = n_dims(ne) >= 2 && name.ends_with("weight") && !name.contains("_norm.weight");
    if !candidate {
        return Ok(source);
    }
    let default = match ctx.quant {
        SynthQuant::F32 => return Ok(GgmlType::F32),
        SynthQuant::F16 => return Ok(GgmlType::F16),
        SynthQuant::Q8_0 => GgmlType::Q8_0,
        SynthQuant::Q4KM | SynthQuant::Mixed => GgmlType::Q4_K,
    };
    let ne0 = ne.first().copied().unwrap_or(0);
    let chosen = if ctx.quant == SynthQuant::Mixed && role == TensorRole::AttnOutput {
        GgmlType::Q5_K
    } else {
        rules(ctx, default, role, layer, ne0)
    };
    fallback(chosen, ne0, name)
}

/// llama.cpp `llama_tensor_get_type_impl` for the roles and ftypes above.
fn rules(ctx: &MixContext, t: GgmlType, role: TensorRole, layer: u32, ne0: u64) -> GgmlType {
    let q4km = matches!(ctx.quant, SynthQuant::Q4KM | SynthQuant::Mixed);
    let is_70b = ctx.n_layers == 80
        && match ctx.arch {
            SynthArch::Qwen2 => true,
            SynthArch::Llama => ctx.heads != ctx.kv_heads,
        };
    match role {
        TensorRole::Output => output_rule(t, ne0),
        TensorRole::TokenEmbd if ctx.tied => output_rule(t, ne0),
        TensorRole::AttnV => {
            let mut t = t;
            if q4km && use_more_bits(layer, ctx.n_layers) {
                t = GgmlType::Q6_K;
            }
            if is_70b && (t == GgmlType::Q3_K || t == GgmlType::Q4_K) {
                t = GgmlType::Q5_K;
            }
            t
        }
        TensorRole::FfnDown if q4km && use_more_bits(layer, ctx.n_layers) => GgmlType::Q6_K,
        TensorRole::TokenEmbd
        | TensorRole::FfnDown
        | TensorRole::OutputNorm
        | TensorRole::AttnNorm
        | TensorRole::AttnQ
        | TensorRole::AttnQBias
        | TensorRole::AttnK
        | TensorRole::AttnKBias
        | TensorRole::AttnVBias
        | TensorRole::AttnOutput
        | TensorRole::FfnNorm
        | TensorRole::FfnGate
        | TensorRole::FfnUp => t,
    }
}

/// The output tensor (and the tied token embedding): Q8_0 when rows are not whole blocks of
/// the default type, else Q6_K unless the default is Q8_0.
fn output_rule(t: GgmlType, ne0: u64) -> GgmlType {
    if !fits(ne0, t) {
        GgmlType::Q8_0
    } else if t != GgmlType::Q8_0 {
        GgmlType::Q6_K
    } else {
        t
    }
}

/// llama.cpp `tensor_type_fallback`.
fn fallback(t: GgmlType, ne0: u64, name: &str) -> Result<GgmlType, SynthError> {
    if fits(ne0, t) {
        return Ok(t);
    }
    const SMALLER: [(GgmlType, GgmlType); 3] = [
        (GgmlType::Q4_K, GgmlType::Q5_0),
        (GgmlType::Q5_K, GgmlType::Q5_1),
        (GgmlType::Q6_K, GgmlType::Q8_0),
    ];
    let next = match SMALLER.iter().find(|(from, _)| *from == t) {
        Some(&(_, to)) => to,
        None if t.block_size() <= 32 => t,
        None => {
            return Err(SynthError::Internal {
                detail: format!("{name}: no fallback for {t} with ne0 {ne0}"),
            })
        }
    };
    Ok(if fits(ne0, next) { next } else { GgmlType::F16 })
}
