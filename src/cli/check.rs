//! `apr-qa diff`, `apr-qa fingerprint`, `apr-qa validate`.

use std::path::PathBuf;

use apr_qa::convert::diff::diff;
use apr_qa::convert::fingerprint::fingerprint;
use apr_qa::convert::validate::validate;
use apr_qa::model::Model;

use super::{Failure, EXIT_FAILED, EXIT_OK};

#[derive(clap::Args)]
pub struct DiffArgs {
    /// First model (any format).
    a: PathBuf,
    /// Second model (any format).
    b: PathBuf,
    /// Largest max|Δ| still counted as equal (0: raw bytes must match where dtypes do).
    #[arg(long, default_value_t = 0.0)]
    tolerance: f64,
    /// List equal tensors too.
    #[arg(long)]
    all: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct FileArgs {
    /// The model file.
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Opens a model file, or an HF directory (Q/K rows re-permuted to GGUF order on import, so
/// fingerprints and diffs compare like with like).
fn open(p: &std::path::Path) -> Result<Model, Failure> {
    if apr_qa::convert::hf_import::is_hf_dir(p) {
        let scratch = tempfile::tempdir().map_err(Failure::bad_input)?;
        return apr_qa::convert::hf_import::open_hf_dir(p, scratch.path())
            .map_err(Failure::bad_input);
    }
    Model::open(p).map_err(Failure::bad_input)
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(Failure::bad_input)?
    );
    Ok(())
}

pub fn run_diff(a: DiffArgs) -> Result<u8, Failure> {
    let (ma, mb) = (open(&a.a)?, open(&a.b)?);
    let r = diff(&ma, &mb, a.tolerance, a.all).map_err(Failure::bad_input)?;
    let code = if r.differs() { EXIT_FAILED } else { EXIT_OK };
    if a.json {
        print_json(&r)?;
        return Ok(code);
    }
    for t in &r.tensors {
        let mut line = format!(
            "{}: {}/{} {:?}/{:?}",
            t.name, t.dtype.0, t.dtype.1, t.shape.0, t.shape.1
        );
        if let Some(off) = t.first_byte_diff {
            line += &format!("  first differing byte {off}");
        }
        line += &format!(
            "  max|Δ| {:.3e} mean|Δ| {:.3e} differing {}",
            t.max_abs, t.mean_abs, t.n_differ
        );
        if let (Some(i), Some((x, y))) = (t.first_index, t.first_values) {
            line += &format!("  first at index {i}: {x} vs {y}");
        }
        if t.nan != (0, 0) || t.inf != (0, 0) {
            line += &format!("  NaN {:?} Inf {:?}", t.nan, t.inf);
        }
        println!("{} {line}", if t.differs { "DIFF" } else { "same" });
    }
    for n in &r.missing {
        println!("MISSING in B: {n}");
    }
    for n in &r.extra {
        println!("EXTRA in B: {n}");
    }
    for m in &r.metadata {
        println!(
            "METADATA {}: {} vs {}",
            m.key,
            m.a.as_deref().unwrap_or("(absent)"),
            m.b.as_deref().unwrap_or("(absent)")
        );
    }
    println!(
        "{} tensors matched, {} differ, {} missing, {} extra, {} metadata differences; max|Δ| {:.3e} (tolerance {:e})",
        r.n_matched,
        r.tensors.iter().filter(|t| t.differs).count(),
        r.missing.len(),
        r.extra.len(),
        r.metadata.len(),
        r.max_abs,
        r.tolerance
    );
    Ok(code)
}

pub fn run_fingerprint(a: FileArgs) -> Result<u8, Failure> {
    let m = open(&a.file)?;
    let prints = fingerprint(&m).map_err(Failure::bad_input)?;
    if a.json {
        print_json(&prints)?;
        return Ok(EXIT_OK);
    }
    for p in &prints {
        let f32h = p.sha256_f32.as_deref().map_or("-", |h| &h[..16]);
        let stats = p.stats.as_ref().map_or(String::new(), |s| {
            format!(
                "mean {:+.4e} std {:.4e} min {:+.4e} max {:+.4e} nan {} inf {} zeros {}",
                s.mean, s.std, s.min, s.max, s.nan, s.inf, s.zeros
            )
        });
        println!(
            "{:<44} {:<6} {:<16} raw {} f32 {} {stats}",
            p.name,
            p.dtype,
            format!("{:?}", p.shape),
            &p.sha256_raw[..16],
            f32h
        );
    }
    Ok(EXIT_OK)
}

pub fn run_validate(a: FileArgs) -> Result<u8, Failure> {
    let m = open(&a.file)?;
    let findings = validate(&m).map_err(Failure::bad_input)?;
    let code = if findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    if a.json {
        print_json(
            &serde_json::json!({ "valid": findings.is_empty(), "findings": findings, "notes": m.findings }),
        )?;
        return Ok(code);
    }
    for f in &findings {
        println!("{}: {}: {}", f.kind, f.subject, f.detail);
    }
    for n in &m.findings {
        println!("note: {n}");
    }
    println!(
        "{}: {} tensors, {} findings",
        a.file.display(),
        m.tensors.len(),
        findings.len()
    );
    Ok(code)
}
