//! APR's typed metadata keys (APR-FORMAT §4), derived from GGUF metadata so that aprender and
//! realizar find the config, tokenizer and chat template under the names they read. Canonical
//! spellings only — never an alias beside its canonical key (realizar then drops all metadata).

use serde_json::{json, Map, Value};

use crate::formats::gguf::GgufValue;
use crate::model::Tensor;

fn find<'a>(md: &'a [(String, GgufValue)], key: &str) -> Option<&'a GgufValue> {
    md.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn scalar(v: &GgufValue) -> Option<Value> {
    match v {
        GgufValue::U8(x) => Some(json!(x)),
        GgufValue::I8(x) => Some(json!(x)),
        GgufValue::U16(x) => Some(json!(x)),
        GgufValue::I16(x) => Some(json!(x)),
        GgufValue::U32(x) => Some(json!(x)),
        GgufValue::I32(x) => Some(json!(x)),
        GgufValue::U64(x) => Some(json!(x)),
        GgufValue::I64(x) => Some(json!(x)),
        GgufValue::F32(x) if x.is_finite() => Some(json!(x)),
        GgufValue::F64(x) if x.is_finite() => Some(json!(x)),
        GgufValue::Bool(b) => Some(json!(*b != 0)),
        GgufValue::String(s) => std::str::from_utf8(s).ok().map(|s| json!(s)),
        GgufValue::F32(_) | GgufValue::F64(_) | GgufValue::Array(_) => None,
    }
}

fn array(v: &GgufValue) -> Option<Value> {
    match v {
        GgufValue::Array(a) => a
            .items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        _ => None,
    }
}

/// The typed keys for `metadata` (in GGUF terms) of a model with `tensors`.
pub fn typed_metadata(md: &[(String, GgufValue)], tensors: &[Tensor]) -> Map<String, Value> {
    let mut m = Map::new();
    let arch = find(md, "general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("unknown");
    m.insert("model_type".into(), json!(arch));
    if let Some(n) = find(md, "general.name").and_then(scalar) {
        m.insert("name".into(), n);
    }
    m.insert("architecture".into(), json!(arch));
    let config = [
        ("hidden_size", "embedding_length"),
        ("num_layers", "block_count"),
        ("num_heads", "attention.head_count"),
        ("num_kv_heads", "attention.head_count_kv"),
        ("intermediate_size", "feed_forward_length"),
        ("max_position_embeddings", "context_length"),
        ("rope_theta", "rope.freq_base"),
        ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
    ];
    for (apr, gguf) in config {
        if let Some(v) = find(md, &format!("{arch}.{gguf}")).and_then(scalar) {
            m.insert(apr.into(), v);
        }
    }
    let n_params: u64 = tensors.iter().map(Tensor::n_elements).sum();
    m.insert("param_count".into(), json!(n_params));
    let tokenizer = [
        ("tokenizer.vocabulary", "tokenizer.ggml.tokens"),
        ("tokenizer.merges", "tokenizer.ggml.merges"),
        ("tokenizer.scores", "tokenizer.ggml.scores"),
        ("tokenizer.token_type", "tokenizer.ggml.token_type"),
    ];
    for (apr, gguf) in tokenizer {
        if let Some(v) = find(md, gguf).and_then(array) {
            if apr == "tokenizer.vocabulary" {
                m.insert(
                    "tokenizer.vocab_size".into(),
                    json!(v.as_array().map_or(0, Vec::len)),
                );
            }
            m.insert(apr.into(), v);
        }
    }
    let tokenizer_scalars = [
        ("tokenizer.model_type", "tokenizer.ggml.model"),
        ("tokenizer.pre_type", "tokenizer.ggml.pre"),
        ("tokenizer.bos_token_id", "tokenizer.ggml.bos_token_id"),
        ("tokenizer.eos_token_id", "tokenizer.ggml.eos_token_id"),
        (
            "tokenizer.padding_token_id",
            "tokenizer.ggml.padding_token_id",
        ),
        ("tokenizer.add_bos_token", "tokenizer.ggml.add_bos_token"),
        ("chat_template", "tokenizer.chat_template"),
    ];
    for (apr, gguf) in tokenizer_scalars {
        if let Some(v) = find(md, gguf).and_then(scalar) {
            m.insert(apr.into(), v);
        }
    }
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    m.insert("tied_embeddings".into(), json!(tied));
    m
}
