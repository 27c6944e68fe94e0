//! GGUF `tokenizer.ggml.*` metadata from an HF `tokenizer.json` (+ `tokenizer_config.json`,
//! `config.json`), as llama.cpp's converter derives it for byte-level BPE vocabularies
//! (`convert_hf_to_gguf.py` `get_vocab_base`, gguf-py `SpecialVocab`):
//!
//! - ids `0..vocab_size` (`config.json` `vocab_size`, else the largest id + 1); an id no token
//!   has becomes `[PAD{id}]` of type UNUSED; an added token is CONTROL when it is `special` or
//!   looks special (`<|…|>`, `<｜…｜>`, `<unused…>`, `<pad>`, `<mask>`, `<2mass>`, `[@BOS@]`),
//!   else USER_DEFINED; every other token is NORMAL;
//! - merges as `"a b"` strings (pair-form merges are joined, spaces written as `Ġ`);
//! - `tokenizer.ggml.pre` from the structure of `pre_tokenizer` ([`PreKind`]); a structure we do
//!   not know is refused, named (llama.cpp identifies it by hashing a tokenization instead);
//! - special ids: `tokenizer_config.json` `{bos,eos,unk,sep,pad,mask}_token` looked up among the
//!   added tokens, then `config.json` `{…}_token_id` for those still unset;
//! - `add_{bos,eos}_token` from a `TemplateProcessing` post-processor, then from
//!   `tokenizer_config.json` booleans; for llama also `add_space_prefix` from `add_prefix_space`
//!   and llama.cpp's rule that a 49152-token llama vocabulary does not add BOS.

use serde_json::Value;

use super::hf_tokenizer::{token_type, PreKind, LLAMA3_REGEX, QWEN2_REGEX};
use super::ConvertError;
use crate::formats::gguf::{GgufArray, GgufValue, GgufValueType};
use crate::formats::names::MappedArch;

/// GGUF metadata in order.
pub type Metadata = Vec<(String, GgufValue)>;

fn usage(msg: impl Into<String>) -> ConvertError {
    ConvertError::Usage(msg.into())
}

/// The family of an HF `pre_tokenizer`, recognised by structure.
pub fn pre_kind_of(pre: &Value) -> Option<PreKind> {
    let ty = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_string);
    let byte_level = |v: &Value, regex: bool| {
        ty(v).as_deref() == Some("ByteLevel")
            && v.get("add_prefix_space").and_then(Value::as_bool) != Some(true)
            && v.get("use_regex").and_then(Value::as_bool).unwrap_or(true) == regex
    };
    let split = |v: &Value, re: &str| {
        ty(v).as_deref() == Some("Split")
            && v.pointer("/pattern/Regex").and_then(Value::as_str) == Some(re)
            && v.get("behavior").and_then(Value::as_str) == Some("Isolated")
            && v.get("invert").and_then(Value::as_bool) != Some(true)
    };
    if byte_level(pre, true) {
        return Some(PreKind::Gpt2);
    }
    if ty(pre).as_deref() != Some("Sequence") {
        return None;
    }
    match pre
        .get("pretokenizers")
        .and_then(Value::as_array)?
        .as_slice()
    {
        [a, b] if split(a, QWEN2_REGEX) && byte_level(b, false) => Some(PreKind::Qwen2),
        [a, b] if split(a, LLAMA3_REGEX) && byte_level(b, false) => Some(PreKind::Llama3),
        [a, b]
            if ty(a).as_deref() == Some("Digits")
                && a.get("individual_digits").and_then(Value::as_bool) == Some(true)
                && byte_level(b, true) =>
        {
            Some(PreKind::DigitsGpt2)
        }
        _ => None,
    }
}

/// llama.cpp's `does_token_look_special`.
pub fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn str_array(items: Vec<String>) -> GgufValue {
    GgufValue::Array(GgufArray {
        elem_type: GgufValueType::String,
        items: items
            .into_iter()
            .map(|s| GgufValue::String(s.into_bytes()))
            .collect(),
    })
}

struct Added {
    id: u64,
    content: String,
    special: bool,
}

fn merges_of(model: &Value) -> Result<Vec<String>, ConvertError> {
    let Some(list) = model.get("merges").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => {
                    let enc = |s: &str| s.replace(' ', "\u{120}");
                    Ok(format!("{} {}", enc(a), enc(b)))
                }
                _ => Err(usage(format!(
                    "tokenizer.json merges[{i}] is not a pair of strings"
                ))),
            },
            _ => Err(usage(format!("tokenizer.json merges[{i}] is not a merge"))),
        })
        .collect()
}

/// The GGUF tokenizer metadata of an HF directory's tokenizer files, and notes on what was
/// inferred. `chat_template_file` is the text of `chat_template.jinja`, if present.
pub fn gguf_tokenizer_kv(
    arch: MappedArch,
    tok: &Value,
    tok_cfg: Option<&Value>,
    cfg: &Value,
    chat_template_file: Option<String>,
) -> Result<(Metadata, Vec<String>), ConvertError> {
    let mut findings = Vec::new();
    let model = tok
        .get("model")
        .ok_or_else(|| usage("tokenizer.json has no model"))?;
    let mty = model.get("type").and_then(Value::as_str).unwrap_or("");
    if mty != "BPE" {
        return Err(usage(format!(
            "tokenizer.json model type {mty:?}: only byte-level BPE tokenizers are imported"
        )));
    }
    let pre_json = tok.get("pre_tokenizer").cloned().unwrap_or(Value::Null);
    let kind = pre_kind_of(&pre_json).ok_or_else(|| {
        usage(format!(
            "tokenizer.json pre_tokenizer {pre_json} is not one we recognise (qwen2, llama3, digits+byte-level, byte-level)"
        ))
    })?;
    findings.push(format!(
        "tokenizer.ggml.pre {:?} inferred from the pre_tokenizer's structure",
        kind.gguf_name()
    ));
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| usage("tokenizer.json model has no vocab"))?;
    let added: Vec<Added> = tok
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(Added {
                        id: t.get("id")?.as_u64()?,
                        content: t.get("content")?.as_str()?.to_string(),
                        special: t.get("special").and_then(Value::as_bool).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let max_id = vocab
        .values()
        .filter_map(Value::as_u64)
        .chain(added.iter().map(|a| a.id))
        .max()
        .ok_or_else(|| usage("tokenizer.json has an empty vocab"))?;
    let n = match cfg.get("vocab_size").and_then(Value::as_u64) {
        Some(v) if v > max_id => v,
        Some(v) => {
            return Err(usage(format!(
                "config.json vocab_size {v} is not above the largest token id {max_id}"
            )))
        }
        None => max_id + 1,
    };
    let n_usize = usize::try_from(n).map_err(|_| usage("vocab_size too large"))?;
    let mut tokens: Vec<Option<(String, i64)>> = vec![None; n_usize];
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| usage(format!("tokenizer.json vocab {text:?} has no integer id")))?;
        if let Some(slot) = tokens.get_mut(id) {
            *slot = Some((text.clone(), token_type::NORMAL));
        }
    }
    for a in &added {
        let ty = if a.special || looks_special(&a.content) {
            token_type::CONTROL
        } else {
            token_type::USER_DEFINED
        };
        if let Some(slot) = usize::try_from(a.id).ok().and_then(|i| tokens.get_mut(i)) {
            *slot = Some((a.content.clone(), ty));
        }
    }
    let (texts, types): (Vec<String>, Vec<i64>) = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), token_type::UNUSED)))
        .unzip();
    let mut kv: Vec<(String, GgufValue)> = vec![
        (
            "tokenizer.ggml.model".into(),
            GgufValue::String(b"gpt2".to_vec()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            GgufValue::String(kind.gguf_name().as_bytes().to_vec()),
        ),
        ("tokenizer.ggml.tokens".into(), str_array(texts)),
        (
            "tokenizer.ggml.token_type".into(),
            GgufValue::Array(GgufArray {
                elem_type: GgufValueType::I32,
                items: types
                    .iter()
                    .map(|&t| GgufValue::I32(i32::try_from(t).unwrap_or(0)))
                    .collect(),
            }),
        ),
    ];
    let merges = merges_of(model)?;
    if !merges.is_empty() {
        kv.push(("tokenizer.ggml.merges".into(), str_array(merges)));
    }
    special_ids(&mut kv, &added, tok_cfg, cfg, n);
    add_flags(&mut kv, arch, tok, tok_cfg, n);
    let template = tok_cfg
        .and_then(|c| c.get("chat_template"))
        .and_then(|t| match t {
            Value::String(s) => Some(s.clone()),
            Value::Array(named) => named
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|e| e.get("template")?.as_str().map(str::to_string)),
            _ => None,
        })
        .or(chat_template_file);
    if let Some(t) = template {
        kv.push((
            "tokenizer.chat_template".into(),
            GgufValue::String(t.into_bytes()),
        ));
    }
    Ok((kv, findings))
}

/// gguf-py `SpecialVocab` order: `tokenizer_config.json` strings, then `config.json` ids.
fn special_ids(
    kv: &mut Vec<(String, GgufValue)>,
    added: &[Added],
    tok_cfg: Option<&Value>,
    cfg: &Value,
    n: u64,
) {
    const TYPES: [(&str, &str); 6] = [
        ("bos", "bos"),
        ("eos", "eos"),
        ("unk", "unknown"),
        ("sep", "seperator"),
        ("pad", "padding"),
        ("mask", "mask"),
    ];
    let mut found: Vec<(&str, u64)> = Vec::new();
    if let Some(tc) = tok_cfg {
        for (typ, _) in TYPES {
            let content = match tc.get(format!("{typ}_token")) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).map(str::to_string)
                }
                _ => None,
            };
            let id = content.and_then(|c| added.iter().find(|a| a.content == c).map(|a| a.id));
            if let Some(id) = id.filter(|&i| i < n) {
                found.push((typ, id));
            }
        }
    }
    for (typ, _) in TYPES {
        if found.iter().any(|(t, _)| *t == typ) {
            continue;
        }
        if let Some(id) = cfg
            .get(format!("{typ}_token_id"))
            .and_then(Value::as_u64)
            .filter(|&i| i < n)
        {
            found.push((typ, id));
        }
    }
    for (typ, id) in found {
        let key = TYPES
            .iter()
            .find(|(t, _)| *t == typ)
            .map_or(typ, |(_, k)| *k);
        kv.push((
            format!("tokenizer.ggml.{key}_token_id"),
            GgufValue::U32(u32::try_from(id).unwrap_or(u32::MAX)),
        ));
    }
}

fn add_flags(
    kv: &mut Vec<(String, GgufValue)>,
    arch: MappedArch,
    tok: &Value,
    tok_cfg: Option<&Value>,
    n: u64,
) {
    let mut flags: Vec<(&str, bool)> = Vec::new();
    let set = |flags: &mut Vec<(&str, bool)>, k: &'static str, v: bool| match flags
        .iter_mut()
        .find(|(key, _)| *key == k)
    {
        Some(f) => f.1 = v,
        None => flags.push((k, v)),
    };
    let cfg_str = |k: &str| {
        tok_cfg.and_then(|c| match c.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        })
    };
    let (bos, eos) = (cfg_str("bos_token"), cfg_str("eos_token"));
    if let Some(pp) = tok.get("post_processor").filter(|p| !p.is_null()) {
        let procs = pp
            .get("processors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| vec![pp.clone()]);
        for p in procs {
            if p.get("type").and_then(Value::as_str) != Some("TemplateProcessing") {
                continue;
            }
            let single = p
                .get("single")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if single.len() > 1 {
                let sp = |v: Option<&Value>| {
                    v.and_then(|e| e.pointer("/SpecialToken/id"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                if let Some(first) = sp(single.first()) {
                    set(
                        &mut flags,
                        "bos",
                        tok_cfg.is_none() || Some(&first) == bos.as_ref(),
                    );
                }
                if let Some(last) = sp(single.last()) {
                    set(
                        &mut flags,
                        "eos",
                        tok_cfg.is_none() || Some(&last) == eos.as_ref(),
                    );
                }
            }
        }
    }
    if let Some(tc) = tok_cfg {
        for typ in ["bos", "eos", "unk", "sep", "pad", "mask"] {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Value::as_bool) {
                set(&mut flags, typ_static(typ), b);
            }
        }
    }
    if arch == MappedArch::Llama && n == 49152 && !flags.iter().any(|(k, _)| *k == "bos") {
        flags.push(("bos", false));
    }
    for (typ, v) in flags {
        kv.push((
            format!("tokenizer.ggml.add_{typ}_token"),
            GgufValue::Bool(u8::from(v)),
        ));
    }
    if arch == MappedArch::Llama {
        if let Some(p) = tok_cfg
            .and_then(|c| c.get("add_prefix_space"))
            .and_then(Value::as_bool)
        {
            kv.push((
                "tokenizer.ggml.add_space_prefix".into(),
                GgufValue::Bool(u8::from(p)),
            ));
        }
    }
}

fn typ_static(t: &str) -> &'static str {
    match t {
        "bos" => "bos",
        "eos" => "eos",
        "unk" => "unk",
        "sep" => "sep",
        "pad" => "pad",
        _ => "mask",
    }
}
