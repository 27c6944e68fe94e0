//! fp16 → f32 as a 65,536-entry table, so block scales cost one load instead of a conversion.
//!
//! Built at compile time with integer operations only (no const-evaluated float arithmetic,
//! whose NaN results Rust leaves unspecified), following what x86 F16C and the codec's
//! [`crate::quant::float::f16_to_f32`] produce: exact values, subnormals normalized, NaN
//! payloads kept and quieted. A test compares every entry with the codec, bit for bit.

/// `F16_TO_F32[h]` is the f32 value of the fp16 bits `h`.
pub static F16_TO_F32: [f32; 65536] = build();

const fn convert(h: u16) -> u32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1F) as i32;
    let man = (h & 0x3FF) as u32;
    if exp == 0x1F {
        // Inf, or NaN quieted with its payload kept.
        let quiet = if man == 0 { 0 } else { 0x0040_0000 };
        return sign | 0x7F80_0000 | quiet | (man << 13);
    }
    if exp == 0 {
        if man == 0 {
            return sign;
        }
        // Subnormal: man × 2^-24, normalized.
        let mut m = man;
        let mut e = -14i32;
        while m & 0x400 == 0 {
            m <<= 1;
            e -= 1;
        }
        return sign | (((e + 127) as u32) << 23) | ((m & 0x3FF) << 13);
    }
    sign | (((exp - 15 + 127) as u32) << 23) | (man << 13)
}

const fn build() -> [f32; 65536] {
    let mut t = [0f32; 65536];
    let mut h = 0usize;
    while h < 65536 {
        t[h] = f32::from_bits(convert(h as u16));
        h += 1;
    }
    t
}

/// The f32 value of the fp16 bits `h` (a table load).
#[inline(always)]
pub fn f16(h: u16) -> f32 {
    F16_TO_F32[h as usize]
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_equals_the_codec_for_every_pattern() {
        for h in 0..=u16::MAX {
            let want = crate::quant::float::f16_to_f32(h);
            assert_eq!(super::f16(h).to_bits(), want.to_bits(), "fp16 {h:#06x}");
        }
    }
}
