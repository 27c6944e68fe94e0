//! Regression triage and trends across several evidence files of one playbook and model.
//!
//! A series is a list of runs ordered by `run.started` (oldest first, [`chronological`]); the
//! last run is the one reported and the earlier ones give the trend. [`triage`] compares the
//! last run with the one before it, gate by gate (by evidence `id`), and lists every gate whose
//! outcome changed, with both outcomes, both reasons and the metrics whose values differ.
//!
//! Invariants: nothing here recomputes a score (the MQS is read from each file); runs of
//! different playbooks or models are never compared gate by gate (the triage says why
//! instead, in [`Triage::warnings`] with [`Triage::comparable`] false).

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::evidence::{Evidence, EvidenceFile, Outcome};

/// Sorts runs oldest first by `run.started` (RFC 3339 UTC strings sort as time); runs with the
/// same start keep the order they were given in.
pub fn chronological(runs: &mut [EvidenceFile]) {
    runs.sort_by(|a, b| a.run.started.cmp(&b.run.started));
}

/// One side of a change: a gate's verdict in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// The verdict.
    pub outcome: Outcome,
    /// The gate's reason (the measured values in words).
    pub reason: String,
}

/// A metric whose value differs between the two runs (absent on one side: `None`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricDelta {
    /// Metric name (top-level key of `metrics`).
    pub key: String,
    /// Value in the previous run.
    pub before: Option<Value>,
    /// Value in the latest run.
    pub after: Option<Value>,
}

/// A gate whose outcome changed between the previous and the latest run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Evidence id (`gate_id/scenario`).
    pub id: String,
    /// Gate id.
    pub gate_id: String,
    /// MQS category (from the latest record, else the previous one).
    pub category: String,
    /// Severity (from the latest record, else the previous one).
    pub severity: String,
    /// The previous run's verdict (`None`: the gate was not in that run).
    pub before: Option<Side>,
    /// The latest run's verdict (`None`: the gate is not in the latest run).
    pub after: Option<Side>,
    /// Metrics whose values differ, in the latest record's key order.
    pub metrics: Vec<MetricDelta>,
}

impl Change {
    /// True when the gate got worse: it now fails (Falsified, Timeout, Crashed) and did not
    /// before, or it was judged before and no longer is (skipped or gone).
    pub fn is_regression(&self) -> bool {
        let failed = |s: &Option<Side>| s.as_ref().is_some_and(|s| s.outcome.fails());
        let judged = |s: &Option<Side>| s.as_ref().is_some_and(|s| s.outcome.judged());
        (failed(&self.after) && !failed(&self.before))
            || (judged(&self.before) && !judged(&self.after) && !failed(&self.after))
    }
}

/// The comparison of the latest run with the previous one.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Triage {
    /// `run.started` of the previous run.
    pub previous_started: String,
    /// `run.started` of the latest run.
    pub latest_started: String,
    /// False when the two runs are of different playbooks or models: then `changes` is empty.
    pub comparable: bool,
    /// What makes the comparison doubtful or impossible (different playbook, model, fault…).
    pub warnings: Vec<String>,
    /// Gates whose outcome changed: regressions first, then the others, each group in the
    /// latest run's evidence order (gates only in the previous run last).
    pub changes: Vec<Change>,
}

/// Why two runs cannot be compared gate by gate (different playbook or model), or what makes
/// the comparison doubtful (playbook file edited, a fault injected in one of them). The bool
/// is false when they must not be compared.
pub fn compatibility(previous: &EvidenceFile, latest: &EvidenceFile) -> (bool, Vec<String>) {
    let (p, l) = (&previous.run, &latest.run);
    let mut warnings = Vec::new();
    let mut comparable = true;
    if p.playbook.name != l.playbook.name {
        comparable = false;
        warnings.push(format!(
            "different playbooks: {:?} (started {}) vs {:?} (started {}); gates not compared",
            p.playbook.name, p.started, l.playbook.name, l.started
        ));
    } else if p.playbook.sha256 != l.playbook.sha256 {
        warnings.push(format!(
            "playbook {:?} was edited between the runs (sha256 {} vs {})",
            l.playbook.name,
            short(&p.playbook.sha256),
            short(&l.playbook.sha256)
        ));
    }
    if p.model.sha256 != l.model.sha256 || p.model.path != l.model.path {
        comparable = false;
        warnings.push(format!(
            "different models: {} (sha256 {}) vs {} (sha256 {}); gates not compared",
            p.model.path,
            short(&p.model.sha256),
            l.model.path,
            short(&l.model.sha256)
        ));
    }
    if p.inject != l.inject {
        let name = |i: &Option<String>| i.clone().unwrap_or_else(|| "none".into());
        warnings.push(format!(
            "fault injected differs: {} (previous) vs {} (latest); changes may be the fault's",
            name(&p.inject),
            name(&l.inject)
        ));
    }
    if p.shard != l.shard {
        warnings.push(format!(
            "shards differ: {} vs {}; gates missing from one side show as added/removed",
            p.shard.as_deref().unwrap_or("whole run"),
            l.shard.as_deref().unwrap_or("whole run")
        ));
    }
    (comparable, warnings)
}

/// First 12 hex digits of a sha256, for messages.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Compares the last two runs of `runs` (ordered oldest first). `None` with fewer than two.
pub fn triage(runs: &[EvidenceFile]) -> Option<Triage> {
    let [.., previous, latest] = runs else {
        return None;
    };
    let (comparable, mut warnings) = compatibility(previous, latest);
    let earlier = runs.len().saturating_sub(2);
    for f in runs.iter().take(earlier) {
        let (same, _) = compatibility(f, latest);
        if !same {
            warnings.push(format!(
                "run started {} is of playbook {:?} on {}, not the latest run's: its trend point \
                 is not comparable",
                f.run.started, f.run.playbook.name, f.run.model.path
            ));
        }
    }
    let mut t = Triage {
        previous_started: previous.run.started.clone(),
        latest_started: latest.run.started.clone(),
        comparable,
        warnings,
        changes: Vec::new(),
    };
    if comparable {
        t.changes = changes(&previous.evidence, &latest.evidence);
    }
    Some(t)
}

/// Every gate (by evidence id) whose outcome differs between `previous` and `latest`,
/// regressions first. A record present on only one side counts as changed.
pub fn changes(previous: &[Evidence], latest: &[Evidence]) -> Vec<Change> {
    let before = by_id(previous);
    let after = by_id(latest);
    let mut out: Vec<Change> = Vec::new();
    for (id, a) in &after {
        let b = before.get(id).copied();
        if b.map(|b| b.outcome) != Some(a.outcome) {
            out.push(change(b, Some(a)));
        }
    }
    for (id, b) in &before {
        if !after.contains_key(id) {
            out.push(change(Some(b), None));
        }
    }
    // Stable: keeps the evidence order within each group.
    out.sort_by_key(|c| !c.is_regression());
    out
}

fn by_id(records: &[Evidence]) -> IndexMap<&str, &Evidence> {
    let mut map = IndexMap::new();
    for e in records {
        map.entry(e.id.as_str()).or_insert(e);
    }
    map
}

fn change(before: Option<&Evidence>, after: Option<&Evidence>) -> Change {
    let side = |e: Option<&Evidence>| {
        e.map(|e| Side {
            outcome: e.outcome,
            reason: e.reason.clone(),
        })
    };
    let any = after.or(before);
    let pick = |f: fn(&Evidence) -> &String| any.map(f).cloned().unwrap_or_default();
    Change {
        id: pick(|e| &e.id),
        gate_id: pick(|e| &e.gate_id),
        category: pick(|e| &e.category),
        severity: pick(|e| &e.severity),
        before: side(before),
        after: side(after),
        metrics: metric_deltas(before, after),
    }
}

/// The top-level metrics whose values differ (latest key order, then keys only in previous).
fn metric_deltas(before: Option<&Evidence>, after: Option<&Evidence>) -> Vec<MetricDelta> {
    let empty = serde_json::Map::new();
    let b = before.map_or(&empty, |e| &e.metrics);
    let a = after.map_or(&empty, |e| &e.metrics);
    let mut out = Vec::new();
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.push(MetricDelta {
                key: k.clone(),
                before: b.get(k).cloned(),
                after: Some(v.clone()),
            });
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(MetricDelta {
                key: k.clone(),
                before: Some(v.clone()),
                after: None,
            });
        }
    }
    out
}

/// One run's point on the trend: what its evidence file says about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrendPoint {
    /// `run.started`.
    pub started: String,
    /// Normalized MQS (0–100).
    pub normalized: f64,
    /// Raw MQS (0–1000).
    pub raw: f64,
    /// Letter grade.
    pub grade: String,
    /// Status (QUALIFIED, NOT QUALIFIED, BLOCKED).
    pub status: String,
    /// Gates that failed (Falsified + Timeout + Crashed).
    pub failed: usize,
    /// Evidence records.
    pub total: usize,
    /// The fault injected in that run, if any.
    pub inject: Option<String>,
    /// Whether that run was incomplete.
    pub incomplete: bool,
}

/// The trend of a series (one point per run, in the given order).
pub fn trend(runs: &[EvidenceFile]) -> Vec<TrendPoint> {
    runs.iter()
        .map(|f| TrendPoint {
            started: f.run.started.clone(),
            normalized: f.mqs.normalized,
            raw: f.mqs.raw,
            grade: f.mqs.grade.clone(),
            status: f.mqs.status.clone(),
            failed: f.evidence.iter().filter(|e| e.outcome.fails()).count(),
            total: f.evidence.len(),
            inject: f.run.inject.clone(),
            incomplete: f.run.incomplete,
        })
        .collect()
}

/// A JSON value in one short line for tables: strings bare, long values cut at `max` chars.
pub fn short_value(v: Option<&Value>, max: usize) -> String {
    let s = match v {
        None => return "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if s.chars().count() <= max {
        s
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The label of an optional side: the outcome, or `absent`.
pub fn side_label(s: &Option<Side>) -> &'static str {
    s.as_ref().map_or("absent", |s| s.outcome.label())
}
