//! Scale searches shared by the K-quant reference quantizers, restated from ggml
//! `src/ggml-quants.c` @ d99724f2 (`nearest_int`, `make_qx_quants`, `make_q3_quants`,
//! `make_qkx2_quants`); reference doc §3.3.
//!
//! Invariants (what makes the results bit-exact with a `-O2 -ffp-contract=off` x86-64 build):
//! - every expression has ggml's operand order and association, `a*b*c` is `(a*b)*c`, and an
//!   `int` operand is converted to f32 at the point C converts it;
//! - no `mul_add` anywhere, and every sum accumulates sequentially in index order;
//! - comparisons are the same strict `<` / `>` as ggml, so NaN inputs take the same branches;
//! - `nearest_int` reproduces the 1.5·2^23 trick on the bits, out-of-range inputs included.
//!
//! Only the variants the reference quantizers call are provided (no importance weights).

/// Values closer to zero than this count as an all-zero group (`GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml `nearest_int`: round half to even for |f| ≤ 4 194 303, via adding 12 582 912 (1.5·2^23)
/// and reading the low 23 mantissa bits minus 2^22. Outside that range (and for NaN/Inf) it
/// returns the same wrapped value ggml's release build does.
#[inline(always)]
pub(crate) fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// `l.clamp(lo, hi)` for `l` from [`nearest_int`] (|l| ≤ 2^22, so nothing overflows), written
/// with masks so that it compiles without branches: the searches clamp often and
/// unpredictably, and a mispredicted branch per element would double their cost.
#[inline(always)]
pub(crate) fn clamp_int(l: i32, lo: i32, hi: i32) -> i32 {
    let a = l - lo;
    let l = lo + (a & !(a >> 31));
    let b = l - hi;
    hi + (b & (b >> 31))
}

/// ggml `make_qx_quants` with `rmse_type = 1` and no importance weights (weights x²): symmetric
/// quantization of `x` to `L[i] ∈ 0..2·nmax` (stored as l + nmax), trying 19 scales. Returns the
/// scale; an all-zero group (max |x| < [`GROUP_MAX_EPS`]) returns 0 with `L = 0`.
pub(crate) fn make_qx_quants_rmse1<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    l_out: &mut [u8; N],
) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let quant = |iscale: f32, xi: f32| clamp_int(nearest_int(iscale * xi), -nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, lo) in x.iter().zip(l_out.iter_mut()) {
        let l = quant(iscale, xi);
        *lo = (l + nmax) as u8;
        let w = xi * xi;
        sumlx += w * xi * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = quant(iscale, xi);
            let w = xi * xi;
            sumlx += w * xi * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (&xi, lo) in x.iter().zip(l_out.iter_mut()) {
                *lo = (quant(iscale, xi) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml `make_q3_quants` with `do_rmse = true`: symmetric start, then up to five passes of
/// coordinate descent on the weighted (x²) error. `L[i] = l + nmax`; returns the scale. An
/// all-zero group returns 0 with `L = 0` (not nmax).
pub(crate) fn make_q3_quants_rmse<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    l_out: &mut [u8; N],
) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        l_out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let mut ls = [0i32; N];
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, li) in x.iter().zip(ls.iter_mut()) {
        let l = clamp_int(nearest_int(iscale * xi), -nmax, nmax - 1);
        *li = l;
        let w = xi * xi;
        sumlx += w * xi * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (&xi, li) in x.iter().zip(ls.iter_mut()) {
            let w = xi * xi;
            let lf = *li as f32;
            let mut slx = sumlx - w * xi * lf;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lf * lf;
                let new_l = clamp_int(nearest_int(xi * sl2 / slx), -nmax, nmax - 1);
                if new_l != *li {
                    slx += w * xi * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for (lo, &li) in l_out.iter_mut().zip(ls.iter()) {
        *lo = (li + nmax) as u8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of one `make_qkx2_quants` call.
#[derive(Clone, Copy)]
pub(crate) struct Qkx2 {
    /// Largest code (3, 15 or 31).
    pub nmax: i32,
    /// First candidate offset added to nmax.
    pub rmin: f32,
    /// Step between candidates.
    pub rdelta: f32,
    /// Number of steps (nstep + 1 candidates).
    pub nstep: i32,
    /// Absolute (true) or squared (false) error.
    pub use_mad: bool,
}

/// ggml `make_qkx2_quants`: asymmetric quantization `x ≈ scale·L − the_min` with weights `w`,
/// `L[i] ∈ 0..=nmax`, searching nstep + 1 candidate scales by weighted least squares. Returns
/// `(scale, the_min)`; `the_min ≥ 0` (it is −min with min ≤ 0). `N` ≥ 1.
pub(crate) fn make_qkx2_quants<const N: usize>(
    p: Qkx2,
    x: &[f32; N],
    w: &[f32; N],
    l_out: &mut [u8; N],
) -> (f32, f32) {
    let (Some((&x0, xs)), Some((&w0, ws))) = (x.split_first(), w.split_first()) else {
        return (0.0, 0.0);
    };
    let mut min = x0;
    let mut max = x0;
    let mut sum_w = w0;
    let mut sum_x = sum_w * x0;
    for (&xi, &wi) in xs.iter().zip(ws) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += wi;
        sum_x += wi * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let nmax = p.nmax;
    let err = |diff: f32| if p.use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for ((&xi, &wi), lo) in x.iter().zip(w).zip(l_out.iter_mut()) {
        let l = clamp_int(nearest_int(iscale * (xi - min)), 0, nmax);
        *lo = l as u8;
        let diff = scale * l as f32 + min - xi;
        best_error += wi * err(diff);
    }
    let mut laux = [0u8; N];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let mut sum_l = 0f32;
        let mut sum_l2 = 0f32;
        let mut sum_xl = 0f32;
        for ((&xi, &wi), la) in x.iter().zip(w).zip(laux.iter_mut()) {
            let l = clamp_int(nearest_int(iscale * (xi - min)), 0, nmax);
            *la = l as u8;
            let lf = l as f32;
            sum_l += wi * lf;
            sum_l2 += wi * lf * lf;
            sum_xl += wi * lf * xi;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for ((&xi, &wi), &la) in x.iter().zip(w).zip(laux.iter()) {
                let diff = this_scale * f32::from(la) + this_min - xi;
                cur_error += wi * err(diff);
            }
            if cur_error < best_error {
                l_out
                    .iter_mut()
                    .zip(laux.iter())
                    .for_each(|(lo, &la)| *lo = la);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The value with the largest magnitude (first wins ties; NaN never wins) and that magnitude.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    (max, amax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even_in_range() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (0.49999997, 0),
        ];
        for (f, want) in cases {
            assert_eq!(nearest_int(f), want, "{f}");
        }
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }

    #[test]
    fn nearest_int_wraps_like_ggml_out_of_range() {
        // 2^22 + 12 582 912 = 2^24: mantissa bits 0, so (0 − 2^22).
        assert_eq!(nearest_int(4_194_304.0), -4_194_304);
        // NaN (quiet, no payload) keeps mantissa 0x400000 → 0; +Inf has mantissa 0 → −2^22.
        assert_eq!(nearest_int(f32::NAN), 0);
        assert_eq!(nearest_int(f32::INFINITY), -4_194_304);
    }

    #[test]
    fn all_zero_groups_return_zero_scale_and_codes() {
        let x = [0f32; 16];
        let mut l = [9u8; 16];
        assert_eq!(make_q3_quants_rmse(4, &x, &mut l), 0.0);
        assert_eq!(l, [0; 16]);
        let mut l = [9u8; 16];
        assert_eq!(make_qx_quants_rmse1(32, &x, &mut l), 0.0);
        assert_eq!(l, [0; 16]);
    }
}
