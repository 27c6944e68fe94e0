//! The synthetic model's F32 values, deterministic from the seed and the tensor name.
//!
//! Each row of each tensor has its own [`SplitMix64`] stream, started from a hash of the seed,
//! the tensor name and the row index, so values do not depend on generation order or thread
//! count, and only exact arithmetic is used (see `rng.rs`): the same options give the same bits
//! on every platform.
//!
//! Scales (chosen so a random transformer gives varied, finite logits): projections
//! N(0, (0.5/√in)²) with `in` = `ne0` (≈ 0.02 for in = 384..896), so each block moves the
//! residual stream by about as much as the embedding; embeddings and the output matrix
//! N(0, 0.08²); norms 1 + N(0, 0.05²); biases N(0, 0.02²).

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

/// The tensor's values, `ne[0]` contiguous (row-major over the remaining dims).
pub fn values(seed: u64, name: &str, role: TensorRole, ne: &[u64]) -> Vec<f32> {
    let ne0 = ne.first().copied().unwrap_or(1).max(1);
    let n: u64 = ne.iter().product();
    let (mean, std) = distribution(role, ne0);
    let tensor_seed = SplitMix64::new(seed ^ hash_str(name)).next_u64();
    let mut out = vec![0f32; usize::try_from(n).unwrap_or(0)];
    out.par_chunks_mut(usize::try_from(ne0).unwrap_or(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let mut rng = SplitMix64::new(SplitMix64::new(tensor_seed ^ row as u64).next_u64());
            for v in dst {
                *v = (mean + std * rng.normal()) as f32;
            }
        });
    out
}
