//! Command-line front end: clap → library calls → exit code. `anyhow` lives only here.
//!
//! Exit codes (documented in the README): 0 pass, 1 a check failed or a gate was falsified,
//! 2 bad input or usage, 3 incomplete run.

mod check;
mod convert;
mod faults;
mod fleet;
mod harness;
mod hunt;
mod infer;
mod inspect;
mod report;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Everything passed / every gate corroborated.
pub const EXIT_OK: u8 = 0;
/// A check failed or a gate was falsified.
pub const EXIT_FAILED: u8 = 1;
/// Bad input or usage: unreadable or invalid file, bad arguments.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "apr-qa",
    version,
    about = "Qualifies LLM model files (GGUF, SafeTensors, APR) and the tools that convert and run them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model file's format, metadata, tensor table, dtype histogram and sizes.
    Inspect(inspect::Args),
    /// Convert a model between GGUF, APR and SafeTensors (lossless unless --dtype says otherwise).
    Convert(convert::Args),
    /// Compare two models tensor by tensor (any formats); exit 1 when they differ.
    Diff(check::DiffArgs),
    /// Per-tensor sha256 of raw bytes and of dequantized f32 values, plus value statistics.
    Fingerprint(check::FileArgs),
    /// Check a model's values and metadata; exit 1 on any finding.
    Validate(check::FileArgs),
    /// Generate text with the embedded CPU engine (qwen2, llama) from any format.
    Infer(infer::Args),
    /// Write a deterministic synthetic model (GGUF with a small BPE tokenizer and a chat template).
    Synth(synth::Args),
    /// Run a playbook: every gate judged by numbers, evidence.json and the MQS.
    Run(harness::RunArgs),
    /// List the gate catalogue.
    Gates(harness::GatesArgs),
    /// List the fault-injection catalogue (`run --inject FAULT`); `--matrix` runs the kill matrix.
    Faults(faults::FaultsArgs),
    /// Score an evidence file.
    Score(harness::ScoreArgs),
    /// Render evidence files as an HTML dashboard, JUnit XML and markdown.
    Report(report::Args),
    /// Write one markdown ticket per falsified gate family of an evidence file.
    Ticket(fleet::TicketArgs),
    /// Merge the evidence of shards (`run --shard I/N`) into one evidence file and score.
    Merge(fleet::MergeArgs),
    /// Hunt for non-bit-exact paths with generated blocks, tensors and models.
    Hunt(hunt::Args),
    /// Playbook tools.
    #[command(subcommand)]
    Playbook(harness::PlaybookCmd),
}

/// A failure the CLI reports: the message and the exit code it maps to.
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Bad input (exit 2).
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EXIT_BAD_INPUT,
            error: error.into(),
        }
    }
    /// A failed check (exit 1).
    #[allow(dead_code)]
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EXIT_FAILED,
            error: error.into(),
        }
    }
}

/// Parses the arguments, runs the command, maps the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Diff(a) => check::run_diff(a),
        Command::Fingerprint(a) => check::run_fingerprint(a),
        Command::Validate(a) => check::run_validate(a),
        Command::Infer(a) => infer::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Run(a) => harness::run_cmd(a),
        Command::Gates(a) => harness::gates_cmd(a),
        Command::Score(a) => harness::score_cmd(a),
        Command::Faults(a) => faults::faults_cmd(a),
        Command::Report(a) => report::run(a),
        Command::Ticket(a) => fleet::run_ticket(a),
        Command::Merge(a) => fleet::run_merge(a),
        Command::Hunt(a) => hunt::run(a),
        Command::Playbook(c) => harness::playbook_cmd(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
