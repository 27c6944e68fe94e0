//! Requantization identities: which blocks `B` satisfy `quantize(dequantize(B)) == B`, and
//! where that is a theorem. Notation: `h(d)` is the fp16 scale as f32, `Q`/`D` ggml's reference
//! quantizer/dequantizer (reference §3.1–3.2).
//!
//! # Theorems (checked, never assumed elsewhere)
//! - **F32**: `Q` is a byte copy, so every bit pattern round-trips (NaN payloads included).
//! - **F16**: fp16 ⊂ f32 exactly and round-to-nearest-even of a representable value is itself,
//!   so every non-NaN pattern round-trips; a NaN comes back as `sign | 0x7E00` (ggml's f32→fp16
//!   drops NaN payloads), which the check predicts exactly.
//! - **BF16**: `D` is `bits << 16` and `Q` of a NaN is `(bits >> 16) | 0x40`, otherwise RNE on
//!   the bits (exact here), so every pattern round-trips except signalling NaNs, which come
//!   back quieted (`| 0x0040`) — predicted exactly.
//! - **Q8_0**, domain `h(d)` positive and finite (subnormal allowed), `max|qs| = 127`, no
//!   `qs = −128` (plus the all-zero block `d = +0`): `D` gives `qs·h` exactly (7-bit × 11-bit
//!   products), so `amax = 127·h` exactly, `amax/127 = h` exactly and `H(h) = d`; then
//!   `qs·h·fl(1/h) = qs·(1+δ)` with `|qs·δ| ≤ 127·2^-24 ≪ ½`, and `roundf` returns `qs`.
//! - **Q4_0** (**Q5_0**), domain `h(d)` finite and non-zero of either sign, some code equal to 0
//!   (plus the zero block `d = −0`, all codes 8 (16)): `D` gives `(q−8)·h` exactly; the value of
//!   largest magnitude is `−8h` (no code gives `+8h`), so `max = −8h` and `max/−8 = h` exactly;
//!   then `(q−8)·(1+δ) + 8.5` truncates to `q`. The zero block is `d = −0` because `0/−8 = −0`.
//!
//! Outside those domains the identity is not assumed: it fails where the fp16 scale
//! underflowed to 0 while the codes were computed from the f32 scale (tiny blocks), and it is
//! not a theorem at all for Q4_1/Q5_1 (`15·h(d) + h(m)` rounds, so the recomputed `d` drifts),
//! Q8_1 (`s` is computed from the unrounded f32 `d`), Q8_K (`d = 1/(−127/max)` is rounded twice),
//! and the K-quants (iterative scale searches). [`survey`] counts how often it fails for them.

use crate::dtype::GgmlType;
use crate::quant::{can_quantize, dequantize, quantize};

use super::gen::{fill_block, random_mode, Rng, F16_SPECIALS};
use super::regression::{hex, Regression};

/// Whether `Q∘D` is the identity (up to the predicted NaN canonicalisation) on a domain of
/// blocks of `t` — see the module doc.
pub const fn is_theorem(t: GgmlType) -> bool {
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => true,
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => true,
        GgmlType::Q4_1
        | GgmlType::Q5_1
        | GgmlType::Q8_1
        | GgmlType::Q2_K
        | GgmlType::Q3_K
        | GgmlType::Q4_K
        | GgmlType::Q5_K
        | GgmlType::Q6_K
        | GgmlType::Q8_K
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64
        | GgmlType::IQ1_M
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => false,
    }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// Codes of a Q4_0/Q5_0 block (split-halves order, qh bit 4 for Q5_0).
fn q0_codes(t: GgmlType, b: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    let (qs, qh) = if t == GgmlType::Q5_0 {
        (&b[6..22], u32::from_le_bytes([b[2], b[3], b[4], b[5]]))
    } else {
        (&b[2..18], 0)
    };
    for (i, c) in q.iter_mut().enumerate() {
        let nib = if i < 16 { qs[i] & 0xF } else { qs[i - 16] >> 4 };
        *c = nib | (((qh >> i) & 1) as u8) << 4;
    }
    q
}

/// What `Q(D(b))` must be for a block in the theorem's domain; `None` outside it.
pub fn predicted(t: GgmlType, b: &[u8]) -> Option<Vec<u8>> {
    if b.len() != t.type_size() || !is_theorem(t) {
        return None;
    }
    let finite_nonzero = |h: u16| h & 0x7FFF != 0 && h & 0x7C00 != 0x7C00;
    match t {
        GgmlType::F32 => Some(b.to_vec()),
        GgmlType::F16 => {
            let h = le16(b);
            let nan = h & 0x7C00 == 0x7C00 && h & 0x3FF != 0;
            let out = if nan { (h & 0x8000) | 0x7E00 } else { h };
            Some(out.to_le_bytes().to_vec())
        }
        GgmlType::BF16 => {
            let h = le16(b);
            let nan = h & 0x7F80 == 0x7F80 && h & 0x7F != 0;
            Some((if nan { h | 0x40 } else { h }).to_le_bytes().to_vec())
        }
        GgmlType::Q8_0 => {
            let d = le16(b);
            let qs = b[2..].iter().map(|&q| q as i8);
            let zero = d == 0 && b[2..].iter().all(|&q| q == 0);
            let max = qs.clone().map(|q| i32::from(q).abs()).max().unwrap_or(0);
            let ok = d & 0x8000 == 0
                && finite_nonzero(d)
                && max == 127
                && !qs.clone().any(|q| q == -128);
            (zero || ok).then(|| b.to_vec())
        }
        GgmlType::Q4_0 | GgmlType::Q5_0 => {
            let d = le16(b);
            let codes = q0_codes(t, b);
            let mid = if t == GgmlType::Q4_0 { 8 } else { 16 };
            let zero = d == 0x8000 && codes.iter().all(|&c| c == mid);
            let ok = finite_nonzero(d) && codes.contains(&0);
            (zero || ok).then(|| b.to_vec())
        }
        _ => None,
    }
}

/// `Q(D(b))` for one block (`None` when `t` has no quantizer or dequantizer).
pub fn requantize(t: GgmlType, b: &[u8]) -> Option<Vec<u8>> {
    let mut v = vec![0f32; t.block_size()];
    dequantize(t, b, &mut v).ok()?;
    let mut out = vec![0u8; t.type_size()];
    quantize(t, &v, &mut out).ok()?;
    Some(out)
}

/// A requant identity that failed: block `unit` of the checked bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequantMismatch {
    /// Block index.
    pub unit: usize,
    /// The block.
    pub block: Vec<u8>,
    /// What the theorem predicts.
    pub expected: Vec<u8>,
    /// What `Q(D(block))` gave.
    pub actual: Vec<u8>,
}

impl std::fmt::Display for RequantMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requantize: block {} {} → expected {}, got {}",
            self.unit,
            hex(&self.block),
            hex(&self.expected),
            hex(&self.actual)
        )
    }
}

/// Checks every in-domain block of `bytes`; returns how many were in the domain.
pub fn check(t: GgmlType, bytes: &[u8]) -> Result<usize, RequantMismatch> {
    let mut n = 0;
    for (unit, b) in bytes.chunks_exact(t.type_size()).enumerate() {
        let Some(expected) = predicted(t, b) else {
            continue;
        };
        n += 1;
        let actual = requantize(t, b).unwrap_or_default();
        if actual != expected {
            return Err(RequantMismatch {
                unit,
                block: b.to_vec(),
                expected,
                actual,
            });
        }
    }
    Ok(n)
}

/// Random input vectors: a normal-ish shape at a random scale (from 1e-9, where fp16 scales
/// underflow, to 6e4, near fp16 overflow), exact ties on a k/16 grid, fp16-exact values,
/// sparse vectors, all-zero vectors.
pub fn random_values(rng: &mut Rng, out: &mut [f32]) {
    const SCALES: [f32; 7] = [1e-9, 1e-6, 1e-3, 0.02, 1.0, 1e3, 6e4];
    match rng.below(6) {
        0 => out.fill(0.0),
        1 => {
            for v in out.iter_mut() {
                *v = (rng.below(33) as f32 - 16.0) / 16.0;
            }
        }
        2 => {
            for v in out.iter_mut() {
                *v = super::spec::f16(super::gen::Rng::next_u64(rng) as u16 & 0x7BFF);
                if rng.below(2) == 0 {
                    *v = -*v;
                }
            }
        }
        3 => {
            out.fill(0.0);
            let i = rng.below(out.len() as u64) as usize;
            if let Some(v) = out.get_mut(i) {
                *v = rng.unit_f32() * rng.pick(&SCALES);
            }
        }
        _ => {
            let s = rng.pick(&SCALES);
            for v in out.iter_mut() {
                let n = rng.unit_f32() + rng.unit_f32() + rng.unit_f32();
                *v = n * s;
            }
        }
    }
}

/// One block of a requant batch: in-domain by construction, the image of `Q` on random
/// values, or an arbitrary/structured block (mostly outside the domain).
pub fn fill_requant_block(t: GgmlType, rng: &mut Rng, out: &mut [u8]) {
    match rng.below(3) {
        0 if can_quantize(t) => {
            let mut x = vec![0f32; t.block_size()];
            random_values(rng, &mut x);
            if quantize(t, &x, out).is_err() {
                rng.fill(out);
            }
        }
        1 => construct_in_domain(t, rng, out),
        _ => fill_block(t, random_mode(rng), rng, out),
    }
}

/// A block inside the theorem's domain of `t` (random bytes for types without one).
fn construct_in_domain(t: GgmlType, rng: &mut Rng, out: &mut [u8]) {
    rng.fill(out);
    let d = loop {
        let h = if rng.below(4) == 0 {
            rng.pick(&F16_SPECIALS)
        } else {
            rng.next_u64() as u16
        };
        if h & 0x7FFF != 0 && h & 0x7C00 != 0x7C00 {
            break h;
        }
    };
    let zero = rng.below(16) == 0;
    match t {
        GgmlType::Q8_0 => {
            out[..2].copy_from_slice(&(d & 0x7FFF).to_le_bytes());
            for q in &mut out[2..] {
                if *q == 0x80 {
                    *q = 0x81;
                }
            }
            let i = 2 + rng.below(32) as usize;
            out[i] = if rng.below(2) == 0 {
                127
            } else {
                (-127i8) as u8
            };
            if zero {
                out.fill(0);
            }
        }
        GgmlType::Q4_0 | GgmlType::Q5_0 => {
            let five = t == GgmlType::Q5_0;
            out[..2].copy_from_slice(&d.to_le_bytes());
            let qs_at = if five { 6 } else { 2 };
            // Clear one element's code: element i < 16 is a low nibble, else a high nibble.
            let i = rng.below(32) as usize;
            let j = qs_at + i % 16;
            out[j] &= if i < 16 { 0xF0 } else { 0x0F };
            if five {
                let qh = u32::from_le_bytes([out[2], out[3], out[4], out[5]]) & !(1 << i);
                out[2..6].copy_from_slice(&qh.to_le_bytes());
            }
            if zero {
                out[..2].copy_from_slice(&0x8000u16.to_le_bytes());
                out[qs_at..qs_at + 16].fill(0x88);
                if five {
                    out[qs_at..qs_at + 16].fill(0x00);
                    out[2..6].fill(0xFF);
                }
            }
        }
        _ => {}
    }
}

/// A requant batch: `out` (whole blocks of `t`) filled block by block.
pub fn fill_requant_batch(t: GgmlType, rng: &mut Rng, out: &mut [u8]) {
    for b in out.chunks_exact_mut(t.type_size()) {
        fill_requant_block(t, rng, b);
    }
}

/// For a type without the theorem: of `n` image blocks `Q(x)`, how many change under `Q∘D`.
pub fn survey(t: GgmlType, n: usize, seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let (mut changed, mut total) = (0, 0);
    let mut x = vec![0f32; t.block_size()];
    let mut b = vec![0u8; t.type_size()];
    for _ in 0..n {
        random_values(&mut rng, &mut x);
        if quantize(t, &x, &mut b).is_err() {
            return (0, 0);
        }
        total += 1;
        if requantize(t, &b).as_deref() != Some(&b[..]) {
            changed += 1;
        }
    }
    (changed, total)
}

/// Replays a `requant` regression: `Q(D(bytes))` must equal `expected`.
pub fn replay(r: &Regression) -> Result<(), String> {
    let t = r.dtype()?;
    let b = r.bytes()?;
    let want = super::regression::unhex(r.get("expected")?)?;
    let got = requantize(t, &b).ok_or_else(|| format!("{t}: cannot requantize"))?;
    if got != want {
        return Err(format!(
            "{t}: Q(D({})) = {}, expected {}",
            hex(&b),
            hex(&got),
            hex(&want)
        ));
    }
    Ok(())
}
