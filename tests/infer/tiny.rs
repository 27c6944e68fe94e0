//! Fast checks on tiny random models written as GGUF (two blocks, every dtype family): the
//! exact kernel contract end to end (quantized = F32 export, any thread count, any SIMD level,
//! prefill = steps = teacher forcing), errors, and seeded sampling.

use std::path::{Path, PathBuf};

use apr_qa::convert::{convert, DtypeChoice, Target};
use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::GgufValue;
use apr_qa::formats::gguf_write::{write_gguf, GgufTensorSpec};
use apr_qa::infer::config::InferError;
use apr_qa::infer::engine::{Engine, EngineOptions};
use apr_qa::infer::generate::{generate, generate_with, FinishReason, GenerateOptions};
use apr_qa::infer::kernels::SimdLevel;
use apr_qa::infer::sampling::Sampler;
use apr_qa::model::Model;
use apr_qa::quant::quantize;

const N_EMBD: u64 = 256;
const N_FF: u64 = 512;
const N_VOCAB: u64 = 300;
const KV_DIM: u64 = 128; // 2 kv heads of 64; 4 query heads

struct Rng(u64);
impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// A tiny model file in a temp dir.
pub struct Tiny {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Writes a tiny `arch` model: layer 0 uses the SIMD-decoded dtypes, layer 1 others (incl.
/// Q2_K/Q3_K, which take the generic row-decode path); `tied` leaves out `output.weight`.
pub fn tiny(arch: &str, tied: bool, seed: u64) -> Tiny {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("tiny-{arch}.gguf"));
    let mut rng = Rng(seed | 1);
    let a = arch;
    let kv = |k: &str, v: GgufValue| (format!("{a}.{k}"), v);
    let meta = vec![
        (
            "general.architecture".to_string(),
            GgufValue::String(arch.as_bytes().to_vec()),
        ),
        kv("block_count", GgufValue::U32(2)),
        kv("context_length", GgufValue::U32(256)),
        kv("embedding_length", GgufValue::U32(N_EMBD as u32)),
        kv("feed_forward_length", GgufValue::U32(N_FF as u32)),
        kv("attention.head_count", GgufValue::U32(4)),
        kv("attention.head_count_kv", GgufValue::U32(2)),
        kv("attention.layer_norm_rms_epsilon", GgufValue::F32(1e-6)),
        kv("rope.freq_base", GgufValue::F32(10000.0)),
    ];
    // (name, ne, dtype, value scale, value offset)
    let mut t: Vec<(String, Vec<u64>, GgmlType, f32, f32)> = vec![(
        "token_embd.weight".into(),
        vec![N_EMBD, N_VOCAB],
        GgmlType::Q8_0,
        1.0,
        0.0,
    )];
    let layer_types = [
        [
            GgmlType::Q4_K,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q6_K,
            GgmlType::Q4_1,
            GgmlType::Q5_K,
            GgmlType::Q4_0,
        ],
        [
            GgmlType::F16,
            GgmlType::Q5_1,
            GgmlType::Q3_K,
            GgmlType::Q2_K,
            GgmlType::BF16,
            GgmlType::F32,
            GgmlType::Q4_K,
        ],
    ];
    for (l, ty) in layer_types.iter().enumerate() {
        let n = |s: &str| format!("blk.{l}.{s}");
        t.push((n("attn_norm.weight"), vec![N_EMBD], GgmlType::F32, 0.2, 1.0));
        t.push((n("attn_q.weight"), vec![N_EMBD, N_EMBD], ty[0], 0.15, 0.0));
        t.push((n("attn_k.weight"), vec![N_EMBD, KV_DIM], ty[1], 0.15, 0.0));
        t.push((n("attn_v.weight"), vec![N_EMBD, KV_DIM], ty[2], 0.15, 0.0));
        if arch == "qwen2" {
            t.push((n("attn_q.bias"), vec![N_EMBD], GgmlType::F32, 0.5, 0.0));
            t.push((n("attn_k.bias"), vec![KV_DIM], GgmlType::F32, 0.5, 0.0));
            t.push((n("attn_v.bias"), vec![KV_DIM], GgmlType::F32, 0.5, 0.0));
        }
        t.push((
            n("attn_output.weight"),
            vec![N_EMBD, N_EMBD],
            ty[3],
            0.1,
            0.0,
        ));
        t.push((n("ffn_norm.weight"), vec![N_EMBD], GgmlType::F32, 0.2, 1.0));
        t.push((n("ffn_gate.weight"), vec![N_EMBD, N_FF], ty[4], 0.15, 0.0));
        t.push((n("ffn_up.weight"), vec![N_EMBD, N_FF], ty[5], 0.15, 0.0));
        t.push((n("ffn_down.weight"), vec![N_FF, N_EMBD], ty[6], 0.1, 0.0));
    }
    t.push((
        "output_norm.weight".into(),
        vec![N_EMBD],
        GgmlType::F32,
        0.2,
        1.0,
    ));
    if !tied {
        t.push((
            "output.weight".into(),
            vec![N_EMBD, N_VOCAB],
            GgmlType::Q6_K,
            0.3,
            0.0,
        ));
    }
    let data: Vec<Vec<u8>> = t
        .iter()
        .map(|(_, ne, dt, scale, off)| {
            let n: u64 = ne.iter().product();
            let vals: Vec<f32> = (0..n).map(|_| off + scale * rng.f32()).collect();
            let bytes = dt.row_bytes(n).expect("whole blocks") as usize;
            let mut b = vec![0u8; bytes];
            quantize(*dt, &vals, &mut b).expect("quantize");
            b
        })
        .collect();
    let specs: Vec<GgufTensorSpec<'_>> = t
        .iter()
        .map(|(name, ne, dt, _, _)| GgufTensorSpec {
            name,
            ne,
            dtype: *dt,
        })
        .collect();
    write_gguf(&path, 3, &meta, &specs, &mut |i, w| w.write_all(&data[i]))
        .expect("write tiny gguf");
    Tiny { _dir: dir, path }
}

fn open(p: &Path) -> Model {
    Model::open(p).expect("open tiny model")
}

const PROMPT: [u32; 11] = [1, 17, 42, 299, 5, 5, 128, 64, 200, 3, 77];

fn all_logits(model: &Model, opts: EngineOptions) -> Vec<Vec<f32>> {
    let e = Engine::with_options(model, opts).expect("engine");
    e.session(64).eval_all(&PROMPT).expect("eval_all")
}

fn assert_bits_eq(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: positions");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}: vocab");
        for (j, (p, q)) in x.iter().zip(y).enumerate() {
            assert!(
                p.to_bits() == q.to_bits(),
                "{what}: position {i} token {j}: {p} vs {q}"
            );
        }
    }
}

fn opts(threads: usize, simd: Option<SimdLevel>) -> EngineOptions {
    EngineOptions { threads, simd }
}

#[test]
fn tiny_quantized_and_f32_export_give_identical_logits() {
    for (arch, tied) in [("qwen2", false), ("llama", true)] {
        let m = tiny(arch, tied, 11);
        let out = m.path.with_file_name("f32.gguf");
        convert(&m.path, &out, Target::Gguf, DtypeChoice::To(GgmlType::F32)).expect("f32 export");
        let (q, f) = (open(&m.path), open(&out));
        assert!(f.tensors.iter().all(|t| t.dtype == GgmlType::F32));
        let a = all_logits(&q, opts(2, None));
        assert!(a.iter().flatten().all(|v| v.is_finite()));
        let spread = a[0].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(spread > 0.1, "{arch}: logits are degenerate ({spread})");
        assert_bits_eq(
            &a,
            &all_logits(&f, opts(2, None)),
            &format!("{arch} quantized vs F32 export"),
        );
    }
}

#[test]
fn tiny_logits_do_not_depend_on_threads_or_simd_level() {
    let m = tiny("qwen2", false, 12);
    let model = open(&m.path);
    let want = all_logits(&model, opts(1, Some(SimdLevel::Scalar)));
    for level in SimdLevel::all_available() {
        for threads in [1, 2, 3, 4] {
            let got = all_logits(&model, opts(threads, Some(level)));
            assert_bits_eq(
                &got,
                &want,
                &format!("{level} × {threads} threads vs scalar × 1"),
            );
        }
    }
}

#[test]
fn tiny_prefill_steps_and_eval_all_agree() {
    let m = tiny("llama", false, 13);
    let model = open(&m.path);
    let e = Engine::new(&model, 2).expect("engine");
    let all = e.session(64).eval_all(&PROMPT).expect("eval_all");
    let mut s = e.session(64);
    let mut steps = Vec::new();
    for &t in &PROMPT {
        steps.push(s.step(t).expect("step"));
    }
    assert_bits_eq(&steps, &all, "steps vs eval_all");
    let mut s = e.session(64);
    let last = s.prefill(&PROMPT[..6]).expect("prefill");
    let rest = s.eval_all(&PROMPT[6..]).expect("continue");
    assert_bits_eq(&[last], &all[5..6], "prefill vs eval_all");
    assert_bits_eq(&rest, &all[6..], "continued eval_all");
    assert_eq!(s.n_past(), PROMPT.len());
}

#[test]
fn tiny_context_overflow_names_both_numbers() {
    let m = tiny("qwen2", false, 14);
    let model = open(&m.path);
    let e = Engine::new(&model, 1).expect("engine");
    let mut s = e.session(8);
    let err = s.prefill(&PROMPT).unwrap_err();
    assert!(
        matches!(
            err,
            InferError::ContextFull {
                needed: 11,
                n_ctx: 8,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("11") && msg.contains('8'), "{msg}");
    let err = s.prefill(&[N_VOCAB as u32]).unwrap_err();
    assert!(matches!(err, InferError::BadToken { .. }), "{err:?}");
    assert!(matches!(
        s.prefill(&[]).unwrap_err(),
        InferError::Empty { .. }
    ));
}

#[test]
fn gemma3_is_refused_by_name() {
    let m = tiny("gemma3", false, 15);
    let model = open(&m.path);
    let err = Engine::new(&model, 1).unwrap_err();
    assert!(
        matches!(&err, InferError::UnsupportedArch { arch } if arch == "gemma3"),
        "{err:?}"
    );
    assert!(err.to_string().contains("gemma3"));
}

#[test]
fn unsupported_weight_dtype_names_tensor_and_dtype() {
    let m = tiny("llama", false, 16);
    let model = open(&m.path);
    let mut bad = open(&m.path);
    // Same bytes, declared as I8: the engine must refuse it by name, not guess.
    let i = bad
        .tensors
        .iter()
        .position(|t| t.name == "blk.1.attn_q.weight")
        .expect("tensor");
    bad.tensors[i].dtype = GgmlType::I8;
    bad.tensors[i].n_bytes = N_EMBD * N_EMBD;
    let err = Engine::new(&bad, 1).unwrap_err().to_string();
    assert!(
        err.contains("blk.1.attn_q.weight") && err.contains("I8"),
        "{err}"
    );
    drop(model);
}

#[test]
fn tiny_generation_is_seeded_and_stops() {
    let m = tiny("qwen2", false, 17);
    let model = open(&m.path);
    let e = Engine::new(&model, 2).expect("engine");
    let sampler = Sampler {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        seed: 7,
    };
    let run =
        |s: &Sampler| generate(&mut e.session(64), &PROMPT, 20, s, &|_| false).expect("generate");
    let a = run(&sampler);
    assert_eq!(a.tokens.len(), 20);
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.tokens, run(&sampler).tokens, "same seed, same tokens");
    // Greedy equals argmax of teacher-forced logits.
    let g = generate_with(
        &mut e.session(64),
        &PROMPT,
        8,
        &Sampler::greedy(),
        &|_| false,
        GenerateOptions { keep_logits: true },
    )
    .expect("greedy");
    let mut forced = PROMPT.to_vec();
    forced.extend_from_slice(&g.tokens[..7]);
    let all = e.session(64).eval_all(&forced).expect("eval_all");
    let kept = g.step_logits.as_ref().expect("kept logits");
    for (i, tok) in g.tokens.iter().enumerate() {
        let l = &all[PROMPT.len() - 1 + i];
        assert_eq!(*tok, apr_qa::infer::sampling::argmax(l), "step {i}");
        assert_bits_eq(&kept[i..=i], std::slice::from_ref(l), "kept logits");
    }
    // A stop predicate ends generation and reports the token.
    let stop_at = g.tokens[3];
    let s = generate(&mut e.session(64), &PROMPT, 8, &Sampler::greedy(), &|t| {
        t == stop_at
    })
    .expect("stop");
    assert_eq!(s.finish_reason, FinishReason::Stop);
    assert_eq!(s.stop_token, Some(stop_at));
    let first = g
        .tokens
        .iter()
        .position(|&t| t == stop_at)
        .expect("in tokens");
    assert_eq!(s.tokens, g.tokens[..first]);
    // A full context ends generation without an error.
    let c = generate(
        &mut e.session(PROMPT.len() + 2),
        &PROMPT,
        8,
        &Sampler::greedy(),
        &|_| false,
    )
    .expect("full context");
    assert_eq!(c.finish_reason, FinishReason::ContextFull);
    assert_eq!(c.tokens.len(), 3);
}
