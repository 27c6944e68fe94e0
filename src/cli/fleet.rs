//! `apr-qa ticket`, `apr-qa merge`, `apr-qa playbook import`: thin front ends over
//! `report::ticket`, `report::merge` and `harness::import`. Every output is written atomically
//! (temp file beside it, then rename); inputs are never modified.

use std::path::{Path, PathBuf};

use apr_qa::evidence::EvidenceFile;
use apr_qa::harness::executor::write_atomic;
use apr_qa::harness::import::import;
use apr_qa::report::merge::{merge, MergeInput};
use apr_qa::report::ticket::{source_playbook, tickets};

use super::{Failure, EXIT_OK};

fn bad(msg: String) -> Failure {
    Failure::bad_input(anyhow::anyhow!(msg))
}

/// Reads an apr-qa evidence file; any problem is bad input naming the file.
fn read_evidence(path: &Path) -> Result<EvidenceFile, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{}: not an apr-qa evidence file (schema apr-qa/evidence/1): {e}",
            path.display()
        ))
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    write_atomic(path, bytes).map_err(|e| bad(format!("writing {}: {e}", path.display())))
}

#[derive(clap::Args)]
pub struct TicketArgs {
    /// The evidence.json of a run (or of a merge).
    evidence: PathBuf,
    /// Directory for the tickets (TICKET-<family>.md) and their verification playbooks
    /// (TICKET-<family>.yaml); default: `tickets/` beside the evidence file.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_ticket(a: TicketArgs) -> Result<u8, Failure> {
    let file = read_evidence(&a.evidence)?;
    let (src, note) = match source_playbook(&file) {
        Ok(s) => (Some(s), None),
        Err(why) => (None, Some(why)),
    };
    let list = tickets(&file, src.as_ref(), note.as_deref())
        .map_err(|e| bad(format!("{}: {e}", a.evidence.display())))?;
    let dir = a.output.unwrap_or_else(|| {
        a.evidence
            .parent()
            .unwrap_or(Path::new("."))
            .join("tickets")
    });
    let mut written = Vec::new();
    for t in &list {
        let md = dir.join(format!("{}.md", t.stem));
        let pb = dir.join(format!("{}.yaml", t.stem));
        write(&pb, t.playbook.as_bytes())?;
        write(&md, t.markdown.as_bytes())?;
        written.push(serde_json::json!({
            "family": t.family, "severity": t.severity, "falsified": t.falsified,
            "ticket": md, "playbook": pb, "reproduction": t.reproduction,
        }));
    }
    if a.json {
        let j = serde_json::json!({ "evidence": a.evidence, "tickets": written });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(Failure::bad_input)?
        );
    } else if list.is_empty() {
        println!(
            "{}: no gate falsified: no ticket written",
            a.evidence.display()
        );
    } else {
        for (t, w) in list.iter().zip(&written) {
            println!(
                "[{}] {} ({} falsified): {}",
                t.severity,
                t.family,
                t.falsified.len(),
                w["ticket"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let unticketed = file
        .evidence
        .iter()
        .filter(|e| e.outcome.fails() && !e.outcome.judged())
        .count();
    if unticketed > 0 {
        eprintln!("note: {unticketed} timed-out or crashed gate(s) are not falsifications and have no ticket");
    }
    Ok(EXIT_OK)
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shards' evidence.json files (`apr-qa run --shard I/N`), in any order.
    #[arg(required = true)]
    evidence: Vec<PathBuf>,
    /// Output: a path ending in `.json` is the merged file itself; anything else is a
    /// directory that receives `evidence.json`.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_merge(a: MergeArgs) -> Result<u8, Failure> {
    let mut inputs = Vec::with_capacity(a.evidence.len());
    for p in &a.evidence {
        inputs.push(MergeInput {
            path: p.clone(),
            file: read_evidence(p)?,
        });
    }
    let merged = merge(&inputs).map_err(Failure::bad_input)?;
    let out = if a.output.extension().is_some_and(|e| e == "json") {
        a.output.clone()
    } else {
        a.output.join("evidence.json")
    };
    if a.evidence.iter().any(|p| same_file(p, &out)) {
        return Err(bad(format!(
            "{}: the output would overwrite an input",
            out.display()
        )));
    }
    let json = serde_json::to_vec_pretty(&merged.file).map_err(Failure::bad_input)?;
    write(&out, &json)?;
    if a.json {
        let j = serde_json::json!({ "evidence": out, "summary": merged.file.summary, "mqs": merged.file.mqs, "missing_shards": merged.missing, "exit_code": merged.exit_code });
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(Failure::bad_input)?
        );
    } else {
        super::harness::print_summary(&merged.file);
        println!("merged {} file(s): {}", inputs.len(), out.display());
    }
    if !merged.missing.is_empty() {
        eprintln!("INCOMPLETE: missing shard(s) {}", merged.missing.join(", "));
    }
    Ok(merged.exit_code)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// A playbook in the incumbent's (apr-model-qa-playbook) format.
    playbook: PathBuf,
    /// The playbook to write (apr-qa's format).
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Model file for `model.path` (default: the playbook's `local_path`, else a guess under
    /// ${APR_QA_MODELS}).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run_import(a: ImportArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&a.playbook)
        .map_err(|e| bad(format!("{}: {e}", a.playbook.display())))?;
    if same_file(&a.playbook, &a.output) {
        return Err(bad(format!(
            "{}: the output would overwrite the input",
            a.output.display()
        )));
    }
    let model = a.model.as_ref().map(|m| m.display().to_string());
    let imported = import(&text, &a.playbook.display().to_string(), model.as_deref())
        .map_err(Failure::bad_input)?;
    for d in &imported.dropped {
        eprintln!("not honoured: {}: {}", d.path, d.why);
    }
    write(&a.output, imported.text.as_bytes())?;
    if let Some(p) = imported.playbook.model_path().filter(|p| !p.exists()) {
        eprintln!(
            "warning: model {} does not exist: `apr-qa playbook check` fails until it does",
            p.display()
        );
    }
    println!(
        "{}: {} gates, {} field(s) not honoured",
        a.output.display(),
        imported.playbook.gates.len(),
        imported.dropped.len()
    );
    Ok(EXIT_OK)
}
