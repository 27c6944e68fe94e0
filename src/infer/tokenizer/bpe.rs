//! Byte-level BPE over one pre-tokenized word, as llama.cpp's `llm_tokenizer_bpe_session`
//! (`src/llama-vocab.cpp`, llama-cpp-python 0.3.36) does it: the word's bytes become GPT-2
//! byte characters, adjacent symbols merge lowest merge rank first (ties: leftmost first),
//! and a final symbol that is not a token is emitted byte by byte of its encoded text, each
//! byte looked up as a one-byte token and dropped when there is none.
//!
//! Strings are interned once at load time: a "sid" is the token id for a token text, or an id
//! `>= n_tokens` for a merge side that is no token; a merge maps `(left sid, right sid)` to its
//! rank (the first occurrence wins, as llama.cpp's `bpe_ranks.emplace`) and the sid of the
//! concatenation. Invariant: a symbol's sid is `< n_tokens` exactly when its text is a token,
//! so no text is hashed while merging. A bigram popped from the queue is stale exactly when
//! one side is gone or its size changed (symbols only grow to the right), which is llama.cpp's
//! "text differs" test without building strings.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::formats::gguf::GgufValue;

use super::unicode::{byte_to_char, push_utf8};
use super::vocab::{FxMap, Vocab};
use super::TokenizerError;

const NONE: u32 = u32::MAX;

/// Queued bigrams: (rank, left, right, size, result sid), smallest first.
type Heap = BinaryHeap<Reverse<(u32, u32, u32, u32, u32)>>;

/// Merge table and byte symbols of a BPE vocabulary.
pub(super) struct Bpe {
    merges: FxMap<u64, (u32, u32)>,
    byte_sid: [u32; 256],
    /// GPT-2 byte characters of each byte, UTF-8 encoded (1 or 2 bytes; `.1` = length).
    byte_enc: [([u8; 2], u8); 256],
    n_tokens: u32,
    /// llama.cpp `ignore_merges` (llama-bpe): a word that is a token is taken whole.
    ignore_merges: bool,
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    sid: u32,
    prev: i32,
    next: i32,
}

/// Buffers reused across words.
#[derive(Default)]
pub(super) struct Scratch {
    syms: Vec<Sym>,
    heap: Heap,
    enc: Vec<u8>,
}

fn split_merge(b: &[u8]) -> Option<(&[u8], &[u8])> {
    // llama.cpp: `word.find(' ', 1)`; without a space both sides are empty and never match
    let pos = b.iter().skip(1).position(|&c| c == b' ')? + 1;
    Some((b.get(..pos)?, b.get(pos + 1..)?))
}

impl Bpe {
    /// Interns the merges of `tokenizer.ggml.merges`.
    pub fn new(
        vocab: &Vocab,
        merges: &[GgufValue],
        ignore_merges: bool,
    ) -> Result<Self, TokenizerError> {
        let n_tokens = u32::try_from(vocab.n_tokens()).map_err(|_| TokenizerError::EmptyVocab)?;
        let mut extra: FxMap<Box<[u8]>, u32> = FxMap::default();
        let mut sides = Vec::with_capacity(merges.len());
        for (i, v) in merges.iter().enumerate() {
            let b = v.as_bytes().ok_or_else(|| TokenizerError::WrongType {
                key: "tokenizer.ggml.merges",
                expected: "array of strings",
                found: format!("element {i}: {}", v.describe()),
            })?;
            let Some((l, r)) = split_merge(b) else {
                continue;
            };
            let mut intern = |s: &[u8]| -> u32 {
                if let Some(id) = vocab.id(s) {
                    return id;
                }
                let next = n_tokens + extra.len() as u32;
                *extra.entry(s.into()).or_insert(next)
            };
            let (ls, rs) = (intern(l), intern(r));
            sides.push((i, ls, rs, l.len()));
        }
        let lookup = |s: &[u8]| {
            vocab
                .id(s)
                .or_else(|| extra.get(s).copied())
                .unwrap_or(NONE)
        };
        let mut table = FxMap::with_capacity_and_hasher(sides.len(), Default::default());
        let mut cat = Vec::new();
        for (i, ls, rs, llen) in sides {
            let Some(b) = merges.get(i).and_then(GgufValue::as_bytes) else {
                continue;
            };
            cat.clear();
            cat.extend_from_slice(b.get(..llen).unwrap_or_default());
            cat.extend_from_slice(b.get(llen + 1..).unwrap_or_default());
            let rank = u32::try_from(i).unwrap_or(u32::MAX);
            table.entry(key(ls, rs)).or_insert((rank, lookup(&cat)));
        }
        let mut byte_sid = [NONE; 256];
        let mut byte_enc = [([0u8; 2], 0u8); 256];
        for b in 0..=255u8 {
            let mut e = Vec::with_capacity(2);
            push_utf8(byte_to_char(b), &mut e);
            byte_sid[usize::from(b)] = lookup(&e);
            let slot = &mut byte_enc[usize::from(b)];
            for (d, s) in slot.0.iter_mut().zip(&e) {
                *d = *s;
            }
            slot.1 = e.len() as u8;
        }
        Ok(Self {
            merges: table,
            byte_sid,
            byte_enc,
            n_tokens,
            ignore_merges,
        })
    }

    fn enc(&self, b: u8) -> &[u8] {
        let (bytes, n) = &self.byte_enc[usize::from(b)];
        bytes.get(..usize::from(*n)).unwrap_or_default()
    }

    fn bigram(&self, syms: &[Sym], l: i32, r: i32, heap: &mut Heap) {
        let (Ok(li), Ok(ri)) = (usize::try_from(l), usize::try_from(r)) else {
            return;
        };
        let (Some(a), Some(b)) = (syms.get(li), syms.get(ri)) else {
            return;
        };
        if let Some(&(rank, res)) = self.merges.get(&key(a.sid, b.sid)) {
            heap.push(Reverse((rank, li as u32, ri as u32, a.len + b.len, res)));
        }
    }

    /// Appends the tokens of one word (raw bytes, not yet byte-encoded).
    pub fn word(&self, vocab: &Vocab, word: &[u8], sc: &mut Scratch, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            sc.enc.clear();
            for &b in word {
                sc.enc.extend_from_slice(self.enc(b));
            }
            if let Some(id) = vocab.id(&sc.enc) {
                out.push(id);
                return;
            }
        }
        let n = word.len();
        sc.syms.clear();
        sc.heap.clear();
        for (i, &b) in word.iter().enumerate() {
            let next = if i + 1 == n { -1 } else { i as i32 + 1 };
            sc.syms.push(Sym {
                start: i as u32,
                len: 1,
                sid: self.byte_sid[usize::from(b)],
                prev: i as i32 - 1,
                next,
            });
        }
        for i in 1..n as i32 {
            self.bigram(&sc.syms, i - 1, i, &mut sc.heap);
        }
        while let Some(Reverse((_, l, r, size, res))) = sc.heap.pop() {
            let (li, ri) = (l as usize, r as usize);
            let (Some(&a), Some(&b)) = (sc.syms.get(li), sc.syms.get(ri)) else {
                continue;
            };
            if a.len == 0 || b.len == 0 || a.len + b.len != size {
                continue;
            }
            if let Some(s) = sc.syms.get_mut(li) {
                s.len += b.len;
                s.sid = res;
                s.next = b.next;
            }
            if let Some(s) = sc.syms.get_mut(ri) {
                s.len = 0;
            }
            if let Some(s) = usize::try_from(b.next)
                .ok()
                .and_then(|j| sc.syms.get_mut(j))
            {
                s.prev = l as i32;
            }
            self.bigram(&sc.syms, a.prev, l as i32, &mut sc.heap);
            self.bigram(&sc.syms, l as i32, b.next, &mut sc.heap);
        }
        for s in sc.syms.iter().filter(|s| s.len > 0) {
            if s.sid < self.n_tokens {
                out.push(s.sid);
                continue;
            }
            let text = word
                .get(s.start as usize..(s.start + s.len) as usize)
                .unwrap_or_default();
            for &b in text {
                for &e in self.enc(b) {
                    if let Some(id) = vocab.id(&[e]) {
                        out.push(id);
                    }
                }
            }
        }
    }
}

fn key(l: u32, r: u32) -> u64 {
    (u64::from(l) << 32) | u64::from(r)
}
