//! Token sampling: greedy (temperature 0) or temperature / top-k / top-p with a seeded
//! deterministic RNG, so the same seed, logits and settings always give the same token.
//!
//! Order of the filters (documented because implementations differ): NaN logits are dropped;
//! logits are divided by the temperature; candidates are ranked by value (ties: lower id
//! first); top-k keeps the first k (0 = all); probabilities are a softmax in f64 over what is
//! left; top-p keeps the shortest prefix whose cumulative probability reaches `top_p`
//! (≥ 1 = all); one uniform draw in [0, total) picks along the cumulative sum.

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sampler {
    /// 0 = greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 = no limit.
    pub top_k: usize,
    /// Nucleus: keep the most likely tokens up to this cumulative probability; ≥ 1 = all.
    pub top_p: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::greedy()
    }
}

impl Sampler {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    /// Whether this sampler is greedy.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// A fresh RNG for a generation.
    pub fn rng(&self) -> Rng {
        Rng::new(self.seed)
    }

    /// Picks a token from `logits`.
    pub fn sample(&self, logits: &[f32], rng: &mut Rng) -> u32 {
        if self.is_greedy() {
            return argmax(logits);
        }
        let inv_t = 1.0 / f64::from(self.temperature);
        let mut cand: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(i, &v)| (i as u32, f64::from(v) * inv_t))
            .collect();
        if cand.is_empty() {
            return 0;
        }
        let by_rank = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.top_k > 0 && self.top_k < cand.len() {
            cand.select_nth_unstable_by(self.top_k - 1, by_rank);
            cand.truncate(self.top_k);
        }
        cand.sort_unstable_by(by_rank);
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| (c.1 - max).exp()).collect();
        let sum: f64 = probs.iter().sum();
        for p in probs.iter_mut() {
            *p /= sum;
        }
        let mut keep = probs.len();
        if self.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= f64::from(self.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        let total: f64 = probs[..keep].iter().sum();
        let u = rng.next_f64() * total;
        let mut acc = 0.0;
        for (c, p) in cand.iter().zip(&probs[..keep]) {
            acc += p;
            if u < acc {
                return c.0;
            }
        }
        cand[keep - 1].0
    }
}

/// Index of the largest logit (the first one on ties; NaN never wins; 0 if all are NaN).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map_or(0, |(i, _)| i as u32)
}

/// xoshiro256** seeded through splitmix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut s = [0u64; 4];
        for v in s.iter_mut() {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *v = x ^ (x >> 31);
        }
        Self { s }
    }

    /// Next 64 random bits.
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

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_reference_output() {
        // xoshiro256** from state [1, 2, 3, 4]: first outputs from the authors' C code.
        let mut r = Rng { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, vec![11520, 0, 1509978240]);
    }

    #[test]
    fn argmax_first_max_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), 1);
        assert_eq!(argmax(&[f32::NAN]), 0);
    }

    #[test]
    fn sampling_is_deterministic_per_seed() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let s = Sampler {
            temperature: 1.5,
            top_k: 50,
            top_p: 0.9,
            seed: 1234,
        };
        let draw = |s: &Sampler| {
            let mut rng = s.rng();
            (0..64)
                .map(|_| s.sample(&logits, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draw(&s);
        assert_eq!(a, draw(&s));
        assert_ne!(a, draw(&Sampler { seed: 1235, ..s }));
        // Every pick is among the top 50 logits.
        let mut sorted: Vec<usize> = (0..1000).collect();
        sorted.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]).then(x.cmp(&y)));
        let top: std::collections::HashSet<u32> = sorted[..50].iter().map(|&i| i as u32).collect();
        assert!(a.iter().all(|t| top.contains(t)));
    }

    #[test]
    fn top_p_tiny_is_greedy_and_temperature_zero_is_argmax() {
        let logits = [0.5f32, 2.0, 1.0, 1.9];
        let mut rng = Rng::new(9);
        let s = Sampler {
            temperature: 1.0,
            top_k: 0,
            top_p: 1e-6,
            seed: 9,
        };
        for _ in 0..20 {
            assert_eq!(s.sample(&logits, &mut rng), 1);
        }
        assert_eq!(Sampler::greedy().sample(&logits, &mut rng), 1);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Two tokens with probabilities e/(1+e) ≈ 0.731 and 0.269 at temperature 1.
        let logits = [1.0f32, 0.0];
        let s = Sampler {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 5,
        };
        let mut rng = s.rng();
        let n = 20_000;
        let zeros = (0..n).filter(|_| s.sample(&logits, &mut rng) == 0).count();
        let p = zeros as f64 / n as f64;
        assert!((p - 0.7311).abs() < 0.015, "{p}");
    }
}
