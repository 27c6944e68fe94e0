//! JUnit XML: one `<testsuite>` per run, one `<testcase>` per evidence record, in the shape CI
//! systems read (the Jenkins xUnit plugin's `junit-10.xsd`; the test `report::junit_validates`
//! checks it against that schema).
//!
//! Mapping: Corroborated → a bare testcase; Skipped → `<skipped message=reason/>`; Falsified →
//! `<failure type="Falsified" message=reason>` with the metrics as JSON in the body; Timeout and
//! Crashed → `<error type="Timeout"|"Crashed">`. `classname` is the MQS category (the gate
//! family when a record has none), `name` the evidence id (`gate_id/scenario`), `time` seconds
//! with three decimals.
//!
//! Invariant: every string from the evidence is escaped by [`escape`] (markup characters as
//! entities, characters XML 1.0 forbids replaced by U+FFFD), so no record can break the XML.

use std::fmt::Write as _;

use crate::evidence::{Evidence, EvidenceFile, Outcome};

/// Escapes text for XML element content and attribute values (quotes and newlines included),
/// replacing characters that XML 1.0 does not allow with U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Whether XML 1.0 allows `c` (tab, LF and CR are handled by the caller).
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Seconds with three decimals, from milliseconds (the form `junit-10.xsd` accepts).
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The testcase `classname`: the record's MQS category, else its gate family (the id without
/// its last `-` part, e.g. `F-CONV-RT` for `F-CONV-RT-001`).
pub fn classname(e: &Evidence) -> String {
    if !e.category.is_empty() {
        return e.category.clone();
    }
    match e.gate_id.rsplit_once('-') {
        Some((family, _)) if !family.is_empty() => family.to_string(),
        _ => e.gate_id.clone(),
    }
}

/// The whole JUnit document: a `<testsuites>` root with one `<testsuite>` per run.
pub fn junit_xml(runs: &[&EvidenceFile]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = |f: fn(Outcome) -> bool| -> usize {
        runs.iter()
            .map(|r| r.evidence.iter().filter(|e| f(e.outcome)).count())
            .sum()
    };
    let total: usize = runs.iter().map(|r| r.evidence.len()).sum();
    let ms: u64 = runs.iter().map(|r| r.summary.duration_ms).sum();
    let _ = writeln!(
        x,
        "<testsuites name=\"apr-qa\" tests=\"{total}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
        count(|o| o == Outcome::Falsified),
        count(|o| matches!(o, Outcome::Timeout | Outcome::Crashed)),
        seconds(ms)
    );
    for (i, run) in runs.iter().enumerate() {
        suite(&mut x, i, run);
    }
    x.push_str("</testsuites>\n");
    x
}

fn suite(x: &mut String, index: usize, f: &EvidenceFile) {
    let n = |o: Outcome| f.evidence.iter().filter(|e| e.outcome == o).count();
    let r = &f.run;
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" id=\"{index}\" package=\"apr-qa\" tests=\"{}\" failures=\"{}\" \
         errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\" hostname=\"{}\" file=\"{}\">",
        escape(&r.playbook.name),
        f.evidence.len(),
        n(Outcome::Falsified),
        n(Outcome::Timeout) + n(Outcome::Crashed),
        n(Outcome::Skipped),
        seconds(f.summary.duration_ms),
        escape(&r.started),
        escape(&r.host),
        escape(&r.model.path),
    );
    x.push_str("    <properties>\n");
    let mut props: Vec<(&str, String)> = vec![
        ("model.path", r.model.path.clone()),
        ("model.sha256", r.model.sha256.clone()),
        ("model.bytes", r.model.bytes.to_string()),
        ("playbook.sha256", r.playbook.sha256.clone()),
        ("seed", r.seed.to_string()),
        ("backends", r.backends.join(",")),
        ("tool_version", r.tool_version.clone()),
        ("started", r.started.clone()),
        ("finished", r.finished.clone()),
        ("mqs.normalized", format!("{:.1}", f.mqs.normalized)),
        ("mqs.raw", format!("{:.1}", f.mqs.raw)),
        ("mqs.grade", f.mqs.grade.clone()),
        ("mqs.status", f.mqs.status.clone()),
        ("incomplete", r.incomplete.to_string()),
    ];
    if let Some(g) = &r.git {
        props.push(("git", g.clone()));
    }
    if let Some(i) = &r.inject {
        props.push(("fault_injected", i.clone()));
    }
    if let Some(s) = &r.shard {
        props.push(("shard", s.clone()));
    }
    for (k, v) in props {
        let _ = writeln!(
            x,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(k),
            escape(&v)
        );
    }
    x.push_str("    </properties>\n");
    for e in &f.evidence {
        case(x, e);
    }
    x.push_str("  </testsuite>\n");
}

fn case(x: &mut String, e: &Evidence) {
    let _ = write!(
        x,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        escape(&classname(e)),
        escape(&e.id),
        seconds(e.duration_ms)
    );
    let metrics = || serde_json::to_string_pretty(&e.metrics).unwrap_or_default();
    let mut body = String::new();
    match e.outcome {
        Outcome::Corroborated => {}
        Outcome::Skipped => {
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", escape(&e.reason));
        }
        Outcome::Falsified => {
            let text = format!("{}\nmetrics: {}", e.reason, metrics());
            let _ = writeln!(
                body,
                "      <failure type=\"Falsified\" message=\"{}\">{}</failure>",
                escape(&e.reason),
                escape(&text)
            );
        }
        Outcome::Timeout | Outcome::Crashed => {
            let kind = if e.outcome == Outcome::Timeout {
                "Timeout"
            } else {
                "Crashed"
            };
            let mut text = format!("{}\nmetrics: {}", e.reason, metrics());
            if let Some(err) = &e.stderr {
                let _ = write!(text, "\nstderr: {err}");
            }
            let _ = writeln!(
                body,
                "      <error type=\"{kind}\" message=\"{}\">{}</error>",
                escape(&e.reason),
                escape(&text)
            );
        }
    }
    if !e.output.is_empty() {
        let _ = writeln!(body, "      <system-out>{}</system-out>", escape(&e.output));
    }
    if let Some(err) = e.stderr.as_deref().filter(|s| !s.is_empty()) {
        let _ = writeln!(body, "      <system-err>{}</system-err>", escape(err));
    }
    if body.is_empty() {
        x.push_str("/>\n");
    } else {
        x.push_str(">\n");
        x.push_str(&body);
        x.push_str("    </testcase>\n");
    }
}
