//! The synthetic model's F32 values, deterministic from the seed and the tensor name.
//!
//! Each row of each tensor has its own [`SplitMix64`] stream, started from a hash of the seed,
//! the tensor name and the row index, so values do not depend on generation order or thread
//! count, and only exact arithmetic is used (see `rng.rs`): the same options give the same bits
//! on every platform.
//!
//! Scales (chosen so a random transformer gives varied, finite logits; checked with llama.cpp):
//! projections N(0, 1/in) with `in` = `ne0` (≈ 0.05 for in = 384, 0.03 for 896), so each block
//! moves the residual stream far more than the embedding does; embeddings and the output matrix
//! N(0, 0.02²) — with tied embeddings a larger embedding makes greedy decoding echo the last
//! input token forever; norms 1 + N(0, 0.05²); biases N(0, 0.02²). Rows of reserved filler
//! tokens in the embedding and output matrices are 10× smaller.

use std::ops::Range;

use rayon::prelude::*;

use super::rng::{hash_str, SplitMix64};
use super::TensorRole;

/// Standard deviation of the token embedding and output matrices.
const EMBED_STD: f64 = 0.02;
/// Projections: standard deviation × √(input features).
const PROJ_GAIN: f64 = 1.0;
/// Standard deviation of norm weights around 1.
const NORM_STD: f64 = 0.05;
/// Standard deviation of biases.
const BIAS_STD: f64 = 0.02;

/// How a role's values are drawn: `mean + std · N(0, 1)`.
fn distribution(role: TensorRole, ne0: u64) -> (f64, f64) {
    match role {
        TensorRole::TokenEmbd | TensorRole::Output => (0.0, EMBED_STD),
        TensorRole::OutputNorm | TensorRole::AttnNorm | TensorRole::FfnNorm => (1.0, NORM_STD),
        TensorRole::AttnQBias | TensorRole::AttnKBias | TensorRole::AttnVBias => (0.0, BIAS_STD),
        TensorRole::AttnQ
        | TensorRole::AttnK
        | TensorRole::AttnV
        | TensorRole::AttnOutput
        | TensorRole::FfnGate
        | TensorRole::FfnUp
        | TensorRole::FfnDown => (0.0, PROJ_GAIN / (ne0.max(1) as f64).sqrt()),
    }
}

/// Scale of the rows of reserved (filler) tokens in the embedding and output matrices.
const RESERVED_ROW_SCALE: f64 = 0.1;

/// The tensor's values, `ne[0]` contiguous (row-major over the remaining dims). Rows in
/// `quiet_rows` (reserved tokens of the embedding and output matrices) are scaled by
/// [`RESERVED_ROW_SCALE`].
pub fn values(
    seed: u64,
    name: &str,
    role: TensorRole,
    ne: &[u64],
    quiet_rows: &Range<u32>,
) -> Vec<f32> {
    let ne0 = ne.first().copied().unwrap_or(1).max(1);
    let n: u64 = ne.iter().product();
    let (mean, std) = distribution(role, ne0);
    let tensor_seed = SplitMix64::new(seed ^ hash_str(name)).next_u64();
    let mut out = vec![0f32; usize::try_from(n).unwrap_or(0)];
    out.par_chunks_mut(usize::try_from(ne0).unwrap_or(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let mut rng = SplitMix64::new(SplitMix64::new(tensor_seed ^ row as u64).next_u64());
            let quiet = matches!(role, TensorRole::TokenEmbd | TensorRole::Output)
                && u32::try_from(row).is_ok_and(|r| quiet_rows.contains(&r));
            let std = if quiet { std * RESERVED_ROW_SCALE } else { std };
            for v in dst {
                *v = (mean + std * rng.normal()) as f32;
            }
        });
    out
}
