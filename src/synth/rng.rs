//! Deterministic random numbers for the synthetic model: SplitMix64 (Steele, Lea & Flood 2014)
//! and FNV-1a string hashing. Only integer operations and exact float arithmetic (+, ×, integer
//! to float conversion), so the stream is the same on every platform, compiler and thread count.

/// The SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started at `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in [0, 1) with 53 random bits (exact).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An approximately standard normal value: the Irwin–Hall sum of 4 uniforms, centred and
    /// scaled to unit variance (range ±√12). No transcendental functions, so it is exact.
    pub fn normal(&mut self) -> f64 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        // Var(sum of 4 U(0,1)) = 4/12 = 1/3, so scale by √3.
        (s - 2.0) * 1.732_050_807_568_877_2
    }
}

/// FNV-1a, 64-bit, of a string's bytes.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}
