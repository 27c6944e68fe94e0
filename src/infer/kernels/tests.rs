//! Every kernel path against the scalar statement of the contract, bit for bit, on random
//! blocks of each dtype. The oracle is independent of the SIMD code: weights decoded by
//! `quant::dequantize` (the codec, itself tested against ggml), then [`reference::dot_f32`].

use super::pool::Pool;
use super::reference;
use super::*;
use crate::dtype::GgmlType;
use crate::quant::dequantize;
use crate::quant::float::{f16_to_f32, f32_to_f16};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Offsets of the fp16 scales in a block, per dtype (random bytes there would often be NaN or
/// huge, making every result NaN/inf and the comparison toothless).
fn f16_fields(t: GgmlType) -> &'static [usize] {
    match t {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        _ => &[],
    }
}

/// Random row bytes: random codes, scales finite (mostly normal, some zero / subnormal).
fn random_rows(t: GgmlType, n_in: usize, n_out: usize, rng: &mut Rng) -> Vec<u8> {
    let n = t.row_bytes(n_in as u64).unwrap() as usize * n_out;
    let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    match t {
        GgmlType::F32 => {
            for c in b.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.f32().to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&crate::quant::float::f32_to_bf16(rng.f32() * 4.0).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in b.chunks_exact_mut(2) {
                c.copy_from_slice(&f32_to_f16(rng.f32() * 4.0).to_le_bytes());
            }
        }
        _ => {
            for (i, block) in b.chunks_exact_mut(t.type_size()).enumerate() {
                for &off in f16_fields(t) {
                    let v = match i % 16 {
                        0 => 0.0,
                        1 => 3.0e-6, // subnormal fp16
                        _ => rng.f32() * 0.05,
                    };
                    block[off..off + 2].copy_from_slice(&f32_to_f16(v).to_le_bytes());
                }
            }
        }
    }
    b
}

/// The types the real models use, every type with a SIMD decoder, and some that take the
/// generic row-decode path.
const TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

fn n_in_for(t: GgmlType) -> usize {
    match t.block_size() {
        1 => 256 + 37, // not a multiple of 16: exercises the tail
        bs => bs * (512 / bs).max(2),
    }
}

fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i}: got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

#[test]
fn decode_row_equals_dequantize_on_every_level() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for &t in TYPES {
        let n_in = n_in_for(t);
        let n_out = 5;
        let bytes = random_rows(t, n_in, n_out, &mut rng);
        let m = Matrix::new("w", t, n_in, n_out, &bytes).unwrap();
        for level in SimdLevel::all_available() {
            for r in 0..n_out {
                let mut want = vec![0f32; n_in];
                dequantize(t, m.row(r).unwrap(), &mut want).unwrap();
                let mut got = vec![f32::NAN; n_in];
                m.decode_row(level, r, &mut got).unwrap();
                assert_same_bits(&got, &want, &format!("{t} {level} row {r}"));
            }
        }
    }
}

/// The oracle: dequantize, then the scalar contract.
fn oracle(m: &Matrix<'_>, x: &[f32], r: usize) -> f32 {
    let mut w = vec![0f32; m.n_in()];
    dequantize(m.dtype(), m.row(r).unwrap(), &mut w).unwrap();
    reference::dot_f32(&w, x)
}

#[test]
fn matvec_equals_scalar_contract_on_every_level() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &t in TYPES {
        let n_in = n_in_for(t);
        let n_out = 11; // 2 groups of 4 and a remainder of 3
        let bytes = random_rows(t, n_in, n_out, &mut rng);
        let m = Matrix::new("w", t, n_in, n_out, &bytes).unwrap();
        let x: Vec<f32> = (0..n_in).map(|_| rng.f32()).collect();
        let want: Vec<f32> = (0..n_out).map(|r| oracle(&m, &x, r)).collect();
        assert!(want.iter().all(|v| v.is_finite()), "{t}: oracle not finite");
        for level in SimdLevel::all_available() {
            let mut got = vec![f32::NAN; n_out];
            m.matvec_rows(level, &x, 0, &mut got);
            assert_same_bits(&got, &want, &format!("{t} {level} matvec"));
        }
    }
}

#[test]
fn matmul_equals_scalar_contract_for_any_tokens_and_threads() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let pools: Vec<Pool> = [1, 2, 3].into_iter().map(Pool::new).collect();
    for &t in TYPES {
        let n_in = n_in_for(t);
        let n_out = 9;
        let bytes = random_rows(t, n_in, n_out, &mut rng);
        let m = Matrix::new("w", t, n_in, n_out, &bytes).unwrap();
        for n_tok in [1usize, 2, 7, 13] {
            let x: Vec<f32> = (0..n_tok * n_in).map(|_| rng.f32()).collect();
            let mut want = vec![0f32; n_tok * n_out];
            for tok in 0..n_tok {
                for r in 0..n_out {
                    want[tok * n_out + r] = oracle(&m, &x[tok * n_in..(tok + 1) * n_in], r);
                }
            }
            for level in SimdLevel::all_available() {
                for pool in &pools {
                    let mut got = vec![f32::NAN; n_tok * n_out];
                    m.matmul(pool, level, &x, n_tok, &mut got);
                    let what = format!("{t} {level} tokens {n_tok} threads {}", pool.n_threads());
                    assert_same_bits(&got, &want, &what);
                }
            }
        }
    }
}

/// The F32 export of a quantized matrix gives the same products, bit for bit.
#[test]
fn quantized_equals_its_f32_export() {
    let mut rng = Rng(42);
    for &t in TYPES {
        let n_in = n_in_for(t);
        let n_out = 6;
        let bytes = random_rows(t, n_in, n_out, &mut rng);
        let q = Matrix::new("w", t, n_in, n_out, &bytes).unwrap();
        let mut f = vec![0f32; n_in * n_out];
        dequantize(t, &bytes, &mut f).unwrap();
        let fbytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = Matrix::new("w32", GgmlType::F32, n_in, n_out, &fbytes).unwrap();
        let x: Vec<f32> = (0..n_in).map(|_| rng.f32()).collect();
        for level in SimdLevel::all_available() {
            let (mut a, mut b) = (vec![0f32; n_out], vec![0f32; n_out]);
            q.matvec_rows(level, &x, 0, &mut a);
            e.matvec_rows(level, &x, 0, &mut b);
            assert_same_bits(&a, &b, &format!("{t} vs its F32 export, {level}"));
        }
    }
}

/// F16C's conversion equals the codec's for all 65,536 fp16 patterns (NaNs quieted alike).
#[test]
fn f16_decode_equals_codec_for_every_pattern() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let m = Matrix::new("all-f16", GgmlType::F16, 256, 256, &bytes).unwrap();
    for level in SimdLevel::all_available() {
        let mut row = vec![0f32; 256];
        for r in 0..256 {
            m.decode_row(level, r, &mut row).unwrap();
            for (i, v) in row.iter().enumerate() {
                let h = (r * 256 + i) as u16;
                assert_eq!(
                    v.to_bits(),
                    f16_to_f32(h).to_bits(),
                    "{level} fp16 {h:#06x}"
                );
            }
        }
    }
}

#[test]
fn dot_f32_levels_agree_with_reference() {
    let mut rng = Rng(7);
    for n in [0usize, 1, 15, 16, 17, 64, 100, 896] {
        let a: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let want = reference::dot_f32(&a, &b);
        for level in SimdLevel::all_available() {
            assert_eq!(
                dot_f32(level, &a, &b).to_bits(),
                want.to_bits(),
                "n {n} {level}"
            );
        }
        let mut y0: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let y1 = y0.clone();
        axpy(SimdLevel::Scalar, 0.3, &a, &mut y0);
        for level in SimdLevel::all_available() {
            let mut y = y1.clone();
            axpy(level, 0.3, &a, &mut y);
            assert_same_bits(&y, &y0, &format!("axpy n {n} {level}"));
        }
    }
}

#[test]
fn dot_rows_levels_agree_with_reference() {
    let mut rng = Rng(8);
    for (n, ld, rows) in [
        (64usize, 128usize, 9usize),
        (17, 20, 5),
        (5, 5, 3),
        (128, 128, 1),
    ] {
        let a: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..(rows - 1) * ld + n).map(|_| rng.f32()).collect();
        let want: Vec<f32> = (0..rows)
            .map(|j| reference::dot_f32(&a, &b[j * ld..j * ld + n]))
            .collect();
        for level in SimdLevel::all_available() {
            let mut got = vec![f32::NAN; rows];
            dot_rows(level, &a, &b, ld, &mut got);
            assert_same_bits(&got, &want, &format!("dot_rows n {n} {level}"));
        }
    }
}

/// The lane order is the contract's, not some other summation: a case where it matters.
#[test]
fn lane_order_is_the_contracts() {
    // Elements 0 and 16 share lane 0, element 1 has lane 1: the lanes give 1; a sequential
    // sum would give (1e8 + 1) − 1e8 = 0 in f32.
    let mut w = vec![0f32; 32];
    let x = vec![1f32; 32];
    w[0] = 1e8;
    w[1] = 1.0;
    w[16] = -1e8;
    // lane 0: 1e8 − 1e8 = 0; lane 1: 1 → total 1.
    assert_eq!(reference::dot_f32(&w, &x), 1.0);
}

#[test]
fn unsupported_dtype_is_refused_by_name() {
    let bytes = vec![0u8; 64];
    let e = Matrix::new("blk.0.attn_q.weight", GgmlType::I32, 4, 4, &bytes).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("blk.0.attn_q.weight") && msg.contains("I32"),
        "{msg}"
    );
}
