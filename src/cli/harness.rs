//! `apr-qa run`, `apr-qa gates`, `apr-qa score`, `apr-qa playbook check|import`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use apr_qa::evidence::{Evidence, EvidenceFile, Outcome};
use apr_qa::fault::Fault;
use apr_qa::harness::catalog::{catalog, CATEGORIES};
use apr_qa::harness::mqs::score;
use apr_qa::harness::playbook::Playbook;
use apr_qa::harness::run::{run, RunOptions};

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The playbook (YAML).
    playbook: PathBuf,
    /// Output directory for evidence.json (default ./apr-qa-out/<playbook>-<UTC time>/).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Model path, overriding the playbook's.
    #[arg(long, alias = "model-path")]
    model: Option<PathBuf>,
    /// Gates run in parallel.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Seed, overriding the playbook's.
    #[arg(long)]
    seed: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Stop starting gates after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Run shard I of N (e.g. 2/4).
    #[arg(long)]
    shard: Option<String>,
    /// Print the evidence summary as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Run with one fault of the catalogue injected (`apr-qa faults` lists them).
    #[arg(long)]
    inject: Option<String>,
}

fn parse_shard(s: &str) -> Result<(usize, usize), Failure> {
    let bad = || {
        Failure::bad_input(anyhow::anyhow!(
            "--shard {s:?}: expected I/N with 1 ≤ I ≤ N"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

pub fn run_cmd(a: RunArgs) -> Result<u8, Failure> {
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
        .map_err(Failure::bad_input)?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))
        .map_err(Failure::bad_input)?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let inject = a
        .inject
        .as_deref()
        .map(|n| {
            Fault::from_name(n).ok_or_else(|| {
                Failure::bad_input(anyhow::anyhow!("unknown fault {n:?} (see `apr-qa faults`)"))
            })
        })
        .transpose()?;
    let progress = !a.no_progress && std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    if progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
    }
    let (b1, b2) = (bar.clone(), bar.clone());
    let opts = RunOptions {
        playbook: a.playbook.clone(),
        out_dir: a.output,
        model: a.model,
        jobs: a.jobs.max(1),
        seed: a.seed,
        fail_fast: a.fail_fast,
        shard,
        interrupted,
        inject,
        on_done: Box::new(move |e: &Evidence| {
            b1.inc(1);
            b1.set_message(format!("{} {}", e.gate_id, e.outcome.label()));
        }),
        on_plan: Box::new(move |n| b2.set_length(n as u64)),
    };
    let out = run(opts).map_err(Failure::bad_input)?;
    bar.finish_and_clear();
    if a.json {
        let j = serde_json::json!({ "evidence": out.evidence_path, "summary": out.file.summary, "mqs": out.file.mqs, "exit_code": out.exit_code });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(Failure::bad_input)?
        );
    } else {
        print_summary(&out.file);
        println!("evidence: {}", out.evidence_path.display());
    }
    Ok(out.exit_code)
}

/// The terminal summary, like a test runner's.
pub fn print_summary(f: &EvidenceFile) {
    if let Some(i) = &f.run.inject {
        println!("*** FAULT INJECTED: {i} ***");
    }
    for e in &f.evidence {
        let mark = match e.outcome {
            Outcome::Corroborated => "PASS ",
            Outcome::Falsified => "FAIL ",
            Outcome::Skipped => "SKIP ",
            Outcome::Timeout => "TIME ",
            Outcome::Crashed => "CRASH",
        };
        println!(
            "{mark} {:<20} {:<5} {:>7} ms  {}",
            e.gate_id, e.category, e.duration_ms, e.reason
        );
    }
    let s = &f.summary;
    println!(
        "\n{} gates: {} passed, {} falsified, {} skipped, {} timeout, {} crashed in {:.2}s",
        s.total,
        s.corroborated,
        s.falsified,
        s.skipped,
        s.timeout,
        s.crashed,
        s.duration_ms as f64 / 1000.0
    );
    print_mqs(f);
    let mut slow: Vec<&Evidence> = f.evidence.iter().collect();
    slow.sort_by_key(|e| std::cmp::Reverse(e.duration_ms));
    let top: Vec<String> = slow
        .iter()
        .take(3)
        .map(|e| format!("{} {} ms", e.gate_id, e.duration_ms))
        .collect();
    println!("slowest: {}", top.join(", "));
    if f.run.incomplete {
        println!(
            "INCOMPLETE: required gates were not judged{}",
            if f.run.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
    }
}

fn print_mqs(f: &EvidenceFile) {
    let m = &f.mqs;
    println!(
        "MQS {:.1}/100 (raw {:.0}/1000), grade {}, status {}",
        m.normalized, m.raw, m.grade, m.status
    );
    for (cat, c) in &m.categories {
        let note = c
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        println!(
            "  {cat:<5} {:>6.1}/{:<4} {} of {} judged passed{note}",
            c.points, c.max, c.passed, c.judged
        );
    }
}

#[derive(clap::Args)]
pub struct GatesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn gates_cmd(a: GatesArgs) -> Result<u8, Failure> {
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(catalog()).map_err(Failure::bad_input)?
        );
        return Ok(EXIT_OK);
    }
    for (cat, max) in CATEGORIES {
        println!("{cat} ({max} points)");
        for g in catalog().iter().filter(|g| g.category == cat) {
            let aliases = if g.aliases.is_empty() {
                String::new()
            } else {
                format!(" [{}]", g.aliases.join(", "))
            };
            println!(
                "  {:<20} {} tol {:<6} {}{aliases}",
                g.id, g.severity, g.tolerance, g.hypothesis
            );
        }
    }
    Ok(EXIT_OK)
}

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// An evidence.json (ours, or the incumbent's bare array of records).
    evidence: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn score_cmd(a: ScoreArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&a.evidence)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", a.evidence.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", a.evidence.display())))?;
    let evidence: Vec<Evidence> = match &value {
        serde_json::Value::Array(_) => serde_json::from_value(value.clone()),
        _ => serde_json::from_value(value["evidence"].clone()),
    }
    .map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{}: not evidence: {e}",
            a.evidence.display()
        ))
    })?;
    let mqs = score(&evidence);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&mqs).map_err(Failure::bad_input)?
        );
    } else {
        let f = EvidenceFile {
            mqs,
            evidence,
            ..EvidenceFile::default()
        };
        print_mqs(&f);
    }
    Ok(EXIT_OK)
}

#[derive(clap::Subcommand)]
pub enum PlaybookCmd {
    /// Parse and validate a playbook (strict schema; errors name the line).
    Check {
        /// The playbook.
        file: PathBuf,
    },
    /// Convert a playbook of the incumbent tool's format into ours, listing what cannot be honoured.
    Import(super::fleet::ImportArgs),
}

pub fn playbook_cmd(c: PlaybookCmd) -> Result<u8, Failure> {
    match c {
        PlaybookCmd::Check { file } => {
            let (pb, _) = Playbook::load(&file, true).map_err(Failure::bad_input)?;
            println!(
                "{}: ok ({} gates, formats {:?}, backends {:?})",
                file.display(),
                pb.gates.len(),
                pb.formats,
                pb.backends
            );
            Ok(EXIT_OK)
        }
        PlaybookCmd::Import(a) => super::fleet::run_import(a),
    }
}
