//! `cargo bench --bench infer`: prefill and decode throughput of the CPU engine on the real
//! Qwen2.5-Coder-0.5B Q4_K_M (scripts/fetch-models.sh), and — when llama-cpp-python imports
//! in the oracle venv — llama.cpp's on the same file in the same run, with the ratios.
//!
//! Prefill: a 128-token prompt into a fresh session. Decode: 128 greedy steps after it. Five
//! rounds alternate between the two engines (so both see the same machine load); each figure
//! is the best round. Peak anonymous memory (`RssAnon`, sampled every 2 ms from before the
//! model is opened: mapped weights are file pages and do not count) is compared with the
//! budget KV cache + 100 MB — a loader that expanded weights to F32 would blow it.
//!
//! Environment: `APR_QA_BENCH_THREADS` (default 2), `APR_QA_BENCH_SIMD` (scalar | avx2 |
//! avx512; default the best available), `APR_QA_BENCH_MODEL` (a model path), `APR_QA_MODELS`,
//! `APR_QA_VENV`. Diagnostics: `APR_QA_BENCH_KERNELS=1` (single-thread matrix × vector per
//! tensor and dtype, then streaming every weight once; `APR_QA_BENCH_STREAM_ONLY=1` for the
//! latter only), `APR_QA_BENCH_PREFILL_ONLY=1`, `APR_QA_BENCH_DECODE_ONLY=1` (400 steps).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[path = "common/anon_peak.rs"]
mod anon_peak;
use anon_peak::AnonPeak;

use apr_qa::infer::engine::{Engine, EngineOptions};
use apr_qa::infer::sampling::argmax;
use apr_qa::model::Model;

const PROMPT_LEN: usize = 128;
const DECODE_STEPS: usize = 128;

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

fn prompt(n_vocab: usize) -> Vec<u32> {
    // Deterministic ids spread over the ordinary-token range.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..PROMPT_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (n_vocab.min(150_000) as u64)) as u32
        })
        .collect()
}

/// Single-thread matrix × vector throughput of one tensor of each dtype, every SIMD level.
fn kernels(model: &Model) {
    use apr_qa::infer::kernels::{pool::Pool, Matrix, SimdLevel};
    let pool = Pool::new(1);
    let mut seen = std::collections::HashSet::new();
    for t in &model.tensors {
        if t.ne.len() < 2 || !seen.insert((t.dtype, t.ne.clone())) {
            continue;
        }
        let (n_in, n_out) = (t.ne[0] as usize, t.ne[1] as usize);
        let Ok(m) = Matrix::new(&t.name, t.dtype, n_in, n_out, model.tensor_data(t)) else {
            continue;
        };
        let x: Vec<f32> = (0..n_in).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = vec![0f32; n_out];
        for level in SimdLevel::all_available() {
            let reps = (2e8 / (n_in * n_out) as f64).clamp(3.0, 200.0) as usize;
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t0 = Instant::now();
                m.matmul(&pool, level, &x, 1, &mut y);
                best = best.min(t0.elapsed().as_secs_f64());
            }
            println!(
                "kernel {:<26} {:>6} [{n_in}×{n_out}] {level:>7}: {:8.3} ms  {:.4} ns/weight  {:5.1} GB/s",
                t.name,
                t.dtype.name(),
                best * 1e3,
                best * 1e9 / (n_in * n_out) as f64,
                t.n_bytes as f64 / best / 1e9
            );
        }
    }
}

/// Single-thread matrix × vector throughput streaming every weight matrix of the model once
/// per pass (as a decode step does), grouped by dtype.
fn stream(model: &Model) {
    use apr_qa::infer::kernels::{pool::Pool, Matrix, SimdLevel};
    let pool = Pool::new(1);
    let level = SimdLevel::detect();
    let mut groups: std::collections::BTreeMap<&str, Vec<Matrix<'_>>> = Default::default();
    for t in &model.tensors {
        if t.ne.len() < 2 || t.name == "token_embd.weight" {
            continue;
        }
        if let Ok(m) = Matrix::new(
            &t.name,
            t.dtype,
            t.ne[0] as usize,
            t.ne[1] as usize,
            model.tensor_data(t),
        ) {
            groups.entry(t.dtype.name()).or_default().push(m);
        }
    }
    let mut total = 0f64;
    for (dt, ms) in &groups {
        let bytes: usize = ms
            .iter()
            .map(|m| m.row(0).map_or(0, <[u8]>::len) * m.n_out())
            .sum();
        let weights: usize = ms.iter().map(|m| m.n_in() * m.n_out()).sum();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            for m in ms {
                let x = vec![0.5f32; m.n_in()];
                let mut y = vec![0f32; m.n_out()];
                m.matmul(&pool, level, &x, 1, &mut y);
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        total += best;
        println!(
            "stream {dt:>5}: {:3} matrices {:6.1} MB  {:7.2} ms  {:.4} ns/weight  {:5.1} GB/s",
            ms.len(),
            bytes as f64 / 1e6,
            best * 1e3,
            best * 1e9 / weights as f64,
            bytes as f64 / best / 1e9
        );
    }
    println!(
        "stream total (1 thread, {level}): {:.2} ms per token's weights",
        total * 1e3
    );
}

fn main() {
    let threads: usize = std::env::var("APR_QA_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let path = std::env::var_os("APR_QA_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let dir = std::env::var_os("APR_QA_MODELS")
                .map_or_else(|| home().join(".cache/apr-qa/models"), PathBuf::from);
            dir.join("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")
        });
    if !path.is_file() {
        eprintln!(
            "bench infer: missing {} — run scripts/fetch-models.sh",
            path.display()
        );
        std::process::exit(2);
    }
    let peak = AnonPeak::start();
    let model = Model::open(&path).expect("open model");
    if std::env::var_os("APR_QA_BENCH_KERNELS").is_some() {
        if std::env::var_os("APR_QA_BENCH_STREAM_ONLY").is_none() {
            kernels(&model);
        }
        stream(&model);
    }
    let simd = std::env::var("APR_QA_BENCH_SIMD").ok().map(|s| {
        s.parse()
            .expect("APR_QA_BENCH_SIMD: scalar, avx2 or avx512")
    });
    let engine = Engine::with_options(&model, EngineOptions { threads, simd }).expect("engine");
    let ids = prompt(engine.config().n_vocab);
    println!(
        "model {}  threads {}  simd {}",
        path.display(),
        engine.n_threads(),
        engine.simd_level()
    );
    if std::env::var_os("APR_QA_BENCH_DECODE_ONLY").is_some() {
        let mut s = engine.session(PROMPT_LEN + 512);
        let mut logits = s.prefill(&ids[..8]).expect("prefill");
        let t = Instant::now();
        for _ in 0..400 {
            logits = s.step(argmax(&logits)).expect("step");
        }
        println!(
            "decode only: {:.1} tok/s",
            400.0 / t.elapsed().as_secs_f64()
        );
        return;
    }
    if std::env::var_os("APR_QA_BENCH_PREFILL_ONLY").is_some() {
        let mut best = 0f64;
        for _ in 0..10 {
            best = best.max(ours_round(&engine, &ids, 0).0);
        }
        println!("prefill only: {best:.1} tok/s");
        return;
    }
    let mut llama = Llama::start(&path, threads, &ids);
    if llama.is_none() {
        println!("llama.cpp: not measured (llama-cpp-python does not import in the venv)");
    }
    // Rounds alternate between the engines so that both see the same machine load; each
    // figure is the best round.
    let (mut ours, mut theirs) = ((0f64, 0f64), (0f64, 0f64));
    for _ in 0..ROUNDS {
        let (p, d) = ours_round(&engine, &ids, DECODE_STEPS);
        ours = (ours.0.max(p), ours.1.max(d));
        if let Some(l) = llama.as_mut() {
            if let Some((p, d)) = l.round() {
                theirs = (theirs.0.max(p), theirs.1.max(d));
            }
        }
    }
    println!("apr-qa     prefill {:8.1} tok/s ({PROMPT_LEN} tokens)   decode {:7.1} tok/s ({DECODE_STEPS} steps)", ours.0, ours.1);
    if let Some(l) = &llama {
        println!(
            "llama.cpp  prefill {:8.1} tok/s   decode {:7.1} tok/s   (llama-cpp-python {}, same threads, same file)",
            theirs.0, theirs.1, l.version
        );
        println!(
            "ratio apr-qa / llama.cpp: prefill {:.2}×   decode {:.2}×   (best of {ROUNDS} alternating rounds)",
            ours.0 / theirs.0,
            ours.1 / theirs.1
        );
    }
    let kv = {
        let s = engine.session(PROMPT_LEN + DECODE_STEPS + 8);
        s.kv_bytes()
    };
    let (base, top) = peak.stop();
    let file = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "peak RssAnon +{} MB over {} MB at start (KV cache {} MB; budget KV + 100 MB = {} MB; file {} MB, mapped)",
        (top.saturating_sub(base)) >> 10,
        base >> 10,
        kv >> 20,
        (kv >> 20) + 100,
        file >> 20
    );
}

const ROUNDS: usize = 5;

/// One round of ours: (prefill tok/s, decode tok/s).
fn ours_round(engine: &Engine<'_>, ids: &[u32], steps: usize) -> (f64, f64) {
    let mut s = engine.session(PROMPT_LEN + DECODE_STEPS + 8);
    let t0 = Instant::now();
    let mut logits = s.prefill(ids).expect("prefill");
    let prefill = PROMPT_LEN as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for _ in 0..steps {
        logits = s.step(argmax(&logits)).expect("step");
    }
    (prefill, steps as f64 / t1.elapsed().as_secs_f64())
}

/// llama.cpp in a persistent llama-cpp-python process, one round per request on stdin.
struct Llama {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    version: String,
}

impl Llama {
    fn start(path: &std::path::Path, threads: usize, ids: &[u32]) -> Option<Self> {
        use std::io::BufRead;
        let venv = std::env::var_os("APR_QA_VENV")
            .map_or_else(|| home().join(".cache/apr-qa/venv"), PathBuf::from);
        let script = format!(
            r#"
import sys, time, llama_cpp
from llama_cpp import Llama
ids = {ids:?}
llm = Llama(model_path={path:?}, n_ctx={n_ctx}, n_threads={threads}, n_threads_batch={threads}, n_batch=512, verbose=False)
print(llama_cpp.__version__, flush=True)
for line in sys.stdin:
    llm.reset()
    t = time.perf_counter(); llm.eval(ids); p = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range({steps}):
        llm.eval([ids[0]])
    d = time.perf_counter() - t
    print({plen} / p, {steps} / d, flush=True)
"#,
            path = path.display().to_string(),
            n_ctx = PROMPT_LEN + DECODE_STEPS + 8,
            steps = DECODE_STEPS,
            plen = PROMPT_LEN,
        );
        let mut child = Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut out = std::io::BufReader::new(child.stdout.take()?);
        let mut version = String::new();
        out.read_line(&mut version).ok()?;
        let version = version.trim().to_string();
        if version.is_empty() {
            let _ = child.kill();
            return None;
        }
        Some(Self {
            child,
            out,
            version,
        })
    }

    fn round(&mut self) -> Option<(f64, f64)> {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut()?;
        stdin.write_all(b"go\n").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        self.out.read_line(&mut line).ok()?;
        let mut f = line.split_whitespace().map(|v| v.parse::<f64>().ok());
        Some((f.next()??, f.next()??))
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
