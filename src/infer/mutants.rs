//! The engine's fault-injection sites (DESIGN §3.5): deliberate mutants of the forward pass,
//! off unless `apr-qa run --inject FAULT` turned one on.
//!
//! Invariants: with no fault on, [`Mutants::read`] returns [`Mutants::CLEAN`] and the forward
//! pass computes exactly what it computes without this module (every site is a branch on a
//! field read once per forward chunk, never inside a kernel loop). Each mutant sits in the
//! engine, so it hits a model and its conversions alike: golden-rule gates (engine vs itself)
//! cannot see it, and each is killed by a gate whose oracle is not the faulted engine
//! (llama.cpp's references, another thread count, a recomputation without the KV cache).

use crate::fault::{active, Fault};

/// The RoPE base a careless engine falls back to (llama.cpp's default for llama).
pub(crate) const DEFAULT_ROPE_BASE: f32 = 10_000.0;

/// Which mutants are on for one forward chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Mutants {
    /// TIED-EMBED-DROP, lm_head lost: tied models project to zeros; a model with its own
    /// `output.weight` has it dropped and projects with the token embedding.
    pub drop_tied_lm_head: bool,
    /// ROPE-THETA-DEFAULT: the model's `rope.freq_base` is replaced by [`DEFAULT_ROPE_BASE`].
    pub default_rope_base: bool,
    /// NONDETERMINISTIC-REDUCTION: RMSNorm sums squares in one f32 partial per thread.
    pub split_norm: bool,
    /// KV-CACHE-OFF-BY-ONE: a decode step (one token after position 0) stores its keys and
    /// values one slot further than its position.
    pub kv_off_by_one: bool,
}

impl Mutants {
    /// No mutant.
    pub(crate) const CLEAN: Self = Self {
        drop_tied_lm_head: false,
        default_rope_base: false,
        split_norm: false,
        kv_off_by_one: false,
    };

    /// The mutants the process-wide switch turns on.
    #[inline]
    pub(crate) fn read() -> Self {
        if crate::fault::current().is_none() {
            return Self::CLEAN;
        }
        Self {
            drop_tied_lm_head: active(Fault::TiedEmbedDrop),
            default_rope_base: active(Fault::RopeThetaDefault),
            split_norm: active(Fault::NondeterministicReduction),
            kv_off_by_one: active(Fault::KvCacheOffByOne),
        }
    }

    /// The RoPE base to use for a model whose own is `model_base`.
    pub(crate) fn rope_base(self, model_base: f32) -> f32 {
        if self.default_rope_base {
            DEFAULT_ROPE_BASE
        } else {
            model_base
        }
    }

    /// The cache slot where a chunk of `n` tokens at position `p0` is stored.
    pub(crate) fn kv_slot(self, p0: usize, n: usize) -> usize {
        if self.kv_off_by_one && n == 1 && p0 > 0 {
            p0 + 1
        } else {
            p0
        }
    }
}

/// The NONDETERMINISTIC-REDUCTION mutant of `ops::rms_norm`: the sum of squares is split into
/// `parts` contiguous ranges (one per thread), each accumulated in f32, and the partial sums
/// added in f32 — so the rounding, and the logits' last bits, change with the thread count.
pub(crate) fn rms_norm_split(x: &[f32], w: &[f32], eps: f32, parts: usize, out: &mut [f32]) {
    let parts = parts.max(1);
    let len = x.len().div_ceil(parts).max(1);
    let mut sum = 0f32;
    for part in x.chunks(len) {
        let mut s = 0f32;
        for &v in part {
            s += v * v;
        }
        sum += s;
    }
    let mean = sum / x.len().max(1) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests never touch the process-wide switch (tests run in parallel); they build
    /// mutants directly.
    #[test]
    fn clean_mutants_change_nothing() {
        let m = Mutants::CLEAN;
        assert_eq!(m.rope_base(1e6), 1e6);
        assert_eq!(m.kv_slot(7, 1), 7);
        assert_eq!(m.kv_slot(0, 5), 0);
    }

    #[test]
    fn mutants_do_what_they_say() {
        let m = Mutants {
            default_rope_base: true,
            kv_off_by_one: true,
            ..Mutants::CLEAN
        };
        assert_eq!(m.rope_base(1e6), 10_000.0);
        assert_eq!(m.kv_slot(7, 1), 8, "a decode step is stored one slot off");
        assert_eq!(m.kv_slot(7, 3), 7, "a prefill chunk is stored in place");
        assert_eq!(m.kv_slot(0, 1), 0, "a one-token prompt is stored in place");
    }

    /// The split sum depends on the number of parts: squares 1, 0 ×7, 2^-24 ×8 sum to 1 in
    /// one f32 pass (each 2^-24 is lost against 1) but to 1 + 2^-21 in two halves.
    #[test]
    fn split_norm_depends_on_parts() {
        let mut x = [0f32; 16];
        x[0] = 1.0;
        x[8..].fill(2f32.powi(-12));
        let w = [1.0f32; 16];
        let mut a = [0f32; 16];
        let mut b = [0f32; 16];
        rms_norm_split(&x, &w, 0.0, 1, &mut a);
        rms_norm_split(&x, &w, 0.0, 2, &mut b);
        assert_ne!(a[0].to_bits(), b[0].to_bits());
    }

    use crate::formats::gguf::GgufValue;
    use crate::infer::engine::Engine;
    use crate::model::Model;
    use crate::synth::{synthesize, SynthOptions};

    const PROMPT: [u32; 8] = [1021, 5, 9, 200, 17, 42, 300, 7];

    /// The default synthetic model (tied embeddings, rope base 1e6) in a temp dir.
    fn synthetic() -> (tempfile::TempDir, Model) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("synthetic.gguf");
        synthesize(&SynthOptions::default(), &path).expect("synthesize");
        let model = Model::open(&path).expect("open");
        (dir, model)
    }

    /// Prefill of the first 3 tokens, then one step per token: the logits of each call.
    fn decode(e: &Engine<'_>, m: Mutants) -> Vec<Vec<f32>> {
        let mut s = e.session(PROMPT.len());
        s.mutants = Some(m);
        let mut out = vec![s.prefill(&PROMPT[..3]).expect("prefill")];
        for &t in &PROMPT[3..] {
            out.push(s.step(t).expect("step"));
        }
        out
    }

    fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
        v.iter()
            .map(|l| l.iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    /// F-INFER-003's recomputation: `eval_from` gives `eval_all`'s logits from its index on,
    /// across forward chunks (UBATCH = 128) too.
    #[test]
    fn eval_from_equals_the_tail_of_eval_all() {
        let (_d, model) = synthetic();
        let e = Engine::new(&model, 2).expect("engine");
        let seq: Vec<u32> = (0..300u32).map(|i| (i * 37 + 11) % 1000).collect();
        let all = e.session(seq.len()).eval_all(&seq).expect("eval_all");
        for from in [0usize, 5, 127, 128, 200, 299] {
            let tail = e
                .session(seq.len())
                .eval_from(&seq, from)
                .expect("eval_from");
            assert_eq!(bits(&tail), bits(&all[from..]), "from {from}");
        }
        let none = e
            .session(seq.len())
            .eval_from(&seq, 300)
            .expect("eval_from");
        assert!(none.is_empty());
    }

    #[test]
    fn tied_embed_drop_zeroes_the_logits() {
        let (_d, model) = synthetic();
        let e = Engine::new(&model, 2).expect("engine");
        assert!(e.tied_embeddings());
        let clean = decode(&e, Mutants::CLEAN);
        assert!(
            clean[0].iter().any(|x| *x != clean[0][0]),
            "clean logits vary"
        );
        let m = Mutants {
            drop_tied_lm_head: true,
            ..Mutants::CLEAN
        };
        for l in decode(&e, m) {
            assert!(l.iter().all(|x| x.to_bits() == 0));
        }
    }

    /// Clean, incremental decoding equals one batched pass; the KV mutant keeps the prefill
    /// and breaks every decode step.
    #[test]
    fn kv_off_by_one_breaks_decode_steps_only() {
        let (_d, model) = synthetic();
        let e = Engine::new(&model, 2).expect("engine");
        let all = e.session(PROMPT.len()).eval_all(&PROMPT).expect("eval_all");
        let clean = decode(&e, Mutants::CLEAN);
        assert_eq!(
            bits(&clean),
            bits(&all[2..]),
            "steps equal the batched pass"
        );
        let m = Mutants {
            kv_off_by_one: true,
            ..Mutants::CLEAN
        };
        let kv = decode(&e, m);
        assert_eq!(bits(&kv[..1]), bits(&clean[..1]), "prefill unchanged");
        for (t, (a, b)) in kv.iter().zip(&clean).enumerate().skip(1) {
            let differ = a.iter().zip(b).any(|(x, y)| x.to_bits() != y.to_bits());
            assert!(differ, "step {t}");
        }
    }

    /// The RoPE mutant computes exactly what the clean engine computes for the model with
    /// `rope.freq_base` = 10000.
    #[test]
    fn rope_theta_default_uses_10000() {
        let (d, model) = synthetic();
        let e = Engine::new(&model, 2).expect("engine");
        let m = Mutants {
            default_rope_base: true,
            ..Mutants::CLEAN
        };
        let mutant = decode(&e, m);
        let mut variant = Model::open(&d.path().join("synthetic.gguf")).expect("open");
        let mut found = false;
        for (k, v) in &mut variant.metadata {
            if k == "qwen2.rope.freq_base" {
                assert_eq!(v.as_f64(), Some(1e6));
                *v = GgufValue::F32(10_000.0);
                found = true;
            }
        }
        assert!(found);
        let ev = Engine::new(&variant, 2).expect("engine");
        assert_eq!(bits(&mutant), bits(&decode(&ev, Mutants::CLEAN)));
        assert_ne!(bits(&mutant), bits(&decode(&e, Mutants::CLEAN)));
    }

    #[test]
    fn split_norm_depends_on_the_thread_count() {
        let (_d, model) = synthetic();
        let e1 = Engine::new(&model, 1).expect("engine");
        let e2 = Engine::new(&model, 2).expect("engine");
        assert_eq!(
            bits(&decode(&e1, Mutants::CLEAN)),
            bits(&decode(&e2, Mutants::CLEAN))
        );
        let m = Mutants {
            split_norm: true,
            ..Mutants::CLEAN
        };
        assert_ne!(bits(&decode(&e1, m)), bits(&decode(&e2, m)));
    }
}
