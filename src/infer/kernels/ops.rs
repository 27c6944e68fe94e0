//! Element-wise ops of the forward pass, written as ggml's CPU backend computes them
//! (ggml-cpu `ops.cpp` / `vec.h` in llama-cpp-python 0.3.36's vendored ggml), restated in
//! scalar Rust. They are scalar on every SIMD level, so their results never depend on it.

/// RMSNorm then the weight (ggml `rms_norm_f32` + `mul`): the sum of squares is accumulated
/// in f64 from f32 squares, `mean = (sum / n) as f32`, `scale = 1 / sqrt(mean + eps)`, and
/// `out = (x · scale) · w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mut sum = 0f64;
    for &v in x {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len().max(1) as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * w;
    }
}

/// The cos/sin of one position for RoPE over `n_dims` dimensions (ggml `rope_cache_init` with
/// no scaling): `theta_0 = pos`, `theta_{i+1} = theta_i · base^(−2/n_dims)` in f32, the factor
/// computed with `powf` once; `cos[i] = cos(theta_i)`, `sin[i] = sin(theta_i)`.
pub fn rope_cache(pos: usize, n_dims: usize, base: f32, cos: &mut [f32], sin: &mut [f32]) {
    let theta_scale = base.powf(-2.0f32 / n_dims as f32);
    let mut theta = pos as f32;
    for (c, s) in cos.iter_mut().zip(sin.iter_mut()).take(n_dims / 2) {
        *c = theta.cos();
        *s = theta.sin();
        theta *= theta_scale;
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)` (llama.cpp `LLAMA_ROPE_TYPE_NORM`, llama).
    Norm,
    /// Halves `(i, i + n_dims/2)` (llama.cpp `LLAMA_ROPE_TYPE_NEOX`, qwen2).
    Neox,
}

/// Rotates the first `n_dims` values of one head `v` in place with a [`rope_cache`]:
/// `(x0, x1) → (x0·c − x1·s, x0·s + x1·c)` (ggml `rotate_pairs`).
pub fn rope(style: RopeStyle, v: &mut [f32], n_dims: usize, cos: &[f32], sin: &[f32]) {
    let half = n_dims / 2;
    for i in 0..half.min(cos.len()).min(sin.len()) {
        let (a, b) = match style {
            RopeStyle::Norm => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + half),
        };
        if b >= v.len() {
            break;
        }
        let (c, s) = (cos[i], sin[i]);
        let (x0, x1) = (v[a], v[b]);
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
    }
}

/// Softmax in place (ggml `soft_max_f32` without mask): `e = exp(x − max)`, the sum taken in
/// f64, then every value multiplied by `(1 / sum) as f32`.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU (ggml `silu_f32`): `x / (1 + exp(−x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU in place: `gate[i] = silu(gate[i]) · up[i]`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RoPE against the direct formula theta_i = pos · base^(−2i/d), computed in f64: the
    /// iterated f32 product drifts by a few ulps of theta, so compare within 2e-3 at pos 4000.
    #[test]
    fn rope_cache_matches_direct_formula() {
        let (d, base) = (64usize, 1_000_000f32);
        for pos in [0usize, 1, 7, 100, 4000] {
            let mut c = vec![0f32; d / 2];
            let mut s = vec![0f32; d / 2];
            rope_cache(pos, d, base, &mut c, &mut s);
            for i in 0..d / 2 {
                let theta = pos as f64 * f64::from(base).powf(-2.0 * i as f64 / d as f64);
                assert!(
                    (f64::from(c[i]) - theta.cos()).abs() < 2e-3,
                    "pos {pos} i {i}"
                );
                assert!(
                    (f64::from(s[i]) - theta.sin()).abs() < 2e-3,
                    "pos {pos} i {i}"
                );
            }
        }
    }

    #[test]
    fn rope_pairs_by_style() {
        let cos = [0.0f32, 1.0];
        let sin = [1.0f32, 0.0];
        // Neox: pairs (0,2), (1,3); pair 0 rotates by 90°, pair 1 not at all.
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        rope(RopeStyle::Neox, &mut v, 4, &cos, &sin);
        assert_eq!(v, [-3.0, 2.0, 1.0, 4.0]);
        // Norm: pairs (0,1), (2,3).
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        rope(RopeStyle::Norm, &mut v, 4, &cos, &sin);
        assert_eq!(v, [-2.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0f32, 2.0, 3.0, -1000.0];
        softmax(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[3] == 0.0);
    }

    #[test]
    fn rms_norm_known_value() {
        let x = [3.0f32, 4.0];
        let mut o = [0f32; 2];
        rms_norm(&x, &[1.0, 2.0], 0.0, &mut o);
        // mean square 12.5, scale 1/sqrt(12.5)
        let s = 1.0f32 / 12.5f32.sqrt();
        assert_eq!(o, [3.0 * s, (4.0 * s) * 2.0]);
    }
}
