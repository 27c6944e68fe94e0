//! The scalar statement of the kernel contract: the oracle every SIMD path is tested against,
//! and the portable fallback. Weights are decoded with [`crate::quant::dequantize`] (the
//! bit-exact codec), then accumulated into [`LANES`] lanes with `f32::mul_add` and summed by
//! the fixed tree of [`hsum`].

use super::LANES;

/// `acc[(k0 + j) % 16] = fma(w[j], x[j], acc[..])` for j in order, where `k0` (the position of
/// `w[0]` in the row) is a multiple of 16.
#[inline]
pub fn fma_lanes(acc: &mut [f32; LANES], w: &[f32], x: &[f32]) {
    for (i, (&w, &x)) in w.iter().zip(x).enumerate() {
        let l = i % LANES;
        acc[l] = w.mul_add(x, acc[l]);
    }
}

/// The contract's horizontal sum: halves folded 16 → 8 → 4 → 2 → 1.
#[inline]
pub fn hsum(mut a: [f32; LANES]) -> f32 {
    for i in 0..8 {
        a[i] += a[i + 8];
    }
    for i in 0..4 {
        a[i] += a[i + 4];
    }
    for i in 0..2 {
        a[i] += a[i + 2];
    }
    a[0] + a[1]
}

/// The contract's dot product of f32 vectors (`a.len() == b.len()`).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    fma_lanes(&mut acc, a, b);
    hsum(acc)
}

/// Lanes of the dot product of an already-decoded f32 row with `x`, continuing `acc`.
pub fn lanes_f32(acc: &mut [f32; LANES], w: &[f32], x: &[f32]) {
    fma_lanes(acc, w, x);
}
