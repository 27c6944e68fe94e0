//! Evidence: the plain data every gate returns and every report reads. This doc comment is the
//! `evidence.json` specification (the JSON Schema is `evidence/evidence.schema.json`).
//!
//! ```text
//! { "schema_version": "apr-qa/evidence/1",
//!   "run": { tool_version, git, host, started, finished, playbook{name, sha256, path?},
//!            model{path, sha256, bytes}, seed, backends[], jobs, inject, test_hook?, shard,
//!            incomplete, interrupted },
//!   "summary": { total, corroborated, falsified, skipped, timeout, crashed, duration_ms },
//!   "mqs": { raw, normalized, grade, status, categories{QUAL…}: {max, points, judged, passed,
//!            note}, p0_falsified[] },
//!   "evidence": [ { id, gate_id, scenario, format, backend, category, severity, outcome,
//!                   reason, metrics{…}, duration_ms, output, stderr, exit_code, timestamp,
//!                   host, metadata{…} } ] }
//! ```
//!
//! Field names follow the incumbent's records (`gate_id`, `scenario`, `outcome`, `reason`,
//! `output`, `stderr`, `exit_code`, `timestamp`, `host`, `metadata`) so existing tooling reads
//! them. `outcome` is one of the five [`Outcome`]s; Skipped is never a pass.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The evidence format version written in `schema_version`.
pub const SCHEMA_VERSION: &str = "apr-qa/evidence/1";

/// What came of trying to falsify a gate's hypothesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Tried to falsify the hypothesis and could not.
    Corroborated,
    /// The hypothesis is refuted; the metrics say by how much.
    Falsified,
    /// Not judged (the reason says why). Never counts as a pass.
    Skipped,
    /// The gate ran past its time limit.
    Timeout,
    /// The gate panicked or could not run to a verdict.
    Crashed,
}

impl Outcome {
    /// Whether the gate was judged (Corroborated or Falsified).
    pub fn judged(self) -> bool {
        match self {
            Self::Corroborated | Self::Falsified => true,
            Self::Skipped | Self::Timeout | Self::Crashed => false,
        }
    }
    /// Whether the outcome fails a run (Falsified, Timeout, Crashed).
    pub fn fails(self) -> bool {
        match self {
            Self::Falsified | Self::Timeout | Self::Crashed => true,
            Self::Corroborated | Self::Skipped => false,
        }
    }
    /// Lower-case label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Corroborated => "corroborated",
            Self::Falsified => "falsified",
            Self::Skipped => "skipped",
            Self::Timeout => "timeout",
            Self::Crashed => "crashed",
        }
    }
}

/// One gate's evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable id: `<gate_id>/<scenario>` (deterministic, so reruns can be compared).
    pub id: String,
    /// Gate id from the catalogue.
    pub gate_id: String,
    /// What was tried (e.g. `gguf->apr`, `prompt-1`, `threads-1-vs-2`).
    pub scenario: String,
    /// Format(s) involved.
    #[serde(default)]
    pub format: String,
    /// Backend (`cpu`, `cuda`, `-`).
    #[serde(default)]
    pub backend: String,
    /// MQS category (from the catalogue).
    #[serde(default)]
    pub category: String,
    /// P0…P3 (from the catalogue).
    #[serde(default)]
    pub severity: String,
    /// The verdict.
    pub outcome: Outcome,
    /// Why, in one sentence with the numbers.
    pub reason: String,
    /// The measured numbers (max|Δ|, counts, first differing tensor/offset, ratios…).
    #[serde(default)]
    pub metrics: Map<String, Value>,
    /// Wall time of the gate.
    #[serde(default)]
    pub duration_ms: u64,
    /// Output excerpt (e.g. generated text), never the basis of a verdict.
    #[serde(default)]
    pub output: String,
    /// Error text, when the gate could not judge.
    #[serde(default)]
    pub stderr: Option<String>,
    /// Exit code of a subprocess, when one ran.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// When the gate finished (RFC 3339 UTC).
    #[serde(default)]
    pub timestamp: String,
    /// Host name.
    #[serde(default)]
    pub host: String,
    /// Anything else (tolerance used, fault injected…).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The playbook a run executed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaybookRef {
    /// Playbook name.
    pub name: String,
    /// sha256 of the playbook file's bytes.
    pub sha256: String,
    /// The playbook file as run (absolute when it could be resolved), so a ticket can give the
    /// exact reproduction command. Absent in evidence written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The model a run qualified.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Path as given (synthetic models: the synth spec).
    pub path: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Facts about the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// apr-qa version.
    pub tool_version: String,
    /// git commit of the tool, when known.
    #[serde(default)]
    pub git: Option<String>,
    /// Host name.
    pub host: String,
    /// Start (RFC 3339 UTC).
    pub started: String,
    /// End (RFC 3339 UTC).
    pub finished: String,
    /// Playbook.
    pub playbook: PlaybookRef,
    /// Model.
    pub model: ModelRef,
    /// Seed.
    pub seed: u64,
    /// Backends asked for.
    pub backends: Vec<String>,
    /// Parallel jobs.
    #[serde(default)]
    pub jobs: usize,
    /// The fault injected, if any (evidence of such a run is marked FAULT INJECTED).
    #[serde(default)]
    pub inject: Option<String>,
    /// The raw `APR_QA_TEST_HOOK` value when a test hook was active (tests only), so a ticket
    /// reproduces the run with the same hook. Absent in older evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_hook: Option<String>,
    /// `I/N` when this is one shard of a run.
    #[serde(default)]
    pub shard: Option<String>,
    /// True when required gates were not judged or the run was interrupted.
    #[serde(default)]
    pub incomplete: bool,
    /// True when the run was interrupted (Ctrl-C).
    #[serde(default)]
    pub interrupted: bool,
}

/// Outcome counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Evidence records.
    pub total: usize,
    /// Corroborated.
    pub corroborated: usize,
    /// Falsified.
    pub falsified: usize,
    /// Skipped.
    pub skipped: usize,
    /// Timeout.
    pub timeout: usize,
    /// Crashed.
    pub crashed: usize,
    /// Run wall time.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts the outcomes of `evidence`.
    pub fn of(evidence: &[Evidence], duration_ms: u64) -> Self {
        let mut s = Self {
            total: evidence.len(),
            duration_ms,
            ..Self::default()
        };
        for e in evidence {
            match e.outcome {
                Outcome::Corroborated => s.corroborated += 1,
                Outcome::Falsified => s.falsified += 1,
                Outcome::Skipped => s.skipped += 1,
                Outcome::Timeout => s.timeout += 1,
                Outcome::Crashed => s.crashed += 1,
            }
        }
        s
    }
}

/// One MQS category's score.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    /// Maximum points.
    pub max: f64,
    /// Points earned = max × passed / judged (0 when nothing was judged).
    pub points: f64,
    /// Judged gates (Corroborated + Falsified + Timeout + Crashed).
    pub judged: usize,
    /// Corroborated gates.
    pub passed: usize,
    /// Why the category scored what it did, when it is not plain arithmetic (e.g. nothing judged).
    #[serde(default)]
    pub note: Option<String>,
}

/// The Model Qualification Score.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mqs {
    /// Sum of category points (0–1000).
    pub raw: f64,
    /// 100·log10(1 + 9·raw/1000).
    pub normalized: f64,
    /// Letter grade of `normalized`.
    pub grade: String,
    /// `QUALIFIED`, `NOT QUALIFIED` or `BLOCKED` (a P0 gate falsified).
    pub status: String,
    /// Per category, in the fixed order QUAL, REGR, EDGE, PERF, STAB, COMP.
    pub categories: indexmap::IndexMap<String, CategoryScore>,
    /// P0 gates that were falsified.
    #[serde(default)]
    pub p0_falsified: Vec<String>,
}

/// The whole `evidence.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// Run facts.
    pub run: RunInfo,
    /// Outcome counts.
    pub summary: Summary,
    /// Score.
    pub mqs: Mqs,
    /// One record per (gate, scenario).
    pub evidence: Vec<Evidence>,
}
