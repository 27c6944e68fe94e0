//! `apr-qa synth --arch … -o FILE.gguf`: a deterministic synthetic model.

use std::path::PathBuf;

use apr_qa::harness::playbook::SynthSpec;
use apr_qa::harness::run::synth_options;

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct Args {
    /// qwen2 or llama.
    #[arg(long, default_value = "qwen2")]
    arch: String,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    layers: u32,
    /// Hidden size.
    #[arg(long, default_value_t = 384)]
    hidden: u32,
    /// Attention heads.
    #[arg(long, default_value_t = 6)]
    heads: u32,
    /// KV heads.
    #[arg(long, default_value_t = 2)]
    kv_heads: u32,
    /// FFN size.
    #[arg(long, default_value_t = 1024)]
    ffn: u32,
    /// Vocabulary size.
    #[arg(long, default_value_t = 1024)]
    vocab: u32,
    /// Tie the output projection to the token embedding.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tied_embeddings: bool,
    /// q4_k_m, q8_0, f16, f32 or mixed.
    #[arg(long, default_value = "mixed")]
    quant: String,
    /// Weight seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output GGUF.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let spec = SynthSpec {
        arch: a.arch,
        layers: a.layers,
        hidden: a.hidden,
        heads: a.heads,
        kv_heads: a.kv_heads,
        ffn: a.ffn,
        vocab: a.vocab,
        tied_embeddings: a.tied_embeddings,
        quant: a.quant,
        seed: a.seed,
    };
    let opts = synth_options(&spec).map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    let r = apr_qa::synth::synthesize(&opts, &a.output).map_err(Failure::bad_input)?;
    let hist: Vec<String> = r
        .dtype_histogram
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    println!(
        "wrote {} ({} tensors: {}; {} bytes)",
        a.output.display(),
        r.n_tensors,
        hist.join(", "),
        r.bytes
    );
    Ok(EXIT_OK)
}
