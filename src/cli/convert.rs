//! `apr-qa convert IN -o OUT [--to gguf|apr|safetensors|hf] [--dtype keep|f32|…]`.

use std::path::PathBuf;

use apr_qa::convert::{convert, ConvertError, DtypeChoice, Target};

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct Args {
    /// The input model: a GGUF, APR or SafeTensors file (or an HF directory).
    input: PathBuf,
    /// The output path (a file; a directory for `--to hf`).
    #[arg(short, long)]
    output: PathBuf,
    /// Output format; by default the output's extension decides (.gguf, .apr, .safetensors).
    #[arg(long, value_enum)]
    to: Option<Target>,
    /// `keep` (lossless, the default) or a dtype to convert tensors to (f32, f16, bf16, q8_0, q4_k, …).
    #[arg(long, default_value = "keep")]
    dtype: DtypeChoice,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let to = match a.to.or_else(|| Target::from_extension(&a.output)) {
        Some(t) => t,
        None => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "cannot tell the output format of {}: give --to gguf|apr|safetensors|hf",
                a.output.display()
            )))
        }
    };
    let report = convert(&a.input, &a.output, to, a.dtype).map_err(|e| match e {
        ConvertError::Model(_) | ConvertError::Usage(_) => Failure::bad_input(e),
        ConvertError::Write { .. } => Failure::bad_input(e),
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(Failure::bad_input)?
        );
        return Ok(EXIT_OK);
    }
    for c in &report.changes {
        println!(
            "{:<48} {:>6} -> {:<6} max|Δ| {:.3e}  mean|Δ| {:.3e}",
            c.name, c.from, c.to, c.max_abs_err, c.mean_abs_err
        );
    }
    println!(
        "wrote {} ({} tensors, {} bytes)",
        a.output.display(),
        report.n_tensors,
        report.out_bytes
    );
    Ok(EXIT_OK)
}
