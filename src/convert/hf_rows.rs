//! The llama-family Q/K row permutation between Hugging Face and GGUF (DESIGN §2.3, LAYOUT-002).
//!
//! llama.cpp's `convert_hf_to_gguf.py` (`LlamaModel.permute`, applied in `modify_tensors` to
//! `q_proj.{weight,bias}` with `n_head` and to `k_proj.{weight,bias}` with `n_head_kv`) views the
//! `R` rows of an HF projection as `[heads, 2, R / heads / 2]`, swaps the last two axes and
//! flattens again. In words, with `hd = R / heads` rows per head and `half = hd / 2`:
//!
//! > the GGUF row `h·hd + 2·i + s` is the HF row `h·hd + s·half + i`
//! > (`h < heads`, `i < half`, `s ∈ {0, 1}`),
//!
//! i.e. HF keeps the two rotary halves of a head apart (rotate-half RoPE) and GGUF interleaves
//! them (adjacent-pair RoPE). HF export applies the inverse (un-permutes), HF import applies the
//! permutation itself. Only whole rows move, so this is lossless for every dtype (blocks never
//! cross rows); a 1-d bias is a column of one-element rows.
//!
//! Invariants: `unpermute_source(permute_source(x)) ` composes to the identity; both are
//! bijections on `0..rows`; a row count that is not a multiple of `2 · heads` is an error.

use crate::formats::names::MappedArch;

/// A permutation that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot permute {rows} rows by {heads} heads: rows must be a positive multiple of 2 × heads"
)]
pub struct RowsError {
    /// Rows of the tensor.
    pub rows: u64,
    /// Heads asked for.
    pub heads: u64,
}

fn check(rows: u64, heads: u64) -> Result<(usize, usize, usize), RowsError> {
    let err = RowsError { rows, heads };
    if heads == 0 || rows == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(err);
    }
    let r = usize::try_from(rows).map_err(|_| err.clone())?;
    let h = usize::try_from(heads).map_err(|_| err.clone())?;
    let hd = r / h;
    Ok((r, h, hd))
}

/// For each GGUF row (output index), the HF row it is taken from: what HF → GGUF import applies
/// (llama.cpp's `permute`).
pub fn permute_source(rows: u64, heads: u64) -> Result<Vec<usize>, RowsError> {
    let (r, h, hd) = check(rows, heads)?;
    let half = hd / 2;
    let mut out = vec![0usize; r];
    for head in 0..h {
        for i in 0..half {
            for s in 0..2 {
                out[head * hd + 2 * i + s] = head * hd + s * half + i;
            }
        }
    }
    Ok(out)
}

/// For each HF row (output index), the GGUF row it is taken from: what GGUF → HF export applies
/// (the inverse of llama.cpp's `permute`).
pub fn unpermute_source(rows: u64, heads: u64) -> Result<Vec<usize>, RowsError> {
    let (r, h, hd) = check(rows, heads)?;
    let half = hd / 2;
    let mut out = vec![0usize; r];
    for head in 0..h {
        for i in 0..half {
            for s in 0..2 {
                out[head * hd + s * half + i] = head * hd + 2 * i + s;
            }
        }
    }
    Ok(out)
}

/// The head count by which a tensor's rows are permuted between HF and GGUF, or `None` when it
/// is not permuted: llama `blk.N.attn_q.{weight,bias}` use `n_head`, `blk.N.attn_k.*` use
/// `n_head_kv`; qwen2 permutes nothing.
pub fn qk_heads(arch: MappedArch, gguf_name: &str, n_head: u64, n_head_kv: u64) -> Option<u64> {
    match arch {
        MappedArch::Qwen2 => None,
        MappedArch::Llama => {
            if !gguf_name.starts_with("blk.") {
                return None;
            }
            let is = |part: &str| {
                gguf_name.ends_with(&format!(".{part}.weight"))
                    || gguf_name.ends_with(&format!(".{part}.bias"))
            };
            if is("attn_q") {
                Some(n_head)
            } else if is("attn_k") {
                Some(n_head_kv)
            } else {
                None
            }
        }
    }
}

/// Rows of a tensor with GGUF dims `ne` as the permutation sees them: `ne[1] · ne[2] · …` for a
/// matrix, `ne[0]` (one-element rows) for a vector.
pub fn n_rows(ne: &[u64]) -> u64 {
    let significant: Vec<u64> = {
        let mut v = ne.to_vec();
        while v.len() > 1 && v.last() == Some(&1) {
            v.pop();
        }
        v
    };
    match significant.as_slice() {
        [] => 1,
        [n] => *n,
        [_, rest @ ..] => rest.iter().product(),
    }
}

/// Writes `bytes` (rows of `row_bytes` each) to `w` with output row `k` taken from input row
/// `source[k]`.
pub fn write_rows(
    bytes: &[u8],
    source: &[usize],
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let rows = source.len();
    if rows == 0 || !bytes.len().is_multiple_of(rows) {
        return Err(std::io::Error::other(format!(
            "{} bytes do not split into {rows} rows",
            bytes.len()
        )));
    }
    let row_bytes = bytes.len() / rows;
    for &s in source {
        let row = bytes
            .get(s * row_bytes..(s + 1) * row_bytes)
            .ok_or_else(|| std::io::Error::other(format!("row {s} out of range")))?;
        w.write_all(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's `permute` restated literally on row indices: reshape to
    /// `[heads, 2, rows/heads/2]`, swap axes 1 and 2, flatten.
    fn numpy_permute(rows: usize, heads: usize) -> Vec<usize> {
        let half = rows / heads / 2;
        let mut out = Vec::new();
        for h in 0..heads {
            for i in 0..half {
                for s in 0..2 {
                    // element [h][i][s] of the swapped view is element [h][s][i] of the original
                    out.push(h * 2 * half + s * half + i);
                }
            }
        }
        out
    }

    #[test]
    fn permute_matches_the_reshape_swapaxes_definition() {
        for (rows, heads) in [(8, 1), (8, 2), (576, 9), (192, 3), (12, 3)] {
            let got = permute_source(rows, heads).unwrap_or_default();
            assert_eq!(
                got,
                numpy_permute(rows as usize, heads as usize),
                "{rows}/{heads}"
            );
        }
    }

    #[test]
    fn unpermute_inverts_permute() {
        let p = permute_source(576, 9).unwrap_or_default();
        let u = unpermute_source(576, 9).unwrap_or_default();
        assert_eq!(p.len(), 576);
        for (k, &src) in p.iter().enumerate() {
            assert_eq!(u[src], k);
        }
        // hand example: one head of 4 rows: HF [a0 a1 b0 b1] -> GGUF [a0 b0 a1 b1]
        assert_eq!(permute_source(4, 1).unwrap_or_default(), vec![0, 2, 1, 3]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(permute_source(6, 2).is_err());
        assert!(permute_source(8, 0).is_err());
        assert!(unpermute_source(0, 1).is_err());
    }

    #[test]
    fn only_llama_q_and_k_are_permuted() {
        let l = MappedArch::Llama;
        assert_eq!(qk_heads(l, "blk.0.attn_q.weight", 9, 3), Some(9));
        assert_eq!(qk_heads(l, "blk.12.attn_k.weight", 9, 3), Some(3));
        assert_eq!(qk_heads(l, "blk.12.attn_k.bias", 9, 3), Some(3));
        assert_eq!(qk_heads(l, "blk.0.attn_v.weight", 9, 3), None);
        assert_eq!(qk_heads(l, "blk.0.attn_q_norm.weight", 9, 3), None);
        assert_eq!(
            qk_heads(MappedArch::Qwen2, "blk.0.attn_q.weight", 9, 3),
            None
        );
        assert_eq!(n_rows(&[576, 192]), 192);
        assert_eq!(n_rows(&[192]), 192);
        assert_eq!(n_rows(&[192, 1]), 192);
    }
}
