//! F-CONV-G-HF: an HF export is complete and equal. The export must hold config.json,
//! tokenizer.json and tokenizer_config.json; its tensors, read back into GGUF row order, must
//! hold exactly the dequantized values of the source; and tokenizer.json must give every GGUF
//! token its GGUF id.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{GateCtx, Judgement};
use crate::convert::fingerprint::Sha256Sink;
use crate::convert::{convert, DtypeChoice, Target};
use crate::formats::gguf::GgufValue;
use crate::metrics;

/// The check.
pub fn export_complete(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let src = ctx.art.model(&ctx.art.source)?;
    let arch = src.arch().unwrap_or_default().to_string();
    if crate::formats::names::MappedArch::from_gguf(&arch).is_none() {
        return Ok(Judgement::skipped(format!(
            "architecture {arch:?} has no HF mapping (qwen2, llama)"
        )));
    }
    let f32_bytes: u64 = src.tensors.iter().map(|t| t.n_elements() * 4).sum();
    let scratch = ctx.art.ram_scratch("hf-export", f32_bytes);
    let dir = scratch.path();
    convert(&ctx.art.source, dir, Target::Hf, DtypeChoice::Keep).map_err(|e| e.to_string())?;
    let mut bad = Vec::new();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        if !dir.join(f).is_file() {
            bad.push(format!("{f} missing"));
        }
    }
    if !bad.is_empty() {
        return Ok(Judgement::verdict(
            true,
            format!("HF export incomplete: {}", bad.join(", ")),
            metrics! { "problems" => bad },
        ));
    }
    // Values: import the directory back (Q/K re-permuted to GGUF order) and compare each
    // tensor's F32 bytes, read in GGUF row order straight from the exported safetensors (Q/K
    // re-permuted on the fly; no temporary GGUF), with the hash of the source's dequantized values.
    let back = crate::convert::hf_import::import_hf(dir).map_err(|e| e.to_string())?;
    let theirs: HashMap<String, String> = (0..back.tensors.len())
        .into_par_iter()
        .map(|i| {
            let mut h = Sha256Sink::default();
            back.write_tensor(i, &mut h)
                .map_err(|e| format!("reading exported tensor {i}: {e}"))?;
            let name = back
                .tensors
                .get(i)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            Ok((name, h.hex_digest()))
        })
        .collect::<Result<_, String>>()?;
    let mut compared = 0;
    for p in ctx.art.fingerprints(&ctx.art.source)?.iter() {
        let Some(want) = &p.sha256_f32 else { continue };
        compared += 1;
        match theirs.get(&p.name) {
            Some(h) if h == want => {}
            Some(_) => bad.push(format!(
                "{}: exported values differ from the dequantized source",
                p.name
            )),
            None => bad.push(format!("{}: missing from the export", p.name)),
        }
    }
    // Tokenizer: every GGUF token string maps to its own id.
    let tok: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut ids: HashMap<String, u64> = HashMap::new();
    if let Some(v) = tok["model"]["vocab"].as_object() {
        ids.extend(
            v.iter()
                .filter_map(|(k, id)| id.as_u64().map(|i| (k.clone(), i))),
        );
    }
    for a in tok["added_tokens"].as_array().into_iter().flatten() {
        if let (Some(c), Some(i)) = (a["content"].as_str(), a["id"].as_u64()) {
            ids.insert(c.to_string(), i);
        }
    }
    let tokens = src
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_array)
        .map(|a| a.items.clone())
        .unwrap_or_default();
    // Type 5 (UNUSED) marks llama.cpp's `[PAD…]` fillers past the HF vocabulary: absent from
    // an HF tokenizer by design, so not compared.
    let types: Vec<u64> = src
        .get("tokenizer.ggml.token_type")
        .and_then(GgufValue::as_array)
        .map(|a| a.items.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    let mut token_mismatch = 0usize;
    let mut first = None;
    let mut unused = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        if types.get(i) == Some(&5) {
            unused += 1;
            continue;
        }
        let Some(s) = t.as_str() else { continue };
        if ids.get(s) != Some(&(i as u64)) {
            token_mismatch += 1;
            first.get_or_insert_with(|| {
                format!("token {i} {s:?} has id {:?} in tokenizer.json", ids.get(s))
            });
        }
    }
    if token_mismatch > 0 {
        bad.push(format!(
            "{token_mismatch} token ids differ, first {}",
            first.unwrap_or_default()
        ));
    }
    let reason = if bad.is_empty() {
        format!("HF export complete: {compared} tensors equal the dequantized source, {} token ids equal ({unused} unused fillers not exported)", tokens.len() - unused)
    } else {
        format!("{} problem(s), first {}", bad.len(), bad[0])
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "tensors_compared" => compared, "tokens" => tokens.len(), "problems" => bad },
    ))
}
