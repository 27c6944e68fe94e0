//! BPE pre-tokenizers: split a text fragment into words exactly as llama.cpp's
//! `unicode_regex_split` does for the supported `tokenizer.ggml.pre` values (llama-cpp-python
//! 0.3.36, `src/unicode.cpp` and the regex table in `llm_tokenizer_bpe`'s constructor,
//! `src/llama-vocab.cpp`):
//!
//! - `qwen2`: one pass of `unicode_regex_split_custom_qwen2` (the Qwen2 regex with `\p{N}`
//!   single digits);
//! - `llama-bpe`: one pass of `unicode_regex_split_custom_llama3` (`\p{N}{1,3}`);
//! - `smollm` (LLAMA_VOCAB_PRE_TYPE_SMOLLM): first `\p{N}` through std::regex on llama.cpp's
//!   "collapsed" text (every number code point becomes a word of its own, the runs between
//!   them words too), then `unicode_regex_split_custom_gpt2` inside each of those words.
//!
//! The splitters are hand-written state machines, not regexes: they reproduce llama.cpp's
//! hand-written ones case by case, including where those differ from the regex they are named
//! after. Invariant: the words returned are non-empty, in order, and tile the input exactly.

use std::ops::Range;

use super::unicode::{flags, DEFINED, LETTER, NUMBER, WS};

/// A supported BPE pre-tokenizer (`tokenizer.ggml.pre`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `qwen2`.
    Qwen2,
    /// `llama-bpe` (Llama 3).
    Llama3,
    /// `smollm`: single digits, then the GPT-2 pattern.
    Smollm,
}

impl PreTokenizer {
    /// The `tokenizer.ggml.pre` value, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "qwen2" => Some(Self::Qwen2),
            "llama-bpe" => Some(Self::Llama3),
            "smollm" => Some(Self::Smollm),
            _ => None,
        }
    }

    /// The `tokenizer.ggml.pre` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama3 => "llama-bpe",
            Self::Smollm => "smollm",
        }
    }
}

/// Past-the-end marker of llama.cpp's `_get_cpt` (`OUT_OF_RANGE`).
const OOR: u32 = 0xFFFF_FFFF;

/// One segment of the code points, with llama.cpp's out-of-range behaviour: positions outside
/// `[ini, end)` read as `OOR` with no flags.
struct Seg<'a> {
    cps: &'a [u32],
    fl: &'a [u8],
    ini: usize,
    end: usize,
}

impl Seg<'_> {
    fn cp(&self, i: usize) -> u32 {
        if (self.ini..self.end).contains(&i) {
            self.cps.get(i).copied().unwrap_or(OOR)
        } else {
            OOR
        }
    }

    fn f(&self, i: usize) -> u8 {
        if (self.ini..self.end).contains(&i) {
            self.fl.get(i).copied().unwrap_or(0)
        } else {
            0
        }
    }

    fn lower_ascii(&self, i: usize) -> u32 {
        let c = self.cp(i);
        if (0x41..=0x5A).contains(&c) {
            c + 0x20
        } else {
            c
        }
    }
}

/// Word ends (absolute code point indices) collected by the splitters (llama.cpp `_add_token`).
struct Ends<'a> {
    prev: usize,
    out: &'a mut Vec<usize>,
}

impl Ends<'_> {
    fn add(&mut self, end: usize) {
        if end > self.prev {
            self.out.push(end);
        }
        self.prev = end;
    }
}

fn is_contraction(c1: u32, c2: u32) -> Option<usize> {
    let s = |c: char| c as u32;
    if [s('s'), s('t'), s('m'), s('d')].contains(&c1) {
        return Some(2);
    }
    if (c1 == s('r') && c2 == s('e'))
        || (c1 == s('v') && c2 == s('e'))
        || (c1 == s('l') && c2 == s('l'))
    {
        return Some(3);
    }
    None
}

/// `unicode_regex_split_custom_gpt2`:
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn gpt2(s: &Seg<'_>, out: &mut Vec<usize>) {
    let mut e = Ends { prev: s.ini, out };
    let mut pos = s.ini;
    while pos < s.end {
        let cpt = s.cp(pos);
        let fl = s.f(pos);
        if cpt == u32::from(b'\'') && pos + 1 < s.end {
            let c2 = if pos + 2 < s.end { s.cp(pos + 2) } else { OOR };
            match is_contraction(s.cp(pos + 1), c2) {
                Some(2) => {
                    pos += 2;
                    e.add(pos);
                    continue;
                }
                Some(_) if pos + 2 < s.end => {
                    pos += 3;
                    e.add(pos);
                    continue;
                }
                _ => {}
            }
        }
        let space = cpt == u32::from(b' ');
        let mut f2 = if space { s.f(pos + 1) } else { fl };
        // ?\p{L}+ and ?\p{N}+
        if let Some(class) = [LETTER, NUMBER].into_iter().find(|&c| f2 & c != 0) {
            pos += usize::from(space);
            while f2 & class != 0 {
                pos += 1;
                f2 = s.f(pos);
            }
            e.add(pos);
            continue;
        }
        // ?[^\s\p{L}\p{N}]+
        if f2 & (WS | LETTER | NUMBER) == 0 && f2 & DEFINED != 0 {
            pos += usize::from(space);
            while f2 & (WS | LETTER | NUMBER) == 0 && f2 & DEFINED != 0 {
                pos += 1;
                f2 = s.f(pos);
            }
            e.add(pos);
            continue;
        }
        let mut n_ws = 0;
        while s.f(pos + n_ws) & WS != 0 {
            n_ws += 1;
        }
        if n_ws > 1 && s.cp(pos + n_ws) != OOR {
            pos += n_ws - 1;
            e.add(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            e.add(pos);
            continue;
        }
        pos += 1;
        e.add(pos);
    }
}

/// `unicode_regex_split_custom_llama3` (`max_digits` 3) and `unicode_regex_split_custom_qwen2`
/// (`max_digits` 1): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}|
/// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
fn llama3_like(s: &Seg<'_>, max_digits: usize, out: &mut Vec<usize>) {
    let cr = u32::from(b'\r');
    let lf = u32::from(b'\n');
    let mut e = Ends { prev: s.ini, out };
    let mut pos = s.ini;
    while pos < s.end {
        let cpt = s.cp(pos);
        let fl = s.f(pos);
        if cpt == u32::from(b'\'') && pos + 1 < s.end {
            let c2 = if pos + 2 < s.end {
                s.lower_ascii(pos + 2)
            } else {
                OOR
            };
            match is_contraction(s.lower_ascii(pos + 1), c2) {
                Some(2) => {
                    pos += 2;
                    e.add(pos);
                    continue;
                }
                Some(_) if pos + 2 < s.end => {
                    pos += 3;
                    e.add(pos);
                    continue;
                }
                _ => {}
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cpt == cr || cpt == lf || fl & NUMBER != 0)
            && (fl & LETTER != 0 || s.f(pos + 1) & LETTER != 0)
        {
            pos += 1;
            while s.f(pos) & LETTER != 0 {
                pos += 1;
            }
            e.add(pos);
            continue;
        }
        // \p{N}{1,k}
        if fl & NUMBER != 0 {
            let mut ini = pos;
            while s.f(pos) & NUMBER != 0 {
                pos += 1;
                if pos - ini >= max_digits {
                    e.add(pos);
                    ini = pos;
                }
            }
            e.add(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the first flags with `flags`,
        // which is always defined here)
        let space = cpt == u32::from(b' ');
        let mut f2 = if space { s.f(pos + 1) } else { fl };
        if f2 & (WS | LETTER | NUMBER) == 0 && fl & DEFINED != 0 {
            pos += usize::from(space);
            while f2 & (WS | LETTER | NUMBER) == 0 && f2 & DEFINED != 0 {
                pos += 1;
                f2 = s.f(pos);
            }
            let mut c2 = s.cp(pos);
            while c2 == cr || c2 == lf {
                pos += 1;
                c2 = s.cp(pos);
            }
            e.add(pos);
            continue;
        }
        let mut n_ws = 0;
        let mut last_crlf_end = 0;
        while s.f(pos + n_ws) & WS != 0 {
            let c2 = s.cp(pos + n_ws);
            if c2 == cr || c2 == lf {
                last_crlf_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if last_crlf_end > 0 {
            pos = last_crlf_end;
            e.add(pos);
            continue;
        }
        // \s+(?!\S)
        if n_ws > 1 && s.cp(pos + n_ws) != OOR {
            pos += n_ws - 1;
            e.add(pos);
            continue;
        }
        // \s+
        if n_ws > 0 {
            pos += n_ws;
            e.add(pos);
            continue;
        }
        pos += 1;
        e.add(pos);
    }
}

/// Splits `text` into words (byte ranges into `text`) as llama.cpp's pre-tokenizer `pre`
/// does. The ranges tile `text` exactly.
pub(super) fn split(pre: PreTokenizer, text: &str) -> Vec<Range<usize>> {
    let mut cps = Vec::with_capacity(text.len());
    let mut offs = Vec::with_capacity(text.len() + 1);
    for (i, ch) in text.char_indices() {
        cps.push(u32::from(ch));
        offs.push(i);
    }
    offs.push(text.len());
    let fl: Vec<u8> = cps.iter().map(|&c| flags(c)).collect();
    let n = cps.len();

    // first stage: the segments (end indices) the main splitter runs inside
    let mut segs = Vec::new();
    match pre {
        PreTokenizer::Qwen2 | PreTokenizer::Llama3 => segs.push(n),
        PreTokenizer::Smollm => {
            // `\p{N}` on the collapsed text: each number code point alone, runs between kept
            for (i, &f) in fl.iter().enumerate() {
                if f & NUMBER != 0 {
                    if segs.last().copied().unwrap_or(0) < i {
                        segs.push(i);
                    }
                    segs.push(i + 1);
                }
            }
            if segs.last().copied().unwrap_or(0) < n {
                segs.push(n);
            }
        }
    }

    let mut ends = Vec::with_capacity(n / 3 + 1);
    let mut ini = 0;
    for end in segs {
        let seg = Seg {
            cps: &cps,
            fl: &fl,
            ini,
            end,
        };
        match pre {
            PreTokenizer::Qwen2 => llama3_like(&seg, 1, &mut ends),
            PreTokenizer::Llama3 => llama3_like(&seg, 3, &mut ends),
            PreTokenizer::Smollm => gpt2(&seg, &mut ends),
        }
        ini = end;
    }

    let mut words = Vec::with_capacity(ends.len());
    let mut start = 0;
    for end in ends {
        let (a, b) = (
            offs.get(start).copied().unwrap_or(text.len()),
            offs.get(end).copied().unwrap_or(text.len()),
        );
        words.push(a..b);
        start = end;
    }
    words
}
