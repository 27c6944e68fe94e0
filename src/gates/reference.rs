//! F-INFER-001: our engine against llama.cpp's committed references (greedy tokens and top-8
//! logits per step, on llama.cpp's own prompt ids). The oracle is another engine, so this gate
//! sees engine faults that hit a model and its conversions alike (which the golden rule, our
//! engine against itself, cannot).
//!
//! When it falsifies, a diagnosis names what went wrong where it can be measured: logits
//! constant over the vocabulary (the output projection — `output.weight`, or `token_embd.weight`
//! when tied — contributed nothing), or logits that do not move when the model's RoPE base
//! (`rope.freq_base`, which every position after the first depends on) is halved in a copy of
//! the model.

use super::inference::{generate_ids, GenRun};
use super::{Fmt, GateCtx, Judgement};
use crate::formats::gguf::GgufValue;
use crate::infer::engine::Engine;
use crate::metrics;
use crate::model::Model;

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

/// Largest |ours − llama.cpp| over llama.cpp's top ids at one step.
fn step_diff(step: &RefStep, ours: &[f32]) -> f64 {
    step.top_ids
        .iter()
        .zip(&step.top_logits)
        .map(|(id, l)| {
            ours.get(*id as usize)
                .map_or(f64::INFINITY, |o| (f64::from(*o) - f64::from(*l)).abs())
        })
        .fold(0f64, f64::max)
}

/// The verdict on one prompt: (verdict, falsified, max|Δlogit| over the common steps).
fn judge_prompt(p: &RefPrompt, g: &GenRun, n: usize, tol: f64) -> (String, bool, f64) {
    let mut max_d = 0f64;
    for t in 0..n {
        let (Some(step), Some(ours)) = (p.steps.get(t), g.logits.get(t)) else {
            break;
        };
        let d = step_diff(step, ours);
        if g.tokens.get(t) != p.tokens.get(t) {
            let gap = match (step.top_logits.first(), step.top_logits.get(1)) {
                (Some(a), Some(b)) => f64::from(*a - *b),
                _ => f64::INFINITY,
            };
            if gap < max_d && max_d <= tol {
                let v = format!("diverged at step {t} inside a near-tie (llama.cpp top-2 gap {gap:.4} < max|Δlogit| {max_d:.4} ≤ {tol})");
                return (v, false, max_d);
            }
            let tok = |v: Option<&u32>| v.map_or("none".to_string(), u32::to_string);
            let v = format!("diverged at step {t} (token {} where llama.cpp has {}): llama.cpp top-2 gap {gap:.4}, max|Δlogit| before it {max_d:.4}, at it {d:.4}, tolerance {tol}", tok(g.tokens.get(t)), tok(p.tokens.get(t)));
            return (v, true, max_d.max(d));
        }
        max_d = max_d.max(d);
        if max_d > tol {
            let v = format!("max|Δlogit| {max_d:.4} > tolerance {tol} at step {t}");
            return (v, true, max_d);
        }
    }
    (format!("{n} tokens identical"), false, max_d)
}

/// F-INFER-001: greedy tokens equal llama.cpp's (committed references), on llama.cpp's own
/// prompt ids. llama.cpp quantizes activations, so logits differ slightly; a divergence is
/// accepted only at a step where llama.cpp's top-2 gap is smaller than the largest |Δlogit|
/// (over its top-8) seen on the preceding common steps, and only while that largest |Δlogit|
/// stays within the tolerance — so a logit-shifting bug cannot buy itself the allowance.
pub fn reference_tokens(ctx: &GateCtx<'_>) -> Result<Judgement, String> {
    let Some(s) = ctx.infer else {
        return Ok(Judgement::skipped("the playbook has no inference section"));
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
            refs.model.sha256.get(..12).unwrap_or(&refs.model.sha256),
            sha.get(..12).unwrap_or(sha)
        )));
    }
    let tol = ctx.tolerance;
    let mut bad = Vec::new();
    let mut per = Vec::new();
    let mut runs = Vec::new();
    let mut worst = 0f64;
    for p in refs.prompts.iter().take(s.prompts.len().max(1)) {
        let n = s.max_tokens.min(p.tokens.len());
        let g = generate_ids(ctx, Fmt::Gguf, &p.prompt_ids, n, s.threads, 0)?;
        let (verdict, falsified, max_d) = judge_prompt(p, &g, n, tol);
        if falsified {
            bad.push(format!("{:?}: {verdict}", p.message));
        }
        worst = worst.max(max_d);
        per.push(serde_json::json!({ "prompt": p.message, "max_abs_logit_diff": max_d, "verdict": verdict }));
        runs.push((p, g));
    }
    let mut diagnosis = Vec::new();
    if !bad.is_empty() {
        diagnosis = diagnose(ctx, s.threads, &runs)?;
    }
    let reason = if bad.is_empty() {
        format!(
            "{} prompts agree with llama.cpp (max|Δlogit| {worst:.4}, tolerance {tol})",
            per.len()
        )
    } else if diagnosis.is_empty() {
        bad.join("; ")
    } else {
        format!("{}; diagnosis: {}", bad.join("; "), diagnosis.join("; "))
    };
    Ok(Judgement::verdict(
        !bad.is_empty(),
        reason,
        metrics! { "prompts" => per, "max_abs_logit_diff" => worst, "tolerance" => tol, "references" => path.display().to_string(), "diagnosis" => diagnosis },
    ))
}

/// What the measurements say about a falsification (empty when nothing stands out).
fn diagnose(
    ctx: &GateCtx<'_>,
    threads: usize,
    runs: &[(&RefPrompt, std::sync::Arc<GenRun>)],
) -> Result<Vec<String>, String> {
    let model = ctx.art.model(&ctx.art.source)?;
    let mut out = Vec::new();
    // Constant logits: the output projection contributed nothing.
    let constant = runs.iter().find_map(|(p, g)| {
        g.logits.iter().enumerate().find_map(|(t, l)| {
            let first = *l.first()?;
            l.iter()
                .all(|x| x.to_bits() == first.to_bits())
                .then_some((p, t, first, l.len()))
        })
    });
    if let Some((p, t, v, n)) = constant {
        let proj = if model.tensor("output.weight").is_some() {
            "output.weight".to_string()
        } else {
            "token_embd.weight (tied embeddings: the model has no output.weight)".to_string()
        };
        out.push(format!(
            "our logits at step {t} of {:?} are the constant {v} over all {n} tokens: the output projection, {proj}, contributed nothing",
            p.message
        ));
        // Nothing can move constant logits: no key can be probed.
        return Ok(out);
    }
    // The RoPE base: the logits of a multi-token prompt must move when it does.
    let Some(probe) = runs
        .iter()
        .map(|(p, _)| &p.prompt_ids)
        .max_by_key(|ids| ids.len())
        .filter(|ids| ids.len() >= 2)
    else {
        return Ok(out);
    };
    let Some(arch) = model.arch().map(str::to_string) else {
        return Ok(out);
    };
    let key = format!("{arch}.rope.freq_base");
    if let Some(v) = model.get(&key).and_then(GgufValue::as_f64) {
        let base = last_logits(&model, probe, threads)?;
        let changed = (v * 0.5) as f32;
        let mut variant = Model::open(&ctx.art.source).map_err(|e| e.to_string())?;
        for (k, val) in &mut variant.metadata {
            if *k == key {
                *val = GgufValue::F32(changed);
            }
        }
        let moved = last_logits(&variant, probe, threads)?;
        let same = base.len() == moved.len()
            && base
                .iter()
                .zip(&moved)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if same {
            out.push(format!(
                "the engine ignores {key}: its logits ({} prompt tokens) are bit-identical with {key} = {v} and = {changed}",
                probe.len()
            ));
        }
    }
    Ok(out)
}

/// Our logits after prefilling `prompt` into a fresh engine over `model`.
fn last_logits(model: &Model, prompt: &[u32], threads: usize) -> Result<Vec<f32>, String> {
    let engine = Engine::new(model, threads).map_err(|e| e.to_string())?;
    engine
        .session(prompt.len())
        .prefill(prompt)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference of three steps over a 4-token vocabulary, top-2 per step.
    fn reference() -> RefPrompt {
        RefPrompt {
            message: "m".into(),
            prompt_ids: vec![0, 1],
            tokens: vec![2, 0, 3],
            steps: vec![
                RefStep {
                    top_ids: vec![2, 1],
                    top_logits: vec![1.0, 0.5],
                },
                RefStep {
                    top_ids: vec![0, 3],
                    top_logits: vec![1.0, 0.99],
                },
                RefStep {
                    top_ids: vec![3, 0],
                    top_logits: vec![2.0, 1.0],
                },
            ],
        }
    }

    fn run(tokens: Vec<u32>, logits: Vec<Vec<f32>>) -> GenRun {
        GenRun {
            prompt: vec![0, 1],
            tokens,
            logits,
            text: String::new(),
        }
    }

    #[test]
    fn agreement_within_tolerance_corroborates() {
        let g = run(
            vec![2, 0, 3],
            vec![
                vec![0.0, 0.52, 1.02, 0.0],
                vec![1.0, 0.0, 0.0, 0.98],
                vec![1.0, 0.0, 0.0, 2.0],
            ],
        );
        let (v, bad, d) = judge_prompt(&reference(), &g, 3, 0.1);
        assert!(!bad, "{v}");
        assert!((d - 0.02).abs() < 1e-6, "{d}");
    }

    #[test]
    fn zero_logits_diverge_at_step_0() {
        let g = run(vec![0, 0, 0], vec![vec![0.0; 4]; 3]);
        let (v, bad, d) = judge_prompt(&reference(), &g, 3, 0.1);
        assert!(bad);
        assert!(
            v.contains("diverged at step 0 (token 0 where llama.cpp has 2)"),
            "{v}"
        );
        assert_eq!(d, 1.0);
    }

    #[test]
    fn a_shift_beyond_tolerance_is_named_by_step() {
        let g = run(
            vec![2, 0, 3],
            vec![
                vec![0.0, 0.5, 1.0, 0.0],
                vec![1.3, 0.0, 0.0, 0.99],
                vec![1.0, 0.0, 0.0, 2.0],
            ],
        );
        let (v, bad, _) = judge_prompt(&reference(), &g, 3, 0.1);
        assert!(bad);
        assert!(v.contains("at step 1"), "{v}");
    }

    /// Step 1's top-2 gap (0.01) is below the |Δlogit| seen at step 0 (0.05): a near-tie.
    #[test]
    fn a_near_tie_divergence_is_accepted_within_tolerance() {
        let g = run(
            vec![2, 3, 3],
            vec![
                vec![0.0, 0.55, 1.0, 0.0],
                vec![1.0, 0.0, 0.0, 1.0],
                vec![1.0, 0.0, 0.0, 2.0],
            ],
        );
        let (v, bad, _) = judge_prompt(&reference(), &g, 3, 0.1);
        assert!(!bad, "{v}");
        assert!(v.contains("near-tie"), "{v}");
        let (_, bad, _) = judge_prompt(&reference(), &g, 3, 0.01);
        assert!(bad, "not when the |Δlogit| before it exceeds the tolerance");
    }
}
