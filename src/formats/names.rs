//! GGUF ↔ Hugging Face tensor names for the architectures we map (qwen2, llama).
//!
//! Invariants: the map is a bijection on the names it covers, so `hf_to_gguf(gguf_to_hf(n)) ==
//! n`; GGUF names never look like HF names (no `model.` prefix, no `lm_head`), so a name
//! outside the map is never mistaken for one inside it. Names are only translated for
//! architectures in [`MappedArch`]; APR and our SafeTensors use HF names for qwen2 alone and
//! keep GGUF names for every other architecture (APR-FORMAT §8, §13).

/// Architectures whose tensor names and config we translate to and from Hugging Face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappedArch {
    /// `qwen2` (Qwen2ForCausalLM).
    Qwen2,
    /// `llama` (LlamaForCausalLM).
    Llama,
}

impl MappedArch {
    /// The mapped architecture named by GGUF `general.architecture`, if we map it.
    pub fn from_gguf(arch: &str) -> Option<Self> {
        match arch {
            "qwen2" => Some(Self::Qwen2),
            "llama" => Some(Self::Llama),
            _ => None,
        }
    }

    /// The GGUF architecture string.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama => "llama",
        }
    }
}

/// Non-layer tensors: (GGUF stem, HF stem); both take the same `.weight` / `.bias` suffix.
const GLOBAL: [(&str, &str); 3] = [
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

/// Per-layer tensors: (GGUF stem after `blk.N.`, HF stem after `model.layers.N.`).
const LAYER: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

const SUFFIXES: [&str; 2] = [".weight", ".bias"];

fn split_suffix(name: &str) -> Option<(&str, &str)> {
    SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s).map(|stem| (stem, *s)))
}

/// The HF name of a GGUF tensor name, or `None` when the name is outside the map.
pub fn gguf_to_hf(name: &str) -> Option<String> {
    let (stem, suffix) = split_suffix(name)?;
    if let Some((_, hf)) = GLOBAL.iter().find(|(g, _)| *g == stem) {
        return Some(format!("{hf}{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: u32 = parse_layer(layer)?;
    let (_, hf) = LAYER.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}{suffix}"))
}

/// The GGUF name of an HF tensor name, or `None` when the name is outside the map.
pub fn hf_to_gguf(name: &str) -> Option<String> {
    let (stem, suffix) = split_suffix(name)?;
    if let Some((g, _)) = GLOBAL.iter().find(|(_, h)| *h == stem) {
        return Some(format!("{g}{suffix}"));
    }
    let rest = stem.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: u32 = parse_layer(layer)?;
    let (g, _) = LAYER.iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{layer}.{g}{suffix}"))
}

/// A decimal layer index without sign, leading zeros or spaces (so the map stays a bijection).
fn parse_layer(s: &str) -> Option<u32> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// The name a tensor takes inside APR / our SafeTensors: HF for qwen2, GGUF otherwise.
pub fn storage_name(arch: &str, gguf_name: &str) -> String {
    match MappedArch::from_gguf(arch) {
        Some(MappedArch::Qwen2) => gguf_to_hf(gguf_name).unwrap_or_else(|| gguf_name.to_string()),
        Some(MappedArch::Llama) | None => gguf_name.to_string(),
    }
}

/// The GGUF name of a tensor read from APR / SafeTensors, in either convention.
pub fn canonical_name(stored: &str) -> String {
    hf_to_gguf(stored).unwrap_or_else(|| stored.to_string())
}

/// Whether a GGUF tensor is a llama-family Q or K projection whose rows llama.cpp's HF→GGUF
/// converter permuted (un-permuted only by HF export, LAYOUT-002).
pub fn is_permuted_qk(arch: MappedArch, gguf_name: &str) -> bool {
    match arch {
        MappedArch::Llama => {
            gguf_name.starts_with("blk.")
                && (gguf_name.ends_with(".attn_q.weight") || gguf_name.ends_with(".attn_k.weight"))
        }
        MappedArch::Qwen2 => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names_map_both_ways() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_q.weight",
                "model.layers.0.self_attn.q_proj.weight",
            ),
            ("blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"),
            (
                "blk.23.attn_k.bias",
                "model.layers.23.self_attn.k_proj.bias",
            ),
            (
                "blk.7.attn_output.weight",
                "model.layers.7.self_attn.o_proj.weight",
            ),
            (
                "blk.1.attn_norm.weight",
                "model.layers.1.input_layernorm.weight",
            ),
            (
                "blk.1.ffn_norm.weight",
                "model.layers.1.post_attention_layernorm.weight",
            ),
            (
                "blk.2.ffn_gate.weight",
                "model.layers.2.mlp.gate_proj.weight",
            ),
            ("blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight"),
            (
                "blk.2.ffn_down.weight",
                "model.layers.2.mlp.down_proj.weight",
            ),
        ];
        for (g, h) in pairs {
            assert_eq!(gguf_to_hf(g).as_deref(), Some(h));
            assert_eq!(hf_to_gguf(h).as_deref(), Some(g));
        }
    }

    #[test]
    fn names_outside_the_map_are_none() {
        for n in [
            "rope_freqs.weight",
            "blk.x.attn_q.weight",
            "blk.01.attn_q.weight",
            "blk.-1.attn_q.weight",
            "blk.0.attn_q",
            "blk.0.attn_qkv.weight",
            "model.layers.0.self_attn.qkv.weight",
            "",
        ] {
            assert_eq!(gguf_to_hf(n), None, "{n}");
            assert_eq!(hf_to_gguf(n), None, "{n}");
        }
    }

    #[test]
    fn storage_names_follow_the_architecture() {
        assert_eq!(
            storage_name("qwen2", "blk.3.attn_v.weight"),
            "model.layers.3.self_attn.v_proj.weight"
        );
        assert_eq!(
            storage_name("llama", "blk.3.attn_v.weight"),
            "blk.3.attn_v.weight"
        );
        assert_eq!(
            storage_name("gemma3", "blk.3.attn_v.weight"),
            "blk.3.attn_v.weight"
        );
        assert_eq!(
            canonical_name("model.layers.3.self_attn.v_proj.weight"),
            "blk.3.attn_v.weight"
        );
        assert_eq!(canonical_name("blk.3.attn_v.weight"), "blk.3.attn_v.weight");
    }
}
