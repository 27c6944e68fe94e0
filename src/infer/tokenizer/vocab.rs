//! The vocabulary as llama.cpp loads it (`llama_vocab::impl::load`, `src/llama-vocab.cpp`,
//! llama-cpp-python 0.3.36): token texts, scores and attributes from `tokenizer.ggml.*`, the
//! special ids (model-type defaults, then metadata), and the attribute fix-ups llama.cpp applies
//! by token text (end-of-turn / FIM detection, "unused", the end-of-generation set).
//!
//! Invariants: `texts`, `attrs` and `scores` have one entry per token; `map` sends each text
//! to the LAST id carrying it (llama.cpp's `token_to_id[word] = i`); an empty token text is
//! stored as `[EMPTY_<id>]`, as llama.cpp renames it; every special id held is `< n_tokens`.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::formats::gguf::GgufValue;
use crate::model::Model;

use super::TokenizerError;

/// Token attribute bits (llama.h `llama_token_attr`).
pub mod attr {
    /// The token is `<unk>`-like.
    pub const UNKNOWN: u32 = 1 << 0;
    /// Unused slot.
    pub const UNUSED: u32 = 1 << 1;
    /// Plain text token.
    pub const NORMAL: u32 = 1 << 2;
    /// Control token (BOS, EOS, turn markers …).
    pub const CONTROL: u32 = 1 << 3;
    /// User-defined token: always split out of the text, rendered as its text.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// Byte token `<0xNN>`.
    pub const BYTE: u32 = 1 << 5;
}

/// FxHash (rustc's hasher): fast, deterministic, fine for token texts we do not expose.
#[derive(Default, Clone, Copy)]
pub(super) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A hash map with [`Fx`].
pub(super) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Which tokenizer `tokenizer.ggml.model` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ModelKind {
    /// `gpt2`: byte-level BPE.
    Bpe,
    /// `llama`: SentencePiece.
    Spm,
}

/// Special token ids (`None` = LLAMA_TOKEN_NULL).
#[derive(Clone, Debug, Default)]
pub(super) struct Specials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Token texts, scores, attributes and the text → id map.
pub(super) struct Vocab {
    pub texts: Vec<Box<[u8]>>,
    pub scores: Vec<f32>,
    pub attrs: Vec<u32>,
    pub map: FxMap<Box<[u8]>, u32>,
}

impl Vocab {
    pub fn n_tokens(&self) -> usize {
        self.texts.len()
    }

    pub fn id(&self, text: &[u8]) -> Option<u32> {
        self.map.get(text).copied()
    }

    pub fn text(&self, id: u32) -> &[u8] {
        self.texts.get(id as usize).map_or(&[], |t| t)
    }

    pub fn attr(&self, id: u32) -> u32 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }

    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }
}

pub(super) fn get<'m>(m: &'m Model, key: &'static str) -> Option<&'m GgufValue> {
    m.get(key)
}

fn array<'m>(m: &'m Model, key: &'static str) -> Result<Option<&'m [GgufValue]>, TokenizerError> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(|a| Some(a.items.as_slice()))
            .ok_or_else(|| TokenizerError::WrongType {
                key,
                expected: "array",
                found: v.describe(),
            }),
    }
}

/// The `tokenizer.ggml.tokens` strings (raw bytes).
pub(super) fn read_tokens(m: &Model) -> Result<Vec<Box<[u8]>>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.tokens";
    let items = array(m, KEY)?.ok_or(TokenizerError::MissingKey { key: KEY })?;
    let mut texts = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let b = v.as_bytes().ok_or_else(|| TokenizerError::WrongType {
            key: KEY,
            expected: "array of strings",
            found: format!("element {i}: {}", v.describe()),
        })?;
        texts.push(if b.is_empty() {
            format!("[EMPTY_{i}]").into_bytes().into_boxed_slice()
        } else {
            b.into()
        });
    }
    if texts.is_empty() {
        return Err(TokenizerError::EmptyVocab);
    }
    Ok(texts)
}

/// Loads texts, scores and GGUF token types (as attributes).
pub(super) fn load(m: &Model) -> Result<Vocab, TokenizerError> {
    let texts = read_tokens(m)?;
    let n = texts.len();
    let scores = match array(m, "tokenizer.ggml.scores")? {
        None => vec![0.0; n],
        Some(items) => {
            check_len("tokenizer.ggml.scores", items.len(), n)?;
            let mut s = Vec::with_capacity(n);
            for (i, v) in items.iter().take(n).enumerate() {
                let x = match *v {
                    GgufValue::F32(x) => x,
                    // llama.cpp also accepts an INT32 score array, converted to float
                    GgufValue::I32(x) => x as f32,
                    _ => {
                        return Err(TokenizerError::WrongType {
                            key: "tokenizer.ggml.scores",
                            expected: "array of f32 or i32",
                            found: format!("element {i}: {}", v.describe()),
                        })
                    }
                };
                s.push(x);
            }
            s
        }
    };
    let attrs = match array(m, "tokenizer.ggml.token_type")? {
        None => vec![attr::NORMAL; n],
        Some(items) => {
            check_len("tokenizer.ggml.token_type", items.len(), n)?;
            let mut a = Vec::with_capacity(n);
            for (i, v) in items.iter().take(n).enumerate() {
                let t = v.as_i64().ok_or_else(|| TokenizerError::WrongType {
                    key: "tokenizer.ggml.token_type",
                    expected: "array of integers",
                    found: format!("element {i}: {}", v.describe()),
                })?;
                a.push(match t {
                    1 => attr::NORMAL,
                    2 => attr::UNKNOWN,
                    3 => attr::CONTROL,
                    4 => attr::USER_DEFINED,
                    5 => attr::UNUSED,
                    6 => attr::BYTE,
                    _ => 0, // UNDEFINED (llama.cpp maps every other value there too)
                });
            }
            a
        }
    };
    let mut map = FxMap::with_capacity_and_hasher(n, Default::default());
    for (i, t) in texts.iter().enumerate() {
        map.insert(t.clone(), i as u32);
    }
    Ok(Vocab {
        texts,
        scores,
        attrs,
        map,
    })
}

fn check_len(key: &'static str, found: usize, expected: usize) -> Result<(), TokenizerError> {
    if found < expected {
        return Err(TokenizerError::ShortArray {
            key,
            found,
            expected,
        });
    }
    Ok(())
}

/// A boolean key, if present (error if present with another type).
pub(super) fn read_bool(m: &Model, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| TokenizerError::WrongType {
                key,
                expected: "bool",
                found: v.describe(),
            }),
    }
}

/// The special ids: llama.cpp's per-model defaults, then the metadata keys in llama.cpp's
/// order (the deprecated prefix/suffix/middle keys last, so they win). A default outside the
/// vocabulary is dropped; a metadata id outside it is ignored (llama.cpp only warns).
pub(super) fn read_specials(
    m: &Model,
    kind: ModelKind,
    n: usize,
) -> Result<Specials, TokenizerError> {
    let mut s = Specials::default();
    match kind {
        ModelKind::Spm => {
            s.bos = Some(1);
            s.eos = Some(2);
            s.unk = Some(0);
        }
        ModelKind::Bpe => {
            s.bos = Some(11);
            s.eos = Some(11);
        }
    }
    type Slot = fn(&mut Specials) -> &mut Option<u32>;
    let keys: [(&'static str, Slot); 17] = [
        ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
        ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
        ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
        ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
        ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
        ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
        ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
        ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
        ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
        ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
        ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
        ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
        ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
        ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
        ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
        ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
        ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
    ];
    for (key, slot) in keys {
        let id = slot(&mut s);
        if id.is_some_and(|i| i as usize >= n) {
            *id = None;
        }
        if let Some(v) = get(m, key) {
            let new = v.as_u64().ok_or_else(|| TokenizerError::WrongType {
                key,
                expected: "unsigned integer",
                found: v.describe(),
            })?;
            if new < n as u64 {
                *id = Some(new as u32);
            }
        }
    }
    Ok(s)
}

/// Token texts llama.cpp takes for end-of-turn when `eot_token_id` is absent, in the order
/// of its list (llama.cpp takes the first it meets in hash-map order, which we cannot
/// reproduce: with several candidates in one vocabulary the choice may differ).
const EOT_TEXTS: [&str; 11] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE: [&str; 8] = [
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF: [&str; 8] = [
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID: [&str; 8] = [
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD: [&str; 5] = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP: [&str; 5] = [
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP: [&str; 1] = ["<|file_sep|>"];
/// Texts that end generation (llama.cpp's EOG list).
const EOG_TEXTS: [&str; 22] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Applies llama.cpp's text-based fix-ups to `v.attrs` and `s`, and returns the EOG set.
pub(super) fn fixups(v: &mut Vocab, s: &mut Specials) -> BTreeSet<u32> {
    fn mark_control(v: &mut Vocab, id: u32) {
        if let Some(a) = v.attrs.get_mut(id as usize) {
            *a |= attr::CONTROL;
        }
    }
    let detect = |v: &Vocab, slot: &mut Option<u32>, texts: &[&str]| -> Option<u32> {
        if slot.is_some() {
            return None;
        }
        let found = texts.iter().find_map(|t| v.id(t.as_bytes()));
        *slot = found;
        found
    };
    for (slot, texts) in [
        (&mut s.eot, &EOT_TEXTS[..]),
        (&mut s.eom, &["<|eom_id|>"][..]),
        (&mut s.fim_pre, &FIM_PRE[..]),
        (&mut s.fim_suf, &FIM_SUF[..]),
        (&mut s.fim_mid, &FIM_MID[..]),
        (&mut s.fim_pad, &FIM_PAD[..]),
        (&mut s.fim_rep, &FIM_REP[..]),
        (&mut s.fim_sep, &FIM_SEP[..]),
    ] {
        if let Some(id) = detect(v, slot, texts) {
            mark_control(v, id);
        }
    }
    // control tokens whose text says "unused"
    for (t, a) in v.texts.iter().zip(v.attrs.iter_mut()) {
        if *a & attr::CONTROL != 0 && t.windows(6).any(|w| w == b"unused") {
            *a |= attr::UNUSED;
        }
    }
    let mut eog: BTreeSet<u32> = [s.fim_pad, s.fim_rep, s.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    for t in EOG_TEXTS {
        if let Some(id) = v.id(t.as_bytes()) {
            eog.insert(id);
            mark_control(v, id);
        }
    }
    // gpt-oss: always rendered
    for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(a) = v
            .id(t.as_bytes())
            .and_then(|id| v.attrs.get_mut(id as usize))
        {
            *a = attr::USER_DEFINED;
        }
    }
    eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());
    let has =
        |v: &Vocab, eog: &BTreeSet<u32>, t: &str| v.id(t.as_bytes()).filter(|id| eog.contains(id));
    // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there
    if let Some(end) = has(v, &eog, "<|end|>") {
        let ret = has(v, &eog, "<|return|>").is_some();
        let call = has(v, &eog, "<|call|>").is_some() || has(v, &eog, "<|calls|>").is_some();
        let flush = has(v, &eog, "<|flush|>").is_some();
        if call && (ret || flush) {
            eog.remove(&end);
            if let Some(a) = v.attrs.get_mut(end as usize) {
                *a = attr::USER_DEFINED;
            }
        }
    }
    // gemma4 / plamo: "</s>" is a normal token there
    if let Some(s_id) = has(v, &eog, "</s>") {
        if has(v, &eog, "<|tool_response>").is_some() || has(v, &eog, "<|plamo:eos|>").is_some() {
            eog.remove(&s_id);
            if let Some(a) = v.attrs.get_mut(s_id as usize) {
                *a = attr::NORMAL;
            }
        }
    }
    eog
}
