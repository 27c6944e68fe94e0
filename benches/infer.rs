//! `cargo bench --bench infer`: prefill and decode throughput of the CPU engine on the real
//! Qwen2.5-Coder-0.5B Q4_K_M (scripts/fetch-models.sh), and — when llama-cpp-python imports
//! in the oracle venv — llama.cpp's on the same file in the same run, with the ratios.
//!
//! Prefill: a 128-token prompt into a fresh session (best of 3). Decode: 64 steps after it
//! (tokens/s over the steps; best of 3). Environment: `APR_QA_BENCH_THREADS` (default 2),
//! `APR_QA_BENCH_MODEL` (a model path), `APR_QA_MODELS`, `APR_QA_VENV`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use apr_qa::infer::engine::Engine;
use apr_qa::infer::sampling::argmax;
use apr_qa::model::Model;

const PROMPT_LEN: usize = 128;
const DECODE_STEPS: usize = 64;

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

fn main() {
    let threads: usize = std::env::var("APR_QA_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let path = std::env::var_os("APR_QA_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        let dir = std::env::var_os("APR_QA_MODELS")
            .map_or_else(|| home().join(".cache/apr-qa/models"), PathBuf::from);
        dir.join("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")
    });
    if !path.is_file() {
        eprintln!("bench infer: missing {} — run scripts/fetch-models.sh", path.display());
        std::process::exit(2);
    }
    let model = Model::open(&path).expect("open model");
    if std::env::var_os("APR_QA_BENCH_KERNELS").is_some() {
        kernels(&model);
    }
    let engine = Engine::new(&model, threads).expect("engine");
    let ids = prompt(engine.config().n_vocab);
    println!(
        "model {}  threads {}  simd {}",
        path.display(),
        engine.n_threads(),
        engine.simd_level()
    );
    let (mut best_prefill, mut best_decode) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let mut s = engine.session(PROMPT_LEN + DECODE_STEPS + 8);
        let t0 = Instant::now();
        let mut logits = s.prefill(&ids).expect("prefill");
        best_prefill = best_prefill.min(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        for _ in 0..DECODE_STEPS {
            logits = s.step(argmax(&logits)).expect("step");
        }
        best_decode = best_decode.min(t1.elapsed().as_secs_f64());
    }
    if std::env::var_os("APR_QA_BENCH_DECODE_ONLY").is_some() {
        let mut s = engine.session(PROMPT_LEN + 512);
        let mut logits = s.prefill(&ids[..8]).expect("prefill");
        let t = Instant::now();
        for _ in 0..400 {
            logits = s.step(argmax(&logits)).expect("step");
        }
        println!("decode only: {:.1} tok/s", 400.0 / t.elapsed().as_secs_f64());
        return;
    }
    let ours_prefill = PROMPT_LEN as f64 / best_prefill;
    let ours_decode = DECODE_STEPS as f64 / best_decode;
    println!("apr-qa     prefill {ours_prefill:8.1} tok/s ({PROMPT_LEN} tokens)   decode {ours_decode:7.1} tok/s ({DECODE_STEPS} steps)");
    drop(engine);

    let venv = std::env::var_os("APR_QA_VENV").map_or_else(|| home().join(".cache/apr-qa/venv"), PathBuf::from);
    let py = venv.join("bin/python");
    let script = format!(
        r#"
import time, llama_cpp
from llama_cpp import Llama
ids = {ids:?}
llm = Llama(model_path={path:?}, n_ctx={n_ctx}, n_threads={threads}, n_threads_batch={threads}, n_batch=512, verbose=False)
bp = bd = 1e9
for _ in range(3):
    llm.reset()
    t = time.perf_counter(); llm.eval(ids); bp = min(bp, time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range({steps}):
        llm.eval([ids[0]])
    bd = min(bd, time.perf_counter() - t)
print(llama_cpp.__version__, {plen} / bp, {steps} / bd)
"#,
        path = path.display().to_string(),
        n_ctx = PROMPT_LEN + DECODE_STEPS + 8,
        steps = DECODE_STEPS,
        plen = PROMPT_LEN,
    );
    let out = py.is_file().then(|| Command::new(&py).arg("-c").arg(&script).output());
    match out {
        Some(Ok(o)) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let f: Vec<&str> = s.split_whitespace().collect();
            if let [ver, p, d] = f[..] {
                let (p, d): (f64, f64) = (p.parse().unwrap_or(f64::NAN), d.parse().unwrap_or(f64::NAN));
                println!("llama.cpp  prefill {p:8.1} tok/s   decode {d:7.1} tok/s   (llama-cpp-python {ver}, same threads)");
                println!(
                    "ratio apr-qa / llama.cpp: prefill {:.2}×   decode {:.2}×",
                    ours_prefill / p,
                    ours_decode / d
                );
            } else {
                println!("llama.cpp: unexpected output {s:?}");
            }
        }
        Some(Ok(o)) => println!(
            "llama.cpp: not measured (llama-cpp-python failed: {})",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Some(Err(e)) => println!("llama.cpp: not measured ({e})"),
        None => println!("llama.cpp: not measured (no venv at {})", venv.display()),
    }
}
