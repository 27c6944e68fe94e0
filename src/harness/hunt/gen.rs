//! Fast, deterministic generators of blocks for the hunt: a seeded xoshiro256** stream and the
//! block modes (arbitrary bytes, tame scales, fp16/bf16/f32 specials in every scale field,
//! extreme sub-block scales and mins, sparse and saturated blocks).
//!
//! Invariants: the same seed gives the same bytes on every machine (no floating point in the
//! generator's control flow); every generated block has exactly `type_size` bytes; the scale
//! field table ([`scale_fields`]) names every byte range a dequantizer reads as a scale, so the
//! "specials" modes really put ±0, subnormals, max, ±Inf and NaN payloads where they matter.

use crate::dtype::GgmlType;

/// xoshiro256** seeded through splitmix64: fast enough to generate a million blocks a second.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A stream for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A value in `0..n` (`n > 0`; 0 when `n == 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An element of `items` (which must not be empty; returns the default otherwise).
    pub fn pick<T: Copy + Default>(&mut self, items: &[T]) -> T {
        items
            .get(self.below(items.len() as u64) as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        for (o, b) in rest.iter_mut().zip(last) {
            *o = b;
        }
    }

    /// A float in [-1, 1) with 24 random bits (exactly representable).
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// How a block's bytes are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BlockMode {
    /// Every byte random: every bit pattern of every field, NaN/Inf scales included.
    #[default]
    Arbitrary,
    /// Random codes; every scale a finite normal value of moderate size.
    Tame,
    /// Random codes; every scale field a special value (±0, subnormal, max, ±Inf, NaN with
    /// payloads) or a tame one.
    Specials,
    /// Special or tame scales, and the sub-block scale/min bytes at their extremes.
    ExtremeScales,
    /// Zeros with a few random bytes (tame or zero scales).
    Sparse,
    /// Every byte 0x00, 0xFF, 0x55 or 0xAA (one pattern), scales tame half the time.
    Saturated,
}

impl BlockMode {
    /// Every mode.
    pub const ALL: [BlockMode; 6] = [
        Self::Arbitrary,
        Self::Tame,
        Self::Specials,
        Self::ExtremeScales,
        Self::Sparse,
        Self::Saturated,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arbitrary => "arbitrary",
            Self::Tame => "tame",
            Self::Specials => "specials",
            Self::ExtremeScales => "extreme-scales",
            Self::Sparse => "sparse",
            Self::Saturated => "saturated",
        }
    }
}

/// How a scale field is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleKind {
    /// IEEE fp16 bits (u16 LE).
    F16,
    /// IEEE f32 bits (u32 LE).
    F32,
    /// E8M0 byte (MXFP4).
    E8M0,
    /// UE4M3 byte (NVFP4).
    Ue4m3,
    /// IQ1_M's fp16 super-scale, one nibble in the top 4 bits of each of four u16 words.
    Iq1mSplit,
}

/// A scale field of a block: its byte offset and encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleField {
    /// Byte offset in the block.
    pub offset: usize,
    /// Encoding.
    pub kind: ScaleKind,
}

const fn f16_at(offset: usize) -> ScaleField {
    ScaleField {
        offset,
        kind: ScaleKind::F16,
    }
}

/// Every scale field of a block of `t` (ggml-common.h layouts; reference §2.3). Plain types
/// have none (their elements are the values).
pub fn scale_fields(t: GgmlType) -> &'static [ScaleField] {
    const AT0: [ScaleField; 1] = [f16_at(0)];
    const AT0_2: [ScaleField; 2] = [f16_at(0), f16_at(2)];
    const Q2K: [ScaleField; 2] = [f16_at(80), f16_at(82)];
    const Q3K: [ScaleField; 1] = [f16_at(108)];
    const Q6K: [ScaleField; 1] = [f16_at(208)];
    const TQ1: [ScaleField; 1] = [f16_at(52)];
    const TQ2: [ScaleField; 1] = [f16_at(64)];
    const NVFP4: [ScaleField; 4] = [
        ScaleField {
            offset: 0,
            kind: ScaleKind::Ue4m3,
        },
        ScaleField {
            offset: 1,
            kind: ScaleKind::Ue4m3,
        },
        ScaleField {
            offset: 2,
            kind: ScaleKind::Ue4m3,
        },
        ScaleField {
            offset: 3,
            kind: ScaleKind::Ue4m3,
        },
    ];
    match t {
        GgmlType::Q4_0
        | GgmlType::Q5_0
        | GgmlType::Q8_0
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ3_S
        | GgmlType::IQ2_S
        | GgmlType::IQ4_XS
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => &AT0,
        // Q8_1: d @0 and s @2 (s is not read by the dequantizer, but is a scale field).
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4_K | GgmlType::Q5_K => {
            &AT0_2
        }
        GgmlType::Q2_K => &Q2K,
        GgmlType::Q3_K => &Q3K,
        GgmlType::Q6_K => &Q6K,
        GgmlType::Q8_K => &[ScaleField {
            offset: 0,
            kind: ScaleKind::F32,
        }],
        GgmlType::IQ1_M => &[ScaleField {
            offset: 48,
            kind: ScaleKind::Iq1mSplit,
        }],
        GgmlType::TQ1_0 => &TQ1,
        GgmlType::TQ2_0 => &TQ2,
        GgmlType::MXFP4 => &[ScaleField {
            offset: 0,
            kind: ScaleKind::E8M0,
        }],
        GgmlType::NVFP4 => &NVFP4,
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::BF16
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64 => &[],
    }
}

/// The bytes holding sub-block scales (and mins) of `t`: (offset, length).
pub fn subscale_region(t: GgmlType) -> Option<(usize, usize)> {
    match t {
        GgmlType::Q2_K => Some((0, 16)),
        GgmlType::Q3_K => Some((96, 12)),
        GgmlType::Q4_K | GgmlType::Q5_K => Some((4, 12)),
        GgmlType::Q6_K => Some((192, 16)),
        GgmlType::IQ4_XS => Some((2, 6)),
        GgmlType::IQ1_M => Some((48, 8)),
        GgmlType::IQ3_S => Some((106, 4)),
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::BF16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q8_1
        | GgmlType::Q8_K
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ3_XXS
        | GgmlType::IQ1_S
        | GgmlType::IQ4_NL
        | GgmlType::IQ2_S
        | GgmlType::I8
        | GgmlType::I16
        | GgmlType::I32
        | GgmlType::I64
        | GgmlType::F64
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::MXFP4
        | GgmlType::NVFP4
        | GgmlType::Q1_0
        | GgmlType::Q2_0 => None,
    }
}

/// fp16 special values: ±0, smallest/largest subnormal, smallest normal, ±max, ±Inf, quiet
/// and signalling NaNs with payloads, ±1.
pub const F16_SPECIALS: [u16; 20] = [
    0x0000, 0x8000, 0x0001, 0x8001, 0x0200, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00,
    0xFE00, 0x7C01, 0x7D55, 0x7DFF, 0xFE01, 0xFFFF, 0x3C00, 0xBC00,
];

/// bf16 special values, same classes as [`F16_SPECIALS`].
pub const BF16_SPECIALS: [u16; 16] = [
    0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81,
    0x7FBF, 0xFFC1, 0x7FFF, 0x3F80,
];

/// f32 special values, same classes as [`F16_SPECIALS`].
pub const F32_SPECIALS: [u32; 15] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x007F_FFFF,
    0x0080_0000,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0x7F80_0001,
    0x7FBF_FFFF,
    0xFFC0_0001,
    0x7FFF_FFFF,
    0x3F80_0000,
];

/// Sub-block scale bytes at their extremes (6-bit 0/63, 4-bit 0/15, i8 ±127/−128, mixes).
const EXTREME_BYTES: [u8; 10] = [0x00, 0xFF, 0x3F, 0xC0, 0x80, 0x7F, 0x0F, 0xF0, 0x81, 0x01];

/// A finite fp16 of moderate size (|v| in [2^-14, 2^-3)), sign random; 1 in 16 subnormal.
fn tame_f16(rng: &mut Rng) -> u16 {
    let r = rng.next_u64();
    let sign = ((r & 1) as u16) << 15;
    let mant = ((r >> 1) & 0x3FF) as u16;
    if (r >> 11) & 15 == 0 {
        return sign | mant.max(1);
    }
    let exp = 1 + ((r >> 16) % 12) as u16; // biased 1..=12: 2^-14 .. 2^-3
    sign | (exp << 10) | mant
}

/// A finite f32 of moderate size.
fn tame_f32(rng: &mut Rng) -> u32 {
    let r = rng.next_u64();
    let sign = ((r & 1) as u32) << 31;
    let exp = 100 + ((r >> 1) % 24) as u32; // 2^-27 .. 2^-4
    sign | (exp << 23) | ((r >> 8) as u32 & 0x7F_FFFF)
}

/// Writes a scale value into `field` of `block`: special when `special`, else tame.
fn put_scale(block: &mut [u8], field: ScaleField, special: bool, rng: &mut Rng) {
    let at = field.offset;
    match field.kind {
        ScaleKind::F16 => {
            let v = if special {
                rng.pick(&F16_SPECIALS)
            } else {
                tame_f16(rng)
            };
            if let Some(dst) = block.get_mut(at..at + 2) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        ScaleKind::F32 => {
            let v = if special {
                rng.pick(&F32_SPECIALS)
            } else {
                tame_f32(rng)
            };
            if let Some(dst) = block.get_mut(at..at + 4) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        ScaleKind::E8M0 => {
            let v = if special {
                rng.pick(&[0u8, 1, 2, 127, 128, 254, 255])
            } else {
                118 + rng.below(12) as u8
            };
            if let Some(b) = block.get_mut(at) {
                *b = v;
            }
        }
        ScaleKind::Ue4m3 => {
            let v = if special {
                rng.pick(&[0u8, 0x01, 0x07, 0x08, 0x7E, 0x7F, 0x80, 0xFF])
            } else {
                rng.below(0x7F) as u8
            };
            if let Some(b) = block.get_mut(at) {
                *b = v;
            }
        }
        ScaleKind::Iq1mSplit => {
            let h = if special {
                rng.pick(&F16_SPECIALS)
            } else {
                tame_f16(rng)
            };
            for k in 0..4 {
                let nib = (h >> (4 * k)) & 0xF;
                let o = at + 2 * k;
                if let Some(w) = block.get_mut(o..o + 2) {
                    let old = u16::from_le_bytes([w[0], w[1]]);
                    w.copy_from_slice(&((old & 0x0FFF) | (nib << 12)).to_le_bytes());
                }
            }
        }
    }
}

/// One element of a plain float type (block size 1).
fn fill_plain(t: GgmlType, mode: BlockMode, rng: &mut Rng, out: &mut [u8]) {
    match (t, mode) {
        (_, BlockMode::Arbitrary) => rng.fill(out),
        (GgmlType::F16, BlockMode::Specials | BlockMode::ExtremeScales) => {
            out.copy_from_slice(&rng.pick(&F16_SPECIALS).to_le_bytes());
        }
        (GgmlType::BF16, BlockMode::Specials | BlockMode::ExtremeScales) => {
            out.copy_from_slice(&rng.pick(&BF16_SPECIALS).to_le_bytes());
        }
        (GgmlType::F32, BlockMode::Specials | BlockMode::ExtremeScales) => {
            out.copy_from_slice(&rng.pick(&F32_SPECIALS).to_le_bytes());
        }
        (GgmlType::F16, BlockMode::Tame) => out.copy_from_slice(&tame_f16(rng).to_le_bytes()),
        (GgmlType::BF16, BlockMode::Tame) => {
            out.copy_from_slice(&((tame_f32(rng) >> 16) as u16).to_le_bytes());
        }
        (GgmlType::F32, BlockMode::Tame) => out.copy_from_slice(&tame_f32(rng).to_le_bytes()),
        (_, BlockMode::Sparse) => {
            out.fill(0);
            if rng.below(8) == 0 {
                rng.fill(out);
            }
        }
        (_, BlockMode::Saturated) => out.fill(rng.pick(&[0x00, 0xFF, 0x55, 0xAA])),
        (_, BlockMode::Tame | BlockMode::Specials | BlockMode::ExtremeScales) => rng.fill(out),
    }
}

/// Fills `out` (one block of `t`, `type_size` bytes) in `mode`.
pub fn fill_block(t: GgmlType, mode: BlockMode, rng: &mut Rng, out: &mut [u8]) {
    if t.block_size() == 1 {
        fill_plain(t, mode, rng, out);
        return;
    }
    let fields = scale_fields(t);
    match mode {
        BlockMode::Arbitrary => rng.fill(out),
        BlockMode::Tame => {
            rng.fill(out);
            for &f in fields {
                put_scale(out, f, false, rng);
            }
        }
        BlockMode::Specials => {
            rng.fill(out);
            for &f in fields {
                let special = rng.below(4) != 0;
                put_scale(out, f, special, rng);
            }
        }
        BlockMode::ExtremeScales => {
            rng.fill(out);
            if let Some((at, len)) = subscale_region(t) {
                let all_same = rng.below(2) == 0;
                let fixed = rng.pick(&EXTREME_BYTES);
                if let Some(region) = out.get_mut(at..at + len) {
                    for b in region {
                        *b = if all_same {
                            fixed
                        } else {
                            rng.pick(&EXTREME_BYTES)
                        };
                    }
                }
            }
            for &f in fields {
                let special = rng.below(3) == 0;
                put_scale(out, f, special, rng);
            }
        }
        BlockMode::Sparse => {
            out.fill(0);
            for _ in 0..=rng.below(4) {
                let i = rng.below(out.len() as u64) as usize;
                if let Some(b) = out.get_mut(i) {
                    *b = rng.next_u64() as u8;
                }
            }
            for &f in fields {
                if rng.below(2) == 0 {
                    put_scale(out, f, false, rng);
                }
            }
        }
        BlockMode::Saturated => {
            out.fill(rng.pick(&[0x00, 0xFF, 0x55, 0xAA]));
            for &f in fields {
                if rng.below(2) == 0 {
                    put_scale(out, f, false, rng);
                }
            }
        }
    }
}

/// A mode drawn with weights: arbitrary 3, tame 4, specials 3, extreme 3, sparse 1, saturated 1.
pub fn random_mode(rng: &mut Rng) -> BlockMode {
    match rng.below(15) {
        0..=2 => BlockMode::Arbitrary,
        3..=6 => BlockMode::Tame,
        7..=9 => BlockMode::Specials,
        10..=12 => BlockMode::ExtremeScales,
        13 => BlockMode::Sparse,
        _ => BlockMode::Saturated,
    }
}

/// `n_units` blocks of `t` (elements for plain types), each in a random mode.
pub fn fill_batch(t: GgmlType, rng: &mut Rng, out: &mut [u8]) {
    let ts = t.type_size();
    for block in out.chunks_exact_mut(ts) {
        let mode = random_mode(rng);
        fill_block(t, mode, rng, block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_fields_lie_inside_their_blocks() {
        for t in GgmlType::ALL {
            for f in scale_fields(t) {
                let width = match f.kind {
                    ScaleKind::F16 => 2,
                    ScaleKind::F32 => 4,
                    ScaleKind::E8M0 | ScaleKind::Ue4m3 => 1,
                    ScaleKind::Iq1mSplit => 8,
                };
                assert!(f.offset + width <= t.type_size(), "{t}");
            }
            if let Some((at, len)) = subscale_region(t) {
                assert!(at + len <= t.type_size(), "{t}");
            }
        }
    }

    #[test]
    fn the_stream_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (mut x, mut y) = (vec![0u8; 1000], vec![0u8; 1000]);
        fill_batch(GgmlType::Q4_K, &mut a, &mut x[..720]);
        fill_batch(GgmlType::Q4_K, &mut b, &mut y[..720]);
        assert_eq!(x, y);
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }
}
