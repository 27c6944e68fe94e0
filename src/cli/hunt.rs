//! `apr-qa hunt`: generated blocks, tensors and models against the reference paths.
//!
//! Exit codes: 0 nothing found, 1 a property was falsified (the shrunk case is saved under
//! `--regressions` and its path printed), 2 bad arguments.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;

use super::{Failure, EXIT_FAILED, EXIT_OK};
use apr_qa::dtype::GgmlType;
use apr_qa::fault::{self, Fault};
use apr_qa::harness::hunt::{self, HuntOptions, HuntReport};

#[derive(clap::Args)]
pub struct Args {
    /// Cases per type for blocks and requant (a quarter, at least 1, for chains and models);
    /// default 8 without --time, unbounded with it.
    #[arg(long)]
    cases: Option<u64>,
    /// Hunt for this many seconds (cases started before the deadline finish).
    #[arg(long, value_name = "SECS")]
    time: Option<f64>,
    /// Block types to hunt, comma-separated (default: every dequantizable type).
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    types: Vec<String>,
    /// Seed of every case (default: from the clock; printed for reproduction).
    #[arg(long)]
    seed: Option<u64>,
    /// Inject a fault (`apr-qa faults` lists them) to check the hunt finds it.
    #[arg(long, value_name = "FAULT")]
    inject: Option<String>,
    /// Folder where findings are saved as regression cases.
    #[arg(long, default_value = "tests/regressions")]
    regressions: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Progress lines on stderr.
    #[arg(long)]
    progress: bool,
    /// After a finding, go on hunting the other types and families.
    #[arg(long)]
    keep_going: bool,
    /// Compare NaNs computed from NaN/infinite scales by payload too (Rust and C leave the
    /// payload of such results unspecified, so by default any NaN equals any NaN there).
    #[arg(long)]
    strict_nan: bool,
}

fn options(a: &Args) -> Result<HuntOptions, Failure> {
    let time = match a.time {
        None => None,
        Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(Failure::bad_input(anyhow!(
                "--time {t}: not a positive number of seconds"
            )))
        }
    };
    if a.cases == Some(0) {
        return Err(Failure::bad_input(anyhow!("--cases 0: nothing to run")));
    }
    let mut types = Vec::new();
    for s in a.types.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let t: GgmlType = s
            .parse()
            .map_err(|e| Failure::bad_input(anyhow!("--types: {e}")))?;
        if !apr_qa::quant::can_dequantize(t) {
            return Err(Failure::bad_input(anyhow!(
                "--types: {t} has no dequantizer, nothing to hunt"
            )));
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    Ok(HuntOptions {
        cases: a.cases,
        time,
        types,
        seed,
        regressions: a.regressions.clone(),
        progress: a.progress,
        keep_going: a.keep_going,
        strict_nan: a.strict_nan,
    })
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let opts = options(&a)?;
    if let Some(name) = &a.inject {
        let f = Fault::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            Failure::bad_input(anyhow!(
                "--inject {name}: unknown fault (known: {})",
                names.join(", ")
            ))
        })?;
        fault::set(Some(f));
    }
    let report = hunt::run(&opts).map_err(Failure::bad_input)?;
    if a.json {
        let s =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::bad_input(anyhow!(e)))?;
        println!("{s}");
    } else {
        print_report(&report);
    }
    Ok(if report.findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn print_report(r: &HuntReport) {
    println!(
        "hunt: seed {}, {} threads, SIMD paths: {}, fault: {}, {:.1} s",
        r.seed,
        r.threads,
        if r.simd_levels.is_empty() {
            "none".to_string()
        } else {
            r.simd_levels.join(" ")
        },
        r.fault.as_deref().unwrap_or("none"),
        r.elapsed_s
    );
    println!(
        "{:<8} {:>6} {:>10} {:>12}  paths",
        "blocks", "cases", "blocks", "blocks/s"
    );
    for s in r.blocks.iter().filter(|s| s.cases > 0) {
        println!(
            "{:<8} {:>6} {:>10} {:>12.0}  {}",
            s.dtype,
            s.cases,
            s.blocks,
            s.blocks_per_s,
            s.paths.join(", ")
        );
    }
    for s in &r.requant {
        if s.theorem {
            println!(
                "requant  {:<7} theorem: {} in-domain blocks of {} round-tripped ({} cases)",
                s.dtype, s.blocks, s.examined, s.cases
            );
        } else {
            println!(
                "requant  {:<7} not a theorem (not checked): {} of {} quantized blocks change under quantize∘dequantize",
                s.dtype, s.blocks, s.examined
            );
        }
    }
    for (name, c) in [("chains", &r.chains), ("models", &r.models)] {
        let counters: Vec<String> = c.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{name:<8} {} cases in {:.1} s: {}",
            c.cases,
            c.seconds,
            counters.join(", ")
        );
    }
    if r.findings.is_empty() {
        println!("result: nothing found");
    }
    for f in &r.findings {
        println!(
            "FOUND ({}{}): {}",
            f.family,
            f.dtype
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default(),
            f.detail
        );
        println!("  shrunk: {}", f.shrunk);
        match &f.regression {
            Some(p) => println!("  regression saved: {}", p.display()),
            None => println!("  regression not saved"),
        }
    }
}
