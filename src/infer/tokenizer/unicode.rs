//! Code point facts the tokenizers need, as llama.cpp sees them (`src/unicode.cpp`,
//! llama-cpp-python 0.3.36): letter / number / whitespace classes (from the generated
//! [`super::unicode_data`] tables), GPT-2's byte ↔ code point map, and llama.cpp's lenient
//! UTF-8 decoder.
//!
//! Invariants: [`flags`] of every code point below 0x110000 is non-zero (llama.cpp gives every
//! code point at least one flag bit; only positions outside the text have none), and
//! [`byte_to_char`] / [`char_to_byte`] are inverse bijections between the 256 bytes and 256
//! code points.

use super::unicode_data::{CLASS_RANGES, WHITESPACE};

/// Flag bit: `\p{L}`.
pub(super) const LETTER: u8 = 1;
/// Flag bit: `\p{N}`.
pub(super) const NUMBER: u8 = 2;
/// Flag bit: `\s` (llama.cpp's whitespace set).
pub(super) const WS: u8 = 4;
/// Flag bit: a code point inside the text (llama.cpp's `as_uint() != 0`).
pub(super) const DEFINED: u8 = 8;

/// The pre-tokenizer flags of a code point (always includes [`DEFINED`]).
pub(super) fn flags(cp: u32) -> u8 {
    let class = if cp < 0x80 {
        match cp {
            0x30..=0x39 => 2,
            0x41..=0x5A | 0x61..=0x7A => 1,
            _ => 0,
        }
    } else {
        let i = CLASS_RANGES.partition_point(|&(start, _)| start <= cp);
        // i ≥ 1 because the first range starts at 0.
        CLASS_RANGES.get(i.wrapping_sub(1)).map_or(0, |&(_, c)| c)
    };
    let mut f = DEFINED;
    if class == 1 {
        f |= LETTER;
    } else if class == 2 {
        f |= NUMBER;
    }
    if is_whitespace(cp) {
        f |= WS;
    }
    f
}

/// llama.cpp's `unicode_set_whitespace`.
pub(super) fn is_whitespace(cp: u32) -> bool {
    match cp {
        0x09..=0x0D | 0x20 => true,
        0..=0x84 => false,
        _ => WHITESPACE.contains(&cp),
    }
}

const fn printable(x: u32) -> bool {
    matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// GPT-2's byte → code point map (llama.cpp `unicode_byte_to_utf8_map`): printable Latin-1
/// bytes map to themselves, the other 68 to U+0100 upwards in byte order.
const BYTE_CHARS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut n = 0u32;
    let mut b = 0usize;
    while b < 256 {
        t[b] = if printable(b as u32) {
            b as u32
        } else {
            n += 1;
            255 + n
        };
        b += 1;
    }
    t
};

/// The inverse of [`BYTE_CHARS`] for U+0100..U+0143.
const EXTRA_BYTES: [u8; 68] = {
    let mut t = [0u8; 68];
    let mut b = 0usize;
    while b < 256 {
        let c = BYTE_CHARS[b];
        if c >= 256 {
            t[(c - 256) as usize] = b as u8;
        }
        b += 1;
    }
    t
};

/// GPT-2's byte → code point map.
pub(super) fn byte_to_char(b: u8) -> u32 {
    BYTE_CHARS[usize::from(b)]
}

/// The inverse of [`byte_to_char`]: `None` for the code points that are not one of the 256.
pub(super) fn char_to_byte(cp: u32) -> Option<u8> {
    if printable(cp) {
        u8::try_from(cp).ok()
    } else {
        cp.checked_sub(256)
            .and_then(|i| EXTRA_BYTES.get(i as usize))
            .copied()
    }
}

/// UTF-8 encoding of a code point as llama.cpp's `unicode_cpt_to_utf8` writes it (no
/// surrogate check); code points above 0x10FFFF give nothing.
pub(super) fn push_utf8(cp: u32, out: &mut Vec<u8>) {
    // Truncating casts are the encoding itself: each byte keeps 6 (or fewer) bits.
    if cp <= 0x7F {
        out.push(cp as u8);
    } else if cp <= 0x7FF {
        out.extend_from_slice(&[0xC0 | ((cp >> 6) & 0x1F) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp <= 0xFFFF {
        out.extend_from_slice(&[
            0xE0 | ((cp >> 12) & 0x0F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else if cp <= 0x10FFFF {
        out.extend_from_slice(&[
            0xF0 | ((cp >> 18) & 0x07) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// llama.cpp's `unicode_cpts_from_utf8`: decodes leniently (no overlong or surrogate checks),
/// and an invalid lead or continuation byte becomes U+FFFD consuming one byte.
pub(super) fn cpts_lossy(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b0) = bytes.get(i) {
        let cont = |k: usize| {
            bytes
                .get(i + k)
                .filter(|&&b| b & 0xC0 == 0x80)
                .map(|&b| u32::from(b & 0x3F))
        };
        let b = u32::from(b0);
        let dec = if b0 & 0x80 == 0 {
            Some((b, 1))
        } else if b0 & 0x40 == 0 {
            None
        } else if b0 & 0x20 == 0 {
            cont(1).map(|c1| (((b & 0x1F) << 6) | c1, 2))
        } else if b0 & 0x10 == 0 {
            cont(1)
                .zip(cont(2))
                .map(|(c1, c2)| (((b & 0x0F) << 12) | (c1 << 6) | c2, 3))
        } else if b0 & 0x08 == 0 {
            cont(1)
                .zip(cont(2))
                .zip(cont(3))
                .map(|((c1, c2), c3)| (((b & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3, 4))
        } else {
            None
        };
        match dec {
            Some((cp, n)) => {
                out.push(cp);
                i += n;
            }
            None => {
                out.push(0xFFFD);
                i += 1;
            }
        }
    }
    out
}

/// llama.cpp's `unicode_len_utf8`: the sequence length a lead byte announces (1 for a
/// continuation byte).
pub(super) fn utf8_len(b: u8) -> usize {
    match b >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}
