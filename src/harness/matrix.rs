//! The fault kill matrix (`apr-qa faults --matrix PLAYBOOK`): the playbook run clean and once
//! per fault, each run a subprocess of the `apr-qa` binary (`apr-qa run --no-progress --inject
//! FAULT`), so one fault's panic, abort or hang cannot poison the other runs.
//!
//! Invariants:
//! - A fault is KILLED only by a gate that is Falsified in the fault's run, Corroborated in the
//!   clean run, and not a known clean failure. Crashed, Timeout and Skipped never kill, and a
//!   gate that does not pass clean proves nothing about a fault.
//! - The clean run goes first and alone (timing gates judge an unloaded machine); the fault runs
//!   follow, `parallel` at a time. A run past `run_timeout` is killed and kills nothing.
//! - Run `R` (`clean` or the fault's name) writes `DIR/R/evidence.json` (the child writes it
//!   atomically; a stale one is removed first) and `DIR/R/run.log` (its stdout and stderr);
//!   `DIR/matrix.json` is written atomically once every run has ended.
//! - Known clean failures: gates a playbook is known to falsify on a clean run for reasons that
//!   have nothing to do with faults (F-PERF-001 against `cp` on a busy 2-core host). Their clean
//!   failures are listed under `clean.known_failures` instead of `false_positives` (so they do not
//!   fail the matrix, and are not hidden either), and they never count as killers.
//! - The matrix passes when the clean run corroborates every gate but the known ones and every
//!   fault is killed.

mod child;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::executor::{host, now_utc, write_atomic};
use super::run::{EXIT_FAIL, EXIT_INCOMPLETE, EXIT_PASS};
use crate::evidence::{EvidenceFile, Outcome};
use crate::fault::Fault;
use child::{not_run, run_one, tail};

/// The `matrix.json` format version written in `schema_version`.
pub const MATRIX_SCHEMA_VERSION: &str = "apr-qa/matrix/1";
/// The name (and directory) of the clean run.
pub const CLEAN: &str = "clean";
/// How long an interrupted run may take to wind down before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);
/// Longest reason kept per gate in `matrix.json` (the evidence files keep the whole text).
const REASON_CHARS: usize = 300;

/// Options of a matrix run.
pub struct MatrixOptions {
    /// The `apr-qa` binary each run executes (the CLI passes `std::env::current_exe()`).
    pub exe: PathBuf,
    /// The playbook.
    pub playbook: PathBuf,
    /// Where `matrix.json` and the run directories go.
    pub out_dir: PathBuf,
    /// Model path overriding the playbook's (`run --model`).
    pub model: Option<PathBuf>,
    /// The faults to inject, one run each.
    pub faults: Vec<Fault>,
    /// Canonical ids of gates known to fail clean (see the module doc).
    pub known_clean_failures: Vec<String>,
    /// Fault runs at a time (at least 1).
    pub parallel: usize,
    /// Wall-time limit of one run; past it the child is killed.
    pub run_timeout: Duration,
    /// Set by Ctrl-C: no new run starts, running ones get a grace period.
    pub interrupted: Arc<AtomicBool>,
    /// Called as each run ends.
    pub on_done: Box<dyn Fn(&RunRecord) + Send + Sync>,
}

/// A matrix that could not run (bad playbook, model or binary): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MatrixError(pub String);

/// One gate's outcome in one run: the worst of its evidence records (Falsified, then Crashed,
/// Timeout, Skipped, Corroborated), with that record's reason unless it is Corroborated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// Canonical gate id.
    pub gate_id: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The reason, for gates not corroborated (cut to a few hundred characters; the evidence
    /// file has it whole).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One subprocess run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `clean` or the fault's name.
    pub name: String,
    /// The fault injected, if any.
    pub inject: Option<String>,
    /// The evidence file, relative to the matrix directory, when the run wrote one.
    pub evidence: Option<String>,
    /// The child's exit code (None: killed by a signal or never started).
    pub exit_code: Option<i32>,
    /// Wall time.
    pub duration_ms: u64,
    /// Why the run has no verdicts (timed out, killed, no evidence), if so.
    pub error: Option<String>,
    /// Every gate the run judged, in evidence order.
    pub gates: Vec<String>,
    /// The gates of `gates` not Corroborated, with their outcome and reason (the others were).
    pub not_corroborated: Vec<GateResult>,
}

impl RunRecord {
    /// A record with no verdicts yet.
    pub fn new(name: &str, inject: Option<Fault>) -> Self {
        Self {
            name: name.to_string(),
            inject: inject.map(|f| f.name().to_string()),
            evidence: None,
            exit_code: None,
            duration_ms: 0,
            error: None,
            gates: Vec::new(),
            not_corroborated: Vec::new(),
        }
    }

    /// Records per-gate results (as [`gate_results`] gives them).
    pub fn set_results(&mut self, results: Vec<GateResult>) {
        self.gates = results.iter().map(|g| g.gate_id.clone()).collect();
        self.not_corroborated = results
            .into_iter()
            .filter(|g| g.outcome != Outcome::Corroborated)
            .collect();
    }

    /// The outcome of `gate` in this run (None: not judged by it).
    pub fn outcome(&self, gate: &str) -> Option<Outcome> {
        match self.not_corroborated.iter().find(|g| g.gate_id == gate) {
            Some(g) => Some(g.outcome),
            None if self.gates.iter().any(|g| g == gate) => Some(Outcome::Corroborated),
            None => None,
        }
    }
}

/// The clean run and what it says about the playbook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CleanResult {
    /// The run.
    pub run: RunRecord,
    /// Gates not corroborated clean (false positives, or gates that could not judge).
    pub false_positives: Vec<GateResult>,
    /// Known clean failures that did fail clean.
    pub known_failures: Vec<GateResult>,
}

/// One fault's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
    /// The fault's catalogue name.
    pub fault: String,
    /// What the mutant does.
    pub description: String,
    /// Whether some gate killed it.
    pub killed: bool,
    /// The gates that killed it (Falsified here, Corroborated clean, not known clean failures);
    /// their reasons are in `run.not_corroborated`.
    pub killers: Vec<String>,
    /// Gates Falsified here that did not pass clean (or are known clean failures): not counted.
    pub discounted: Vec<String>,
    /// The run.
    pub run: RunRecord,
}

/// Totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixSummary {
    /// Gates of the playbook (as judged by the clean run).
    pub gates: usize,
    /// Faults run.
    pub faults: usize,
    /// Faults killed.
    pub killed: usize,
    /// Faults not killed.
    pub survived: Vec<String>,
    /// Gates not corroborated clean, known ones excepted.
    pub false_positives: Vec<String>,
    /// Known clean failures that failed clean.
    pub known_clean_failures: Vec<String>,
}

/// The whole `matrix.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// [`MATRIX_SCHEMA_VERSION`].
    pub schema_version: String,
    /// apr-qa version.
    pub tool_version: String,
    /// Host name.
    pub host: String,
    /// Start (RFC 3339 UTC).
    pub started: String,
    /// End (RFC 3339 UTC).
    pub finished: String,
    /// The playbook path as given.
    pub playbook: String,
    /// The model override, if any.
    pub model: Option<String>,
    /// Gates declared known clean failures.
    pub known_clean_failures: Vec<String>,
    /// The playbook's gates, in the clean run's order.
    pub gates: Vec<String>,
    /// The clean run.
    pub clean: CleanResult,
    /// One entry per fault, in the order asked.
    pub faults: Vec<FaultResult>,
    /// Totals.
    pub summary: MatrixSummary,
    /// True when Ctrl-C stopped the matrix early.
    pub interrupted: bool,
    /// Clean run corroborated (known failures excepted) and every fault killed.
    pub pass: bool,
}

impl Matrix {
    /// 0 pass, 1 a false positive or a surviving fault, 3 interrupted.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            EXIT_INCOMPLETE
        } else if self.pass {
            EXIT_PASS
        } else {
            EXIT_FAIL
        }
    }
}

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Falsified => 4,
        Outcome::Crashed => 3,
        Outcome::Timeout => 2,
        Outcome::Skipped => 1,
        Outcome::Corroborated => 0,
    }
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(REASON_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn reason_of(e: &crate::evidence::Evidence) -> String {
    match e.outcome {
        Outcome::Corroborated => String::new(),
        Outcome::Falsified | Outcome::Skipped | Outcome::Timeout | Outcome::Crashed => {
            cut(&e.reason)
        }
    }
}

/// One result per gate of `file`, in first-appearance order: the worst outcome of its records.
pub fn gate_results(file: &EvidenceFile) -> Vec<GateResult> {
    let mut out: Vec<GateResult> = Vec::new();
    for e in &file.evidence {
        match out.iter_mut().find(|g| g.gate_id == e.gate_id) {
            Some(g) if rank(e.outcome) > rank(g.outcome) => {
                g.outcome = e.outcome;
                g.reason = reason_of(e);
            }
            Some(_) => {}
            None => out.push(GateResult {
                gate_id: e.gate_id.clone(),
                outcome: e.outcome,
                reason: reason_of(e),
            }),
        }
    }
    out
}

/// Splits the clean run's non-corroborated gates into (false positives, known failures).
pub fn judge_clean(clean: &RunRecord, known: &[String]) -> (Vec<GateResult>, Vec<GateResult>) {
    clean
        .not_corroborated
        .iter()
        .cloned()
        .partition(|g| !known.contains(&g.gate_id))
}

/// A fault run's (killers, discounted): gates Falsified in `run` that were Corroborated in
/// `clean` and are not `known` kill; other Falsified gates are discounted.
pub fn judge_fault(
    clean: &RunRecord,
    known: &[String],
    run: &RunRecord,
) -> (Vec<String>, Vec<String>) {
    let passed_clean = |id: &str| {
        !known.iter().any(|k| k == id) && clean.outcome(id) == Some(Outcome::Corroborated)
    };
    let mut killers = Vec::new();
    let mut discounted = Vec::new();
    for g in run
        .not_corroborated
        .iter()
        .filter(|g| g.outcome == Outcome::Falsified)
    {
        if passed_clean(&g.gate_id) {
            killers.push(g.gate_id.clone());
        } else {
            discounted.push(g.gate_id.clone());
        }
    }
    (killers, discounted)
}

/// Runs the matrix and writes `matrix.json`.
pub fn run_matrix(opts: &MatrixOptions) -> Result<Matrix, MatrixError> {
    let started = now_utc();
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| MatrixError(format!("{}: {e}", opts.out_dir.display())))?;
    let clean = run_one(opts, CLEAN, None);
    (opts.on_done)(&clean);
    if clean.exit_code == Some(2) {
        let log = opts.out_dir.join(CLEAN).join("run.log");
        return Err(MatrixError(format!(
            "the clean run of {} could not start (exit 2): {}",
            opts.playbook.display(),
            tail(&log, 600)
        )));
    }
    if clean.exit_code.is_none() && clean.gates.is_empty() {
        if let Some(e) = clean
            .error
            .as_deref()
            .filter(|e| e.starts_with("starting "))
        {
            return Err(MatrixError(e.to_string()));
        }
    }
    let runs: Mutex<Vec<Option<RunRecord>>> = Mutex::new(vec![None; opts.faults.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.clamp(1, opts.faults.len().max(1)) {
            s.spawn(|| loop {
                if opts.interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(f) = opts.faults.get(i) else { break };
                let rec = run_one(opts, f.name(), Some(*f));
                (opts.on_done)(&rec);
                if let Ok(mut v) = runs.lock() {
                    if let Some(slot) = v.get_mut(i) {
                        *slot = Some(rec);
                    }
                }
            });
        }
    });
    let runs = runs.into_inner().unwrap_or_default();
    let interrupted = opts.interrupted.load(Ordering::SeqCst);
    let m = assemble(opts, started, clean, runs, interrupted);
    let json = serde_json::to_vec_pretty(&m).map_err(|e| MatrixError(e.to_string()))?;
    let path = opts.out_dir.join("matrix.json");
    write_atomic(&path, &json).map_err(|e| MatrixError(format!("{}: {e}", path.display())))?;
    Ok(m)
}

fn assemble(
    opts: &MatrixOptions,
    started: String,
    clean: RunRecord,
    runs: Vec<Option<RunRecord>>,
    interrupted: bool,
) -> Matrix {
    let known = &opts.known_clean_failures;
    let (mut false_positives, known_failures) = judge_clean(&clean, known);
    if let Some(e) = &clean.error {
        false_positives.push(GateResult {
            gate_id: "(clean run)".into(),
            outcome: Outcome::Crashed,
            reason: cut(e),
        });
    }
    let faults: Vec<FaultResult> = opts
        .faults
        .iter()
        .zip(runs.into_iter().chain(std::iter::repeat(None)))
        .map(|(f, r)| {
            let run = r.unwrap_or_else(|| not_run(*f));
            let (killers, discounted) = judge_fault(&clean, known, &run);
            FaultResult {
                fault: f.name().to_string(),
                description: f.description().to_string(),
                killed: !killers.is_empty(),
                killers,
                discounted,
                run,
            }
        })
        .collect();
    let summary = MatrixSummary {
        gates: clean.gates.len(),
        faults: faults.len(),
        killed: faults.iter().filter(|f| f.killed).count(),
        survived: faults
            .iter()
            .filter(|f| !f.killed)
            .map(|f| f.fault.clone())
            .collect(),
        false_positives: false_positives.iter().map(|g| g.gate_id.clone()).collect(),
        known_clean_failures: known_failures.iter().map(|g| g.gate_id.clone()).collect(),
    };
    let pass = !interrupted
        && !clean.gates.is_empty()
        && summary.false_positives.is_empty()
        && summary.survived.is_empty();
    Matrix {
        schema_version: MATRIX_SCHEMA_VERSION.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host: host(),
        started,
        finished: now_utc(),
        playbook: opts.playbook.display().to_string(),
        model: opts.model.as_ref().map(|m| m.display().to_string()),
        known_clean_failures: known.clone(),
        gates: clean.gates.clone(),
        clean: CleanResult {
            run: clean,
            false_positives,
            known_failures,
        },
        faults,
        summary,
        interrupted,
        pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, o: Outcome) -> GateResult {
        GateResult {
            gate_id: id.into(),
            outcome: o,
            reason: String::new(),
        }
    }

    fn run(results: &[GateResult]) -> RunRecord {
        let mut r = RunRecord::new("r", None);
        r.set_results(results.to_vec());
        r
    }

    #[test]
    fn only_a_falsified_gate_that_passed_clean_kills() {
        use Outcome::*;
        let clean = run(&[
            g("A", Corroborated),
            g("B", Corroborated),
            g("C", Falsified),
            g("D", Corroborated),
            g("E", Corroborated),
            g("P", Corroborated),
        ]);
        let known = vec!["P".to_string()];
        let fault = [
            g("A", Falsified),
            g("B", Crashed),
            g("C", Falsified),
            g("D", Timeout),
            g("E", Skipped),
            g("P", Falsified),
            g("X", Falsified),
        ];
        let (killers, discounted) = judge_fault(&clean, &known, &run(&fault));
        assert_eq!(killers, ["A"]);
        assert_eq!(discounted, ["C", "P", "X"]);
        let (k, _) = judge_fault(&clean, &known, &run(&fault[1..]));
        assert!(k.is_empty(), "Crashed/Timeout/Skipped never kill");
    }

    #[test]
    fn a_run_record_keeps_every_gate_and_the_failures() {
        use Outcome::*;
        let r = run(&[g("A", Corroborated), g("B", Skipped), g("P", Falsified)]);
        assert_eq!(r.gates, ["A", "B", "P"]);
        assert_eq!(r.not_corroborated, [g("B", Skipped), g("P", Falsified)]);
        assert_eq!(r.outcome("A"), Some(Corroborated));
        assert_eq!(r.outcome("P"), Some(Falsified));
        assert_eq!(r.outcome("Z"), None);
        let (fp, known) = judge_clean(&r, &["P".to_string()]);
        assert_eq!(fp, vec![g("B", Skipped)]);
        assert_eq!(known, vec![g("P", Falsified)]);
    }

    #[test]
    fn a_gate_takes_its_worst_record() {
        let mut f = EvidenceFile::default();
        let rec = |id: &str, o: Outcome, r: &str| crate::evidence::Evidence {
            id: format!("{id}/x"),
            gate_id: id.into(),
            scenario: "x".into(),
            format: String::new(),
            backend: String::new(),
            category: String::new(),
            severity: String::new(),
            outcome: o,
            reason: r.into(),
            metrics: Default::default(),
            duration_ms: 0,
            output: String::new(),
            stderr: None,
            exit_code: None,
            timestamp: String::new(),
            host: String::new(),
            metadata: Default::default(),
        };
        f.evidence = vec![
            rec("A", Outcome::Corroborated, "ok"),
            rec("B", Outcome::Crashed, "boom"),
            rec("A", Outcome::Falsified, "bad"),
            rec("B", Outcome::Skipped, "later"),
        ];
        let r = gate_results(&f);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].outcome, r[0].reason.as_str()),
            (Outcome::Falsified, "bad")
        );
        assert_eq!(
            (r[1].outcome, r[1].reason.as_str()),
            (Outcome::Crashed, "boom")
        );
        assert_eq!(cut(&"é".repeat(1000)).chars().count(), REASON_CHARS + 1);
    }
}
