//! Scalar conversions, bit-exact with ggml `src/ggml-impl.h` (software paths, as a baseline
//! x86-64 build compiles them): fp16 ⇄ f32 (Maratyszcza), bf16 ⇄ f32, E8M0 and UE4M3 scales.
//! fp16/bf16 values are carried as `u16` bits everywhere else; only arithmetic converts.

/// fp16 bits → f32, exact for every pattern (NaN payload kept, quieted as x86 does).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let w = u32::from(h) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);
    let exp_offset: u32 = 0xE0 << 23;
    let exp_scale = f32::from_bits(0x0780_0000); // 2^-112
    let normalized = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;
    let magic_mask: u32 = 126 << 23;
    let denormalized = f32::from_bits((two_w >> 17) | magic_mask) - 0.5;
    let cutoff: u32 = 1 << 27;
    let bits = if two_w < cutoff {
        denormalized.to_bits()
    } else {
        normalized.to_bits()
    };
    f32::from_bits(sign | bits)
}

/// f32 → fp16 bits, round to nearest even, overflow to ±inf, every NaN → sign | 0x7E00
/// (ggml `ggml_compute_fp32_to_fp16`, software path).
#[inline]
pub fn f32_to_f16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;
    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    let out = (sign >> 16)
        | if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        };
    out as u16
}

/// bf16 bits → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// f32 → bf16 bits (ggml `ggml_compute_fp32_to_bf16`): NaN forced quiet, else RNE on the bits.
#[inline]
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// E8M0 scale (MXFP4) → f32, halved (`GGML_E8M0_TO_FP32_HALF`): 2^(e−128).
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (u32::from(e) - 1) << 23
    };
    f32::from_bits(bits)
}

/// UE4M3 scale (NVFP4) → f32, halved as ggml's doubled-E2M1 table expects.
#[inline]
pub fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = i32::from((x >> 3) & 0xF);
    let man = i32::from(x & 0x7);
    let raw = if exp == 0 {
        man as f32 * f32::from_bits(0x3B00_0000) // 2^-9
    } else {
        (1.0 + man as f32 / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

#[inline]
fn pow2(e: i32) -> f32 {
    // Exact for the exponents UE4M3 produces (-6..=8).
    f32::from_bits(((e + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_roundtrip_every_pattern() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert_eq!(f32_to_f16(f), (h & 0x8000) | 0x7E00);
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x}");
                assert_eq!(f.to_bits(), half::f16::from_bits(h).to_f32().to_bits());
            }
        }
    }

    #[test]
    fn f32_to_f16_matches_rne_on_non_nan() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = f32::from_bits(x);
            if !f.is_nan() {
                assert_eq!(f32_to_f16(f), half::f16::from_f32(f).to_bits(), "{x:#010x}");
            }
        }
    }

    #[test]
    fn bf16_rules() {
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80); // tie to even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(bf16_to_f32(0x3F80), 1.0);
    }

    #[test]
    fn scale_formats() {
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(0).to_bits(), 0x0020_0000);
        assert_eq!(ue4m3_to_f32_half(0x38), 0.5); // exp 7, man 0 → 1.0, halved
        assert_eq!(ue4m3_to_f32_half(0x7F), 0.0);
    }
}
