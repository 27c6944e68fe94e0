//! Ids → bytes, as llama.cpp's `token_to_piece` and `detokenize` (`src/llama-vocab.cpp`,
//! llama-cpp-python 0.3.36).
//!
//! A piece: control and unknown tokens are empty unless `special`; control, unknown and
//! user-defined tokens render as their text; normal tokens as their text with `▁` → space
//! (SPM) or through the GPT-2 byte map (BPE, unmapped characters become llama.cpp's
//! `[UNK_BYTE_0x…]` marker); byte tokens as their byte; anything else (unused, undefined) is
//! empty. `detokenize` joins pieces, drops the leading space SPM adds (unless a removed BOS
//! came first), optionally strips BOS/EOS, and applies `clean_spaces` when the vocabulary
//! asks for it.

use super::unicode::{char_to_byte, cpts_lossy, push_utf8};
use super::vocab::{attr, ModelKind};
use super::Tokenizer;

/// llama.cpp `token_to_byte`: `strtol(text.substr(3, 2), 16)` — the hex digits at 3..5.
fn byte_of(text: &[u8]) -> u8 {
    let mut v = 0u8;
    for &c in text.get(3..5).unwrap_or_default() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        v = v.wrapping_mul(16).wrapping_add(d);
    }
    v
}

/// llama.cpp `llama_decode_text`: GPT-2 byte characters back to bytes.
fn decode_bpe_text(text: &[u8], out: &mut Vec<u8>) {
    for cp in cpts_lossy(text) {
        if let Some(b) = char_to_byte(cp) {
            out.push(b);
        } else {
            let mut utf8 = Vec::with_capacity(4);
            push_utf8(cp, &mut utf8);
            out.extend_from_slice(b"[UNK_BYTE_0x");
            for b in utf8 {
                out.extend_from_slice(format!("{b:02x}").as_bytes());
            }
            out.extend_from_slice(text);
            out.push(b']');
        }
    }
}

impl Tokenizer {
    /// Appends the piece of `id`, skipping up to `lstrip` leading spaces.
    pub(super) fn piece_into(&self, id: u32, special: bool, lstrip: usize, out: &mut Vec<u8>) {
        let Some(text) = self.vocab.texts.get(id as usize) else {
            return;
        };
        let a = self.vocab.attr(id);
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return;
        }
        let start = out.len();
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            out.extend_from_slice(text);
        } else if a & attr::NORMAL != 0 {
            match self.kind {
                ModelKind::Spm => {
                    let mut rest: &[u8] = text;
                    while !rest.is_empty() {
                        if let Some(r) = rest.strip_prefix("▁".as_bytes()) {
                            out.push(b' ');
                            rest = r;
                        } else if let Some((&c, r)) = rest.split_first() {
                            out.push(c);
                            rest = r;
                        }
                    }
                }
                ModelKind::Bpe => decode_bpe_text(text, out),
            }
        } else if a & attr::BYTE != 0 {
            out.push(byte_of(text));
        }
        let n = out.get(start..).map_or(0, |p| {
            p.iter().take(lstrip).take_while(|&&c| c == b' ').count()
        });
        if n > 0 {
            out.drain(start..start + n);
        }
    }

    /// llama.cpp `detokenize(tokens, remove_special, unparse_special)`.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let Some((&first, rest)) = ids.split_first() {
                if Some(first) == self.specials.bos {
                    remove_space = false;
                    ids = rest;
                }
            }
        }
        if remove_special && self.add_eos {
            if let Some((&last, rest)) = ids.split_last() {
                if Some(last) == self.specials.eos {
                    ids = rest;
                }
            }
        }
        let mut text = Vec::new();
        for &id in ids {
            self.piece_into(id, unparse_special, usize::from(remove_space), &mut text);
            remove_space = false;
        }
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        text
    }
}

/// llama.cpp's three `clean_spaces` passes, in place, exactly as written there (each pass
/// reads bytes the same pass may already have moved).
fn clean_spaces(t: &mut Vec<u8>) {
    let at = |t: &Vec<u8>, i: usize| t.get(i).copied().unwrap_or(0);
    let set = |t: &mut Vec<u8>, i: usize, x: u8| {
        if let Some(s) = t.get_mut(i) {
            *s = x;
        }
    };
    // " ?", " !", " .", " ," lose the space
    let total1 = t.len();
    let mut total = usize::from(total1 > 0);
    for i in 1..total1 {
        let x = at(t, i);
        if at(t, i - 1) == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        set(t, total, x);
        total += 1;
    }
    // " ' " loses both spaces
    let total2 = total;
    total = usize::from(total2 > 0);
    let mut i = 1;
    while i < total2 {
        let x = at(t, i);
        if x == b'\'' && i + 1 < total2 && at(t, i - 1) == b' ' && at(t, i + 1) == b' ' {
            total -= 1;
            i += 1;
            set(t, i, 0);
        }
        set(t, total, x);
        total += 1;
        i += 1;
    }
    // " 's", " 'm", " 're", " 've" lose the space
    let total3 = total;
    total = usize::from(total3 > 0);
    for i in 1..total3 {
        let x = at(t, i);
        if at(t, i - 1) == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = at(t, i + 1);
            if matches!(x1, b's' | b'm') {
                total -= 1;
            } else if !matches!(x1, b't' | b'd') && i + 2 < total3 {
                let x2 = at(t, i + 2);
                if x2 == b'e' && (x1 == b'r' || x1 == b'v') {
                    total -= 1;
                }
            }
        }
        set(t, total, x);
        total += 1;
    }
    t.truncate(total);
}
