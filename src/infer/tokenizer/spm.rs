//! SentencePiece (`tokenizer.ggml.model = llama`) over one text fragment, as llama.cpp's
//! `llm_tokenizer_spm_session` (`src/llama-vocab.cpp`, llama-cpp-python 0.3.36): the fragment
//! (spaces already escaped to `▁`) starts as one symbol per UTF-8 character; the adjacent pair
//! whose concatenation is a token with the highest score merges first (ties: leftmost), until
//! no pair is a token; a final symbol that is no token falls back to its bytes' `<0xNN>`
//! tokens.
//!
//! Invariant: a queued bigram is stale exactly when one side is gone or the pair's size
//! changed (llama.cpp's test); symbols only grow to the right, so a live symbol keeps its
//! start. llama.cpp's `rev_merge` re-segmentation is never reached for a final symbol (every
//! merged symbol is a token), so it is not kept.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::unicode::utf8_len;
use super::vocab::Vocab;

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

/// A candidate merge: llama.cpp's `llm_bigram_spm` and its comparator (higher score first,
/// then smaller left index).
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> Ordering {
        // `<` / `>` as llama.cpp compares floats (NaN ties with everything)
        let s = if self.score < o.score {
            Ordering::Less
        } else if self.score > o.score {
            Ordering::Greater
        } else {
            Ordering::Equal
        };
        s.then_with(|| o.left.cmp(&self.left))
    }
}

/// Byte-fallback ids for SPM (llama.cpp `byte_to_token`): `<0xNN>`, else the one-byte token.
pub(super) fn byte_tokens(vocab: &Vocab) -> [Option<u32>; 256] {
    let mut t = [None; 256];
    for (b, slot) in t.iter_mut().enumerate() {
        let hex = format!("<0x{b:02X}>");
        *slot = vocab.id(hex.as_bytes()).or_else(|| vocab.id(&[b as u8]));
    }
    t
}

fn bigram(vocab: &Vocab, text: &[u8], syms: &[Sym], l: i32, r: i32, heap: &mut BinaryHeap<Bigram>) {
    let (Ok(li), Ok(ri)) = (usize::try_from(l), usize::try_from(r)) else {
        return;
    };
    let (Some(a), Some(b)) = (syms.get(li), syms.get(ri)) else {
        return;
    };
    let size = a.len + b.len;
    let Some(piece) = text.get(a.start as usize..(a.start + size) as usize) else {
        return;
    };
    if let Some(id) = vocab.id(piece) {
        heap.push(Bigram {
            score: vocab.score(id),
            left: li as u32,
            right: ri as u32,
            size,
        });
    }
}

/// Appends the tokens of `text` (already `▁`-escaped). A byte with no fallback token (llama.cpp
/// throws there) becomes `unk` when there is one.
pub(super) fn tokenize(
    vocab: &Vocab,
    bytes: &[Option<u32>; 256],
    unk: Option<u32>,
    text: &[u8],
    out: &mut Vec<u32>,
) {
    let mut syms = Vec::with_capacity(text.len());
    let mut offs = 0usize;
    while offs < text.len() {
        let len = text
            .get(offs)
            .map_or(1, |&b| utf8_len(b))
            .min(text.len() - offs);
        let i = syms.len() as i32;
        offs += len;
        syms.push(Sym {
            start: (offs - len) as u32,
            len: len as u32,
            prev: i - 1,
            next: if offs == text.len() { -1 } else { i + 1 },
        });
    }
    let mut heap = BinaryHeap::with_capacity(syms.len());
    for i in 1..syms.len() as i32 {
        bigram(vocab, text, &syms, i - 1, i, &mut heap);
    }
    while let Some(bg) = heap.pop() {
        let (li, ri) = (bg.left as usize, bg.right as usize);
        let (Some(&a), Some(&b)) = (syms.get(li), syms.get(ri)) else {
            continue;
        };
        if a.len == 0 || b.len == 0 || a.len + b.len != bg.size {
            continue;
        }
        if let Some(s) = syms.get_mut(li) {
            s.len += b.len;
            s.next = b.next;
        }
        if let Some(s) = syms.get_mut(ri) {
            s.len = 0;
        }
        if let Some(s) = usize::try_from(b.next).ok().and_then(|j| syms.get_mut(j)) {
            s.prev = bg.left as i32;
        }
        bigram(vocab, text, &syms, a.prev, bg.left as i32, &mut heap);
        bigram(vocab, text, &syms, bg.left as i32, b.next, &mut heap);
    }
    for s in syms.iter().filter(|s| s.len > 0) {
        let piece = text
            .get(s.start as usize..(s.start + s.len) as usize)
            .unwrap_or_default();
        if let Some(id) = vocab.id(piece) {
            out.push(id);
            continue;
        }
        for &b in piece {
            if let Some(id) = bytes[usize::from(b)].or(unk) {
                out.push(id);
            }
        }
    }
}
