//! Markdown bug tickets, one per falsified gate family, in the seed tickets' style
//! (DESIGN §3.4): severity in the title, a table of gate / conversion / measured diff /
//! tolerance, an evidence excerpt naming the offending tensor, offset and values, the exact
//! `apr-qa run` command that produced the evidence, and a verification playbook.
//!
//! Invariants:
//! - A family is the gate id's first two dash-separated parts (`F-CONV-G-A`, `F-CONV-RT-001`,
//!   `F-CONV-IDEM-001` → `F-CONV`; `F-ROSETTA-FP-001` → `F-ROSETTA`; `F-EDGE-003` → `F-EDGE`),
//!   except the two-word stems `F-GOLDEN-RULE` and `F-APR-FORMAT`, which keep three ([`family`]).
//! - A ticket is written for a family with at least one Falsified record; Timeout and Crashed
//!   records are failures of the harness run, not refutations, and get no ticket.
//! - The ticket's severity is the highest (P0 first) of its falsified gates.
//! - Everything comes from the evidence file; the source playbook (its recorded path, read only
//!   when its sha256 still matches) only adds the inference settings to the verification
//!   playbook. A run with a fault injected or a test hook active says FAULT INJECTED in the
//!   title and body, and its reproduction command carries `--inject` / `APR_QA_TEST_HOOK=`.
//! - The verification playbook holds only the family's gates of this run, with the tolerance,
//!   time limit and `required` flag in force, the same model and seed; it is checked with
//!   [`Playbook::parse`] before it is returned.

mod verify;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use verify::{source_playbook, verification_playbook};

use crate::evidence::{Evidence, EvidenceFile, Outcome};
use crate::fault::Fault;
use crate::harness::playbook::{Fmt, Playbook};

/// The source playbook of a run, when its file still has the recorded sha256.
pub struct SourcePlaybook {
    /// Its parsed contents.
    pub playbook: Playbook,
    /// Its directory (relative paths in it, e.g. inference references, resolve here).
    pub dir: std::path::PathBuf,
}

/// One ticket: a markdown body and its verification playbook.
#[derive(Clone, Debug)]
pub struct Ticket {
    /// The gate family (`F-CONV`).
    pub family: String,
    /// Highest severity of the family's falsified gates.
    pub severity: String,
    /// File stem (`TICKET-F-CONV`): the ticket is `<stem>.md`, the playbook `<stem>.yaml`.
    pub stem: String,
    /// The falsified gate ids, in evidence order.
    pub falsified: Vec<String>,
    /// The markdown ticket.
    pub markdown: String,
    /// The verification playbook (YAML).
    pub playbook: String,
    /// The reproduction command line.
    pub reproduction: String,
}

const MULTIWORD: [&str; 2] = ["F-GOLDEN-RULE", "F-APR-FORMAT"];

/// The family of a gate id (see the module invariants).
pub fn family(gate_id: &str) -> String {
    if let Some(stem) = MULTIWORD.iter().find(|s| {
        gate_id
            .strip_prefix(**s)
            .is_some_and(|r| r.is_empty() || r.starts_with('-'))
    }) {
        return (*stem).to_string();
    }
    let parts: Vec<&str> = gate_id.splitn(3, '-').collect();
    parts
        .get(..2)
        .map_or_else(|| gate_id.to_string(), |p| p.join("-"))
}

/// Whether the run had a fault injected or a test hook active, and which.
pub fn injected(file: &EvidenceFile) -> Option<String> {
    file.run.inject.clone().or_else(|| {
        file.run
            .test_hook
            .as_ref()
            .map(|h| format!("test-hook {h}"))
    })
}

/// Quotes one shell word when it needs it (single quotes).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@,+-%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The `apr-qa run` command line that reproduces the run, writing to `out_dir`: the hook as an
/// environment prefix, the playbook as run, `--model` for a model file, `--seed`, `--jobs`,
/// `--inject` and `--shard` as recorded.
pub fn reproduction(file: &EvidenceFile, out_dir: &str) -> String {
    let r = &file.run;
    let mut words: Vec<String> = Vec::new();
    if let Some(h) = &r.test_hook {
        words.push(format!("APR_QA_TEST_HOOK={}", shell_quote(h)));
    }
    words.push("apr-qa".into());
    words.push("run".into());
    let pb = r
        .playbook
        .path
        .clone()
        .unwrap_or_else(|| format!("{}.playbook.yaml", r.playbook.name));
    words.push(shell_quote(&pb));
    if !r.model.path.starts_with("synth:") {
        words.push("--model".into());
        words.push(shell_quote(&r.model.path));
    }
    words.push("--seed".into());
    words.push(r.seed.to_string());
    if r.jobs > 0 {
        words.push("--jobs".into());
        words.push(r.jobs.to_string());
    }
    if let Some(f) = r.inject.as_deref().and_then(Fault::from_name) {
        words.push("--inject".into());
        words.push(f.name().to_string());
    }
    if let Some(s) = &r.shard {
        words.push("--shard".into());
        words.push(shell_quote(s));
    }
    words.push("-o".into());
    words.push(shell_quote(out_dir));
    words.join(" ")
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(f)) => format!("{f:.3e}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => compact(other, 80),
    }
}

fn compact(v: &Value, max: usize) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The conversion a record is about: the reason's route prefix, or the pair in the gate id.
fn conversion(e: &Evidence) -> String {
    let prefix = e.reason.split(':').next().unwrap_or_default();
    if prefix.contains("->") || prefix.contains("rewritten") || prefix.contains(" vs ") {
        return prefix.replace("->", "→");
    }
    let parts: Vec<&str> = e.gate_id.split('-').collect();
    match parts.as_slice() {
        ["F", "CONV", a, b] if a.len() == 1 && b.len() == 1 => {
            let name = |l: &str| {
                l.chars()
                    .next()
                    .and_then(Fmt::from_letter)
                    .map_or(l.to_string(), |f| f.ext().to_string())
            };
            format!("{} → {}", name(a), name(b))
        }
        _ => "—".into(),
    }
}

fn tolerance(e: &Evidence) -> Option<f64> {
    e.metrics
        .get("tolerance")
        .or_else(|| e.metadata.get("tolerance"))
        .and_then(Value::as_f64)
}

fn measured(e: &Evidence) -> String {
    let m = &e.metrics;
    let mut parts = Vec::new();
    if let Some(d) = m.get("max_abs_diff") {
        parts.push(format!("max\\|Δ\\| {}", num(d)));
    }
    if let Some(n) = m.get("tensors_differing").and_then(Value::as_u64) {
        parts.push(format!("{n} tensor(s) differ"));
    }
    for key in ["metadata_differences", "disagreements", "missing_tensors"] {
        if let Some(n) = m.get(key).and_then(Value::as_array).map(Vec::len) {
            if n > 0 {
                parts.push(format!("{n} {}", key.replace('_', " ")));
            }
        }
    }
    if parts.is_empty() {
        let r: String = e.reason.chars().take(90).collect();
        return cell(&r);
    }
    parts.join(", ")
}

fn verdict(e: &Evidence) -> String {
    let over = match (
        e.metrics.get("max_abs_diff").and_then(Value::as_f64),
        tolerance(e),
    ) {
        (Some(d), Some(t)) if t > 0.0 && d.is_finite() => {
            format!(" ({:.0}× over tolerance)", d / t)
        }
        (_, Some(0.0)) => " (tolerance 0: any difference refutes)".into(),
        _ => String::new(),
    };
    format!("❌ FALSIFIED{over}")
}

/// The lines of an evidence excerpt: offending tensors with offsets and values, lost or
/// changed metadata keys, disagreements.
pub fn highlights(m: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    tensors_in(&Value::Object(m.clone()), &mut out);
    if let Some(diffs) = m.get("metadata_differences").and_then(Value::as_array) {
        let keys = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
            diffs
                .iter()
                .filter(|d| f(d))
                .filter_map(|d| d.get("key").and_then(Value::as_str))
                .map(|k| format!("`{k}`"))
                .collect()
        };
        let lost = keys(&|d| d.get("output").is_none_or(Value::is_null));
        let added = keys(&|d| d.get("input").is_none_or(Value::is_null));
        let changed = keys(&|d| {
            !d.get("output").is_none_or(Value::is_null)
                && !d.get("input").is_none_or(Value::is_null)
        });
        for (what, ks) in [("lost", lost), ("added", added), ("changed", changed)] {
            if !ks.is_empty() {
                out.push(format!(
                    "metadata key(s) {what} in the output ({}): {}",
                    ks.len(),
                    ks.join(", ")
                ));
            }
        }
    }
    for key in ["missing_tensors", "extra_tensors", "dtype_changes"] {
        if let Some(a) = m
            .get(key)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            out.push(format!(
                "{}: {}",
                key.replace('_', " "),
                compact(&Value::Array(a.clone()), 300)
            ));
        }
    }
    if let Some(a) = m.get("disagreements").and_then(Value::as_array) {
        for d in a.iter().take(5) {
            out.push(format!(
                "disagreement: {}",
                d.as_str().map_or_else(|| compact(d, 200), str::to_string)
            ));
        }
        if a.len() > 5 {
            out.push(format!("… {} more disagreement(s)", a.len() - 5));
        }
    }
    out
}

/// Every object holding a `"tensor"` key, rendered with its other fields.
fn tensors_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(t) = o.get("tensor").and_then(Value::as_str) {
                let rest: Vec<String> = o
                    .iter()
                    .filter(|(k, _)| k.as_str() != "tensor")
                    .map(|(k, v)| format!("{} {}", k.replace('_', " "), compact(v, 80)))
                    .collect();
                out.push(format!("tensor `{t}`: {}", rest.join(", ")));
            }
            o.values().for_each(|x| tensors_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| tensors_in(x, out)),
        _ => {}
    }
}

/// A record with long arrays and strings shortened, for the raw-evidence block.
fn trimmed(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.len() > 4 => {
            let mut t: Vec<Value> = a.iter().take(4).map(trimmed).collect();
            t.push(Value::String(format!("… {} more", a.len() - 4)));
            Value::Array(t)
        }
        Value::Array(a) => Value::Array(a.iter().map(trimmed).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), trimmed(v))).collect()),
        Value::String(s) if s.chars().count() > 160 => {
            Value::String(format!("{}…", s.chars().take(160).collect::<String>()))
        }
        other => other.clone(),
    }
}

/// The record as JSON, one line per field and per metric (long values shortened).
fn raw_record(e: &Evidence) -> String {
    let line =
        |k: &str, v: &Value| format!("{}: {}", Value::String(k.into()), compact(&trimmed(v), 400));
    let mut lines: Vec<String> = vec![
        line("gate_id", &Value::String(e.gate_id.clone())),
        line("scenario", &Value::String(e.scenario.clone())),
        line("outcome", &Value::String(format!("{:?}", e.outcome))),
        line("reason", &Value::String(e.reason.clone())),
    ];
    let metrics: Vec<String> = e
        .metrics
        .iter()
        .map(|(k, v)| format!("    {}", line(k, v)))
        .collect();
    lines.push(format!("\"metrics\": {{\n{}\n  }}", metrics.join(",\n")));
    lines.push(line("timestamp", &Value::String(e.timestamp.clone())));
    format!("{{\n  {}\n}}", lines.join(",\n  "))
}

/// Builds every ticket of `file` (none when nothing was falsified). `src_note`, when given,
/// says why the source playbook could not be used and is printed in each ticket.
pub fn tickets(
    file: &EvidenceFile,
    src: Option<&SourcePlaybook>,
    src_note: Option<&str>,
) -> Result<Vec<Ticket>, String> {
    let mut families: BTreeMap<String, Vec<&Evidence>> = BTreeMap::new();
    for e in &file.evidence {
        families.entry(family(&e.gate_id)).or_default().push(e);
    }
    let mut out = Vec::new();
    for (fam, records) in &families {
        let falsified: Vec<&Evidence> = records
            .iter()
            .copied()
            .filter(|e| e.outcome == Outcome::Falsified)
            .collect();
        let Some(severity) = falsified.iter().map(|e| e.severity.clone()).min() else {
            continue;
        };
        let stem = format!("TICKET-{fam}");
        let repro = reproduction(file, &format!("apr-qa-repro/{fam}"));
        let playbook = verification_playbook(file, fam, records, src)?;
        let markdown = render(file, fam, &severity, records, &falsified, &repro, src_note);
        out.push(Ticket {
            family: fam.clone(),
            severity,
            stem,
            falsified: falsified.iter().map(|e| e.gate_id.clone()).collect(),
            markdown,
            playbook,
            reproduction: repro,
        });
    }
    Ok(out)
}

fn render(
    file: &EvidenceFile,
    fam: &str,
    severity: &str,
    records: &[&Evidence],
    falsified: &[&Evidence],
    repro: &str,
    src_note: Option<&str>,
) -> String {
    let r = &file.run;
    let inj = injected(file);
    let mut s = String::new();
    let tag = if inj.is_some() {
        " [FAULT INJECTED]"
    } else {
        ""
    };
    let first = falsified.first().map_or("", |e| e.reason.as_str());
    let first = if first.chars().count() > 100 {
        let cut: String = first.chars().take(100).collect();
        format!("{}…", cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a))
    } else {
        first.to_string()
    };
    s.push_str(&format!(
        "# [{severity}]{tag} {fam}: {} of {} gates falsified on {} — {first}\n\n",
        falsified.len(),
        records.len(),
        r.playbook.name
    ));
    s.push_str(&format!(
        "**Severity:** {severity} (highest of the family's falsified gates)  \n"
    ));
    if let Some(i) = &inj {
        s.push_str(&format!(
            "**FAULT INJECTED:** `{i}`: a deliberate mutant of the engine, not a bug in it. The \
             ticket shows what the gates report for it.  \n"
        ));
    }
    s.push_str(&format!(
        "**Discovered by:** apr-qa {}{} `run` on {} ({} → {})  \n",
        r.tool_version,
        r.git
            .as_deref()
            .map(|g| format!(" ({g})"))
            .unwrap_or_default(),
        r.host,
        r.started,
        r.finished
    ));
    s.push_str(&format!(
        "**Playbook:** {} (`{}`, sha256 `{}`)  \n",
        r.playbook.name,
        r.playbook.path.as_deref().unwrap_or("path not recorded"),
        r.playbook.sha256
    ));
    s.push_str(&format!(
        "**Model:** `{}` (sha256 `{}`, {} bytes)  \n**Seed:** {} · **Backends:** {}{}\n\n",
        r.model.path,
        r.model.sha256,
        r.model.bytes,
        r.seed,
        r.backends.join(", "),
        r.shard
            .as_deref()
            .map(|x| format!(" · **Shard:** {x}"))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "## Summary\n\n{} of the {} {fam} gates of this run were falsified. Run MQS {:.1}/100 \
         (raw {:.0}/1000), grade {}, status {}.\n\n",
        falsified.len(),
        records.len(),
        file.mqs.normalized,
        file.mqs.raw,
        file.mqs.grade,
        file.mqs.status
    ));
    s.push_str("## Failures\n\n| Gate | Severity | Conversion (scenario; formats) | Measured | Tolerance | Verdict |\n|---|---|---|---|---|---|\n");
    for e in falsified {
        s.push_str(&format!(
            "| {} | {} | {} ({}; {}) | {} | {} | {} |\n",
            e.gate_id,
            e.severity,
            cell(&conversion(e)),
            cell(&e.scenario),
            cell(&e.format),
            measured(e),
            tolerance(e).map_or("—".into(), |t| format!("{t:e}")),
            verdict(e)
        ));
    }
    let others: Vec<String> = records
        .iter()
        .filter(|e| e.outcome != Outcome::Falsified)
        .map(|e| format!("{} ({})", e.gate_id, e.outcome.label()))
        .collect();
    if !others.is_empty() {
        s.push_str(&format!(
            "\nOther {fam} gates of the run: {}.\n",
            others.join(", ")
        ));
    }
    s.push_str("\n## Evidence\n");
    for e in falsified {
        s.push_str(&format!("\n### {}\n\n{}\n\n", e.gate_id, e.reason));
        for h in highlights(&e.metrics) {
            s.push_str(&format!("- {h}\n"));
        }
        s.push_str(&format!(
            "\nRaw evidence from evidence.json:\n\n```json\n{}\n```\n",
            raw_record(e)
        ));
    }
    s.push_str(&format!(
        "\n## Reproduction\n\nThe exact command that produced this evidence (exit 1; the gates \
         above falsified with the same metrics):\n\n```bash\n{repro}\n```\n"
    ));
    if let Some(n) = src_note {
        s.push_str(&format!("\nNote: {n}\n"));
    }
    s.push_str(&format!(
        "\n## Verification\n\n`TICKET-{fam}.yaml` (beside this ticket) runs only the {fam} gates \
         above on the same model and seed, with the same tolerances. The issue is resolved when\n\n\
         ```bash\napr-qa playbook check TICKET-{fam}.yaml\napr-qa run TICKET-{fam}.yaml -o apr-qa-verify/{fam}\n```\n\n\
         exits 0 with every gate corroborated.{}\n\n---\nFiled by `apr-qa ticket` from evidence.json \
         (automated).\n",
        if inj.is_some() {
            " The ticketed run had a fault injected: the clean engine passes it already, and \
             adding the reproduction's `--inject`/`APR_QA_TEST_HOOK` makes it fail."
        } else {
            ""
        }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_as_documented() {
        for (id, fam) in [
            ("F-CONV-G-A", "F-CONV"),
            ("F-CONV-RT-001", "F-CONV"),
            ("F-CONV-IDEM-001", "F-CONV"),
            ("F-ROSETTA-FP-001", "F-ROSETTA"),
            ("F-EDGE-003", "F-EDGE"),
            ("F-GOLDEN-RULE-002", "F-GOLDEN-RULE"),
            ("F-APR-FORMAT-001", "F-APR-FORMAT"),
            ("F-QUANT-GPU-001", "F-QUANT"),
            ("I-3", "I-3"),
        ] {
            assert_eq!(family(id), fam, "{id}");
        }
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("/a/b.yaml"), "/a/b.yaml");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
