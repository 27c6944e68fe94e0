//! `apr-qa hunt`: generated data against the reference paths (DESIGN §3.5).
//!
//! Four families of properties, each driven by proptest strategies ([`strategies`]):
//! - **blocks** — batches of ≥ 4,096 random blocks of every dequantizable type (arbitrary bytes
//!   and structured ones: fp16 ±0, subnormal, max, ±Inf, NaN payloads in every scale field;
//!   extreme sub-block scales and mins) through every dequantization path ([`blocks`]):
//!   independent restatement vs scalar reference vs every SIMD decoder and fused matvec;
//! - **requant** — `quantize(dequantize(B)) == B` where it is a theorem ([`requant`]);
//! - **chains** — random models (every dtype, random shapes and metadata) written and converted
//!   through 1–4 hops of GGUF/APR/SafeTensors, each hop lossless; partial-block rows refused by
//!   every reader and writer ([`chains`]);
//! - **models** — random small models: quantized vs F32-export logits bit-identical at every
//!   SIMD level (the exact kernel contract) ([`models`]).
//!
//! A failure is shrunk (a block batch to the failing block) and saved as a regression case
//! file ([`regression`]) that `tests/hunt.rs` replays. Invariants: the hunt never writes
//! outside its temp folders and the regression folder; the same seed runs the same cases.

pub mod blocks;
pub mod chains;
pub mod gen;
pub mod models;
pub mod regression;
pub mod requant;
mod runner;
pub mod spec;
pub mod strategies;

use std::path::PathBuf;
use std::time::Duration;

use crate::dtype::GgmlType;

pub use runner::run;

use regression::Regression;

/// What to hunt.
#[derive(Clone, Debug)]
pub struct HuntOptions {
    /// Cases per type and family (blocks, requant); chains and models get a quarter (≥ 1).
    /// `None` with a `time`: unbounded; with neither: [`DEFAULT_CASES`].
    pub cases: Option<u64>,
    /// Stop starting new cases after this long.
    pub time: Option<Duration>,
    /// Block types to hunt (and to use in chains and models); empty = every type.
    pub types: Vec<GgmlType>,
    /// Seed of every case.
    pub seed: u64,
    /// Where findings are saved.
    pub regressions: PathBuf,
    /// Print progress lines to stderr.
    pub progress: bool,
    /// After a finding, go on with the other types and families (one finding per type and
    /// family at most) instead of stopping.
    pub keep_going: bool,
    /// Compare computed NaNs by payload (see [`blocks`]).
    pub strict_nan: bool,
}

/// Cases per type when neither `cases` nor `time` is given.
pub const DEFAULT_CASES: u64 = 8;

/// Throughput of one block type.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TypeStats {
    /// Type name.
    pub dtype: String,
    /// Cases run.
    pub cases: u64,
    /// Blocks (elements for plain types) checked.
    pub blocks: u64,
    /// Wall-clock seconds spent on this type's cases (all threads together).
    pub seconds: f64,
    /// `blocks / seconds`.
    pub blocks_per_s: f64,
    /// Paths compared.
    pub paths: Vec<String>,
}

/// Requant identity counts of one type.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RequantStats {
    /// Type name.
    pub dtype: String,
    /// Whether the identity is a theorem (checked) or not (surveyed only).
    pub theorem: bool,
    /// Cases run (theorem) / blocks surveyed (not a theorem).
    pub cases: u64,
    /// Blocks in the theorem's domain, all of which round-tripped (theorem); blocks whose
    /// requantization changed them (survey).
    pub blocks: u64,
    /// Blocks examined.
    pub examined: u64,
}

/// Counts of a case family.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CaseStats {
    /// Cases run.
    pub cases: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Family-specific counters (hops, tensors, logits compared, …).
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// A falsified property.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// `blocks`, `requant`, `chains` or `models`.
    pub family: String,
    /// The block type, where one is involved.
    pub dtype: Option<String>,
    /// What differed.
    pub detail: String,
    /// The shrunk reproduction (hex block, or the case's debug dump).
    pub shrunk: String,
    /// The saved regression case.
    pub regression: Option<PathBuf>,
}

/// What a hunt did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HuntReport {
    /// The seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// SIMD levels checked besides the scalar reference.
    pub simd_levels: Vec<String>,
    /// The injected fault, if any.
    pub fault: Option<String>,
    /// Seconds from start to end.
    pub elapsed_s: f64,
    /// Block throughput per type.
    pub blocks: Vec<TypeStats>,
    /// Requant identities.
    pub requant: Vec<RequantStats>,
    /// Format chains.
    pub chains: CaseStats,
    /// Model cases.
    pub models: CaseStats,
    /// Findings (the hunt stops at the first unless `keep_going`).
    pub findings: Vec<Finding>,
}

/// Errors that stop a hunt before it judges anything.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    /// A bad option.
    #[error("{0}")]
    Options(String),
}

/// Replays a `dequant` regression: every path agrees on `bytes`, and the reference value at
/// the recorded place has the recorded `expected` bits.
pub(crate) fn replay_dequant(r: &Regression) -> Result<(), String> {
    let t = r.dtype()?;
    let bytes = r.bytes()?;
    if bytes.is_empty() || bytes.len() % t.type_size() != 0 {
        return Err(format!("{t}: {} bytes are not whole blocks", bytes.len()));
    }
    let x_seed = r.num("x_seed")?;
    let plain_row = usize::try_from(r.num("plain_row")?).map_err(|e| e.to_string())?;
    let mut paths = blocks::Paths::detect();
    paths.strict_nan = r.fields.get("strict_nan").is_some_and(|v| v == "true");
    let mut s = blocks::Scratch::default();
    blocks::check(t, &bytes, x_seed, plain_row, &paths, &mut s).map_err(|m| m.to_string())?;
    let unit = usize::try_from(r.num("unit")?).map_err(|e| e.to_string())?;
    let index = usize::try_from(r.num("index")?).map_err(|e| e.to_string())?;
    let expected = u32::try_from(r.num("expected")?).map_err(|e| e.to_string())?;
    let got = match r.get("what")? {
        "value" => {
            let mut v = vec![0f32; bytes.len() / t.type_size() * t.block_size()];
            crate::quant::dequantize(t, &bytes, &mut v).map_err(|e| e.to_string())?;
            v.get(unit * t.block_size() + index).copied()
        }
        "dot" => blocks::reference_dot(t, &bytes, unit, x_seed, plain_row),
        other => return Err(format!("unknown `what` {other}")),
    }
    .ok_or_else(|| format!("{t}: no value at block {unit} index {index}"))?;
    let nan_class = r.get("what")? == "dot" || (t.block_size() > 1 && !paths.strict_nan);
    let same =
        got.to_bits() == expected || (nan_class && blocks::same_dot(got, f32::from_bits(expected)));
    if !same {
        return Err(format!(
            "{t}: block {unit} {} is {:#010x}, the case recorded {expected:#010x}",
            r.get("what")?,
            got.to_bits()
        ));
    }
    Ok(())
}

/// Replays a `case` regression (chains, models) from its seed.
pub(crate) fn replay_case(r: &Regression) -> Result<(), String> {
    let seed = r.num("seed")?;
    let types: Vec<GgmlType> = match r.fields.get("dtype") {
        Some(s) => s
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|e| format!("{e}")))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    match r.get("family")? {
        "chains" => chains::run_case(seed, &types)
            .map(|_| ())
            .map_err(|f| f.detail),
        "models" => models::run_case(seed, &types)
            .map(|_| ())
            .map_err(|f| f.detail),
        other => Err(format!("unknown case family `{other}`")),
    }
}

/// What a chain or model case returns: its counters, or what failed.
pub type CaseResult = Result<Vec<(String, u64)>, CaseFailure>;

/// A failed chain or model case: what differed, and the shrunk case.
#[derive(Clone, Debug)]
pub struct CaseFailure {
    /// What differed.
    pub detail: String,
    /// Debug dump of the shrunk case.
    pub shrunk: String,
}
