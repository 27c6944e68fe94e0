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

/// Largest |a − b| over two logit sequences (NaN vs anything = inf), and whether every bit
/// matched.
fn logit_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, bool) {
    let mut max = 0f64;
    let mut bits = a.len() == b.len();
    for (x, y) in a.iter().zip(b) {
        bits &= x.len() == y.len();
        for (p, q) in x.iter().zip(y) {
            if p.to_bits() != q.to_bits() {
                bits = false;
                let d = if p.is_nan() || q.is_nan() {
                    f64::INFINITY
                } else {
                    (f64::from(*p) - f64::from(*q)).abs()
                };
                max = max.max(d);
            }
        }
    }
    (max, bits)
}

/// Compares two sets of generations prompt by prompt.
fn compare_runs(pairs: Vec<(String, Arc<GenRun>, Arc<GenRun>)>, tol: f64, what: &str) -> Judgement {
    let mut bad = Vec::new();
    let mut worst = 0f64;
    let mut all_bits = true;
    for (label, a, b) in &pairs {
        let (d, bits) = logit_diff(&a.logits, &b.logits);
        worst = worst.max(d);
        all_bits &= bits;
        if a.tokens != b.tokens {
            let at = a
                .tokens
                .iter()
                .zip(&b.tokens)
                .position(|(x, y)| x != y)
                .unwrap_or(a.tokens.len().min(b.tokens.len()));
            bad.push(format!("{label}: tokens diverge at step {at}"));
        } else if d > tol {
            bad.push(format!("{label}: max|Δlogit| {d:e} > {tol:e}"));
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

#[derive(serde::Deserialize)]
struct RefStep {
    top_ids: Vec<u32>,
    top_logits: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct RefPrompt {
    message: String,
    prompt_ids: Vec<u32>,
    tokens: Vec<u32>,
    steps: Vec<RefStep>,
}

#[derive(serde::Deserialize)]
struct RefModel {
    sha256: String,
}

#[derive(serde::Deserialize)]
struct RefFile {
    model: RefModel,
    prompts: Vec<RefPrompt>,
}

/// F-INFER-001: greedy tokens equal llama.cpp's (committed references), on llama.cpp's own
/// prompt ids. llama.cpp quantizes activations, so logits differ slightly; a divergence is
/// accepted only at a step where llama.cpp's top-2 gap is smaller than the largest |Δlogit|
/// (over its top-8) seen on the preceding common steps, and only while that largest |Δlogit|
/// stays within the tolerance — so a logit-shifting bug cannot buy itself the allowance.
pub fn reference_tokens(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped(NO_INFERENCE));
    };
    let Some(path) = &s.references else {
        return Ok(Judgement::skipped(
            "the playbook names no llama.cpp references",
        ));
    };
    let refs: RefFile = serde_json::from_str(
        &std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let sha = &ctx.art.source_sha256;
    if *sha != refs.model.sha256 {
        return Ok(Judgement::skipped(format!(
            "the references are for model sha256 {}…, not this one ({}…)",
            &refs.model.sha256[..12],
            &sha[..12]
        )));
    }
    let tol = ctx.tolerance;
    let mut bad = Vec::new();
    let mut per = Vec::new();
    let mut worst = 0f64;
    for p in refs.prompts.iter().take(s.prompts.len().max(1)) {
        let n = s.max_tokens.min(p.tokens.len());
        let g = generate_ids(ctx, Fmt::Gguf, &p.prompt_ids, n, s.threads, 0)?;
        let mut max_d = 0f64;
        let mut verdict = format!("{n} tokens identical");
        for t in 0..n {
            let (Some(step), Some(ours)) = (p.steps.get(t), g.logits.get(t)) else {
                break;
            };
            let d = step
                .top_ids
                .iter()
                .zip(&step.top_logits)
                .map(|(id, l)| {
                    ours.get(*id as usize)
                        .map_or(f64::INFINITY, |o| (f64::from(*o) - f64::from(*l)).abs())
                })
                .fold(0f64, f64::max);
            if g.tokens.get(t) != p.tokens.get(t) {
                let gap = match (step.top_logits.first(), step.top_logits.get(1)) {
                    (Some(a), Some(b)) => f64::from(*a - *b),
                    _ => f64::INFINITY,
                };
                if gap < max_d && max_d <= tol {
                    verdict = format!("diverged at step {t} inside a near-tie (llama.cpp top-2 gap {gap:.4} < max|Δlogit| {max_d:.4} ≤ {tol})");
                } else {
                    verdict = format!("diverged at step {t}: llama.cpp top-2 gap {gap:.4}, max|Δlogit| before it {max_d:.4}, tolerance {tol}");
                    bad.push(format!("{:?}: {verdict}", p.message));
                }
                break;
            }
            max_d = max_d.max(d);
            if max_d > tol {
                verdict = format!("max|Δlogit| {max_d:.4} > tolerance {tol} at step {t}");
                bad.push(format!("{:?}: {verdict}", p.message));
                break;
            }
        }
        worst = worst.max(max_d);
        per.push(serde_json::json!({ "prompt": p.message, "max_abs_logit_diff": max_d, "verdict": verdict }));
    }
    let reason = if bad.is_empty() {
        format!(
            "{} prompts agree with llama.cpp (max|Δlogit| {worst:.4}, tolerance {tol})",
            per.len()
        )
    } else {
        bad.join("; ")
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "prompts" => per, "max_abs_logit_diff" => worst, "tolerance" => tol, "references" => path.display().to_string() },
    ))
}
