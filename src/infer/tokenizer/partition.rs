//! Special-token partitioning, as llama.cpp's `tokenizer_st_partition` (`src/llama-vocab.cpp`,
//! llama-cpp-python 0.3.36): the special tokens (control, user-defined and unknown) are taken
//! one after the other, longest text first, and each splits every remaining text fragment at
//! its non-overlapping occurrences, left to right. Without `parse_special`, control and unknown
//! tokens are skipped; user-defined tokens are always split out.
//!
//! llama.cpp sorts equal-length tokens with the unstable `std::sort`; we break ties by id.
//! The order matters only for two equal-length tokens that can overlap in a text; none of the
//! three reference vocabularies (Qwen2.5, SmolLM2, Gemma 3) has such a pair.
//!
//! Speed: a byte trie of all special texts finds, in one pass, which of them occur in the
//! input at all; only those are then applied in order. A token absent from the input cannot
//! occur in any fragment of it, so the result is the same as applying all of them.

use super::vocab::{attr, Vocab};

/// A piece of the input: raw text (byte range) or a special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Frag {
    Text(usize, usize),
    Token(u32),
}

#[derive(Default)]
struct Node {
    /// (byte, child index), sorted by byte.
    children: Vec<(u8, u32)>,
    /// Rank (position in `order`) of the token ending here.
    rank: Option<u32>,
}

/// The special-token cache (llama.cpp `cache_special_tokens`) and its trie.
pub(super) struct Specials {
    order: Vec<u32>,
    nodes: Vec<Node>,
}

impl Specials {
    /// Collects control, user-defined and unknown tokens, longest first (ties by id).
    pub fn new(vocab: &Vocab) -> Self {
        let mask = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
        let mut order: Vec<u32> = (0..vocab.n_tokens() as u32)
            .filter(|&id| vocab.attr(id) & mask != 0)
            .collect();
        order.sort_by(|&a, &b| {
            vocab
                .text(b)
                .len()
                .cmp(&vocab.text(a).len())
                .then(a.cmp(&b))
        });
        let mut nodes = vec![Node::default()];
        for (rank, &id) in order.iter().enumerate() {
            let mut cur = 0usize;
            for &byte in vocab.text(id) {
                let Some(node) = nodes.get(cur) else { break };
                cur = match node.children.binary_search_by_key(&byte, |c| c.0) {
                    Ok(i) => node.children.get(i).map_or(0, |c| c.1 as usize),
                    Err(i) => {
                        let new = nodes.len();
                        if let Some(n) = nodes.get_mut(cur) {
                            n.children.insert(i, (byte, new as u32));
                        }
                        nodes.push(Node::default());
                        new
                    }
                };
            }
            if let Some(n) = nodes.get_mut(cur) {
                if cur != 0 && n.rank.is_none() {
                    n.rank = Some(rank as u32);
                }
            }
        }
        Self { order, nodes }
    }

    /// The special tokens, in the order they are applied.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Ranks of the special tokens that occur somewhere in `text`, ascending.
    fn present(&self, text: &[u8]) -> Vec<usize> {
        let mut seen = vec![false; self.order.len()];
        for start in 0..text.len() {
            let mut cur = 0usize;
            for &byte in text.get(start..).unwrap_or_default() {
                let Some(node) = self.nodes.get(cur) else {
                    break;
                };
                match node.children.binary_search_by_key(&byte, |c| c.0) {
                    Ok(i) => cur = node.children.get(i).map_or(0, |c| c.1 as usize),
                    Err(_) => break,
                }
                if let Some(r) = self.nodes.get(cur).and_then(|n| n.rank) {
                    if let Some(s) = seen.get_mut(r as usize) {
                        *s = true;
                    }
                }
            }
        }
        seen.iter()
            .enumerate()
            .filter(|(_, &s)| s)
            .map(|(r, _)| r)
            .collect()
    }

    /// Splits `text` into fragments.
    pub fn partition(&self, vocab: &Vocab, text: &[u8], parse_special: bool) -> Vec<Frag> {
        let mut frags = vec![Frag::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        for rank in self.present(text) {
            let Some(&id) = self.order.get(rank) else {
                continue;
            };
            if !parse_special && vocab.attr(id) & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let tok = vocab.text(id);
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(m) = find(text.get(a..b).unwrap_or_default(), tok) {
                    if m > 0 {
                        next.push(Frag::Text(a, a + m));
                    }
                    next.push(Frag::Token(id));
                    a += m + tok.len();
                }
                if a < b {
                    next.push(Frag::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }
}

/// First occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let off = hay.get(i..)?.iter().position(|&c| c == first)?;
        i += off;
        if hay.get(i + 1..i + needle.len())? == rest {
            return Some(i);
        }
        i += 1;
    }
    None
}
