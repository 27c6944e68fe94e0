//! `apr-qa faults`: the fault-injection catalogue (and, with `--matrix`, the kill matrix).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use apr_qa::fault::Fault;
use apr_qa::harness::catalog::lookup;
use apr_qa::harness::matrix::{run_matrix, Matrix, MatrixOptions, RunRecord};

use super::{Failure, EXIT_OK};

#[derive(clap::Args)]
pub struct FaultsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Run the kill matrix of this playbook: once clean, then once per fault (each a subprocess).
    #[arg(long, value_name = "PLAYBOOK")]
    matrix: Option<PathBuf>,
    /// Output directory for matrix.json and each run's DIR/<run>/evidence.json (default
    /// ./apr-qa-out/matrix-<playbook>-<UTC time>/).
    #[arg(short = 'o', long, requires = "matrix")]
    output: Option<PathBuf>,
    /// Model path, overriding the playbook's.
    #[arg(long, alias = "model-path", requires = "matrix")]
    model: Option<PathBuf>,
    /// Only these faults (comma-separated names; default: the whole catalogue).
    #[arg(long, value_delimiter = ',', requires = "matrix")]
    faults: Vec<String>,
    /// Gates the playbook is known to falsify on a clean run for reasons unrelated to faults
    /// (e.g. F-PERF-001 on a busy host): reported as known clean failures, never counted as
    /// killers, and they do not fail the matrix.
    #[arg(long, value_delimiter = ',', value_name = "GATE", requires = "matrix")]
    known_clean_failure: Vec<String>,
    /// Fault runs at a time (the clean run always runs alone, first).
    #[arg(long, default_value_t = 1, requires = "matrix")]
    parallel: usize,
    /// Wall-time limit of one run in seconds; a run past it is killed and kills nothing.
    #[arg(long, default_value_t = 3600, requires = "matrix")]
    run_timeout: u64,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn faults_cmd(a: FaultsArgs) -> Result<u8, Failure> {
    if let Some(playbook) = a.matrix.clone() {
        return matrix_cmd(a, playbook);
    }
    if a.json {
        let list: Vec<serde_json::Value> = Fault::ALL
            .iter()
            .map(|f| serde_json::json!({ "name": f.name(), "description": f.description() }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).map_err(Failure::bad_input)?
        );
    } else {
        for f in Fault::ALL {
            println!("{:<26} {}", f.name(), f.description());
        }
    }
    Ok(EXIT_OK)
}

fn bad(msg: String) -> Failure {
    Failure::bad_input(anyhow::anyhow!(msg))
}

fn matrix_cmd(a: FaultsArgs, playbook: PathBuf) -> Result<u8, Failure> {
    if !playbook.is_file() {
        return Err(bad(format!(
            "playbook {}: not a readable file",
            playbook.display()
        )));
    }
    let mut faults: Vec<Fault> = Vec::new();
    for n in a.faults.iter().map(|s| s.trim()) {
        let f = Fault::from_name(n)
            .ok_or_else(|| bad(format!("unknown fault {n:?} (see `apr-qa faults`)")))?;
        if !faults.contains(&f) {
            faults.push(f);
        }
    }
    if faults.is_empty() {
        faults = Fault::ALL.to_vec();
    }
    let mut known = Vec::new();
    for k in a.known_clean_failure.iter().map(|s| s.trim()) {
        let g = lookup(k).ok_or_else(|| {
            bad(format!(
                "--known-clean-failure {k:?}: no such gate (see `apr-qa gates`)"
            ))
        })?;
        if !known.contains(&g.id) {
            known.push(g.id.clone());
        }
    }
    if a.parallel == 0 || a.run_timeout == 0 {
        return Err(bad("--parallel and --run-timeout must be at least 1".into()));
    }
    let exe = std::env::current_exe()
        .map_err(|e| bad(format!("finding the apr-qa binary to run: {e}")))?;
    let out_dir = a.output.unwrap_or_else(|| {
        let stem = playbook
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stamp = apr_qa::harness::executor::now_utc().replace([':', '-'], "");
        PathBuf::from("apr-qa-out").join(format!("matrix-{stem}-{stamp}"))
    });
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
        .map_err(Failure::bad_input)?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))
        .map_err(Failure::bad_input)?;
    let bar = indicatif::ProgressBar::hidden();
    if !a.no_progress && std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_length(faults.len() as u64 + 1);
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let b = bar.clone();
    let opts = MatrixOptions {
        exe,
        playbook,
        out_dir: out_dir.clone(),
        model: a.model,
        faults,
        known_clean_failures: known,
        parallel: a.parallel,
        run_timeout: Duration::from_secs(a.run_timeout),
        interrupted,
        on_done: Box::new(move |r: &RunRecord| {
            b.inc(1);
            b.set_message(format!(
                "{} exit {}",
                r.name,
                r.exit_code.map_or_else(|| "-".into(), |c| c.to_string())
            ));
        }),
    };
    let m = run_matrix(&opts).map_err(Failure::bad_input)?;
    bar.finish_and_clear();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&m).map_err(Failure::bad_input)?
        );
    } else {
        print_matrix(&m);
        println!("matrix: {}", out_dir.join("matrix.json").display());
    }
    Ok(m.exit_code())
}

/// Killer gate ids, comma-separated, shortened past `max` names.
fn list(ids: &[&str], max: usize) -> String {
    let mut s = ids.iter().take(max).copied().collect::<Vec<_>>().join(", ");
    if ids.len() > max {
        s.push_str(&format!(" (+{} more)", ids.len() - max));
    }
    s
}

/// The fault × gates table.
fn print_matrix(m: &Matrix) {
    let c = &m.clean;
    let corroborated = c.run.gates.len() - c.run.not_corroborated.len();
    println!(
        "kill matrix of {} ({} gates{})",
        m.playbook,
        m.summary.gates,
        m.model
            .as_deref()
            .map(|p| format!(", model {p}"))
            .unwrap_or_default()
    );
    println!(
        "{:<26} {:<9} KILLED BY (falsified here, corroborated clean)",
        "FAULT", "VERDICT"
    );
    let clean_verdict = if c.false_positives.is_empty() && c.run.error.is_none() {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "{:<26} {:<9} {} of {} gates corroborated",
        "(clean)",
        clean_verdict,
        corroborated,
        c.run.gates.len()
    );
    for f in &m.faults {
        let killers: Vec<&str> = f.killers.iter().map(String::as_str).collect();
        let unjudged = f
            .run
            .not_corroborated
            .iter()
            .filter(|g| !g.outcome.judged())
            .count();
        let mut notes = Vec::new();
        if unjudged > 0 {
            notes.push(format!("{unjudged} gate(s) crashed/timed out/skipped"));
        }
        if !f.discounted.is_empty() {
            notes.push(format!(
                "{} falsified, not counted (fails clean or known clean failure)",
                f.discounted.join(", ")
            ));
        }
        if let Some(e) = &f.run.error {
            notes.push(e.lines().next().unwrap_or_default().to_string());
        }
        let note = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join("; "))
        };
        println!(
            "{:<26} {:<9} {}{note}",
            f.fault,
            if f.killed { "KILLED" } else { "SURVIVED" },
            if killers.is_empty() {
                "—".to_string()
            } else {
                list(&killers, 6)
            }
        );
    }
    println!();
    if c.false_positives.is_empty() {
        println!("false positives (clean run): none");
    } else {
        println!("false positives (clean run, not corroborated):");
        for g in &c.false_positives {
            println!("  {} {}: {}", g.gate_id, g.outcome.label(), g.reason);
        }
    }
    for g in &c.known_failures {
        println!(
            "known clean failure (does not fail the matrix, never a killer): {} {}: {}",
            g.gate_id,
            g.outcome.label(),
            g.reason
        );
    }
    let s = &m.summary;
    println!(
        "{} faults: {} killed, {} survived{}; {}",
        s.faults,
        s.killed,
        s.survived.len(),
        if s.survived.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.survived.join(", "))
        },
        if m.interrupted {
            "INTERRUPTED"
        } else if m.pass {
            "PASS"
        } else {
            "FAIL"
        }
    );
}
