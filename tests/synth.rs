//! Issue #6 item 1: the synthetic model generator behind `apr-qa synth` (`apr_qa::synth`).
//!
//! Oracles: the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M file's dtype histogram; per-tensor types
//! that llama.cpp's `llama_model_quantize` (llama-cpp-python 0.3.36) chose when quantizing our F32
//! synthetic files (tables below; its bytes also equalled ours for every tensor); GPT-2's
//! published byte-token ids; and llama.cpp itself (ignored test, needs the oracle venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::{GgufFile, GgufValue};
use apr_qa::quant::dequantize;
use apr_qa::synth::{
    plan_tensors, synthesize, vocab, PlannedTensor, SynthArch, SynthError, SynthOptions, SynthQuant,
};

use crate::util::venv_python;

fn qwen_0_5b(tied: bool) -> SynthOptions {
    SynthOptions {
        arch: SynthArch::Qwen2,
        layers: 24,
        hidden: 896,
        heads: 14,
        kv_heads: 2,
        ffn: 4864,
        vocab: 151_936,
        tied_embeddings: tied,
        quant: SynthQuant::Q4KM,
        seed: 0,
        rope_theta: 1_000_000.0,
        context_length: 32_768,
    }
}

fn histogram(plan: &[PlannedTensor]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for t in plan {
        *h.entry(t.dtype.to_string()).or_insert(0) += 1;
    }
    h
}

fn hist(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn qwen_0_5b_shape_plans_the_real_q4_k_m_mix() {
    // The real file (untied, 291 tensors): Q5_0×133, F32×121, Q8_0×13, Q6_K×12, Q4_K×12.
    let plan = plan_tensors(&qwen_0_5b(false)).expect("plan");
    assert_eq!(plan.len(), 291);
    let want = [
        ("Q5_0", 133),
        ("F32", 121),
        ("Q8_0", 13),
        ("Q6_K", 12),
        ("Q4_K", 12),
    ];
    assert_eq!(histogram(&plan), hist(&want));
    let output = plan
        .iter()
        .find(|t| t.name == "output.weight")
        .expect("output");
    assert_eq!(
        (output.dtype, output.ne.as_slice()),
        (GgmlType::Q8_0, &[896, 151_936][..])
    );

    // Tied: no output.weight, and token_embd takes its Q6_K → Q8_0 (896 % 256 != 0).
    let plan = plan_tensors(&qwen_0_5b(true)).expect("plan");
    assert_eq!(plan.len(), 290);
    let want = [
        ("Q5_0", 132),
        ("F32", 121),
        ("Q8_0", 13),
        ("Q6_K", 12),
        ("Q4_K", 12),
    ];
    assert_eq!(histogram(&plan), hist(&want));
    assert!(plan.iter().all(|t| t.name != "output.weight"));
    assert_eq!(plan[0].name, "token_embd.weight");
    assert_eq!(plan[0].dtype, GgmlType::Q8_0);
}

/// llama-quantize's choices, `name=type` for every non-F32 tensor (sorted by name), and the
/// number of F32 tensors: (options, table, n_f32).
fn llama_quantize_cases() -> Vec<(SynthOptions, &'static str, usize)> {
    let small = |arch, layers, hidden, heads, ffn, tied, quant| SynthOptions {
        arch,
        layers,
        hidden,
        heads,
        kv_heads: 2,
        ffn,
        vocab: 1024,
        tied_embeddings: tied,
        quant,
        seed: 7,
        rope_theta: 1e6,
        context_length: 4096,
    };
    vec![
        (
            small(SynthArch::Qwen2, 4, 384, 6, 1024, true, SynthQuant::Q4KM),
            "blk.0.attn_k=Q5_0 blk.0.attn_output=Q5_0 blk.0.attn_q=Q5_0 blk.0.attn_v=Q5_0 blk.0.ffn_down=Q4_K blk.0.ffn_gate=Q5_0 blk.0.ffn_up=Q5_0 blk.1.attn_k=Q5_0 blk.1.attn_output=Q5_0 blk.1.attn_q=Q5_0 blk.1.attn_v=Q5_0 blk.1.ffn_down=Q4_K blk.1.ffn_gate=Q5_0 blk.1.ffn_up=Q5_0 blk.2.attn_k=Q5_0 blk.2.attn_output=Q5_0 blk.2.attn_q=Q5_0 blk.2.attn_v=Q8_0 blk.2.ffn_down=Q6_K blk.2.ffn_gate=Q5_0 blk.2.ffn_up=Q5_0 blk.3.attn_k=Q5_0 blk.3.attn_output=Q5_0 blk.3.attn_q=Q5_0 blk.3.attn_v=Q8_0 blk.3.ffn_down=Q6_K blk.3.ffn_gate=Q5_0 blk.3.ffn_up=Q5_0 token_embd=Q8_0",
            21,
        ),
        (
            // `llama-quantize --tensor-type attn_output=q5_k … Q4_K_M`.
            small(SynthArch::Qwen2, 4, 384, 6, 1024, true, SynthQuant::Mixed),
            "blk.0.attn_k=Q5_0 blk.0.attn_output=Q5_1 blk.0.attn_q=Q5_0 blk.0.attn_v=Q5_0 blk.0.ffn_down=Q4_K blk.0.ffn_gate=Q5_0 blk.0.ffn_up=Q5_0 blk.1.attn_k=Q5_0 blk.1.attn_output=Q5_1 blk.1.attn_q=Q5_0 blk.1.attn_v=Q5_0 blk.1.ffn_down=Q4_K blk.1.ffn_gate=Q5_0 blk.1.ffn_up=Q5_0 blk.2.attn_k=Q5_0 blk.2.attn_output=Q5_1 blk.2.attn_q=Q5_0 blk.2.attn_v=Q8_0 blk.2.ffn_down=Q6_K blk.2.ffn_gate=Q5_0 blk.2.ffn_up=Q5_0 blk.3.attn_k=Q5_0 blk.3.attn_output=Q5_1 blk.3.attn_q=Q5_0 blk.3.attn_v=Q8_0 blk.3.ffn_down=Q6_K blk.3.ffn_gate=Q5_0 blk.3.ffn_up=Q5_0 token_embd=Q8_0",
            21,
        ),
        (
            small(SynthArch::Llama, 5, 512, 8, 1280, false, SynthQuant::Q4KM),
            "blk.0.attn_k=Q4_K blk.0.attn_output=Q4_K blk.0.attn_q=Q4_K blk.0.attn_v=Q4_K blk.0.ffn_down=Q4_K blk.0.ffn_gate=Q4_K blk.0.ffn_up=Q4_K blk.1.attn_k=Q4_K blk.1.attn_output=Q4_K blk.1.attn_q=Q4_K blk.1.attn_v=Q4_K blk.1.ffn_down=Q4_K blk.1.ffn_gate=Q4_K blk.1.ffn_up=Q4_K blk.2.attn_k=Q4_K blk.2.attn_output=Q4_K blk.2.attn_q=Q4_K blk.2.attn_v=Q6_K blk.2.ffn_down=Q6_K blk.2.ffn_gate=Q4_K blk.2.ffn_up=Q4_K blk.3.attn_k=Q4_K blk.3.attn_output=Q4_K blk.3.attn_q=Q4_K blk.3.attn_v=Q4_K blk.3.ffn_down=Q4_K blk.3.ffn_gate=Q4_K blk.3.ffn_up=Q4_K blk.4.attn_k=Q4_K blk.4.attn_output=Q4_K blk.4.attn_q=Q4_K blk.4.attn_v=Q6_K blk.4.ffn_down=Q6_K blk.4.ffn_gate=Q4_K blk.4.ffn_up=Q4_K output=Q6_K token_embd=Q4_K",
            11,
        ),
    ]
}

#[test]
fn q4km_and_mixed_plans_match_llama_quantize() {
    for (opts, table, n_f32) in llama_quantize_cases() {
        let plan = plan_tensors(&opts).expect("plan");
        let mut ours: Vec<String> = plan
            .iter()
            .filter(|t| t.dtype != GgmlType::F32)
            .map(|t| format!("{}={}", t.name.trim_end_matches(".weight"), t.dtype))
            .collect();
        ours.sort();
        assert_eq!(ours.join(" "), table, "{opts:?}");
        let f32s = plan.iter().filter(|t| t.dtype == GgmlType::F32).count();
        assert_eq!(f32s, n_f32, "{opts:?}");
    }
}

/// "70B" models (80 layers; llama only with GQA): a Q4_K attn_v becomes Q5_K, which falls back
/// to Q5_1 when hidden % 256 != 0. Per-layer codes from llama-quantize: 4 Q4_K, 5 Q5_K,
/// 6 Q6_K, 8 Q8_0, b Q5_1.
#[test]
fn eighty_layer_models_get_llama_quantizes_70b_attn_v_rule() {
    let code = |t: GgmlType| match t.to_string().as_str() {
        "Q4_K" => '4',
        "Q5_K" => '5',
        "Q6_K" => '6',
        "Q8_0" => '8',
        "Q5_1" => 'b',
        other => panic!("unexpected {other}"),
    };
    let per_layer = |plan: &[PlannedTensor], role: &str| -> String {
        (0..80)
            .map(|i| {
                let name = format!("blk.{i}.{role}.weight");
                code(plan.iter().find(|t| t.name == name).expect("tensor").dtype)
            })
            .collect()
    };
    let base = SynthOptions {
        layers: 80,
        vocab: 300,
        ..SynthOptions::default()
    };
    let llama = SynthOptions {
        arch: SynthArch::Llama,
        hidden: 256,
        heads: 4,
        kv_heads: 2,
        ffn: 256,
        quant: SynthQuant::Q4KM,
        ..base.clone()
    };
    let plan = plan_tensors(&llama).expect("plan");
    let down = "66666666664464464464464464464464464464464464464464464464464464464464466666666666";
    assert_eq!(
        per_layer(&plan, "attn_v"),
        "66666666665565565565565565565565565565565565565565565565565565565565566666666666"
    );
    assert_eq!(per_layer(&plan, "ffn_down"), down);
    let qwen = SynthOptions {
        arch: SynthArch::Qwen2,
        hidden: 64,
        heads: 2,
        kv_heads: 1,
        ffn: 256,
        tied_embeddings: false,
        quant: SynthQuant::Q4KM,
        ..base
    };
    let plan = plan_tensors(&qwen).expect("plan");
    assert_eq!(
        per_layer(&plan, "attn_v"),
        "8888888888bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb8bb88888888888"
    );
    assert_eq!(per_layer(&plan, "ffn_down"), down);
}

#[test]
fn same_options_give_the_same_bytes_and_another_seed_other_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SynthOptions::default();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    synthesize(&opts, &a).expect("a");
    // The same bytes on one thread as on the default pool.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    one.install(|| synthesize(&opts, &b)).expect("b");
    let seed = SynthOptions {
        seed: opts.seed + 1,
        ..opts.clone()
    };
    synthesize(&seed, &c).expect("c");
    let read = |p: &Path| std::fs::read(p).expect("read");
    assert!(read(&a) == read(&b), "same options gave different bytes");
    assert!(read(&a) != read(&c), "another seed gave the same bytes");
    // Every tensor's data changes with the seed (the merges' tie-breaks may change too).
    let (fa, fc) = (
        GgufFile::open(&a).expect("a"),
        GgufFile::open(&c).expect("c"),
    );
    for (ta, tc) in fa.tensors.iter().zip(&fc.tensors) {
        assert_eq!((&ta.name, &ta.ne, ta.dtype), (&tc.name, &tc.ne, tc.dtype));
        assert!(
            fa.tensor_data(ta) != fc.tensor_data(tc),
            "{}: same data",
            ta.name
        );
    }
}

fn meta_u64(f: &GgufFile, key: &str) -> u64 {
    f.get(key)
        .and_then(GgufValue::as_u64)
        .unwrap_or_else(|| panic!("{key}"))
}

fn meta_str<'a>(f: &'a GgufFile, key: &str) -> &'a str {
    f.get(key)
        .and_then(GgufValue::as_str)
        .unwrap_or_else(|| panic!("{key}"))
}

/// Opens `path`, checks it against the plan and options, and returns its tensor types.
fn check_file(opts: &SynthOptions, path: &Path) -> BTreeSet<GgmlType> {
    let f = GgufFile::open(path).expect("open");
    let plan = plan_tensors(opts).expect("plan");
    let got: Vec<(&str, &[u64], GgmlType)> = f
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.ne.as_slice(), t.dtype))
        .collect();
    let want: Vec<(&str, &[u64], GgmlType)> = plan
        .iter()
        .map(|t| (t.name.as_str(), t.ne.as_slice(), t.dtype))
        .collect();
    assert_eq!(got, want, "{opts:?}");
    for t in &f.tensors {
        let mut vals = vec![0f32; usize::try_from(t.n_elements()).expect("size")];
        dequantize(t.dtype, f.tensor_data(t), &mut vals).expect("dequantize");
        assert!(vals.iter().all(|v| v.is_finite()), "{}: non-finite", t.name);
        let spread = vals.iter().fold(f32::NEG_INFINITY, |m, v| m.max(v.abs()));
        assert!(spread > 0.0, "{}: all zero", t.name);
    }
    let a = opts.arch.name();
    assert_eq!(meta_str(&f, "general.architecture"), a);
    assert_eq!(
        meta_u64(&f, &format!("{a}.block_count")),
        u64::from(opts.layers)
    );
    assert_eq!(
        meta_u64(&f, &format!("{a}.embedding_length")),
        u64::from(opts.hidden)
    );
    assert_eq!(
        meta_u64(&f, &format!("{a}.feed_forward_length")),
        u64::from(opts.ffn)
    );
    assert_eq!(
        meta_u64(&f, &format!("{a}.attention.head_count")),
        u64::from(opts.heads)
    );
    assert_eq!(
        meta_u64(&f, &format!("{a}.attention.head_count_kv")),
        u64::from(opts.kv_heads)
    );
    assert_eq!(
        f.get(&format!("{a}.rope.freq_base")),
        Some(&GgufValue::F32(opts.rope_theta))
    );
    assert_eq!(meta_str(&f, "tokenizer.ggml.model"), "gpt2");
    let tokens = f
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_array)
        .expect("tokens");
    assert_eq!(tokens.items.len(), opts.vocab as usize);
    let quantized = !matches!(opts.quant, SynthQuant::F16 | SynthQuant::F32);
    assert_eq!(f.get("general.quantization_version").is_some(), quantized);
    f.tensors.iter().map(|t| t.dtype).collect()
}

#[test]
fn written_files_read_back_as_planned_with_finite_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for arch in [SynthArch::Qwen2, SynthArch::Llama] {
        for tied in [true, false] {
            for quant in [
                SynthQuant::Q4KM,
                SynthQuant::Mixed,
                SynthQuant::Q8_0,
                SynthQuant::F16,
                SynthQuant::F32,
            ] {
                let opts = SynthOptions {
                    arch,
                    tied_embeddings: tied,
                    quant,
                    rope_theta: arch.default_rope_theta(),
                    ..SynthOptions::default()
                };
                let path = dir.path().join(format!("{arch:?}-{tied}-{quant:?}.gguf"));
                let report = synthesize(&opts, &path).expect("synthesize");
                check_file(&opts, &path);
                let plan = plan_tensors(&opts).expect("plan");
                assert_eq!(report.n_tensors, plan.len());
                assert_eq!(report.dtype_histogram, histogram(&plan));
                assert_eq!(report.bytes, std::fs::metadata(&path).expect("stat").len());
            }
        }
    }
}

#[test]
fn default_playbook_model_holds_every_quant_type_and_tied_embeddings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("synthetic.gguf");
    let opts = SynthOptions::default();
    synthesize(&opts, &path).expect("synthesize");
    let types = check_file(&opts, &path);
    for t in [
        GgmlType::Q4_K,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::F32,
    ] {
        assert!(types.contains(&t), "default model lacks {t}: {types:?}");
    }
    let f = GgufFile::open(&path).expect("open");
    assert!(
        f.tensor("output.weight").is_none(),
        "embeddings must be tied"
    );
    assert!(f.tensor("token_embd.weight").is_some());
    let theta = match f.get("qwen2.rope.freq_base") {
        Some(GgufValue::F32(x)) => *x,
        other => panic!("rope.freq_base: {other:?}"),
    };
    assert!(
        theta != 10_000.0,
        "rope theta must not be the default 10000"
    );
    assert!(meta_str(&f, "tokenizer.chat_template").contains("<|im_start|>"));
    assert_eq!(meta_str(&f, "tokenizer.ggml.pre"), "qwen2");
}

#[test]
fn vocabulary_is_gpt2_byte_level_with_control_specials() {
    let v = vocab::build(SynthArch::Qwen2, 1024, 42).expect("vocab");
    // GPT-2's published ids: 0 "!", 93 "~", 94 "¡", 188 "Ā" (byte 0), 198 "Ċ" (newline),
    // 220 "Ġ" (space), 255 "Ń" (byte 0xAD).
    for (id, s) in [
        (0, "!"),
        (93, "~"),
        (94, "¡"),
        (188, "Ā"),
        (198, "Ċ"),
        (220, "Ġ"),
        (255, "Ń"),
    ] {
        assert_eq!(v.tokens[id], s, "token {id}");
    }
    assert_eq!(v.tokens.len(), 1024);
    assert_eq!(v.token_types.len(), 1024);
    let set: BTreeSet<&String> = v.tokens.iter().collect();
    assert_eq!(set.len(), v.tokens.len(), "duplicate tokens");
    assert!(v.merges.len() >= 700, "{} merges", v.merges.len());
    for m in &v.merges {
        let (a, b) = m.split_once(' ').expect("merge has a space");
        for part in [a, b, &format!("{a}{b}")] {
            assert!(
                set.contains(&part.to_string()),
                "merge {m:?}: {part:?} not a token"
            );
        }
    }
    let tail: Vec<(&str, i32)> = v.tokens[1021..]
        .iter()
        .map(String::as_str)
        .zip(v.token_types[1021..].iter().copied())
        .collect();
    assert_eq!(
        tail,
        [("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3)]
    );
    assert_eq!((v.bos, v.eos, v.pad), (1021, 1023, 1021));
    assert!(v.token_types[..1021].iter().all(|&t| t == 1));
    let llama = vocab::build(SynthArch::Llama, 2000, 42).expect("vocab");
    assert_eq!(llama.tokens[llama.bos as usize], "<|begin_of_text|>");
    assert_eq!(llama.tokens[llama.eos as usize], "<|eot_id|>");
    // The corpus runs out of pairs before 2000 tokens: the rest are reserved control tokens.
    assert!(llama.tokens.iter().any(|t| t == "<|reserved_0|>"));
}

#[test]
fn invalid_options_are_refused_naming_the_option() {
    let d = SynthOptions::default();
    let cases = [
        (
            "layers",
            SynthOptions {
                layers: 0,
                ..d.clone()
            },
        ),
        (
            "heads",
            SynthOptions {
                heads: 5,
                ..d.clone()
            },
        ),
        (
            "heads",
            SynthOptions {
                hidden: 390,
                heads: 6,
                ..d.clone()
            },
        ),
        (
            "kv_heads",
            SynthOptions {
                kv_heads: 4,
                ..d.clone()
            },
        ),
        (
            "ffn",
            SynthOptions {
                ffn: 0,
                ..d.clone()
            },
        ),
        (
            "vocab",
            SynthOptions {
                vocab: 200,
                ..d.clone()
            },
        ),
        (
            "rope_theta",
            SynthOptions {
                rope_theta: f32::NAN,
                ..d.clone()
            },
        ),
        (
            "context_length",
            SynthOptions {
                context_length: 0,
                ..d.clone()
            },
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (want, opts) in cases {
        let out = dir.path().join("x.gguf");
        match synthesize(&opts, &out) {
            Err(SynthError::Options { field, .. }) => assert_eq!(field, want, "{opts:?}"),
            other => panic!("{want}: expected an options error, got {other:?}"),
        }
        assert!(!out.exists());
    }
}

/// llama.cpp (llama-cpp-python) loads each synthetic file, tokenizes, renders the chat
/// template and generates greedily: finite logits and more than one distinct token.
#[test]
#[ignore = "needs the oracle venv: scripts/setup-oracles.sh"]
fn llama_cpp_loads_and_generates_synthetic_models() {
    let py = venv_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for arch in [SynthArch::Qwen2, SynthArch::Llama] {
        for tied in [true, false] {
            for quant in [SynthQuant::Q4KM, SynthQuant::Mixed] {
                let opts = SynthOptions {
                    arch,
                    tied_embeddings: tied,
                    quant,
                    rope_theta: arch.default_rope_theta(),
                    ..SynthOptions::default()
                };
                let path = dir.path().join(format!("{arch:?}-{tied}-{quant:?}.gguf"));
                synthesize(&opts, &path).expect("synthesize");
                paths.push(path);
            }
        }
    }
    let script = r#"
import sys, numpy as np
from llama_cpp import Llama
for path in sys.argv[1:]:
    llm = Llama(model_path=path, n_ctx=128, logits_all=True, verbose=False, n_threads=2)
    toks = llm.tokenize(b"The quick brown fox", add_bos=True, special=False)
    llm.eval(toks)
    assert np.isfinite(np.array(llm.scores[len(toks) - 1])).all(), path
    llm.reset()
    out = llm(prompt="The quick brown fox", max_tokens=16, temperature=0.0, top_k=1)
    gen = llm.tokenize(out["choices"][0]["text"].encode(), add_bos=False, special=False)
    assert len(set(gen)) > 1, (path, gen)
    chat = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    print(path, "ok", len(set(gen)), "distinct of", len(gen))
"#;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(&paths)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(" ok ").count(), paths.len(), "{stdout}");
}
