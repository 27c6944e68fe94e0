//! `cargo bench --bench convert [MODEL.gguf]`: lossless conversion wall time against `cp` of the
//! same file, measured back to back in the same run (best of 3 each), HF F32 export time, and
//! peak anonymous memory (`RssAnon`, sampled every 2 ms: mapped file pages are not counted, and
//! Linux keeps no peak for it). Default model: the real Qwen2.5-Coder-0.5B Q4_K_M.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/anon_peak.rs"]
mod anon_peak;
use anon_peak::AnonPeak;

use apr_qa::convert::{convert, DtypeChoice, Target};

/// Runs `f`, returning its wall time and the peak RssAnon above the level before it (KB).
fn measured(f: impl FnOnce()) -> (Duration, u64) {
    let peak = AnonPeak::start();
    let t0 = Instant::now();
    f();
    let took = t0.elapsed();
    let (base, top) = peak.stop();
    (took, top.saturating_sub(base))
}

fn best_of(n: usize, mut f: impl FnMut() -> (Duration, u64)) -> (Duration, u64) {
    (0..n)
        .map(|_| f())
        .fold((Duration::MAX, 0), |(t, m), (t2, m2)| {
            (t.min(t2), m.max(m2))
        })
}

fn main() {
    let home = std::env::var("HOME").unwrap_or_default();
    let model: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&home).join(".cache/apr-qa/models/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")
        });
    if !model.is_file() {
        eprintln!("no model at {} (scripts/fetch-models.sh)", model.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let largest = apr_qa::model::Model::open(&model)
        .map(|m| m.largest_tensor_bytes())
        .unwrap_or(0);
    let cp = best_of(3, || {
        let out = dir.path().join("cp.gguf");
        let r = measured(|| {
            std::fs::copy(&model, &out).expect("cp");
        });
        let _ = std::fs::remove_file(&out);
        r
    });
    println!(
        "model {} ({} MB, largest tensor {} MB)",
        model.display(),
        std::fs::metadata(&model)
            .map(|m| m.len() >> 20)
            .unwrap_or(0),
        largest >> 20
    );
    println!("{:<28} {:>8.3} s  (reference)", "cp", cp.0.as_secs_f64());
    for (name, to, ext) in [
        ("gguf->apr", Target::Apr, "apr"),
        ("gguf->safetensors", Target::Safetensors, "safetensors"),
        ("gguf->gguf", Target::Gguf, "gguf"),
    ] {
        let r = best_of(3, || {
            let out = dir.path().join(format!("out.{ext}"));
            let r = measured(|| {
                convert(&model, &out, to, DtypeChoice::Keep).expect("convert");
            });
            let _ = std::fs::remove_file(&out);
            r
        });
        println!(
            "{name:<28} {:>8.3} s  {:>5.2}x cp   peak RssAnon +{} MB (largest tensor + 64 MB = {} MB)",
            r.0.as_secs_f64(),
            r.0.as_secs_f64() / cp.0.as_secs_f64(),
            r.1 >> 10,
            (largest >> 20) + 64
        );
    }
    let hf = measured(|| {
        convert(
            &model,
            &dir.path().join("hf"),
            Target::Hf,
            DtypeChoice::Keep,
        )
        .expect("export");
    });
    println!(
        "{:<28} {:>8.3} s  {:>5.2}x cp   peak RssAnon +{} MB",
        "gguf->hf (F32)",
        hf.0.as_secs_f64(),
        hf.0.as_secs_f64() / cp.0.as_secs_f64(),
        hf.1 >> 10
    );
}
