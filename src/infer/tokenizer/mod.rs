//! The tokenizer of a GGUF model (`tokenizer.ggml.*` metadata), producing exactly the ids
//! llama.cpp's `llama_tokenize(vocab, text, add_special, parse_special)` produces (ported from
//! `src/llama-vocab.cpp` and `src/unicode.cpp` of llama-cpp-python 0.3.36; parity with it is
//! tested on a committed corpus for Qwen2.5, SmolLM2 and Gemma 3, see tests/tokenizer.rs).
//!
//! Supported: `tokenizer.ggml.model` `gpt2` (byte-level BPE) with `tokenizer.ggml.pre`
//! `qwen2`, `smollm` or `llama-bpe`, and `llama` (SentencePiece) with `pre` absent or
//! `default`. Anything else is an error naming the value, never a silent fallback.
//!
//! Pipeline of [`Tokenizer::encode`]: special-token partitioning (`partition`), then per
//! text fragment either the pre-tokenizer ([`pretokenize`]) and BPE merges (`bpe`), or
//! SentencePiece merges (`spm`); BOS/EOS as the metadata says. [`Tokenizer::detokenize`]
//! is llama.cpp's `detokenize`.
//!
//! Invariants: a `Tokenizer` is immutable after [`Tokenizer::from_model`] (encoding allocates
//! only per call, nothing is compiled per call); every id it returns is `< n_tokens`.

mod bpe;
mod detok;
mod partition;
pub mod pretokenize;
mod spm;
mod unicode;
mod unicode_data;
pub mod vocab;

use std::collections::BTreeSet;

use crate::model::Model;

use self::partition::Frag;
pub use self::pretokenize::PreTokenizer;
use self::vocab::{ModelKind, Specials, Vocab};

/// Why a model's tokenizer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("GGUF metadata has no {key}")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A metadata key has the wrong type.
    #[error("GGUF metadata {key}: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What llama.cpp reads there.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer we do not implement.
    #[error("unsupported tokenizer.ggml.model {0:?} (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not implement.
    #[error(
        "unsupported tokenizer.ggml.pre {pre:?} for tokenizer.ggml.model {model:?} (supported: \"qwen2\", \
         \"smollm\", \"llama-bpe\" for gpt2; absent or \"default\" for llama)"
    )]
    UnsupportedPre {
        /// `tokenizer.ggml.model`.
        model: String,
        /// `tokenizer.ggml.pre` (`<absent>` when missing).
        pre: String,
    },
    /// A per-token array is shorter than the token list.
    #[error("GGUF metadata {key} has {found} entries, fewer than the {expected} tokens")]
    ShortArray {
        /// The key.
        key: &'static str,
        /// Its length.
        found: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// `tokenizer.ggml.tokens` is empty (or has more than 2³² entries).
    #[error("GGUF metadata tokenizer.ggml.tokens is empty or too large")]
    EmptyVocab,
}

enum Engine {
    Bpe {
        pre: PreTokenizer,
        bpe: Box<bpe::Bpe>,
    },
    Spm {
        bytes: Box<[Option<u32>; 256]>,
    },
}

/// A loaded tokenizer. Build with [`Tokenizer::from_model`].
pub struct Tokenizer {
    vocab: Vocab,
    kind: ModelKind,
    engine: Engine,
    specials: Specials,
    cache: partition::Specials,
    eog: BTreeSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("n_tokens", &self.vocab.n_tokens())
            .field("bos", &self.specials.bos)
            .field("eos", &self.specials.eos)
            .finish_non_exhaustive()
    }
}

fn str_key<'m>(m: &'m Model, key: &'static str) -> Result<Option<&'m str>, TokenizerError> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| TokenizerError::WrongType {
                key,
                expected: "UTF-8 string",
                found: v.describe(),
            }),
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a model's `tokenizer.ggml.*` metadata, as llama.cpp's
    /// `llama_vocab::load` does for the supported model/pre-tokenizer pairs.
    pub fn from_model(m: &Model) -> Result<Self, TokenizerError> {
        let model = str_key(m, "tokenizer.ggml.model")?.ok_or(TokenizerError::MissingKey {
            key: "tokenizer.ggml.model",
        })?;
        let pre_name = str_key(m, "tokenizer.ggml.pre")?;
        let kind = match model {
            "gpt2" => ModelKind::Bpe,
            "llama" => ModelKind::Spm,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let unsupported = || TokenizerError::UnsupportedPre {
            model: model.to_string(),
            pre: pre_name.unwrap_or("<absent>").to_string(),
        };
        // defaults per llama.cpp: BPE adds nothing and cleans spaces unless the pre-tokenizer
        // says otherwise; SPM adds BOS and a space prefix
        let (pre, mut add_bos, mut add_space_prefix, clean_spaces, ignore_merges) = match kind {
            ModelKind::Bpe => {
                let pre = pre_name
                    .and_then(PreTokenizer::from_name)
                    .ok_or_else(unsupported)?;
                match pre {
                    PreTokenizer::Qwen2 | PreTokenizer::Smollm => {
                        (Some(pre), false, false, false, false)
                    }
                    PreTokenizer::Llama3 => (Some(pre), true, false, true, true),
                }
            }
            ModelKind::Spm => match pre_name {
                None | Some("default") => (None, true, true, false, false),
                Some(_) => return Err(unsupported()),
            },
        };
        let mut add_eos = false;
        if let Some(b) = vocab::read_bool(m, "tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = b;
        }
        let mut vocab = vocab::load(m)?;
        let mut specials = vocab::read_specials(m, kind, vocab.n_tokens())?;
        if let Some(b) = vocab::read_bool(m, "tokenizer.ggml.add_bos_token")? {
            add_bos = b;
        }
        if let Some(b) = vocab::read_bool(m, "tokenizer.ggml.add_eos_token")? {
            add_eos = b;
        }
        let eog = vocab::fixups(&mut vocab, &mut specials);
        let engine = match pre {
            Some(pre) => {
                let merges = m
                    .get("tokenizer.ggml.merges")
                    .ok_or(TokenizerError::MissingKey {
                        key: "tokenizer.ggml.merges",
                    })?;
                let items = merges.as_array().ok_or_else(|| TokenizerError::WrongType {
                    key: "tokenizer.ggml.merges",
                    expected: "array of strings",
                    found: merges.describe(),
                })?;
                Engine::Bpe {
                    pre,
                    bpe: Box::new(bpe::Bpe::new(&vocab, &items.items, ignore_merges)?),
                }
            }
            None => Engine::Spm {
                bytes: Box::new(spm::byte_tokens(&vocab)),
            },
        };
        let cache = partition::Specials::new(&vocab);
        Ok(Self {
            vocab,
            kind,
            engine,
            specials,
            cache,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
        })
    }

    /// llama.cpp `llama_tokenize(vocab, text, add_special, parse_special)`.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let bytes = text.as_bytes();
        let frags = self.cache.partition(&self.vocab, bytes, parse_special);
        let mut out = Vec::with_capacity(bytes.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.specials.bos);
        }
        match &self.engine {
            Engine::Spm { bytes: fallback } => {
                let mut prev_special = true;
                let mut buf = Vec::new();
                for f in frags {
                    match f {
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Frag::Text(a, b) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.extend_from_slice("▁".as_bytes());
                            }
                            for &c in bytes.get(a..b).unwrap_or_default() {
                                if c == b' ' {
                                    buf.extend_from_slice("▁".as_bytes());
                                } else {
                                    buf.push(c);
                                }
                            }
                            spm::tokenize(&self.vocab, fallback, self.specials.unk, &buf, &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
            Engine::Bpe { pre, bpe } => {
                let mut sc = bpe::Scratch::default();
                for f in frags {
                    match f {
                        Frag::Token(id) => out.push(id),
                        Frag::Text(a, b) => {
                            let frag = bytes.get(a..b).unwrap_or_default();
                            let owned;
                            let s = match std::str::from_utf8(frag) {
                                Ok(s) => s,
                                Err(_) => {
                                    owned = lossy(frag);
                                    &owned
                                }
                            };
                            for w in pretokenize::split(*pre, s) {
                                bpe.word(
                                    &self.vocab,
                                    s.as_bytes().get(w).unwrap_or_default(),
                                    &mut sc,
                                    &mut out,
                                );
                            }
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.specials.eos);
        }
        out
    }

    /// The text of `ids` (llama.cpp `detokenize` without removing or rendering special
    /// tokens), invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, false)).into_owned()
    }

    /// The piece of one token with special tokens rendered (llama.cpp
    /// `token_to_piece(id, lstrip 0, special true)`); empty for an id outside the vocabulary.
    pub fn token_to_piece(&self, id: u32) -> Vec<u8> {
        self.piece(id, true)
    }

    /// The piece of one token; control/unknown tokens are empty unless `special`.
    pub fn piece(&self, id: u32, special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.piece_into(id, special, 0, &mut out);
        out
    }

    /// Number of tokens.
    pub fn n_tokens(&self) -> usize {
        self.vocab.n_tokens()
    }

    /// The BOS id, if any.
    pub fn bos(&self) -> Option<u32> {
        self.specials.bos
    }

    /// The EOS id, if any.
    pub fn eos(&self) -> Option<u32> {
        self.specials.eos
    }

    /// The end-of-turn id: `tokenizer.ggml.eot_token_id`, else the first of llama.cpp's
    /// end-of-turn texts present, in llama.cpp's list order (llama.cpp itself takes the first
    /// it meets in hash-map order, so with several candidates it may pick another one; all of
    /// them are end-of-generation either way).
    pub fn eot(&self) -> Option<u32> {
        self.specials.eot
    }

    /// Whether `id` ends generation (llama.cpp `is_eog`).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.eog.iter().copied().collect()
    }

    /// Whether `encode(_, add_special = true, _)` starts with BOS / ends with EOS.
    pub fn adds_bos_eos(&self) -> (bool, bool) {
        (self.add_bos, self.add_eos)
    }

    /// The token attribute bits (see [`vocab::attr`]) after llama.cpp's fix-ups; 0 outside
    /// the vocabulary.
    pub fn attr(&self, id: u32) -> u32 {
        self.vocab.attr(id)
    }

    /// The raw text of a token as stored (BPE: GPT-2 byte characters; SPM: with `▁`).
    pub fn token_text(&self, id: u32) -> &[u8] {
        self.vocab.text(id)
    }

    /// The special tokens matched in the text, in the order they are applied.
    pub fn special_tokens(&self) -> &[u32] {
        self.cache.order()
    }
}

/// Bytes → String the way llama.cpp's UTF-8 decoder reads them (one U+FFFD per bad byte).
fn lossy(b: &[u8]) -> String {
    unicode::cpts_lossy(b)
        .into_iter()
        .map(|c| char::from_u32(c).unwrap_or('\u{FFFD}'))
        .collect()
}
