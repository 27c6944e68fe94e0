//! Merging the evidence of shards (`apr-qa run --shard I/N`) into one evidence file, with the
//! summary and the MQS recomputed by the one scoring function ([`score`]).
//!
//! Invariants:
//! - Inputs merge only when they are shards of one run: the same schema version, tool version,
//!   playbook sha256, model sha256, seed, and injected fault / test hook (none, or the same);
//!   each `I/N` at most once, all with the same N. Anything else is a [`MergeError`] naming the
//!   offending file and the field. One unsharded file alone is accepted (it is rescored); an
//!   unsharded file among shards, or two unsharded files, is refused.
//! - The executor gives plan item k to shard (k mod N) + 1, so interleaving the shards
//!   round-robin restores the plan order: the merge of all N shards has the same records, in
//!   the same order, as the unsharded run.
//! - With every shard present, shard I of a T-record plan holds ⌈(T − I + 1) / N⌉ records;
//!   a shard holding another count is refused.
//! - A missing shard is not an error: the merged file is marked incomplete (`run.incomplete`,
//!   status INCOMPLETE unless something failed), [`Merged::missing`] names the shards and the
//!   exit code is 3 even when a present shard failed (the merge judges only part of the plan).
//! - run.started is the earliest start, run.finished the latest finish, summary.duration_ms
//!   the longest shard (shards run in parallel), run.host the distinct hosts joined by ",",
//!   run.shard is null.

use std::path::PathBuf;

use crate::evidence::{Evidence, EvidenceFile, Summary};
use crate::harness::mqs::score;
use crate::harness::run::{EXIT_FAIL, EXIT_INCOMPLETE, EXIT_PASS};

/// One input file.
pub struct MergeInput {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Its contents.
    pub file: EvidenceFile,
}

/// The merged evidence.
pub struct Merged {
    /// The merged file.
    pub file: EvidenceFile,
    /// The shards absent from the inputs (`2/3`).
    pub missing: Vec<String>,
    /// 3 when a shard is missing (the merge covers part of the plan, whatever it holds);
    /// otherwise as `apr-qa run`: 1 when a gate failed, 3 when an input was incomplete, else 0.
    pub exit_code: u8,
}

/// Inputs that cannot be merged: the offending file and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct MergeError {
    /// The offending file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Parses `I/N` (1 ≤ I ≤ N).
pub fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (i, n) = s.split_once('/')?;
    let (i, n): (usize, usize) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (i >= 1 && i <= n).then_some((i, n))
}

/// Merges shard evidence (see the module invariants).
pub fn merge(inputs: &[MergeInput]) -> Result<Merged, MergeError> {
    let first = inputs.first().ok_or_else(|| MergeError {
        path: "-".into(),
        message: "no input files".into(),
    })?;
    let err = |inp: &MergeInput, message: String| MergeError {
        path: inp.path.display().to_string(),
        message,
    };
    let r0 = &first.file.run;
    for inp in inputs.iter().skip(1) {
        let r = &inp.file.run;
        let checks: [(&str, String, String); 7] = [
            (
                "schema_version",
                inp.file.schema_version.clone(),
                first.file.schema_version.clone(),
            ),
            (
                "run.tool_version",
                r.tool_version.clone(),
                r0.tool_version.clone(),
            ),
            (
                "run.playbook.sha256",
                r.playbook.sha256.clone(),
                r0.playbook.sha256.clone(),
            ),
            (
                "run.model.sha256",
                r.model.sha256.clone(),
                r0.model.sha256.clone(),
            ),
            ("run.seed", r.seed.to_string(), r0.seed.to_string()),
            (
                "run.inject",
                format!("{:?}", r.inject),
                format!("{:?}", r0.inject),
            ),
            (
                "run.test_hook",
                format!("{:?}", r.test_hook),
                format!("{:?}", r0.test_hook),
            ),
        ];
        for (field, got, want) in checks {
            if got != want {
                let what = if field.starts_with("run.inject") || field.starts_with("run.test_hook")
                {
                    "injected and clean evidence (or different faults) cannot be merged"
                } else {
                    "not a shard of the same run"
                };
                return Err(err(
                    inp,
                    format!(
                        "{field} is {got}, but {} has {want}: {what}",
                        first.path.display()
                    ),
                ));
            }
        }
    }
    let mut shards: Vec<Option<(usize, usize)>> = Vec::with_capacity(inputs.len());
    for inp in inputs {
        shards.push(match &inp.file.run.shard {
            None => None,
            Some(s) => Some(
                parse_shard(s).ok_or_else(|| err(inp, format!("run.shard {s:?} is not I/N")))?,
            ),
        });
    }
    let n = match shards.iter().flatten().next() {
        None if inputs.len() == 1 => 1,
        None => {
            let second = inputs.get(1).unwrap_or(first);
            return Err(err(
                second,
                format!(
                    "not a shard (no run.shard), like {}: merge takes the shards of one run",
                    first.path.display()
                ),
            ));
        }
        Some(&(_, n)) => n,
    };
    let mut by_index: Vec<Option<&MergeInput>> = vec![None; n];
    for (inp, s) in inputs.iter().zip(&shards) {
        let (i, ni) = match (s, n) {
            (None, 1) if inputs.len() == 1 => (1, 1),
            (None, _) => {
                return Err(err(
                    inp,
                    "not a shard (no run.shard) among shard files: an unsharded run cannot be merged with shards".into(),
                ))
            }
            (Some(x), _) => *x,
        };
        if ni != n {
            return Err(err(
                inp,
                format!("shard {i}/{ni}, but the other shards are of {n}"),
            ));
        }
        match by_index.get_mut(i - 1) {
            Some(slot @ None) => *slot = Some(inp),
            Some(Some(prev)) => {
                return Err(err(
                    inp,
                    format!("duplicated shard {i}/{n} (also {})", prev.path.display()),
                ))
            }
            None => return Err(err(inp, format!("shard {i}/{n} out of range"))),
        }
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{n}", i + 1))
        .collect();
    let present: Vec<&MergeInput> = by_index.iter().flatten().copied().collect();
    if missing.is_empty() && n > 1 {
        let total: usize = present.iter().map(|p| p.file.evidence.len()).sum();
        for (i, p) in present.iter().enumerate() {
            let want = (total + n - 1 - i) / n;
            if p.file.evidence.len() != want {
                return Err(err(
                    p,
                    format!(
                        "shard {}/{n} holds {} records; of a {total}-record plan it holds {want}",
                        i + 1,
                        p.file.evidence.len()
                    ),
                ));
            }
        }
    }
    let mut evidence: Vec<Evidence> = Vec::new();
    let rounds = present
        .iter()
        .map(|p| p.file.evidence.len())
        .max()
        .unwrap_or(0);
    for k in 0..rounds {
        for p in &present {
            if let Some(e) = p.file.evidence.get(k) {
                if evidence.iter().any(|x| x.id == e.id) {
                    return Err(err(p, format!("record {} is also in another shard", e.id)));
                }
                evidence.push(e.clone());
            }
        }
    }
    let incomplete = !missing.is_empty() || present.iter().any(|p| p.file.run.incomplete);
    let interrupted = present.iter().any(|p| p.file.run.interrupted);
    let mut hosts: Vec<&str> = Vec::new();
    for p in &present {
        if !hosts.contains(&p.file.run.host.as_str()) {
            hosts.push(&p.file.run.host);
        }
    }
    let mut run = r0.clone();
    run.host = hosts.join(",");
    run.started = present
        .iter()
        .map(|p| p.file.run.started.clone())
        .min()
        .unwrap_or_default();
    run.finished = present
        .iter()
        .map(|p| p.file.run.finished.clone())
        .max()
        .unwrap_or_default();
    run.jobs = present.iter().map(|p| p.file.run.jobs).max().unwrap_or(0);
    run.shard = None;
    run.incomplete = incomplete;
    run.interrupted = interrupted;
    let duration = present
        .iter()
        .map(|p| p.file.summary.duration_ms)
        .max()
        .unwrap_or(0);
    let mut mqs = score(&evidence);
    if incomplete && mqs.status == "QUALIFIED" {
        mqs.status = "INCOMPLETE".into();
    }
    let failed = evidence.iter().any(|e| e.outcome.fails());
    let exit_code = if !missing.is_empty() {
        EXIT_INCOMPLETE
    } else if failed {
        EXIT_FAIL
    } else if incomplete {
        EXIT_INCOMPLETE
    } else {
        EXIT_PASS
    };
    Ok(Merged {
        file: EvidenceFile {
            schema_version: first.file.schema_version.clone(),
            run,
            summary: Summary::of(&evidence, duration),
            mqs,
            evidence,
        },
        missing,
        exit_code,
    })
}
