//! `tokenizer.json` and `tokenizer_config.json` from a GGUF vocabulary (`tokenizer.ggml.*`).
//!
//! Only byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) are exported; SentencePiece
//! (`"llama"`) and others are refused with the model named. The HF pre-tokenizer is chosen by
//! `tokenizer.ggml.pre` so that the PyPI `tokenizers` package splits text as llama.cpp does
//! (llama-vocab.cpp `llm_tokenizer_bpe`):
//!
//! | `pre` | HF `pre_tokenizer` |
//! |---|---|
//! | `qwen2` | `Split(qwen2 regex, Isolated)` then `ByteLevel(use_regex=false)` (Qwen2's own) |
//! | `llama-bpe`, `llama3` | `Split(llama3 regex, Isolated)` then `ByteLevel(use_regex=false)`; `ignore_merges` |
//! | `smollm`, `starcoder`, `refact` | `Digits(individual_digits)` then `ByteLevel(use_regex=true)` (SmolLM2's own) |
//! | `gpt-2` | `ByteLevel(use_regex=true)` |
//!
//! No normalizer is written, although Qwen2's own tokenizer.json has NFC: llama.cpp does not
//! normalize, and the export must tokenize as the GGUF does.
//!
//! Tokens: every token except `UNUSED` (type 5, llama.cpp's `[PAD…]` fillers past the HF vocab)
//! goes into the BPE vocab at its id; `CONTROL` (3) tokens are also added tokens with
//! `special: true`, `USER_DEFINED` (4) with `special: false` (llama.cpp's converter gives type 4
//! exactly to HF's non-special added tokens, and both engines match them in any text), `UNKNOWN`
//! (2) with `special: true`. Merges are copied in order.

use serde_json::{json, Map, Value};

use super::ConvertError;
use crate::formats::gguf::GgufValue;

/// llama.cpp token types (`llama_token_type`).
pub mod token_type {
    /// A normal token.
    pub const NORMAL: i64 = 1;
    /// The unknown token.
    pub const UNKNOWN: i64 = 2;
    /// A control (special) token.
    pub const CONTROL: i64 = 3;
    /// A user-defined (non-special added) token.
    pub const USER_DEFINED: i64 = 4;
    /// An unused id (a filler past the tokenizer's vocabulary).
    pub const UNUSED: i64 = 5;
    /// A byte token (SentencePiece).
    pub const BYTE: i64 = 6;
}

/// Qwen2's pre-tokenizer regex as its tokenizer.json writes it.
pub const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer regex as its tokenizer.json writes it.
pub const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The HF pre-tokenizer families we write and recognise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreKind {
    /// Qwen2 regex split, then byte-level.
    Qwen2,
    /// Llama 3 regex split, then byte-level (with `ignore_merges`).
    Llama3,
    /// Single digits split off, then byte-level with the GPT-2 regex.
    DigitsGpt2,
    /// Byte-level with the GPT-2 regex.
    Gpt2,
}

impl PreKind {
    /// The family of a GGUF `tokenizer.ggml.pre`, if we export it.
    pub fn from_gguf(pre: &str) -> Option<Self> {
        match pre {
            "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(Self::Qwen2),
            "llama-bpe" | "llama3" | "llama-v3" => Some(Self::Llama3),
            "smollm" | "starcoder" | "refact" => Some(Self::DigitsGpt2),
            "gpt-2" => Some(Self::Gpt2),
            _ => None,
        }
    }

    /// The GGUF `tokenizer.ggml.pre` an import writes for this family.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama3 => "llama-bpe",
            Self::DigitsGpt2 => "smollm",
            Self::Gpt2 => "gpt-2",
        }
    }

    /// Whether the HF BPE model takes a whole pre-token that is in the vocab as is.
    pub fn ignore_merges(self) -> bool {
        matches!(self, Self::Llama3)
    }

    /// The HF `pre_tokenizer` JSON.
    pub fn pre_tokenizer(self) -> Value {
        let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": use_regex, "use_regex": use_regex});
        match self {
            Self::Qwen2 => {
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]})
            }
            Self::Llama3 => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]})
            }
            Self::DigitsGpt2 => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            Self::Gpt2 => byte_level(true),
        }
    }
}

/// The `tokenizer.ggml.*` values of a GGUF, read and checked.
#[derive(Clone, Debug, Default)]
pub struct GgufVocab {
    /// Token texts by id.
    pub tokens: Vec<String>,
    /// Token types by id.
    pub types: Vec<i64>,
    /// Merges (`"a b"`), in rank order.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// Special token ids.
    pub bos: Option<u64>,
    /// End of sequence.
    pub eos: Option<u64>,
    /// Unknown.
    pub unk: Option<u64>,
    /// Padding.
    pub pad: Option<u64>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

fn usage(msg: impl Into<String>) -> ConvertError {
    ConvertError::Usage(msg.into())
}

fn strings(md: &[(String, GgufValue)], key: &str) -> Result<Vec<String>, ConvertError> {
    let Some(v) = md.iter().find(|(k, _)| k == key).map(|(_, v)| v) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| usage(format!("{key} is {}, not an array", v.describe())))?;
    arr.items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| usage(format!("{key}[{i}] is not a UTF-8 string")))
        })
        .collect()
}

impl GgufVocab {
    /// Reads the vocabulary; refuses a tokenizer model or pre-tokenizer we cannot express.
    pub fn read(md: &[(String, GgufValue)]) -> Result<Self, ConvertError> {
        let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let model = get("tokenizer.ggml.model").and_then(GgufValue::as_str);
        if model != Some("gpt2") {
            return Err(usage(format!(
                "tokenizer.ggml.model {model:?}: only byte-level BPE (\"gpt2\") tokenizers are exported to tokenizer.json"
            )));
        }
        let pre = get("tokenizer.ggml.pre")
            .and_then(GgufValue::as_str)
            .unwrap_or("default")
            .to_string();
        if PreKind::from_gguf(&pre).is_none() {
            return Err(usage(format!(
                "tokenizer.ggml.pre {pre:?} has no HF pre-tokenizer here (known: qwen2, llama-bpe, smollm, starcoder, refact, gpt-2)"
            )));
        }
        let tokens = strings(md, "tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(usage("GGUF metadata has no tokenizer.ggml.tokens"));
        }
        let types: Vec<i64> = match get("tokenizer.ggml.token_type") {
            None => vec![token_type::NORMAL; tokens.len()],
            Some(v) => v
                .as_array()
                .map(|a| a.items.iter().map(|x| x.as_i64().unwrap_or(-1)).collect())
                .unwrap_or_default(),
        };
        if types.len() != tokens.len() {
            return Err(usage(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let id = |k: &str| -> Result<Option<u64>, ConvertError> {
            match get(k) {
                None => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(i) if i < tokens.len() as u64 => Ok(Some(i)),
                    _ => Err(usage(format!("{k} = {} is not a token id", v.describe()))),
                },
            }
        };
        let flag = |k: &str| get(k).and_then(GgufValue::as_bool);
        Ok(Self {
            merges: strings(md, "tokenizer.ggml.merges")?,
            pre,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token"),
            add_eos: flag("tokenizer.ggml.add_eos_token"),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
            chat_template: get("tokenizer.chat_template")
                .and_then(GgufValue::as_str)
                .map(str::to_string),
            tokens,
            types,
        })
    }

    fn token(&self, id: Option<u64>) -> Option<&str> {
        id.and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.tokens.get(i))
            .map(String::as_str)
    }

    fn pre_kind(&self) -> PreKind {
        PreKind::from_gguf(&self.pre).unwrap_or(PreKind::Gpt2)
    }

    /// `tokenizer.json`, and notes on anything that could not be carried over.
    pub fn tokenizer_json(&self) -> (Value, Vec<String>) {
        let mut findings = Vec::new();
        let mut vocab = Map::with_capacity(self.tokens.len());
        let mut added = Vec::new();
        for (i, (tok, &ty)) in self.tokens.iter().zip(&self.types).enumerate() {
            if ty == token_type::UNUSED {
                continue;
            }
            if vocab.contains_key(tok) {
                findings.push(format!(
                    "token {i} {tok:?} repeats an earlier token; tokenizer.json keeps the first id"
                ));
                continue;
            }
            vocab.insert(tok.clone(), json!(i));
            let special = match ty {
                token_type::CONTROL | token_type::UNKNOWN => Some(true),
                token_type::USER_DEFINED => Some(false),
                _ => None,
            };
            if let Some(special) = special {
                added.push(json!({
                    "id": i, "content": tok, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": special,
                }));
            }
        }
        let kind = self.pre_kind();
        let model = json!({
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": kind.ignore_merges(),
            "vocab": Value::Object(vocab), "merges": self.merges,
        });
        let tok = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": kind.pre_tokenizer(),
            "post_processor": self.post_processor(),
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": model,
        });
        (tok, findings)
    }

    /// A `TemplateProcessing` adding BOS/EOS as `tokenizer.ggml.add_{bos,eos}_token` say, or the
    /// byte-level post-processor (adds nothing) when neither is added.
    fn post_processor(&self) -> Value {
        let bos = self.token(self.bos).filter(|_| self.add_bos == Some(true));
        let eos = self.token(self.eos).filter(|_| self.add_eos == Some(true));
        if bos.is_none() && eos.is_none() {
            return json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
        }
        let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
        let seq = |s: &str, ty: u32| json!({"Sequence": {"id": s, "type_id": ty}});
        let mut single = Vec::new();
        let mut pair = Vec::new();
        let mut specials = Map::new();
        for (tok, id) in [(bos, self.bos), (eos, self.eos)] {
            if let (Some(t), Some(id)) = (tok, id) {
                specials.insert(t.into(), json!({"id": t, "ids": [id], "tokens": [t]}));
            }
        }
        if let Some(b) = bos {
            single.push(special(b));
            pair.push(special(b));
        }
        single.push(seq("A", 0));
        pair.push(seq("A", 0));
        if let Some(e) = eos {
            single.push(special(e));
            pair.push(special(e));
        }
        if let Some(b) = bos {
            pair.push(json!({"SpecialToken": {"id": b, "type_id": 1}}));
        }
        pair.push(seq("B", 1));
        if let Some(e) = eos {
            pair.push(json!({"SpecialToken": {"id": e, "type_id": 1}}));
        }
        json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
    }

    /// `tokenizer_config.json`.
    pub fn tokenizer_config_json(&self, model_max_length: u64) -> Value {
        let mut m = Map::new();
        if let Some(b) = self.add_bos {
            m.insert("add_bos_token".into(), json!(b));
        }
        if let Some(e) = self.add_eos {
            m.insert("add_eos_token".into(), json!(e));
        }
        if let Some(p) = self.add_space_prefix {
            m.insert("add_prefix_space".into(), json!(p));
        }
        for (k, id) in [
            ("bos_token", self.bos),
            ("eos_token", self.eos),
            ("pad_token", self.pad),
            ("unk_token", self.unk),
        ] {
            m.insert(k.into(), self.token(id).map_or(Value::Null, |t| json!(t)));
        }
        if let Some(t) = &self.chat_template {
            m.insert("chat_template".into(), json!(t));
        }
        m.insert("clean_up_tokenization_spaces".into(), json!(false));
        m.insert("model_max_length".into(), json!(model_max_length));
        m.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        Value::Object(m)
    }
}
