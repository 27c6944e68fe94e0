//! Inference gates: the golden rule (inference(convert(m)) == inference(m)), garbage
//! detection, a known answer, determinism across thread counts and runs, and hostile prompts.
//! Every comparison is on token ids and logit bits, never on text.

use std::sync::Arc;

use super::conversion::route_to;
use super::{Fmt, GateCtx, Judgement};
use crate::infer::engine::Engine;
use crate::infer::generate::{generate_with, GenerateOptions};
use crate::infer::prompt::prompt_tokens;
use crate::infer::sampling::Sampler;
use crate::infer::tokenizer::Tokenizer;
use crate::metrics;

/// Inference settings of a run (from the playbook's `inference:` section).
#[derive(Clone, Debug, PartialEq)]
pub struct InferSettings {
    /// Prompts.
    pub prompts: Vec<String>,
    /// Chat-template them.
    pub chat: bool,
    /// Tokens per prompt.
    pub max_tokens: usize,
    /// Threads.
    pub threads: usize,
    /// llama.cpp reference file (resolved path).
    pub references: Option<std::path::PathBuf>,
}

/// One greedy generation, kept for comparison.
#[derive(Debug)]
pub struct GenRun {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Generated ids.
    pub tokens: Vec<u32>,
    /// Logits each token was drawn from.
    pub logits: Vec<Vec<f32>>,
    /// Decoded text (evidence output only).
    pub text: String,
}

/// Why inference gates are skipped without an `inference:` section.
const NO_INFERENCE: &str = "the playbook has no inference section";

/// The tokenizer of the source model (shared).
fn tokenizer(ctx: &GateCtx<'_>) -> Result<Arc<Tokenizer>, String> {
    ctx.art.memo("tokenizer", || {
        let m = ctx.art.model(&ctx.art.source)?;
        Tokenizer::from_model(&m).map_err(|e| e.to_string())
    })
}

/// Greedy generation of prompt `i` on the model of format `f` with `threads` threads; `run`
/// distinguishes repeated runs that must not share a cache entry.
pub fn generation(
    ctx: &GateCtx<'_>,
    s: &InferSettings,
    f: Fmt,
    i: usize,
    threads: usize,
    run: u32,
) -> Result<Arc<GenRun>, String> {
    let model = ctx.art.route_model(&route_to(f))?;
    let tok = tokenizer(ctx)?;
    let prompt_text = s.prompts.get(i).ok_or("no such prompt")?;
    let prompt = prompt_tokens(&model, &tok, prompt_text, s.chat).map_err(|e| e.to_string())?;
    generate_ids(ctx, f, &prompt, s.max_tokens, threads, run)
}

/// Greedy generation from prompt ids (shared by every gate asking for the same run).
pub fn generate_ids(
    ctx: &GateCtx<'_>,
    f: Fmt,
    prompt: &[u32],
    max_tokens: usize,
    threads: usize,
    run: u32,
) -> Result<Arc<GenRun>, String> {
    let key = format!("gen/{}/{prompt:?}/{max_tokens}/{threads}/{run}", f.ext());
    ctx.art.memo(&key, || {
        let model = ctx.art.route_model(&route_to(f))?;
        let tok = tokenizer(ctx)?;
        let engine = Engine::new(&model, threads).map_err(|e| e.to_string())?;
        let mut session = engine.session(prompt.len() + max_tokens + 1);
        // Greedy with no stop token, as the references run (EOS does not stop).
        let out = generate_with(
            &mut session,
            prompt,
            max_tokens,
            &Sampler::greedy(),
            &|_| false,
            GenerateOptions { keep_logits: true },
        )
        .map_err(|e| e.to_string())?;
        let text = tok.decode(&out.tokens);
        Ok(GenRun {
            prompt: prompt.to_vec(),
            tokens: out.tokens,
            logits: out.step_logits.unwrap_or_default(),
            text,
        })
    })
}

/// How two logit sequences differ.
#[derive(Debug, Default)]
struct LogitDiff {
    /// Largest |a − b| (NaN vs anything = inf).
    max: f64,
    /// Every bit matched (and the lengths).
    bits: bool,
    /// The first step with a differing bit, and the token id of its largest |a − b|.
    first: Option<(usize, usize)>,
}

impl LogitDiff {
    /// "at step 3 (token id 517: 1.25 vs 1.2500001)", or "" when every bit matched.
    fn at(&self, a: &[Vec<f32>], b: &[Vec<f32>]) -> String {
        let Some((t, id)) = self.first else {
            return String::new();
        };
        let get = |v: &[Vec<f32>]| v.get(t).and_then(|l| l.get(id)).copied();
        match (get(a), get(b)) {
            (Some(x), Some(y)) => format!(" first at step {t} (token id {id}: {x:e} vs {y:e})"),
            _ => format!(" first at step {t}"),
        }
    }
}

/// Compares two logit sequences step by step, bit for bit.
fn logit_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> LogitDiff {
    let mut r = LogitDiff {
        bits: a.len() == b.len(),
        ..LogitDiff::default()
    };
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        r.bits &= x.len() == y.len();
        if x.len() != y.len() && r.first.is_none() {
            r.first = Some((t, x.len().min(y.len())));
        }
        let mut step_worst: Option<(f64, usize)> = None;
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            if p.to_bits() != q.to_bits() {
                r.bits = false;
                let d = if p.is_nan() || q.is_nan() {
                    f64::INFINITY
                } else {
                    (f64::from(*p) - f64::from(*q)).abs()
                };
                r.max = r.max.max(d);
                if step_worst.is_none_or(|(w, _)| d > w) {
                    step_worst = Some((d, i));
                }
            }
        }
        if let (None, Some((_, i))) = (r.first, step_worst) {
            r.first = Some((t, i));
        }
    }
    if a.len() != b.len() && r.first.is_none() {
        r.first = Some((a.len().min(b.len()), 0));
    }
    r
}

/// Compares two sets of generations prompt by prompt.
fn compare_runs(pairs: Vec<(String, Arc<GenRun>, Arc<GenRun>)>, tol: f64, what: &str) -> Judgement {
    let mut bad = Vec::new();
    let mut worst = 0f64;
    let mut all_bits = true;
    for (label, a, b) in &pairs {
        let diff = logit_diff(&a.logits, &b.logits);
        let d = diff.max;
        worst = worst.max(d);
        all_bits &= diff.bits;
        if a.tokens != b.tokens {
            let at = a
                .tokens
                .iter()
                .zip(&b.tokens)
                .position(|(x, y)| x != y)
                .unwrap_or(a.tokens.len().min(b.tokens.len()));
            bad.push(format!(
                "{label}: tokens diverge at step {at} (logits differ{})",
                diff.at(&a.logits, &b.logits)
            ));
        } else if d > tol || (tol == 0.0 && !diff.bits) {
            bad.push(format!(
                "{label}: max|Δlogit| {d:e} > {tol:e},{}",
                diff.at(&a.logits, &b.logits)
            ));
        }
    }
    let m = metrics! { "comparisons" => pairs.len(), "max_abs_logit_diff" => if worst.is_finite() { serde_json::json!(worst) } else { serde_json::json!("inf") }, "bit_identical" => all_bits, "problems" => bad, "tolerance" => tol };
    let reason = if bad.is_empty() {
        format!(
            "{what}: {} comparisons, identical tokens, max|Δlogit| {worst:e}{}",
            pairs.len(),
            if all_bits { " (bit-identical)" } else { "" }
        )
    } else {
        format!("{what}: {}", bad.join("; "))
    };
    Judgement::verdict(!bad.is_empty(), reason, m)
}

/// F-GOLDEN-RULE-001: greedy tokens and logits of every converted format equal the source's.
pub fn golden_rule(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped(NO_INFERENCE));
    };
    let mut pairs = Vec::new();
    for f in ctx.formats.iter().filter(|f| **f != Fmt::Gguf) {
        for i in 0..s.prompts.len() {
            let a = generation(ctx, s, Fmt::Gguf, i, s.threads, 0)?;
            let b = generation(ctx, s, *f, i, s.threads, 0)?;
            pairs.push((format!("{} prompt {i}", f.ext()), a, b));
        }
    }
    let mut j = compare_runs(pairs, ctx.tolerance, "gguf vs converted formats");
    if let Ok(g) = generation(ctx, s, Fmt::Gguf, 0, s.threads, 0) {
        j.output = g.text.clone();
    }
    Ok(j)
}

/// F-GOLDEN-RULE-003: the converted models' outputs are not garbage.
pub fn not_garbage(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped(NO_INFERENCE));
    };
    let mut bad = Vec::new();
    let mut runs = 0;
    for f in ctx.formats {
        for i in 0..s.prompts.len() {
            let g = generation(ctx, s, *f, i, s.threads, 0)?;
            runs += 1;
            let non_finite = g.logits.iter().flatten().filter(|x| !x.is_finite()).count();
            if non_finite > 0 {
                bad.push(format!(
                    "{} prompt {i}: {non_finite} non-finite logits",
                    f.ext()
                ));
            }
            if g.tokens.len() >= 8 && g.tokens.iter().all(|t| *t == g.tokens[0]) {
                bad.push(format!(
                    "{} prompt {i}: token {} repeated {} times",
                    f.ext(),
                    g.tokens[0],
                    g.tokens.len()
                ));
            }
            if g.tokens.is_empty() && g.logits.is_empty() {
                bad.push(format!("{} prompt {i}: no output at all", f.ext()));
            }
        }
    }
    let reason = if bad.is_empty() {
        format!("{runs} generations with finite logits and varied tokens")
    } else {
        bad.join("; ")
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "generations" => runs, "problems" => bad },
    ))
}

/// F-STAB-002 (threads 1 vs 2) and F-STAB-003 (two runs): logits bit-identical.
pub fn determinism(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped(NO_INFERENCE));
    };
    let n = s.prompts.len().min(2);
    let pairs: Result<Vec<_>, String> = (0..n)
        .map(|i| {
            let (a, b) = if ctx.gate_id == "F-STAB-002" {
                (
                    generation(ctx, s, Fmt::Gguf, i, 1, 0)?,
                    generation(ctx, s, Fmt::Gguf, i, 2, 0)?,
                )
            } else {
                (
                    generation(ctx, s, Fmt::Gguf, i, s.threads, 0)?,
                    generation(ctx, s, Fmt::Gguf, i, s.threads, 1)?,
                )
            };
            Ok((format!("prompt {i}"), a, b))
        })
        .collect();
    let what = if ctx.gate_id == "F-STAB-002" {
        "1 vs 2 threads"
    } else {
        "two runs"
    };
    Ok(compare_runs(pairs?, 0.0, what))
}

/// F-INFER-002: "What is 2+2?" (chat) answers with a 4.
pub fn known_answer(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let s = InferSettings {
        prompts: vec!["What is 2+2?".into()],
        chat: true,
        max_tokens: 16,
        threads: ctx.infer.map_or(2, |s| s.threads),
        references: None,
    };
    let model = ctx.art.model(&ctx.art.source)?;
    let tok = tokenizer(ctx)?;
    let prompt = prompt_tokens(&model, &tok, &s.prompts[0], true).map_err(|e| e.to_string())?;
    let engine = Engine::new(&model, s.threads).map_err(|e| e.to_string())?;
    let mut session = engine.session(prompt.len() + s.max_tokens + 1);
    let out = generate_with(
        &mut session,
        &prompt,
        s.max_tokens,
        &Sampler::greedy(),
        &|t| tok.is_eog(t),
        GenerateOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let text = tok.decode(&out.tokens);
    let ok = text.contains('4');
    let mut j = Judgement::verdict(
        !ok,
        format!("\"What is 2+2?\" → {text:?}"),
        metrics! { "tokens" => out.tokens, "expected" => "4" },
    );
    j.output = text;
    Ok(j)
}

/// F-EDGE-006: an empty prompt and a prompt longer than the context give a result or a clear
/// error, never a panic.
pub fn hostile_prompts(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let model = ctx.art.model(&ctx.art.source)?;
    let tok = tokenizer(ctx)?;
    let engine = Engine::new(&model, 2).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let mut bad = Vec::new();
    // Empty prompt: BOS alone where the model adds one, else nothing to evaluate — an error.
    let empty = tok.encode("", true, false);
    let mut session = engine.session(8);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.prefill(&empty))) {
        Ok(Ok(l)) if l.iter().all(|x| x.is_finite()) => notes.push(format!(
            "empty prompt ({} tokens): finite logits",
            empty.len()
        )),
        Ok(Ok(_)) => bad.push("empty prompt: non-finite logits".to_string()),
        Ok(Err(e)) => notes.push(format!("empty prompt: clear error: {e}")),
        Err(_) => bad.push("empty prompt: panic".to_string()),
    }
    let long: Vec<u32> = vec![tok.encode("a", false, false).first().copied().unwrap_or(0); 64];
    let mut small = engine.session(16);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| small.prefill(&long))) {
        Ok(Err(e)) if e.to_string().contains("16") && e.to_string().contains("64") => {
            notes.push(format!("64 tokens into a 16-token context: {e}"))
        }
        Ok(Err(e)) => bad.push(format!(
            "64 tokens into a 16-token context: error without both numbers: {e}"
        )),
        Ok(Ok(_)) => bad.push("64 tokens into a 16-token context: accepted".into()),
        Err(_) => bad.push("64 tokens into a 16-token context: panic".into()),
    }
    let reason = if bad.is_empty() {
        notes.join("; ")
    } else {
        bad.join("; ")
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "notes" => notes, "problems" => bad },
    ))
}

/// F-INFER-003: incremental decoding through the KV cache gives, bit for bit, the logits of a
/// recomputation that carries no cache from step to step — one batched forward pass over the
/// prompt and every generated token but the last, in a fresh session (the exact kernel contract
/// makes the two equal, DESIGN §2.4). The oracle is the batched pass, not the decode loop.
pub fn recompute(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped(NO_INFERENCE));
    };
    let model = ctx.art.model(&ctx.art.source)?;
    let engine = Engine::new(&model, s.threads).map_err(|e| e.to_string())?;
    let mut bad = Vec::new();
    let mut steps = 0usize;
    let mut worst = 0f64;
    for i in 0..s.prompts.len() {
        let g = generation(ctx, s, Fmt::Gguf, i, s.threads, 0)?;
        let n = g.logits.len();
        if n == 0 {
            continue;
        }
        // Step t's logits were computed after the prompt and tokens[..t].
        let mut seq = g.prompt.clone();
        seq.extend(g.tokens.iter().take(n - 1));
        let first = g.prompt.len().saturating_sub(1);
        let full = engine
            .session(seq.len())
            .eval_from(&seq, first)
            .map_err(|e| e.to_string())?;
        let full = full.as_slice();
        let diff = logit_diff(&g.logits, full);
        steps += n;
        worst = worst.max(diff.max);
        if !diff.bits {
            let pos = diff.first.map_or(0, |(t, _)| g.prompt.len() - 1 + t);
            let after = diff
                .first
                .and_then(|(t, _)| seq.get(g.prompt.len() - 1 + t).copied());
            bad.push(format!(
                "prompt {i}: incremental decode differs from the full recomputation,{} — position {pos} (after token {}), max|Δlogit| {:e}",
                diff.at(&g.logits, full),
                after.map_or("?".into(), |t| t.to_string()),
                diff.max
            ));
        }
    }
    let reason = if bad.is_empty() {
        format!(
            "{steps} decode steps over {} prompts equal a full recomputation without the cache, bit for bit",
            s.prompts.len()
        )
    } else {
        bad.join("; ")
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "steps" => steps, "max_abs_logit_diff" => if worst.is_finite() { serde_json::json!(worst) } else { serde_json::json!("inf") }, "problems" => bad },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_diff_names_the_first_differing_step_and_token() {
        let a = vec![vec![1.0f32, 2.0], vec![3.0, 4.0], vec![5.0, 6.0, 7.0]];
        let same = logit_diff(&a, &a);
        assert!(same.bits && same.first.is_none() && same.max == 0.0);
        assert_eq!(same.at(&a, &a), "");
        let mut b = a.clone();
        b[1][1] = 4.5;
        b[2][0] = 3.0;
        let d = logit_diff(&a, &b);
        assert!(!d.bits);
        assert_eq!(d.first, Some((1, 1)));
        assert_eq!(d.max, 2.0);
        assert_eq!(d.at(&a, &b), " first at step 1 (token id 1: 4e0 vs 4.5e0)");
    }

    /// −0 and +0 differ in bits though not in value; so do sequences of different lengths.
    #[test]
    fn logit_diff_counts_bits_not_values() {
        let d = logit_diff(&[vec![0.0f32]], &[vec![-0.0f32]]);
        assert!(!d.bits);
        assert_eq!((d.max, d.first), (0.0, Some((0, 0))));
        let d = logit_diff(&[vec![1.0f32]], &[vec![1.0f32], vec![2.0]]);
        assert!(!d.bits);
        assert_eq!(d.first, Some((1, 0)));
        let d = logit_diff(&[vec![f32::NAN]], &[vec![1.0f32]]);
        assert_eq!(d.max, f64::INFINITY);
    }
}
