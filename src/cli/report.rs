//! `apr-qa report`: HTML dashboard, JUnit XML and markdown from evidence files.
//!
//! Several evidence files are a series: they are ordered by `run.started`, the latest is the
//! one reported (JUnit holds only it) and the earlier ones give the trend and the triage.
//! Each output is written atomically (temp file beside it, then rename); inputs are only read.
//! Exit 0 when the reports were written (whatever the runs' verdicts), 2 when an evidence
//! file is missing or is not evidence (the message names it) or an output cannot be written.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde_json::Value;

use super::{Failure, EXIT_OK};
use apr_qa::evidence::{Evidence, EvidenceFile, Summary};
use apr_qa::report::{html, junit, markdown, triage};

#[derive(clap::Args)]
pub struct Args {
    /// Evidence files (`evidence.json` of `apr-qa run`); several = a series of runs, ordered by
    /// start time: the latest is reported, the earlier ones give the trend and the triage.
    #[arg(required = true, value_name = "EVIDENCE")]
    evidence: Vec<PathBuf>,
    /// Write the HTML dashboard (`report.html`). With none of --html/--junit/--markdown, all three.
    #[arg(long)]
    html: bool,
    /// Write JUnit XML (`junit.xml`, the latest run).
    #[arg(long)]
    junit: bool,
    /// Write the markdown summary (`report.md`).
    #[arg(long)]
    markdown: bool,
    /// Output directory (created if missing).
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
    /// Print what was written and the triage as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let mut runs = Vec::with_capacity(a.evidence.len());
    for p in &a.evidence {
        runs.push(load(p).map_err(Failure::bad_input)?);
    }
    triage::chronological(&mut runs);
    let Some(latest) = runs.last() else {
        return Err(Failure::bad_input(anyhow!("no evidence file given")));
    };
    let all = !(a.html || a.junit || a.markdown);
    let mut outputs: Vec<(&str, String)> = Vec::new();
    if all || a.html {
        outputs.push(("report.html", html::html(&runs)));
    }
    if all || a.junit {
        outputs.push(("junit.xml", junit::junit_xml(&[latest])));
    }
    if all || a.markdown {
        outputs.push(("report.md", markdown::markdown(&runs)));
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("create output directory {}", a.out.display()))
        .map_err(Failure::bad_input)?;
    let mut written = Vec::new();
    for (name, text) in &outputs {
        let path = a.out.join(name);
        write_atomic(&path, text.as_bytes())
            .with_context(|| format!("write {}", path.display()))
            .map_err(Failure::bad_input)?;
        written.push(path);
    }
    let t = triage::triage(&runs);
    if a.json {
        let v = serde_json::json!({
            "written": written,
            "runs": runs.len(),
            "triage": t,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(Failure::bad_input)?
        );
        return Ok(EXIT_OK);
    }
    if let Some(t) = &t {
        for w in &t.warnings {
            eprintln!("warning: {w}");
        }
        if t.comparable {
            println!(
                "{} gate(s) changed outcome since the previous run ({} regression(s))",
                t.changes.len(),
                t.changes.iter().filter(|c| c.is_regression()).count()
            );
        }
    }
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(EXIT_OK)
}

/// Reads an evidence file: an apr-qa `evidence.json`, or the incumbent's bare array of records
/// (then scored here, with empty run facts).
fn load(path: &Path) -> anyhow::Result<EvidenceFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON evidence", path.display()))?;
    if value.is_array() {
        let evidence: Vec<Evidence> = serde_json::from_value(value)
            .with_context(|| format!("{}: not an array of evidence records", path.display()))?;
        let summary = Summary::of(&evidence, evidence.iter().map(|e| e.duration_ms).sum());
        return Ok(EvidenceFile {
            schema_version: "bare array".into(),
            mqs: apr_qa::harness::mqs::score(&evidence),
            summary,
            evidence,
            ..EvidenceFile::default()
        });
    }
    let version = value
        .get("schema_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !version.starts_with("apr-qa/evidence/") {
        return Err(anyhow!(
            "{}: not an apr-qa evidence file (schema_version {version:?}, expected {:?})",
            path.display(),
            apr_qa::evidence::SCHEMA_VERSION
        ));
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: invalid evidence file", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = apr_qa::formats::temp_file_beside(path)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
