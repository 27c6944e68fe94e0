//! The hunt loop: families scheduled by time share, cases run in parallel with rayon (one
//! proptest `TestRunner` per case, seeded from the hunt seed, the family, the type and the case
//! index), the first finding shrunk, saved and reported.
//!
//! Invariants: cases are independent (each owns its buffers and temp folder), so the thread
//! count changes throughput, never results; a case started before the deadline runs to its end.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use rayon::prelude::*;

use crate::dtype::GgmlType;
use crate::quant::{can_dequantize, can_quantize};

use super::blocks::{self, Mismatch, Paths};
use super::gen::Rng;
use super::regression::{hex, Regression};
use super::requant::{self, RequantMismatch};
use super::strategies::{Batch, BatchStrategy, BatchTree};
use super::{chains, models};
use super::{
    CaseFailure, CaseResult, Finding, HuntError, HuntOptions, HuntReport, RequantStats, TypeStats,
    DEFAULT_CASES,
};

/// Share of the time each family gets: blocks, requant, chains, models.
const SHARES: [f64; 4] = [0.6, 0.1, 0.15, 0.15];
/// Image blocks surveyed per non-theorem type.
const SURVEY_BLOCKS: usize = 4096;

/// The proptest configuration of one case: no persistence (findings go to our regression
/// files), generous shrinking (each step checks one small batch).
pub(crate) fn case_config() -> Config {
    Config {
        cases: 1,
        failure_persistence: None,
        max_shrink_iters: 200_000,
        max_shrink_time: 120_000,
        verbose: 0,
        ..Config::default()
    }
}

/// A proptest runner whose random stream is a function of `seed` only.
pub(crate) fn seeded_runner(seed: u64) -> TestRunner {
    let mut rng = Rng::new(seed);
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes);
    TestRunner::new_with_rng(
        case_config(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// The seed of case `index` of `family` and `dtype`.
fn case_seed(seed: u64, family: u64, dtype: u32, index: u64) -> u64 {
    let mut r = Rng::new(seed ^ family.rotate_left(48) ^ u64::from(dtype).rotate_left(32) ^ index);
    r.next_u64()
}

/// How a batch case failed.
enum BatchFailure {
    Blocks(Batch, Mismatch),
    Requant(Batch, RequantMismatch),
    Other(Batch, String),
}

/// Runs one shrinking batch case of `family` (0 blocks, 1 requant).
fn batch_case(
    t: GgmlType,
    family: u64,
    seed: u64,
    paths: &Paths,
) -> Result<usize, Box<BatchFailure>> {
    let mut runner = seeded_runner(seed);
    let strategy = if family == 0 {
        BatchStrategy::of(t)
    } else {
        BatchStrategy::requant(t)
    };
    let tree: BatchTree = match strategy.new_tree(&mut runner) {
        Ok(t) => t,
        Err(e) => {
            let empty = Batch::new(t, seed, 0, 16, Vec::new());
            return Err(Box::new(BatchFailure::Other(empty, e.to_string())));
        }
    };
    let root = tree.current();
    let scratch = RefCell::new(blocks::Scratch::default());
    let in_domain = RefCell::new(0usize);
    let result = runner.run_one(tree, |b: Batch| {
        if family == 0 {
            let mut s = scratch.borrow_mut();
            blocks::check(t, b.data(), b.x_seed, b.plain_row, paths, &mut s)
                .map_err(|m| TestCaseError::fail(m.to_string()))
        } else {
            let n = requant::check(t, b.data()).map_err(|m| TestCaseError::fail(m.to_string()))?;
            *in_domain.borrow_mut() = n;
            Ok(())
        }
    });
    match result {
        Ok(_) => Ok(if family == 0 {
            root.len()
        } else {
            *in_domain.borrow()
        }),
        Err(TestError::Fail(reason, min)) => {
            // Re-run the property on the shrunk value for the structured mismatch.
            let again = if family == 0 {
                let mut s = scratch.borrow_mut();
                blocks::check(t, min.data(), min.x_seed, min.plain_row, paths, &mut s)
                    .err()
                    .map(|m| BatchFailure::Blocks(min.clone(), m))
            } else {
                requant::check(t, min.data())
                    .err()
                    .map(|m| BatchFailure::Requant(min.clone(), m))
            };
            Err(Box::new(again.unwrap_or_else(|| {
                BatchFailure::Other(min, reason.to_string())
            })))
        }
        Err(TestError::Abort(reason)) => {
            Err(Box::new(BatchFailure::Other(root, reason.to_string())))
        }
    }
}

fn found_by() -> String {
    format!("apr-qa hunt {}", env!("CARGO_PKG_VERSION"))
}

fn fault_name() -> String {
    crate::fault::current().map_or("none".into(), |f| f.name().into())
}

/// The regression case and the finding of a failed batch case.
fn batch_finding(t: GgmlType, fail: BatchFailure) -> (Regression, Finding) {
    let mut r = Regression::default();
    r.set("dtype", t.name())
        .set("fault", fault_name())
        .set("found_by", found_by());
    let (family, batch, detail) = match fail {
        BatchFailure::Blocks(b, m) => {
            r.set("kind", "dequant")
                .set("path", &m.path)
                .set("what", m.what)
                .set("unit", m.unit)
                .set("index", m.index)
                .set("expected", format!("{:#010x}", m.expected))
                .set("actual", format!("{:#010x}", m.actual));
            ("blocks", b, m.to_string())
        }
        BatchFailure::Requant(b, m) => {
            r.set("kind", "requant")
                .set("path", "requantize")
                .set("what", "block")
                .set("unit", m.unit)
                .set("index", 0)
                .set("expected", hex(&m.expected))
                .set("actual", hex(&m.actual));
            let detail = m.to_string();
            let one = Batch::new(t, b.seed, b.x_seed, b.plain_row, m.block);
            ("requant", one, detail)
        }
        BatchFailure::Other(b, why) => {
            r.set("kind", "dequant")
                .set("path", "error")
                .set("what", "error");
            ("blocks", b, why)
        }
    };
    r.set("family", family)
        .set("x_seed", batch.x_seed)
        .set("plain_row", batch.plain_row)
        .set("seed", batch.seed)
        .set("detail", &detail)
        .set("bytes", hex(batch.data()));
    let finding = Finding {
        family: family.into(),
        dtype: Some(t.name().into()),
        detail,
        shrunk: hex(batch.data()),
        regression: None,
    };
    (r, finding)
}

/// The work of one family.
struct Family {
    spent: Duration,
    next_type: usize,
    types: Vec<GgmlType>,
    done_cases: Vec<u64>,
    limit: Option<u64>,
}

impl Family {
    fn new(types: Vec<GgmlType>, limit: Option<u64>) -> Self {
        let n = types.len();
        Self {
            spent: Duration::ZERO,
            next_type: 0,
            types,
            done_cases: vec![0; n],
            limit,
        }
    }
    /// The next type (index) with cases left, round robin.
    fn next(&mut self) -> Option<usize> {
        for k in 0..self.types.len() {
            let i = (self.next_type + k) % self.types.len();
            if self.limit.is_none_or(|l| self.done_cases[i] < l) {
                self.next_type = i + 1;
                return Some(i);
            }
        }
        None
    }
}

/// Runs the hunt.
pub fn run(opts: &HuntOptions) -> Result<HuntReport, HuntError> {
    let start = Instant::now();
    let types: Vec<GgmlType> = if opts.types.is_empty() {
        GgmlType::ALL
            .into_iter()
            .filter(|&t| can_dequantize(t))
            .collect()
    } else {
        for &t in &opts.types {
            if !can_dequantize(t) {
                return Err(HuntError::Options(format!(
                    "type {t} has no dequantizer: nothing to hunt"
                )));
            }
        }
        opts.types.clone()
    };
    let limit = opts.cases.or(match opts.time {
        Some(_) => None,
        None => Some(DEFAULT_CASES),
    });
    let deadline = opts.time.map(|t| start + t);
    let mut paths = Paths::detect();
    paths.strict_nan = opts.strict_nan;
    let threads = rayon::current_num_threads().max(1);
    let theorem: Vec<GgmlType> = types
        .iter()
        .copied()
        .filter(|&t| requant::is_theorem(t))
        .collect();
    let minor_limit = limit.map(|l| (l / 4).max(1));
    let mut fams = [
        Family::new(types.clone(), limit),
        Family::new(theorem, limit),
        Family::new(vec![GgmlType::F32], minor_limit),
        Family::new(vec![GgmlType::F32], minor_limit),
    ];
    let mut report = HuntReport {
        seed: opts.seed,
        threads,
        simd_levels: paths.levels.iter().map(|l| l.name().to_string()).collect(),
        fault: crate::fault::current().map(|f| f.name().to_string()),
        ..HuntReport::default()
    };
    report.blocks = types
        .iter()
        .map(|&t| TypeStats {
            dtype: t.name().into(),
            paths: paths.names(t),
            ..TypeStats::default()
        })
        .collect();
    report.requant = fams[1]
        .types
        .iter()
        .map(|&t| RequantStats {
            dtype: t.name().into(),
            theorem: true,
            ..RequantStats::default()
        })
        .collect();
    let wave = 2 * threads;
    let mut last_progress = Instant::now();
    'outer: loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // The family furthest below its share of the time, among those with work left.
        let pick = (0..4)
            .filter(|&f| {
                !fams[f].types.is_empty()
                    && fams[f]
                        .limit
                        .is_none_or(|l| fams[f].done_cases.iter().any(|&c| c < l))
            })
            .min_by(|&a, &b| {
                let ra = fams[a].spent.as_secs_f64() / SHARES[a];
                let rb = fams[b].spent.as_secs_f64() / SHARES[b];
                ra.total_cmp(&rb)
            });
        let Some(f) = pick else { break };
        let Some(ti) = fams[f].next() else { break };
        let t = fams[f].types[ti];
        let done = fams[f].done_cases[ti];
        let n = fams[f]
            .limit
            .map_or(wave as u64, |l| (l - done).min(wave as u64));
        let t0 = Instant::now();
        let seeds: Vec<u64> = (done..done + n)
            .map(|i| case_seed(opts.seed, f as u64, t.id(), i))
            .collect();
        let failure: Option<(Regression, Finding)> = match f {
            0 | 1 => {
                let results: Vec<Result<usize, Box<BatchFailure>>> = seeds
                    .par_iter()
                    .map(|&s| batch_case(t, f as u64, s, &paths))
                    .collect();
                let mut fail = None;
                for r in results {
                    match r {
                        Ok(k) if f == 0 => report.blocks[ti].blocks += k as u64,
                        Ok(k) => {
                            report.requant[ti].blocks += k as u64;
                            report.requant[ti].examined += BatchStrategy::requant(t).units as u64;
                        }
                        Err(e) if fail.is_none() => fail = Some(batch_finding(t, *e)),
                        Err(_) => {}
                    }
                }
                fail
            }
            _ => {
                let run: fn(u64, &[GgmlType]) -> CaseResult = if f == 2 {
                    chains::run_case
                } else {
                    models::run_case
                };
                let results: Vec<(u64, CaseResult)> = seeds
                    .par_iter()
                    .map(|&s| (s, run(s, &opts.types)))
                    .collect();
                let stats = if f == 2 {
                    &mut report.chains
                } else {
                    &mut report.models
                };
                let mut fail = None;
                for (s, r) in results {
                    match r {
                        Ok(counters) => {
                            for (k, v) in counters {
                                *stats.counters.entry(k).or_default() += v;
                            }
                        }
                        Err(e) if fail.is_none() => fail = Some(case_finding(f, s, &opts.types, e)),
                        Err(_) => {}
                    }
                }
                fail
            }
        };
        let dt = t0.elapsed();
        fams[f].spent += dt;
        fams[f].done_cases[ti] += n;
        match f {
            0 => {
                let s = &mut report.blocks[ti];
                s.cases += n;
                s.seconds += dt.as_secs_f64();
            }
            1 => report.requant[ti].cases += n,
            2 => {
                report.chains.cases += n;
                report.chains.seconds += dt.as_secs_f64();
            }
            _ => {
                report.models.cases += n;
                report.models.seconds += dt.as_secs_f64();
            }
        }
        if let Some((mut reg, mut finding)) = failure {
            if opts.strict_nan {
                reg.set("strict_nan", "true");
            }
            finding.regression = match reg.save(&opts.regressions) {
                Ok(p) => Some(p),
                Err(e) => {
                    finding.detail =
                        format!("{} (saving the regression failed: {e})", finding.detail);
                    None
                }
            };
            report.findings.push(finding);
            if !opts.keep_going {
                break 'outer;
            }
            // One finding per type and family: this type is done.
            fams[f].done_cases[ti] = u64::MAX;
            fams[f].limit.get_or_insert(u64::MAX);
        }
        if opts.progress && last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            let blocks: u64 = report.blocks.iter().map(|s| s.blocks).sum();
            eprintln!(
                "hunt: {:.0} s, {blocks} blocks, {} chain cases, {} model cases",
                start.elapsed().as_secs_f64(),
                report.chains.cases,
                report.models.cases
            );
        }
    }
    for s in &mut report.blocks {
        if s.seconds > 0.0 {
            s.blocks_per_s = s.blocks as f64 / s.seconds;
        }
    }
    // Where the identity is not a theorem, count how often it fails (never asserted).
    for &t in types
        .iter()
        .filter(|&&t| !requant::is_theorem(t) && can_quantize(t))
    {
        let (changed, total) = requant::survey(t, SURVEY_BLOCKS, opts.seed);
        report.requant.push(RequantStats {
            dtype: t.name().into(),
            theorem: false,
            cases: 1,
            blocks: changed as u64,
            examined: total as u64,
        });
    }
    report.elapsed_s = start.elapsed().as_secs_f64();
    Ok(report)
}

fn case_finding(f: usize, seed: u64, types: &[GgmlType], e: CaseFailure) -> (Regression, Finding) {
    let family = if f == 2 { "chains" } else { "models" };
    let mut r = Regression::default();
    r.set("kind", "case")
        .set("family", family)
        .set("seed", seed)
        .set("fault", fault_name())
        .set("detail", &e.detail)
        .set("found_by", found_by());
    if !types.is_empty() {
        let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
        r.set("dtype", names.join(","));
    }
    let finding = Finding {
        family: family.into(),
        dtype: None,
        detail: e.detail,
        shrunk: e.shrunk,
        regression: None,
    };
    (r, finding)
}
