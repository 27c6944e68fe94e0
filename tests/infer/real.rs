//! The exact kernel contract on the real Qwen2.5-Coder-0.5B Q4_K_M: its F32 export, its APR and
//! SafeTensors conversions and every thread count give bit-identical logits; inference keeps
//! the weights in their stored dtypes (anonymous memory stays below KV cache + 100 MB).

use apr_qa::convert::{convert, DtypeChoice, Target};
use apr_qa::dtype::GgmlType;
use apr_qa::infer::engine::Engine;
use apr_qa::infer::sampling::argmax;
use apr_qa::model::Model;

use super::{ids, refs};
use crate::util::{real_model, QWEN};

const REFS: &str = "qwen2.5-coder-0.5b-q4_k_m.json";

/// Three reference prompts (chat, raw text, raw code) as llama.cpp tokenized them.
fn prompts() -> Vec<Vec<u32>> {
    let r = refs(REFS);
    let p = r["prompts"].as_array().expect("prompts");
    [0, 4, 5]
        .iter()
        .map(|&i| ids(&p[i]["prompt_ids"]))
        .collect()
}

/// Logits at every prompt position, then after 4 greedy decode steps (matvec path).
fn logits(model: &Model, threads: usize, prompt: &[u32]) -> Vec<Vec<f32>> {
    let e = Engine::new(model, threads).expect("engine");
    let mut s = e.session(256);
    let mut out = s.eval_all(prompt).expect("eval_all");
    for _ in 0..4 {
        let next = argmax(out.last().expect("logits"));
        out.push(s.step(next).expect("step"));
    }
    out
}

fn assert_identical(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: positions");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let diff = x
            .iter()
            .zip(y)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(diff, 0, "{what}: position {i}: {diff} logits differ");
    }
}

/// Issue #5 (a): the quantized model and its F32 export give bit-identical logits.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_q4_k_m_and_its_f32_export_give_identical_logits() {
    let src = real_model(QWEN);
    let dir = tempfile::tempdir().expect("temp dir");
    let f32_path = dir.path().join("qwen-f32.gguf");
    convert(
        &src,
        &f32_path,
        Target::Gguf,
        DtypeChoice::To(GgmlType::F32),
    )
    .expect("F32 export");
    let (q, f) = (
        Model::open(&src).expect("open"),
        Model::open(&f32_path).expect("open export"),
    );
    assert!(f.tensors.iter().all(|t| t.dtype == GgmlType::F32));
    for (i, p) in prompts().iter().enumerate() {
        let a = logits(&q, 2, p);
        let b = logits(&f, 2, p);
        assert_identical(&a, &b, &format!("prompt {i}: Q4_K_M vs F32 export"));
        println!(
            "prompt {i}: {} positions × {} logits bit-identical",
            a.len(),
            a[0].len()
        );
    }
}

/// Issue #5 (b): 1, 2 and 4 threads give bit-identical logits.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_logits_do_not_depend_on_thread_count() {
    let q = Model::open(&real_model(QWEN)).expect("open");
    for (i, p) in prompts().iter().enumerate() {
        let one = logits(&q, 1, p);
        for threads in [2, 4] {
            assert_identical(
                &logits(&q, threads, p),
                &one,
                &format!("prompt {i}: {threads} threads vs 1"),
            );
        }
    }
}

/// Issue #5 (e): the APR and SafeTensors conversions give the GGUF's logits bit for bit.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_apr_and_safetensors_conversions_give_identical_logits() {
    let src = real_model(QWEN);
    let dir = tempfile::tempdir().expect("temp dir");
    let q = Model::open(&src).expect("open");
    let ps = prompts();
    let want: Vec<Vec<Vec<f32>>> = ps.iter().map(|p| logits(&q, 2, p)).collect();
    for (target, ext) in [(Target::Apr, "apr"), (Target::Safetensors, "safetensors")] {
        let out = dir.path().join(format!("qwen.{ext}"));
        convert(&src, &out, target, DtypeChoice::Keep).expect("convert");
        let m = Model::open(&out).expect("open conversion");
        for (i, (p, w)) in ps.iter().zip(&want).enumerate() {
            assert_identical(&logits(&m, 2, p), w, &format!("prompt {i}: {ext} vs GGUF"));
        }
    }
}

fn rss_anon_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon")
}

/// Weights stay in their stored dtypes: while prefilling and decoding, the process's anonymous
/// memory stays below the KV cache + 100 MB (an F32 expansion of Qwen would be ~2.5 GB). Runs
/// in a child process so other tests' memory does not count.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_anonymous_memory_stays_below_kv_cache_plus_100_mb() {
    const CHILD: &str = "APR_QA_INFER_RSS_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "infer::real::qwen_anonymous_memory_stays_below_kv_cache_plus_100_mb",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run child");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}");
        assert!(
            out.status.success(),
            "child failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("1 passed"),
            "child did not run the test:\n{text}"
        );
        return;
    }
    let model = Model::open(&real_model(QWEN)).expect("open");
    let engine = Engine::new(&model, 2).expect("engine");
    let mut s = engine.session(4096);
    let kv_mb = s.kv_bytes() as f64 / 1e6;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let peak = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = rss_anon_kb();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_anon_kb());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        });
        let prompt: Vec<u32> = (0..128u32).map(|i| 1000 + 37 * i).collect();
        let mut l = s.prefill(&prompt).expect("prefill");
        for _ in 0..32 {
            l = s.step(argmax(&l)).expect("step");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().expect("sampler")
    });
    let peak_mb = peak as f64 * 1024.0 / 1e6;
    println!("peak RssAnon {peak_mb:.1} MB; KV cache (4096 positions, full) {kv_mb:.1} MB; limit {:.1} MB", kv_mb + 100.0);
    assert!(
        peak_mb < kv_mb + 100.0,
        "RssAnon {peak_mb:.1} MB ≥ KV {kv_mb:.1} MB + 100 MB"
    );
}
