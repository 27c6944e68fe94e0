//! Generation: prefill a prompt, then sample and step until a stop token, `max_tokens`, or a
//! full context.

use std::time::Instant;

use super::config::InferError;
use super::engine::Session;
use super::sampling::Sampler;

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// `max_tokens` were generated.
    Length,
    /// The stop predicate accepted a sampled token.
    Stop,
    /// The session's context is full.
    ContextFull,
}

/// Wall-clock time of the two phases.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Seconds in prefill (prompt → first logits).
    pub prefill_s: f64,
    /// Seconds in decode steps (after the first token).
    pub decode_s: f64,
}

/// What [`generate`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOutput {
    /// Generated tokens, the stop token excluded.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// The token the stop predicate accepted, if any.
    pub stop_token: Option<u32>,
    /// With [`GenerateOptions::keep_logits`]: the logits each sampled token (stop token
    /// included) was drawn from, one vector per step.
    pub step_logits: Option<Vec<Vec<f32>>>,
    /// Phase timings.
    pub timing: Timing,
}

/// Extra generation settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Keep every step's logits in the output.
    pub keep_logits: bool,
}

/// Prefills `prompt` into `session` and generates up to `max_tokens` tokens with `sampler`,
/// stopping early at a token for which `stop` is true. The last sampled token is not fed back
/// (the session has evaluated the prompt and every generated token but the last).
pub fn generate(
    session: &mut Session<'_>,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &Sampler,
    stop: &dyn Fn(u32) -> bool,
) -> Result<GenerateOutput, InferError> {
    generate_with(
        session,
        prompt,
        max_tokens,
        sampler,
        stop,
        GenerateOptions::default(),
    )
}

/// [`generate`] with options.
pub fn generate_with(
    session: &mut Session<'_>,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &Sampler,
    stop: &dyn Fn(u32) -> bool,
    opts: GenerateOptions,
) -> Result<GenerateOutput, InferError> {
    let t0 = Instant::now();
    let mut logits = session.prefill(prompt)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut rng = sampler.rng();
    let mut tokens = Vec::with_capacity(max_tokens);
    let mut kept = opts.keep_logits.then(Vec::new);
    let mut stop_token = None;
    let mut finish_reason = FinishReason::Length;
    while tokens.len() < max_tokens {
        let tok = sampler.sample(&logits, &mut rng);
        if let Some(k) = kept.as_mut() {
            k.push(logits.clone());
        }
        if stop(tok) {
            stop_token = Some(tok);
            finish_reason = FinishReason::Stop;
            break;
        }
        tokens.push(tok);
        if tokens.len() == max_tokens {
            break;
        }
        if session.n_past() >= session.n_ctx() {
            finish_reason = FinishReason::ContextFull;
            break;
        }
        logits = session.step(tok)?;
    }
    Ok(GenerateOutput {
        tokens,
        finish_reason,
        stop_token,
        step_logits: kept,
        timing: Timing {
            prefill_s,
            decode_s: t1.elapsed().as_secs_f64(),
        },
    })
}
