//! Issue #5 (forward pass, kernels, KV cache, sampling): the engine against llama.cpp's
//! committed continuations, the exact kernel contract on real models (quantized = F32
//! export, any thread count, any format), and fast checks on a tiny random model.

use apr_qa::infer::engine::Engine;
use apr_qa::model::Model;
use serde_json::Value;

use apr_qa::infer::sampling::argmax;

use crate::util::{real_model, root, GEMMA, QWEN, SMOLLM};

mod real;
mod tiny;

/// llama.cpp's references (scripts/gen-infer-refs.py).
pub(crate) fn refs(name: &str) -> Value {
    let p = root().join("tests/data/infer").join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("reference JSON")
}

pub(crate) fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Largest |Δlogit| (over llama.cpp's top-8) allowed against llama.cpp's exact run (F32 export,
/// f32 KV cache). Measured: 1.3e-5 (Qwen), 3.1e-5 (SmolLM2) over the 8 prompts × 64 steps —
/// summation order and libm only; set with a wide margin, far below the ≤ 0.5 of issue #5.
const TOL_EXACT: f32 = 1e-3;

/// Largest |Δlogit| against llama.cpp's default run on the quantized file (8-bit activations in
/// its dot products, f16 KV cache), teacher-forced. Measured: 0.52 (Qwen), 1.03 (SmolLM2): that
/// run's own approximation error, which is why the greedy rule is enforced on the exact run.
const TOL_QUANTIZED: f32 = 1.5;

/// One step of a reference: llama.cpp's top-8 ids and logits.
fn top8(step: &Value) -> (Vec<u32>, Vec<f32>) {
    let l = step["top_logits"].as_array().expect("logits");
    (
        ids(&step["top_ids"]),
        l.iter()
            .map(|v| v.as_f64().expect("logit") as f32)
            .collect(),
    )
}

fn max_delta(ours: &[f32], top: &[u32], top_l: &[f32]) -> f32 {
    top.iter()
        .zip(top_l)
        .map(|(&i, &l)| (ours[i as usize] - l).abs())
        .fold(0.0, f32::max)
}

/// Greedy decoding from llama.cpp's prompt ids, compared with its 64 greedy tokens (`run`:
/// `tokens`/`steps` of a reference run). A token differing from llama.cpp's is accepted only
/// where llama.cpp's own top-2 gap is smaller than the largest |Δlogit| between the engines over
/// the common steps so far (over llama.cpp's top-8, the diverging step included, whose context
/// is still common), and only while that largest |Δlogit| is below `tol`; comparison stops
/// there. With `tol` None the rule is only reported. Returns the largest |Δlogit| seen.
fn greedy_rule(
    engine: &Engine<'_>,
    name: &str,
    prompt: &[u32],
    run: &Value,
    tol: Option<f32>,
) -> f32 {
    let want = ids(&run["tokens"]);
    let steps = run["steps"].as_array().expect("steps");
    let mut s = engine.session(512);
    let mut logits = s.prefill(prompt).expect("prefill");
    let mut max_d = 0f32;
    let tol_s = tol.map_or_else(|| "none: reported only".to_string(), |t| t.to_string());
    for (i, (step, &w)) in steps.iter().zip(&want).enumerate() {
        let (top, top_l) = top8(step);
        max_d = max_d.max(max_delta(&logits, &top, &top_l));
        if let Some(tol) = tol {
            assert!(
                max_d < tol,
                "{name}: step {i}: max |Δlogit| {max_d} ≥ tolerance {tol}"
            );
        }
        let got = argmax(&logits);
        if got != w {
            let gap = top_l[0] - top_l[1];
            println!(
                "{name}: diverges at step {i} (ours {got}, llama.cpp {w}): llama.cpp top-2 gap {gap:.6}, max |Δlogit| {max_d:.6}, tolerance {tol_s}"
            );
            if tol.is_some() {
                assert!(
                    gap < max_d,
                    "{name}: divergence at step {i} not excused: llama.cpp top-2 gap {gap} ≥ max |Δlogit| {max_d} (tolerance {tol_s})"
                );
            }
            return max_d;
        }
        logits = s.step(got).expect("step");
    }
    println!(
        "{name}: all {} tokens equal, max |Δlogit| {max_d:.6} (tolerance {tol_s})",
        want.len()
    );
    max_d
}

/// Teacher forcing on llama.cpp's own tokens: our logits at every step after the same context,
/// compared over its top-8; where its top-2 gap exceeds 2 × `tol`, the argmax must agree.
/// Returns the largest |Δlogit|.
fn teacher_forced(engine: &Engine<'_>, name: &str, prompt: &[u32], run: &Value, tol: f32) -> f32 {
    let want = ids(&run["tokens"]);
    let steps = run["steps"].as_array().expect("steps");
    let mut seq = prompt.to_vec();
    seq.extend_from_slice(&want[..want.len() - 1]);
    let all = engine.session(512).eval_all(&seq).expect("eval_all");
    let mut max_d = 0f32;
    let mut checked = 0;
    for (i, (step, &w)) in steps.iter().zip(&want).enumerate() {
        let ours = &all[prompt.len() - 1 + i];
        let (top, top_l) = top8(step);
        max_d = max_d.max(max_delta(ours, &top, &top_l));
        if top_l[0] - top_l[1] > 2.0 * tol {
            checked += 1;
            assert_eq!(
                argmax(ours),
                w,
                "{name}: step {i}: argmax differs where llama.cpp's top-2 gap is {}",
                top_l[0] - top_l[1]
            );
        }
    }
    println!("{name}: teacher-forced, max |Δlogit| {max_d:.4} (tolerance {tol}), argmax equal at all {checked} steps with gap > 2·tol");
    assert!(
        max_d < tol,
        "{name}: max |Δlogit| {max_d} ≥ tolerance {tol}"
    );
    max_d
}

/// Issue #5 (c) for one model: greedy tokens against llama.cpp's exact run under the
/// divergence rule, plus the default (quantized-path) run teacher-forced.
fn compare_with_llama_cpp(model_file: &str, refs_file: &str) {
    let model = Model::open(&real_model(model_file)).expect("open model");
    let engine = Engine::new(&model, 2).expect("engine");
    let r = refs(refs_file);
    let (mut worst_exact, mut worst_q) = (0f32, 0f32);
    for p in r["prompts"].as_array().expect("prompts") {
        let name = format!("{model_file} {:?}", p["message"].as_str().unwrap_or("?"));
        let prompt = ids(&p["prompt_ids"]);
        let exact = format!("{name} [llama.cpp exact]");
        worst_exact = worst_exact.max(greedy_rule(
            &engine,
            &exact,
            &prompt,
            &p["exact"],
            Some(TOL_EXACT),
        ));
        let default = format!("{name} [llama.cpp default]");
        greedy_rule(&engine, &default, &prompt, p, None);
        worst_q = worst_q.max(teacher_forced(&engine, &default, &prompt, p, TOL_QUANTIZED));
    }
    println!(
        "{model_file}: worst max |Δlogit|: {worst_exact:.3e} vs llama.cpp exact (tolerance {TOL_EXACT}), {worst_q:.3} vs llama.cpp default (tolerance {TOL_QUANTIZED})"
    );
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_greedy_matches_llama_cpp() {
    compare_with_llama_cpp(QWEN, "qwen2.5-coder-0.5b-q4_k_m.json");
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn smollm2_greedy_matches_llama_cpp() {
    compare_with_llama_cpp(SMOLLM, "smollm2-135m-q4_1.json");
}

/// Issue #5 (d) on the real file.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn gemma3_real_model_is_refused_by_name() {
    let model = Model::open(&real_model(GEMMA)).expect("open gemma");
    let err = Engine::new(&model, 1).unwrap_err();
    assert!(
        matches!(&err, apr_qa::infer::config::InferError::UnsupportedArch { arch } if arch == "gemma3"),
        "{err:?}"
    );
    assert!(err.to_string().contains("gemma3"), "{err}");
}
