//! `apr-qa infer MODEL -p PROMPT [--chat] [--max-tokens N] [--temperature T] [--top-k K]
//! [--top-p P] [--seed S] [--threads N] [--json] [--logits-out FILE.npy]`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use apr_qa::infer::engine::Engine;
use apr_qa::infer::generate::{generate_with, GenerateOptions};
use apr_qa::infer::prompt::prompt_tokens;
use apr_qa::infer::sampling::Sampler;
use apr_qa::infer::tokenizer::Tokenizer;
use apr_qa::model::Model;

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct Args {
    /// The model (GGUF, APR or SafeTensors).
    model: PathBuf,
    /// The prompt.
    #[arg(short, long)]
    prompt: String,
    /// Render the prompt with the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Write each step's logits as a float32 .npy array [steps, vocab].
    #[arg(long)]
    logits_out: Option<PathBuf>,
}

/// Writes a 2-D little-endian float32 `.npy` file (NumPy format 1.0).
fn write_npy(path: &Path, rows: &[Vec<f32>]) -> std::io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {cols}), }}",
        rows.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + rows.len() * cols * 4);
    out.extend(b"\x93NUMPY\x01\x00");
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for r in rows {
        for x in r {
            out.extend(x.to_le_bytes());
        }
    }
    apr_qa::harness::executor::write_atomic(path, &out)
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let t0 = Instant::now();
    let model = Model::open(&a.model).map_err(Failure::bad_input)?;
    let engine = Engine::new(&model, a.threads).map_err(Failure::bad_input)?;
    let tok = Tokenizer::from_model(&model).map_err(Failure::bad_input)?;
    let prompt = prompt_tokens(&model, &tok, &a.prompt, a.chat).map_err(Failure::bad_input)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let n_ctx = engine
        .config()
        .n_ctx_train
        .unwrap_or(4096)
        .min(prompt.len() + a.max_tokens + 1)
        .max(prompt.len() + 1);
    let n_ctx = n_ctx.min(engine.config().n_ctx_train.unwrap_or(usize::MAX));
    let mut session = engine.session(n_ctx);
    let sampler = Sampler {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
    };
    let opts = GenerateOptions {
        keep_logits: a.logits_out.is_some(),
    };
    let out = generate_with(
        &mut session,
        &prompt,
        a.max_tokens,
        &sampler,
        &|t| tok.is_eog(t),
        opts,
    )
    .map_err(Failure::bad_input)?;
    let text = tok.decode(&out.tokens);
    if let (Some(p), Some(l)) = (&a.logits_out, &out.step_logits) {
        write_npy(p, l).map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", p.display())))?;
    }
    let prefill_tok_s = prompt.len() as f64 / out.timing.prefill_s.max(1e-9);
    let n_decode = out.tokens.len().saturating_sub(1) as f64;
    let decode_tok_s = if n_decode > 0.0 {
        n_decode / out.timing.decode_s.max(1e-9)
    } else {
        0.0
    };
    if a.json {
        let j = serde_json::json!({
            "prompt_tokens": prompt,
            "tokens": out.tokens,
            "text": text,
            "finish_reason": out.finish_reason,
            "timing": { "load_ms": load_ms, "prefill_tok_s": prefill_tok_s, "decode_tok_s": decode_tok_s },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(Failure::bad_input)?
        );
    } else {
        println!("{text}");
        eprintln!(
            "[{} prompt tokens, {} generated, {:?}; load {load_ms:.0} ms, prefill {prefill_tok_s:.1} tok/s, decode {decode_tok_s:.1} tok/s]",
            prompt.len(),
            out.tokens.len(),
            out.finish_reason
        );
    }
    Ok(EXIT_OK)
}
