//! The self-contained HTML dashboard: one file with inline CSS and inline SVG, no script, no
//! font, image or style from anywhere else (its Content-Security-Policy forbids them).
//!
//! Layout: FAULT INJECTED / INCOMPLETE banners, grade and MQS (normalized and raw) with the
//! status, run facts, category bars, the triage of changes and the MQS trend (several runs),
//! the failing gates first (reason, hypothesis, falsifier, metrics), the gate × format ×
//! backend matrix, then every other gate.
//!
//! Invariant: every string taken from evidence passes through [`escape`] before it reaches the
//! page (evidence is untrusted: a reason may hold markup). Numbers are formatted, never pasted.

use std::fmt::Write as _;

use indexmap::IndexMap;

use super::triage::{self, short_value, side_label, TrendPoint, Triage};
use crate::evidence::{Evidence, EvidenceFile, Outcome};
use crate::harness::catalog::{lookup, CATEGORIES};

/// Longest metrics JSON shown per gate (chars); the evidence file has the rest.
const METRICS_CHARS: usize = 8000;

/// Escapes text for HTML content and attribute values; control characters other than
/// newline and tab become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The colour of an outcome (cells, badges, bars).
pub fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Corroborated => "#2e7d32",
        Outcome::Falsified => "#c62828",
        Outcome::Skipped => "#8a8a8a",
        Outcome::Timeout => "#ef6c00",
        Outcome::Crashed => "#6a1b9a",
    }
}

/// Outcomes from most to least alarming: a matrix cell takes the colour of its worst record.
const SEVERITY_ORDER: [Outcome; 5] = [
    Outcome::Falsified,
    Outcome::Crashed,
    Outcome::Timeout,
    Outcome::Skipped,
    Outcome::Corroborated,
];

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{padding:18px 24px;font-size:26px;font-weight:800;color:#fff;letter-spacing:.5px}
.banner small{display:block;font-size:14px;font-weight:500;letter-spacing:0}
.fault{background:repeating-linear-gradient(45deg,#b71c1c,#b71c1c 18px,#d32f2f 18px,#d32f2f 36px)}
.incomplete{background:#e65100}
.head{display:flex;gap:24px;align-items:center;flex-wrap:wrap}
.grade{font-size:64px;font-weight:800;width:120px;height:120px;border-radius:16px;color:#fff;display:flex;align-items:center;justify-content:center}
.score{font-size:28px;font-weight:700}.score span{font-size:16px;font-weight:400;color:#555}
.status{display:inline-block;padding:4px 12px;border-radius:6px;color:#fff;font-weight:700;margin-top:6px}
.counts span{margin-right:14px}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f3}
.facts td:first-child{font-weight:600;white-space:nowrap}
.facts td{word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.card{background:#fff;border:1px solid #ddd;border-left:6px solid #c62828;border-radius:6px;padding:10px 14px;margin:10px 0}
.card h3{margin:0 0 6px;font-size:16px}
.card .cat{color:#555;font-weight:400;font-size:13px}
.reason{white-space:pre-wrap;word-break:break-word}
pre{background:#f3f3f3;padding:8px;overflow:auto;max-height:360px;font-size:12px;white-space:pre-wrap;word-break:break-all}
.matrix td.cell{color:#fff;text-align:center;font-weight:700;min-width:90px}
.warn{background:#fff3e0;border:1px solid #ffb74d;padding:8px 12px;border-radius:6px;margin:6px 0}
.muted{color:#666}
#triage td:first-child,#gates td:nth-child(2),.matrix td:first-child{white-space:nowrap}
svg text{font-family:system-ui,sans-serif}
";

/// The dashboard of a series (oldest first; the last run is the one reported, the earlier
/// ones give the trend and the triage). Empty input gives a page that says so.
pub fn html(runs: &[EvidenceFile]) -> String {
    let mut h = String::new();
    let title = runs.last().map_or(String::from("no evidence"), |f| {
        format!("{} — grade {}", f.run.playbook.name, f.mqs.grade)
    });
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>apr-qa: {}</title>\n<style>{CSS}</style></head>\n<body>\n",
        escape(&title)
    );
    let Some(f) = runs.last() else {
        h.push_str("<main><h1>apr-qa report</h1><p>No evidence file was given.</p></main>");
        h.push_str("</body></html>\n");
        return h;
    };
    banners(&mut h, f);
    h.push_str("<main>\n");
    headline(&mut h, f);
    facts(&mut h, f);
    category_bars(&mut h, f);
    if let Some(t) = triage::triage(runs) {
        triage_section(&mut h, &t);
        trend_chart(&mut h, &triage::trend(runs));
    }
    failing(&mut h, f);
    matrix(&mut h, f);
    rest(&mut h, f);
    h.push_str("</main>\n</body></html>\n");
    h
}

fn banners(h: &mut String, f: &EvidenceFile) {
    if let Some(fault) = &f.run.inject {
        let _ = writeln!(
            h,
            "<div class=\"banner fault\" id=\"fault-injected\">FAULT INJECTED: {}\
             <small>This run's engine was broken on purpose to prove the gates catch it; \
             its evidence qualifies nothing.</small></div>",
            escape(fault)
        );
    }
    if f.run.incomplete {
        let why = if f.run.interrupted {
            "The run was interrupted"
        } else {
            "Required gates were not judged"
        };
        let _ = writeln!(
            h,
            "<div class=\"banner incomplete\" id=\"incomplete\">INCOMPLETE\
             <small>{why}; the score covers only what was judged.</small></div>"
        );
    }
}

fn grade_colour(grade: &str) -> &'static str {
    match grade.chars().next() {
        Some('A') => "#2e7d32",
        Some('B') => "#689f38",
        Some('C') => "#f9a825",
        Some('D') => "#ef6c00",
        _ => "#c62828",
    }
}

fn status_colour(status: &str) -> &'static str {
    match status {
        "QUALIFIED" => "#2e7d32",
        "BLOCKED" => "#b71c1c",
        _ => "#ef6c00",
    }
}

fn headline(h: &mut String, f: &EvidenceFile) {
    let q = &f.mqs;
    let s = &f.summary;
    let _ = writeln!(
        h,
        "<h1>apr-qa report: {}</h1>\n<div class=\"head\">\
         <div class=\"grade\" id=\"grade\" style=\"background:{}\">{}</div><div>\
         <div class=\"score\" id=\"mqs\">MQS {:.1}<span>/100 normalized</span> · {:.1}\
         <span>/1000 raw</span></div>\
         <div class=\"status\" id=\"status\" style=\"background:{}\">{}</div>",
        escape(&f.run.playbook.name),
        grade_colour(&q.grade),
        escape(&q.grade),
        q.normalized,
        q.raw,
        status_colour(&q.status),
        escape(&q.status)
    );
    let _ = write!(
        h,
        "<p class=\"counts\"><span><b>{}</b> gates</span>",
        s.total
    );
    for (n, o) in [
        (s.corroborated, Outcome::Corroborated),
        (s.falsified, Outcome::Falsified),
        (s.skipped, Outcome::Skipped),
        (s.timeout, Outcome::Timeout),
        (s.crashed, Outcome::Crashed),
    ] {
        let _ = write!(
            h,
            "<span style=\"color:{}\"><b>{n}</b> {}</span>",
            colour(o),
            o.label()
        );
    }
    let _ = write!(h, "<span>{:.1} s</span></p>", s.duration_ms as f64 / 1000.0);
    if !q.p0_falsified.is_empty() {
        let p0: Vec<String> = q.p0_falsified.iter().map(|g| escape(g)).collect();
        let _ = write!(h, "<p><b>P0 falsified:</b> {}</p>", p0.join(", "));
    }
    h.push_str("</div></div>\n");
}

fn facts(h: &mut String, f: &EvidenceFile) {
    let r = &f.run;
    let mut rows: Vec<(&str, String)> = vec![
        ("model", r.model.path.clone()),
        ("model sha256", r.model.sha256.clone()),
        ("model bytes", r.model.bytes.to_string()),
        ("playbook", r.playbook.name.clone()),
        ("playbook sha256", r.playbook.sha256.clone()),
        ("seed", r.seed.to_string()),
        ("backends", r.backends.join(", ")),
        ("jobs", r.jobs.to_string()),
        ("apr-qa", r.tool_version.clone()),
        ("git", r.git.clone().unwrap_or_else(|| "unknown".into())),
        ("host", r.host.clone()),
        ("started", r.started.clone()),
        ("finished", r.finished.clone()),
        ("evidence schema", f.schema_version.clone()),
    ];
    if let Some(s) = &r.shard {
        rows.push(("shard", s.clone()));
    }
    if let Some(i) = &r.inject {
        rows.push(("fault injected", i.clone()));
    }
    h.push_str("<h2>Run</h2>\n<table class=\"facts\" id=\"facts\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><td>{k}</td><td>{}</td></tr>", escape(&v));
    }
    h.push_str("</table>\n");
}

fn category_bars(h: &mut String, f: &EvidenceFile) {
    const W: f64 = 560.0;
    const ROW: f64 = 34.0;
    let height = ROW * CATEGORIES.len() as f64 + 8.0;
    let _ = writeln!(
        h,
        "<h2>Categories</h2>\n<svg id=\"categories\" role=\"img\" width=\"1000\" \
         height=\"{height}\" viewBox=\"0 0 1000 {height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (name, max)) in CATEGORIES.iter().enumerate() {
        let c = f.mqs.categories.get(*name);
        let (points, judged, passed) = c.map_or((0.0, 0, 0), |c| (c.points, c.judged, c.passed));
        let max = c.map_or(*max, |c| c.max);
        let ratio = if max > 0.0 {
            (points / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let fill = if judged == 0 {
            "#9e9e9e"
        } else if ratio >= 0.9 {
            "#2e7d32"
        } else if ratio >= 0.5 {
            "#f9a825"
        } else {
            "#c62828"
        };
        let track = if judged > 0 && ratio < 0.5 {
            "#ffcdd2"
        } else {
            "#e0e0e0"
        };
        let y = 4.0 + ROW * i as f64;
        let note = c.and_then(|c| c.note.as_deref()).unwrap_or("");
        let _ = writeln!(
            h,
            "<g class=\"category\"><title>{name}: {}</title>\
             <text x=\"0\" y=\"{:.1}\" font-size=\"15\" font-weight=\"700\">{name}</text>\
             <rect x=\"70\" y=\"{y:.1}\" width=\"{W}\" height=\"24\" rx=\"4\" fill=\"{track}\"/>\
             <rect x=\"70\" y=\"{y:.1}\" width=\"{:.1}\" height=\"24\" rx=\"4\" fill=\"{fill}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"14\">{points:.1}/{max:.0} points · \
             {passed}/{judged} judged passed {}</text></g>",
            escape(note),
            y + 17.0,
            W * ratio,
            W + 82.0,
            y + 17.0,
            escape(note)
        );
    }
    h.push_str("</svg>\n");
}

fn triage_section(h: &mut String, t: &Triage) {
    let _ = writeln!(
        h,
        "<h2>Changes since the previous run</h2>\n<p class=\"muted\">{} → {}</p>",
        escape(&t.previous_started),
        escape(&t.latest_started)
    );
    for w in &t.warnings {
        let _ = writeln!(h, "<div class=\"warn\">⚠ {}</div>", escape(w));
    }
    if !t.comparable {
        return;
    }
    if t.changes.is_empty() {
        h.push_str("<p id=\"triage\">No gate changed outcome.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"triage\"><tr><th>gate</th><th>before</th><th>after</th>\
         <th>previous reason</th><th>latest reason</th><th>metrics that changed</th></tr>\n",
    );
    for c in &t.changes {
        let badge = |s: &Option<triage::Side>| match s {
            Some(s) => badge(s.outcome),
            None => "<span class=\"badge\" style=\"background:#555\">absent</span>".into(),
        };
        let reason =
            |s: &Option<triage::Side>| s.as_ref().map_or(String::new(), |s| escape(&s.reason));
        let mut metrics = String::new();
        for d in c.metrics.iter().take(8) {
            let _ = write!(
                metrics,
                "<div><b>{}</b>: {} → {}</div>",
                escape(&d.key),
                escape(&short_value(d.before.as_ref(), 60)),
                escape(&short_value(d.after.as_ref(), 60))
            );
        }
        let _ = writeln!(
            h,
            "<tr class=\"change {}\" data-id=\"{}\" data-before=\"{}\" data-after=\"{}\">\
             <td><b>{}</b></td><td>{}</td><td>{}</td><td class=\"reason\">{}</td>\
             <td class=\"reason\">{}</td><td>{metrics}</td></tr>",
            if c.is_regression() {
                "regression"
            } else {
                "improvement"
            },
            escape(&c.id),
            side_label(&c.before),
            side_label(&c.after),
            escape(&c.id),
            badge(&c.before),
            badge(&c.after),
            reason(&c.before),
            reason(&c.after)
        );
    }
    h.push_str("</table>\n");
}

fn trend_chart(h: &mut String, points: &[TrendPoint]) {
    const W: f64 = 760.0;
    const H: f64 = 240.0;
    const L: f64 = 48.0;
    const T: f64 = 16.0;
    const PW: f64 = W - L - 24.0;
    const PH: f64 = H - T - 40.0;
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            L + PW / 2.0
        } else {
            L + PW * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| T + PH * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let _ = writeln!(
        h,
        "<h2>MQS trend</h2>\n<svg id=\"trend\" data-points=\"{n}\" role=\"img\" width=\"{W}\" \
         height=\"{H}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect x=\"{L}\" y=\"{T}\" width=\"{PW}\" height=\"{PH}\" fill=\"#fff\" stroke=\"#ccc\"/>"
    );
    for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let _ = write!(
            h,
            "<line x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.0}</text>",
            L + PW,
            y(v),
            y(v),
            L - 6.0,
            y(v) + 4.0
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.normalized)))
        .collect();
    let _ = write!(
        h,
        "<polyline class=\"trend-line\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2.5\" \
         points=\"{}\"/>",
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let fill = if p.inject.is_some() {
            "#b71c1c"
        } else {
            grade_colour(&p.grade)
        };
        let fault = p
            .inject
            .as_deref()
            .map_or(String::new(), |i| format!(", FAULT INJECTED {}", escape(i)));
        let _ = write!(
            h,
            "<circle class=\"trend-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{fill}\">\
             <title>{}: MQS {:.1} (raw {:.0}), {} {}, {}/{} failed{fault}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{:.1} {}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" \
             fill=\"#555\">{}</text>",
            x(i),
            y(p.normalized),
            escape(&p.started),
            p.normalized,
            p.raw,
            escape(&p.grade),
            escape(&p.status),
            p.failed,
            p.total,
            x(i),
            y(p.normalized) - 9.0,
            p.normalized,
            escape(&p.grade),
            x(i),
            T + PH + 16.0,
            escape(p.started.get(..16).unwrap_or(&p.started))
        );
    }
    h.push_str("</svg>\n");
}

fn badge(o: Outcome) -> String {
    format!(
        "<span class=\"badge\" style=\"background:{}\">{}</span>",
        colour(o),
        o.label()
    )
}

fn metrics_json(e: &Evidence) -> String {
    let s = serde_json::to_string_pretty(&e.metrics).unwrap_or_default();
    if s.chars().count() <= METRICS_CHARS {
        escape(&s)
    } else {
        let cut: String = s.chars().take(METRICS_CHARS).collect();
        format!("{}\n… (cut; the evidence file has the rest)", escape(&cut))
    }
}

fn failing(h: &mut String, f: &EvidenceFile) {
    let bad: Vec<&Evidence> = f.evidence.iter().filter(|e| e.outcome.fails()).collect();
    let _ = writeln!(
        h,
        "<h2>Falsified and failed gates ({})</h2>\n<section id=\"falsified\">",
        bad.len()
    );
    if bad.is_empty() {
        h.push_str("<p>No gate was falsified, timed out or crashed.</p>\n");
    }
    for e in bad {
        let def = lookup(&e.gate_id);
        let _ = write!(
            h,
            "<div class=\"card gate\" data-id=\"{}\" style=\"border-left-color:{}\">\
             <h3>{} {} <span class=\"cat\">{} · {} · {} · {} · {} ms</span></h3>\
             <div class=\"reason\">{}</div>",
            escape(&e.id),
            colour(e.outcome),
            badge(e.outcome),
            escape(&e.id),
            escape(&e.category),
            escape(&e.severity),
            escape(&e.format),
            escape(&e.backend),
            e.duration_ms,
            escape(&e.reason)
        );
        if let Some(d) = def {
            let _ = write!(
                h,
                "<p><b>Hypothesis:</b> {}<br><b>Falsifier:</b> {}</p>",
                escape(&d.hypothesis),
                escape(&d.falsifier)
            );
        }
        if let Some(err) = e.stderr.as_deref().filter(|s| !s.is_empty()) {
            let _ = write!(h, "<p><b>stderr:</b></p><pre>{}</pre>", escape(err));
        }
        let _ = writeln!(
            h,
            "<details open><summary>metrics</summary><pre>{}</pre></details></div>",
            metrics_json(e)
        );
    }
    h.push_str("</section>\n");
}

fn matrix(h: &mut String, f: &EvidenceFile) {
    let mut columns: IndexMap<(&str, &str), ()> = IndexMap::new();
    let mut rows: IndexMap<&str, Vec<&Evidence>> = IndexMap::new();
    for e in &f.evidence {
        columns.insert((e.format.as_str(), e.backend.as_str()), ());
        rows.entry(e.gate_id.as_str()).or_default().push(e);
    }
    h.push_str(
        "<h2>Gate × format × backend</h2>\n<table class=\"matrix\" id=\"matrix\"><tr><th>gate</th>",
    );
    for (format, backend) in columns.keys() {
        let _ = write!(
            h,
            "<th>{}<br><span class=\"muted\">{}</span></th>",
            escape(if format.is_empty() { "—" } else { format }),
            escape(if backend.is_empty() { "—" } else { backend })
        );
    }
    h.push_str("</tr>\n");
    for (gate, records) in &rows {
        let _ = write!(h, "<tr><td><b>{}</b></td>", escape(gate));
        for (format, backend) in columns.keys() {
            let here: Vec<&&Evidence> = records
                .iter()
                .filter(|e| e.format == *format && e.backend == *backend)
                .collect();
            let Some(worst) = SEVERITY_ORDER
                .iter()
                .find(|o| here.iter().any(|e| e.outcome == **o))
            else {
                h.push_str("<td class=\"muted\">·</td>");
                continue;
            };
            let title: Vec<String> = here
                .iter()
                .map(|e| format!("{}: {}", e.scenario, e.outcome.label()))
                .collect();
            let ok = here
                .iter()
                .filter(|e| e.outcome == Outcome::Corroborated)
                .count();
            let _ = write!(
                h,
                "<td class=\"cell\" data-outcome=\"{}\" style=\"background:{}\" title=\"{}\">\
                 {}{}</td>",
                worst.label(),
                colour(*worst),
                escape(&title.join("\n")),
                worst.label(),
                if here.len() > 1 {
                    format!(" {ok}/{}", here.len())
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn rest(h: &mut String, f: &EvidenceFile) {
    let others: Vec<&Evidence> = f.evidence.iter().filter(|e| !e.outcome.fails()).collect();
    let _ = writeln!(
        h,
        "<h2>Other gates ({})</h2>\n<table id=\"gates\"><tr><th>outcome</th><th>gate</th>\
         <th>category</th><th>severity</th><th>ms</th><th>reason</th><th>metrics</th></tr>",
        others.len()
    );
    for e in others {
        let _ = writeln!(
            h,
            "<tr class=\"gate\" data-id=\"{}\"><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"reason\">{}</td><td><details><summary>{} keys</summary>\
             <pre>{}</pre></details></td></tr>",
            escape(&e.id),
            badge(e.outcome),
            escape(&e.id),
            escape(&e.category),
            escape(&e.severity),
            e.duration_ms,
            escape(&e.reason),
            e.metrics.len(),
            metrics_json(e)
        );
    }
    h.push_str("</table>\n");
}
