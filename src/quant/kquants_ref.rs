//! K-quant reference quantizers (Q2_K … Q6_K, Q8_K), bit-exact with ggml
//! `quantize_row_q*_K_ref` (`src/ggml-quants.c` @ d99724f2) built for baseline x86-64 with
//! `-O2 -ffp-contract=off`, i.e. what `llama-quantize` emits without `--imatrix`. Algorithms:
//! reference doc §3.4; the scale searches are in `kquants_search`.
//!
//! Invariants:
//! - Callers pass whole super-blocks: `src.len() == n × 256` and `dst.len() == n × type_size`
//!   ([`super::quantize`] checks this).
//! - Every byte of every output block is written. Where ggml leaves bytes unwritten (only
//!   Q8_K's `bsums` of an all-zero block) we write zeros; an oracle must compare only the bytes
//!   ggml defines there.
//! - Requantization uses the fp16-rounded super-scales and divides (`x / d`), as ggml does;
//!   integer → narrower-integer stores wrap exactly like the C conversions (`as u8` / `as i8`).
//! - f32 expressions keep ggml's order and association; no `mul_add`, sequential sums.

use super::float::{f16_to_f32, f32_to_f16};
use super::kquants::get_scale_min_k4;
use super::kquants_search::{
    clamp_int, make_q3_quants_rmse, make_qkx2_quants, make_qx_quants_rmse1, nearest_int, Qkx2,
    GROUP_MAX_EPS,
};

const QK_K: usize = super::kquants::QK_K;

/// Pairs each 256 inputs with its whole `BYTES`-byte output block, as fixed-size arrays.
#[inline(always)]
fn blocks<'a, const BYTES: usize>(
    src: &'a [f32],
    dst: &'a mut [u8],
) -> impl Iterator<Item = (&'a [f32; QK_K], &'a mut [u8; BYTES])> {
    src.chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BYTES))
        .filter_map(|(x, y)| Some((x.first_chunk::<QK_K>()?, y.first_chunk_mut::<BYTES>()?)))
}

/// The `N`-element sub-blocks of a super-block, as arrays (N divides 256).
fn groups<const N: usize>(x: &[f32; QK_K]) -> impl Iterator<Item = &[f32; N]> {
    x.chunks_exact(N).filter_map(|c| c.first_chunk::<N>())
}

/// The `N`-code sub-blocks of a super-block's codes, as arrays (N divides 256).
fn groups_mut<const N: usize>(l: &mut [u8; QK_K]) -> impl Iterator<Item = &mut [u8; N]> {
    l.chunks_exact_mut(N)
        .filter_map(|c| c.first_chunk_mut::<N>())
}

#[inline(always)]
fn put16(y: &mut [u8], off: usize, v: u16) {
    y[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Packs 256 two-bit codes as Q2_K/Q3_K do: byte 32h + l holds elements 128h + l + 32s at bits 2s.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for (h, out) in qs.chunks_exact_mut(32).take(2).enumerate() {
        for (i, o) in out.iter_mut().enumerate() {
            let j = 128 * h + i;
            *o = l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6);
        }
    }
}

/// Q2_K (ggml `quantize_row_q2_K_ref`): per 16, `make_qkx2_quants(nmax 3, |x| weights,
/// −0.5, 0.1, 15, mad)`; 4-bit scales and mins against fp16 super-scales; requantize.
pub fn quantize_q2_k(src: &[f32], dst: &mut [u8]) {
    const P: Qkx2 = Qkx2 {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (x, y) in blocks::<84>(src, dst) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for (j, (xs, ls)) in groups::<16>(x).zip(groups_mut::<16>(&mut l)).enumerate() {
            let mut w = [0f32; 16];
            w.iter_mut().zip(xs).for_each(|(w, &xi)| *w = xi.abs());
            (scales[j], mins[j]) = make_qkx2_quants(P, xs, &w, ls);
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let (sc, rest) = y.split_at_mut(16);
        if max_scale > 0.0 {
            let iscale = 15.0f32 / max_scale;
            for (s, &v) in sc.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * v) as u8;
            }
            put16(rest, 64, f32_to_f16(max_scale / 15.0));
        } else {
            sc.iter_mut().for_each(|s| *s = 0);
            put16(rest, 64, f32_to_f16(0.0));
        }
        if max_min > 0.0 {
            let iscale = 15.0f32 / max_min;
            for (s, &v) in sc.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * v) as u8) << 4;
            }
            put16(rest, 66, f32_to_f16(max_min / 15.0));
        } else {
            put16(rest, 66, f32_to_f16(0.0));
        }
        let dd = f16_to_f32(u16::from_le_bytes([rest[64], rest[65]]));
        let dm = f16_to_f32(u16::from_le_bytes([rest[66], rest[67]]));
        for (j, &s) in sc.iter().enumerate() {
            let d = dd * f32::from(s & 0xF);
            if d == 0.0 {
                continue;
            }
            let m = dm * f32::from(s >> 4);
            for (lo, &xi) in l[16 * j..16 * j + 16]
                .iter_mut()
                .zip(&x[16 * j..16 * j + 16])
            {
                *lo = clamp_int(nearest_int((xi + m) / d), 0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut rest[..64]);
    }
}

/// Q3_K (ggml `quantize_row_q3_K_ref`): per 16, `make_q3_quants(nmax 4, rmse)`; signed 6-bit
/// scales against d = H(1/iscale), iscale = −32/max_scale; requantize to −4..3 with the high
/// bit in `hmask`.
pub fn quantize_q3_k(src: &[f32], dst: &mut [u8]) {
    for (x, y) in blocks::<110>(src, dst) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0f32;
        let mut amax = 0f32;
        for (j, (xs, ls)) in groups::<16>(x).zip(groups_mut::<16>(&mut l)).enumerate() {
            scales[j] = make_q3_quants_rmse(4, xs, ls);
            let a = scales[j].abs();
            if a > amax {
                amax = a;
                max_scale = scales[j];
            }
        }
        let mut sb = [0u8; 12];
        let d_bits = if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // C stores nearest_int into an int8_t first, then clamps.
                let q = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                let q = q as u8;
                if j < 8 {
                    sb[j] = q & 0xF;
                } else {
                    sb[j - 8] |= (q & 0xF) << 4;
                }
                sb[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
            }
            f32_to_f16(1.0 / iscale)
        } else {
            f32_to_f16(0.0)
        };
        let d_all = f16_to_f32(d_bits);
        let stored = super::kquants::unpack_scales_q3_k(&sb);
        for (j, &s) in stored.iter().enumerate() {
            let d = d_all * (i32::from(s) - 32) as f32;
            if d == 0.0 {
                continue;
            }
            for (lo, &xi) in l[16 * j..16 * j + 16]
                .iter_mut()
                .zip(&x[16 * j..16 * j + 16])
            {
                *lo = (clamp_int(nearest_int(xi / d), -4, 3) + 4) as u8;
            }
        }
        let (hmask, rest) = y.split_at_mut(32);
        hmask.iter_mut().for_each(|h| *h = 0);
        for (j, lj) in l.iter_mut().enumerate() {
            if *lj > 3 {
                hmask[j % 32] |= 1 << (j / 32);
                *lj -= 4;
            }
        }
        pack_2bit(&l, &mut rest[..64]);
        rest[64..76].copy_from_slice(&sb);
        put16(rest, 76, d_bits);
    }
}

/// Shared body of Q4_K and Q5_K (ggml `quantize_row_q4_K_ref` / `_q5_K_ref`): per 32,
/// weights av_x + |x|, `make_qkx2_quants`; 6-bit scales and mins packed as `get_scale_min_k4`
/// reads them; requantize to 0..=nmax. Writes d, dmin and scales (bytes 0..16) of `y` and
/// returns the 256 codes.
fn quantize_q45_head(p: Qkx2, x: &[f32; QK_K], y: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for (j, (xs, ls)) in groups::<32>(x).zip(groups_mut::<32>(&mut l)).enumerate() {
        let mut sum_x2 = 0f32;
        for &xi in xs {
            sum_x2 += xi * xi;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut w = [0f32; 32];
        w.iter_mut()
            .zip(xs)
            .for_each(|(w, &xi)| *w = av_x + xi.abs());
        (scales[j], mins[j]) = make_qkx2_quants(p, xs, &w, ls);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0f32 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 {
        63.0f32 / max_min
    } else {
        0.0
    };
    let mut sb = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sb[j] = ls;
            sb[j + 4] = lm;
        } else {
            sb[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sb[j - 4] |= (ls >> 4) << 6;
            sb[j] |= (lm >> 4) << 6;
        }
    }
    let d_bits = f32_to_f16(max_scale / 63.0);
    let dmin_bits = f32_to_f16(max_min / 63.0);
    put16(y, 0, d_bits);
    put16(y, 2, dmin_bits);
    y[4..16].copy_from_slice(&sb);
    let (dd, dm) = (f16_to_f32(d_bits), f16_to_f32(dmin_bits));
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &sb);
        let d = dd * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let m = dm * f32::from(m);
        for (lo, &xi) in l[32 * j..32 * j + 32]
            .iter_mut()
            .zip(&x[32 * j..32 * j + 32])
        {
            *lo = clamp_int(nearest_int((xi + m) / d), 0, p.nmax) as u8;
        }
    }
    l
}

/// Q4_K (ggml `quantize_row_q4_K_ref`): nmax 15, rmin −1, rdelta 0.1, 20 steps, squared error.
pub fn quantize_q4_k(src: &[f32], dst: &mut [u8]) {
    const P: Qkx2 = Qkx2 {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (x, y) in blocks::<144>(src, dst) {
        let l = quantize_q45_head(P, x, y);
        for (c, q) in y[16..].chunks_exact_mut(32).enumerate() {
            for (i, o) in q.iter_mut().enumerate() {
                *o = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// Q5_K (ggml `quantize_row_q5_K_ref`): nmax 31, rmin −0.5, rdelta 0.1, 15 steps, squared
/// error; bit 4 of element 64c + i (+32) goes to bit 2c (2c + 1) of `qh[i]`.
pub fn quantize_q5_k(src: &[f32], dst: &mut [u8]) {
    const P: Qkx2 = Qkx2 {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (x, y) in blocks::<176>(src, dst) {
        let l = quantize_q45_head(P, x, y);
        let (qh, ql) = y[16..].split_at_mut(32);
        qh.iter_mut().for_each(|h| *h = 0);
        for (c, q) in ql.chunks_exact_mut(32).enumerate() {
            for (i, o) in q.iter_mut().enumerate() {
                let (l1, l2) = (l[64 * c + i], l[64 * c + 32 + i]);
                qh[i] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
                *o = (l1 & 0xF) | ((l2 & 0xF) << 4);
            }
        }
    }
}

/// Q6_K (ggml `quantize_row_q6_K_ref`): per 16, `make_qx_quants(nmax 32, rmse_type 1)`; i8
/// scales against d = H(1/iscale), iscale = −128/max_scale; requantize to −32..31. A block
/// whose scales are all below [`GROUP_MAX_EPS`] is all zero bytes.
pub fn quantize_q6_k(src: &[f32], dst: &mut [u8]) {
    for (x, y) in blocks::<210>(src, dst) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for (ib, (xs, ls)) in groups::<16>(x).zip(groups_mut::<16>(&mut l)).enumerate() {
            let s = make_qx_quants_rmse1(32, xs, ls);
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            y.iter_mut().for_each(|b| *b = 0);
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        let d_bits = f32_to_f16(1.0 / iscale);
        put16(y, 208, d_bits);
        let dd = f16_to_f32(d_bits);
        for (ib, &s) in scales.iter().enumerate() {
            let sc = nearest_int(iscale * s).min(127) as i8;
            y[192 + ib] = sc as u8;
            let d = dd * f32::from(sc);
            if d == 0.0 {
                continue;
            }
            for (lo, &xi) in l[16 * ib..16 * ib + 16]
                .iter_mut()
                .zip(&x[16 * ib..16 * ib + 16])
            {
                *lo = (clamp_int(nearest_int(xi / d), -32, 31) + 32) as u8;
            }
        }
        let (ql, qh) = y[..192].split_at_mut(128);
        for h in 0..2 {
            for i in 0..32 {
                let j = 128 * h + i;
                let (q1, q2, q3, q4) = (l[j], l[j + 32], l[j + 64], l[j + 96]);
                ql[64 * h + i] = (q1 & 0xF) | ((q3 & 0xF) << 4);
                ql[64 * h + i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
                qh[32 * h + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    }
}

/// Q8_K (ggml `quantize_row_q8_K_ref`): d = 1/iscale with iscale = −127/max (f32, not fp16),
/// qs = min(127, nearest_int(iscale·x)), bsums = sums of 16. An all-zero block gets d = 0,
/// qs = 0 and (our choice, ggml leaves them unwritten) bsums = 0.
pub fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, y) in blocks::<292>(src, dst) {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &xi in x {
            if xi.abs() > amax {
                amax = xi.abs();
                max = xi;
            }
        }
        if amax == 0.0 {
            y.iter_mut().for_each(|b| *b = 0);
            continue;
        }
        let iscale = -127.0f32 / max;
        let (head, bsums) = y.split_at_mut(260);
        for (o, &xi) in head[4..].iter_mut().zip(x) {
            *o = nearest_int(iscale * xi).min(127) as i8 as u8;
        }
        for (g, out) in bsums.chunks_exact_mut(2).enumerate() {
            let sum: i32 = head[4 + 16 * g..20 + 16 * g]
                .iter()
                .map(|&q| i32::from(q as i8))
                .sum();
            out.copy_from_slice(&(sum as i16).to_le_bytes());
        }
        head[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kquants;

    type Quant = fn(&[f32], &mut [u8]);
    type Dequant = fn(&[u8], &mut [f32]);
    /// (name, block bytes, quantizer, dequantizer, bound on RMS error / RMS value for N(0, 1)).
    const TYPES: [(&str, usize, Quant, Dequant, f32); 6] = [
        ("q2_k", 84, quantize_q2_k, kquants::dequantize_q2_k, 0.45),
        ("q3_k", 110, quantize_q3_k, kquants::dequantize_q3_k, 0.25),
        ("q4_k", 144, quantize_q4_k, kquants::dequantize_q4_k, 0.12),
        ("q5_k", 176, quantize_q5_k, kquants::dequantize_q5_k, 0.06),
        ("q6_k", 210, quantize_q6_k, kquants::dequantize_q6_k, 0.03),
        ("q8_k", 292, quantize_q8_k, kquants::dequantize_q8_k, 0.01),
    ];

    /// Deterministic N(0, 1) samples (xorshift + Box–Muller), independent of the code under test.
    fn normals(n: usize) -> Vec<f32> {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u1, u2) = (uniform(), uniform());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

    #[test]
    fn all_zero_input_gives_all_zero_bytes_and_values() {
        for (name, bytes, q, dq, _) in TYPES {
            let x = vec![0f32; 2 * QK_K];
            let mut b = vec![0xA5u8; 2 * bytes];
            q(&x, &mut b);
            assert!(b.iter().all(|&v| v == 0), "{name}: {b:?}");
            let mut y = vec![1f32; 2 * QK_K];
            dq(&b, &mut y);
            assert!(y.iter().all(|&v| v == 0.0), "{name}");
        }
    }

    #[test]
    fn quantize_dequantize_error_is_bounded() {
        let x = normals(64 * QK_K);
        let rms_x = (x.iter().map(|v| f64::from(v * v)).sum::<f64>() / x.len() as f64).sqrt();
        for (name, bytes, q, dq, bound) in TYPES {
            let mut b = vec![0u8; 64 * bytes];
            q(&x, &mut b);
            let mut y = vec![0f32; x.len()];
            dq(&b, &mut y);
            let se: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            let rel = (se / x.len() as f64).sqrt() / rms_x;
            assert!(rel < f64::from(bound), "{name}: relative RMS error {rel}");
        }
    }

    #[test]
    fn q8_k_hand_example() {
        // x = −128 … 127: max = −128 (first largest |x|), iscale = −127/−128 = 127/128 exactly.
        let x: Vec<f32> = (0..QK_K).map(|i| i as f32 - 128.0).collect();
        let mut b = vec![0u8; 292];
        quantize_q8_k(&x, &mut b);
        assert_eq!(b[..4], (128.0f32 / 127.0).to_le_bytes());
        assert_eq!(b[4] as i8, -127);
        assert_eq!(b[4 + 255] as i8, 126); // 127·127/128 = 126.0078
        assert_eq!(b[4 + 128] as i8, 0);
        // 63.5 → ties to even: x = 64 gives 64·127/128 = 63.5 → 64; x = −64 → −64.
        assert_eq!(b[4 + 192] as i8, 64);
        assert_eq!(b[4 + 64] as i8, -64);
        let qs: Vec<i32> = b[4..260].iter().map(|&q| i32::from(q as i8)).collect();
        for g in 0..16 {
            let sum: i32 = qs[16 * g..16 * g + 16].iter().sum();
            assert_eq!(
                i16::from_le_bytes([b[260 + 2 * g], b[261 + 2 * g]]),
                sum as i16
            );
        }
    }

    #[test]
    fn q8_k_infinite_input_follows_ggml_arithmetic() {
        // max = +inf → iscale = −0 → every code nearest_int(−0·x) = 0 (−0·inf = NaN → 0);
        // d = 1/−0 = −inf.
        let mut x = vec![1f32; QK_K];
        x[7] = f32::INFINITY;
        let mut b = vec![0xA5u8; 292];
        quantize_q8_k(&x, &mut b);
        assert_eq!(b[..4], f32::NEG_INFINITY.to_le_bytes());
        assert!(b[4..].iter().all(|&v| v == 0));
    }

    #[test]
    fn q6_k_constant_block_hand_example() {
        // x ≡ 1: every group gets L = 0 (l = −32), scale sumlx/suml2 = −1/32, and no other
        // candidate is strictly better. iscale = −128/(−1/32) = 4096, d = H(2^-12) = 0x0C00,
        // scales = −128, requantized l = nearest_int(1/(2^-12·−128)) = −32 → code 0.
        let x = vec![1f32; QK_K];
        let mut b = vec![0xA5u8; 210];
        quantize_q6_k(&x, &mut b);
        assert!(b[..192].iter().all(|&v| v == 0));
        assert!(b[192..208].iter().all(|&v| v == 0x80));
        assert_eq!(b[208..210], 0x0C00u16.to_le_bytes());
        let mut y = vec![0f32; QK_K];
        kquants::dequantize_q6_k(&b, &mut y);
        assert!(y.iter().all(|&v| v == 1.0));
    }
}
