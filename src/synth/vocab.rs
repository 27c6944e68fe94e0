//! The synthetic model's tokenizer: a small byte-level BPE vocabulary ("gpt2" in GGUF terms).
//!
//! Layout of the `vocab` tokens, in id order:
//! 1. the 256 byte tokens, in GPT-2's `bytes_to_unicode` order (ids 0..=93 are the printable
//!    bytes `!`..`~`, as in GPT-2's and Qwen's vocabularies), each spelled as its mapped char;
//! 2. the results of BPE merges learned from the embedded corpus (`corpus.txt`), most frequent
//!    pair first, ties broken by a hash of the pair and the seed;
//! 3. where the corpus runs out of pairs before `vocab` is reached, `<|reserved_N|>` control
//!    tokens (their embedding and output rows are drawn 10× smaller, like the untrained rows
//!    of real models, so a random model rarely predicts them);
//! 4. the architecture's special tokens (control tokens, token type 3), last, as in real models.
//!
//! Invariants: token strings are unique; every merge `a b` names two tokens of the vocabulary and
//! its result `ab` is a token; every token but the reserved and special ones is a byte-level
//! string that the merges can build from byte tokens. So llama.cpp (and HF `tokenizers`) can
//! tokenize any text with it, falling back to byte tokens.

use std::collections::{BTreeMap, HashSet};

use super::rng::{hash_str, SplitMix64};
use super::{SynthArch, SynthError};

/// llama.cpp `llama_token_type`: an ordinary token.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// llama.cpp `llama_token_type`: a control (special) token.
pub const TOKEN_TYPE_CONTROL: i32 = 3;

/// The text the merges are learned from (original prose and code, written for this crate).
const CORPUS: &str = include_str!("corpus.txt");

/// A vocabulary: tokens, their types, merges and the special ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    /// Token strings, byte-level encoded; index = id.
    pub tokens: Vec<String>,
    /// Token types (llama.cpp `llama_token_type`), one per token.
    pub token_types: Vec<i32>,
    /// Merges, `"left right"`, in rank order.
    pub merges: Vec<String>,
    /// Beginning-of-sequence id.
    pub bos: u32,
    /// End-of-sequence id (the chat turn end for instruct-style templates).
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
    /// Ids of the `<|reserved_N|>` filler tokens (empty when the corpus filled the vocabulary).
    pub reserved: std::ops::Range<u32>,
}

/// The special tokens of an architecture, in id order, and the indices (into this list) of
/// bos, eos and pad.
fn specials(arch: SynthArch) -> (&'static [&'static str], usize, usize, usize) {
    match arch {
        // Qwen2: bos = pad = <|endoftext|>, eos = <|im_end|> (as Qwen2.5-Instruct's GGUF).
        SynthArch::Qwen2 => (&["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 0, 2, 0),
        // Llama 3: bos = <|begin_of_text|>, eos = <|eot_id|>, pad = <|end_of_text|>.
        SynthArch::Llama => (
            &[
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ],
            0,
            4,
            1,
        ),
    }
}

/// The smallest vocabulary size accepted for `arch`: bytes, specials and 16 merges.
pub fn min_vocab(arch: SynthArch) -> u32 {
    let (sp, ..) = specials(arch);
    256 + sp.len() as u32 + 16
}

/// GPT-2's `bytes_to_unicode`: the char each byte is spelled with, and the byte order that
/// gives the first 256 token ids.
pub fn byte_chars() -> [(u8, char); 256] {
    let mut out = [(0u8, '\0'); 256];
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut k = 0usize;
    for b in 0..=255u8 {
        if printable(b) {
            if let Some(slot) = out.get_mut(k) {
                *slot = (b, char::from(b));
            }
            k += 1;
        }
    }
    let mut n = 0u32;
    for b in 0..=255u8 {
        if !printable(b) {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            if let Some(slot) = out.get_mut(k) {
                *slot = (b, c);
            }
            k += 1;
            n += 1;
        }
    }
    out
}

/// Splits ASCII-ish text into pre-tokens roughly as the qwen2 / llama-3 pre-tokenizer regex
/// does (contractions; an optional leading non-letter then letters; single digits; an optional
/// space then punctuation; newline runs; other whitespace). Only used to learn merges, so
/// exactness does not matter: a merge across a boundary would merely never fire.
fn pre_tokenize(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let at = |j: usize| b.get(j).copied().unwrap_or(0);
    let letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let punct = |c: u8| c != 0 && !c.is_ascii_whitespace() && !letter(c) && !c.is_ascii_digit();
    while i < b.len() {
        let start = i;
        let c = at(i);
        if c == b'\'' && letter(at(i + 1)) && !letter(at(i + 2)) {
            i += 2;
        } else if letter(c) || (c != b'\n' && !c.is_ascii_digit() && letter(at(i + 1))) {
            i += 1;
            while letter(at(i)) {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            i += 1;
        } else if punct(c) || (c == b' ' && punct(at(i + 1))) {
            i += 1;
            while punct(at(i)) {
                i += 1;
            }
            while at(i) == b'\n' {
                i += 1;
            }
        } else if c == b'\n' {
            while at(i) == b'\n' {
                i += 1;
            }
        } else {
            // Whitespace other than newlines: leave the last space to the next word.
            while at(i) == b' ' || at(i) == b'\t' {
                i += 1;
            }
            if i - start > 1 && (letter(at(i)) || punct(at(i))) {
                i -= 1;
            }
        }
        if let Some(s) = text.get(start..i) {
            out.push(s);
        }
    }
    out
}

/// Builds the vocabulary of `vocab` tokens for `arch`, learning merges with `seed` breaking
/// ties.
pub fn build(arch: SynthArch, vocab: u32, seed: u64) -> Result<Vocab, SynthError> {
    let (special, bos, eos, pad) = specials(arch);
    let min = min_vocab(arch);
    if vocab < min {
        return Err(SynthError::Options {
            field: "vocab",
            detail: format!("{vocab} is below the minimum {min} (256 bytes + specials + 16)"),
        });
    }
    let chars = byte_chars();
    let spell = |s: &str| -> String {
        s.bytes()
            .map(|x| {
                chars
                    .iter()
                    .find(|(b, _)| *b == x)
                    .map_or('\0', |(_, c)| *c)
            })
            .collect()
    };
    let mut tokens: Vec<String> = chars.iter().map(|(_, c)| c.to_string()).collect();
    let mut known: HashSet<String> = tokens.iter().cloned().collect();
    let n_learned = vocab as usize - special.len();

    // Word frequencies, each word as its byte-level symbols.
    let mut freq: BTreeMap<String, u64> = BTreeMap::new();
    for w in pre_tokenize(CORPUS) {
        *freq.entry(spell(w)).or_insert(0) += 1;
    }
    let mut words: Vec<(Vec<String>, u64)> = freq
        .into_iter()
        .map(|(w, n)| (w.chars().map(String::from).collect(), n))
        .collect();

    let mut merges = Vec::new();
    let tie = |a: &str, b: &str| {
        SplitMix64::new(seed ^ hash_str(a) ^ hash_str(b).rotate_left(17)).next_u64()
    };
    while tokens.len() < n_learned {
        let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (syms, n) in &words {
            for w in syms.windows(2) {
                if let [a, b] = w {
                    *pairs.entry((a.as_str(), b.as_str())).or_insert(0) += n;
                }
            }
        }
        // Most frequent first; among equals the smallest seeded hash, then the pair itself.
        let best = pairs
            .iter()
            .map(|(&(a, b), &n)| (std::cmp::Reverse(n), tie(a, b), a, b))
            .min()
            .map(|(_, _, a, b)| (a.to_string(), b.to_string()));
        let Some((a, b)) = best else { break };
        let ab = format!("{a}{b}");
        for (syms, _) in &mut words {
            merge_in(syms, &a, &b, &ab);
        }
        merges.push(format!("{a} {b}"));
        if known.insert(ab.clone()) {
            tokens.push(ab);
        }
    }
    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    let first_reserved = tokens.len() as u32;
    let mut k = 0usize;
    while tokens.len() < n_learned {
        tokens.push(format!("<|reserved_{k}|>"));
        token_types.push(TOKEN_TYPE_CONTROL);
        k += 1;
    }
    let first_special = tokens.len();
    for s in special {
        tokens.push((*s).to_string());
        token_types.push(TOKEN_TYPE_CONTROL);
    }
    let unique: HashSet<&String> = tokens.iter().collect();
    if unique.len() != tokens.len() {
        return Err(SynthError::Internal {
            detail: "vocabulary has duplicate token strings".into(),
        });
    }
    let id = |i: usize| (first_special + i) as u32;
    Ok(Vocab {
        tokens,
        token_types,
        merges,
        bos: id(bos),
        eos: id(eos),
        pad: id(pad),
        reserved: first_reserved..first_special as u32,
    })
}

/// Replaces every adjacent `a`,`b` in `syms` with `ab`, left to right.
fn merge_in(syms: &mut Vec<String>, a: &str, b: &str, ab: &str) {
    let mut out: Vec<String> = Vec::with_capacity(syms.len());
    let mut i = 0usize;
    while i < syms.len() {
        let here = syms.get(i).map(String::as_str);
        let next = syms.get(i + 1).map(String::as_str);
        if here == Some(a) && next == Some(b) {
            out.push(ab.to_string());
            i += 2;
        } else {
            out.push(here.unwrap_or_default().to_string());
            i += 1;
        }
    }
    *syms = out;
}

/// Qwen2.5-Instruct's ChatML chat template, verbatim (as in Qwen2.5-Coder-0.5B-Instruct's
/// GGUF): llama.cpp recognises it as ChatML; it needs a Jinja engine for tool calls.
pub const QWEN2_CHAT_TEMPLATE: &str = include_str!("qwen2_chat_template.jinja");

/// Meta Llama-3-Instruct's chat template, verbatim: llama.cpp recognises it as "llama3".
pub const LLAMA3_CHAT_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// The chat template of `arch`.
pub fn chat_template(arch: SynthArch) -> &'static str {
    match arch {
        SynthArch::Qwen2 => QWEN2_CHAT_TEMPLATE,
        SynthArch::Llama => LLAMA3_CHAT_TEMPLATE,
    }
}
