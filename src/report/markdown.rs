//! Markdown report for CI job summaries (GitHub `$GITHUB_STEP_SUMMARY`, GitLab, …).
//!
//! Layout: headline (grade, MQS normalized and raw, status, outcome counts, FAULT INJECTED /
//! INCOMPLETE when so), the category table, the triage (gates whose outcome changed since the
//! previous run, when several runs are given), the trend, the failing gates with their reason,
//! then a compact table of every gate.
//!
//! Invariant: every string from the evidence goes through [`cell`] or [`text`], which escape
//! markup (HTML and markdown), so a hostile reason renders as text.

use std::fmt::Write as _;

use super::triage::{self, short_value, side_label, Triage};
use crate::evidence::{Evidence, EvidenceFile, Outcome};
use crate::harness::catalog::CATEGORIES;

/// Longest reason shown in the all-gates table (chars); the failing-gates list shows it whole.
const REASON_CHARS: usize = 160;

/// Escapes untrusted text for markdown prose: HTML markup as entities, markdown punctuation
/// with a backslash, line breaks as spaces.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// [`text`] cut to `max` characters (before escaping), for table cells.
pub fn cell(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        text(s)
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{}…", text(&cut))
    }
}

fn icon(o: Outcome) -> &'static str {
    match o {
        Outcome::Corroborated => "✅",
        Outcome::Falsified => "❌",
        Outcome::Skipped => "⏭️",
        Outcome::Timeout => "⏱️",
        Outcome::Crashed => "💥",
    }
}

/// The markdown report of a series (oldest first; the last run is the one reported). Empty
/// input gives an empty string.
pub fn markdown(runs: &[EvidenceFile]) -> String {
    let Some(f) = runs.last() else {
        return String::new();
    };
    let mut m = String::new();
    headline(&mut m, f);
    categories(&mut m, f);
    if let Some(t) = triage::triage(runs) {
        triage_section(&mut m, &t);
        trend_section(&mut m, runs);
    }
    failing(&mut m, f);
    all_gates(&mut m, f);
    m
}

fn headline(m: &mut String, f: &EvidenceFile) {
    let r = &f.run;
    let q = &f.mqs;
    let _ = writeln!(
        m,
        "## apr-qa: {} — grade {} · MQS {:.1}/100 (raw {:.0}/1000) · {}\n",
        text(&r.playbook.name),
        text(&q.grade),
        q.normalized,
        q.raw,
        text(&q.status)
    );
    if let Some(fault) = &r.inject {
        let _ = writeln!(
            m,
            "> [!CAUTION]\n> **FAULT INJECTED: {}** — this run's engine was broken on purpose; \
             its evidence qualifies nothing.\n",
            text(fault)
        );
    }
    if r.incomplete {
        let why = if r.interrupted {
            "the run was interrupted"
        } else {
            "required gates were not judged"
        };
        let _ = writeln!(
            m,
            "> [!WARNING]\n> **INCOMPLETE** — {why}; the score covers only what was judged.\n"
        );
    }
    let s = &f.summary;
    let _ = writeln!(
        m,
        "{} gates: {} corroborated, {} falsified, {} skipped, {} timeout, {} crashed in {:.1} s  ",
        s.total,
        s.corroborated,
        s.falsified,
        s.skipped,
        s.timeout,
        s.crashed,
        s.duration_ms as f64 / 1000.0
    );
    if !q.p0_falsified.is_empty() {
        let p0: Vec<String> = q.p0_falsified.iter().map(|g| text(g)).collect();
        let _ = writeln!(m, "P0 falsified (BLOCKED): {}  ", p0.join(", "));
    }
    let _ = writeln!(
        m,
        "Model {} (sha256 {}, {} bytes) · playbook {} · seed {} · apr-qa {} on {} · {} → {}\n",
        text(&r.model.path),
        text(r.model.sha256.get(..16).unwrap_or(&r.model.sha256)),
        r.model.bytes,
        text(&r.playbook.name),
        r.seed,
        text(&r.tool_version),
        text(&r.host),
        text(&r.started),
        text(&r.finished)
    );
}

fn categories(m: &mut String, f: &EvidenceFile) {
    m.push_str("| category | points | max | judged | passed | note |\n");
    m.push_str("|---|---:|---:|---:|---:|---|\n");
    for (name, max) in CATEGORIES {
        let (points, judged, passed, note) = match f.mqs.categories.get(name) {
            Some(c) => (
                c.points,
                c.judged,
                c.passed,
                c.note.clone().unwrap_or_default(),
            ),
            None => (0.0, 0, 0, "absent from the evidence".into()),
        };
        let _ = writeln!(
            m,
            "| {name} | {points:.1} | {max:.0} | {judged} | {passed} | {} |",
            cell(&note, 120)
        );
    }
    m.push('\n');
}

fn triage_section(m: &mut String, t: &Triage) {
    let _ = writeln!(
        m,
        "### Changes since the previous run ({} → {})\n",
        text(&t.previous_started),
        text(&t.latest_started)
    );
    for w in &t.warnings {
        let _ = writeln!(m, "> ⚠️ {}\n", text(w));
    }
    if !t.comparable {
        return;
    }
    if t.changes.is_empty() {
        m.push_str("No gate changed outcome.\n\n");
        return;
    }
    m.push_str("| | gate | before | after | previous reason | latest reason | metrics changed |\n");
    m.push_str("|---|---|---|---|---|---|---|\n");
    for c in &t.changes {
        let reason =
            |s: &Option<triage::Side>| s.as_ref().map_or(String::new(), |s| s.reason.clone());
        let metrics: Vec<String> = c
            .metrics
            .iter()
            .take(6)
            .map(|d| {
                format!(
                    "{}: {} → {}",
                    d.key,
                    short_value(d.before.as_ref(), 40),
                    short_value(d.after.as_ref(), 40)
                )
            })
            .collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            if c.is_regression() { "🔻" } else { "🔺" },
            text(&c.id),
            side_label(&c.before),
            side_label(&c.after),
            cell(&reason(&c.before), REASON_CHARS),
            cell(&reason(&c.after), REASON_CHARS),
            cell(&metrics.join("; "), 300)
        );
    }
    m.push('\n');
}

fn trend_section(m: &mut String, runs: &[EvidenceFile]) {
    m.push_str("### Trend\n\n| run started | MQS | raw | grade | status | failed | fault |\n");
    m.push_str("|---|---:|---:|---|---|---:|---|\n");
    for p in triage::trend(runs) {
        let _ = writeln!(
            m,
            "| {} | {:.1} | {:.0} | {} | {} | {}/{} | {} |",
            text(&p.started),
            p.normalized,
            p.raw,
            text(&p.grade),
            text(&p.status),
            p.failed,
            p.total,
            text(p.inject.as_deref().unwrap_or(""))
        );
    }
    m.push('\n');
}

fn failing(m: &mut String, f: &EvidenceFile) {
    let bad: Vec<&Evidence> = f.evidence.iter().filter(|e| e.outcome.fails()).collect();
    if bad.is_empty() {
        m.push_str("### No gate falsified\n\n");
        return;
    }
    let _ = writeln!(m, "### Falsified / failed gates ({})\n", bad.len());
    for e in bad {
        let _ = writeln!(
            m,
            "- {} **{}** ({}, {}, {}): {}",
            icon(e.outcome),
            text(&e.id),
            text(&e.category),
            text(&e.severity),
            e.outcome.label(),
            text(&e.reason)
        );
    }
    m.push('\n');
}

fn all_gates(m: &mut String, f: &EvidenceFile) {
    m.push_str("<details><summary>All gates</summary>\n\n");
    m.push_str("| | gate | category | severity | ms | reason |\n|---|---|---|---|---:|---|\n");
    let order = |e: &&Evidence| !e.outcome.fails();
    let mut rows: Vec<&Evidence> = f.evidence.iter().collect();
    rows.sort_by_key(order);
    for e in rows {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            icon(e.outcome),
            text(&e.id),
            text(&e.category),
            text(&e.severity),
            e.duration_ms,
            cell(&e.reason, REASON_CHARS)
        );
    }
    m.push_str("\n</details>\n");
}
