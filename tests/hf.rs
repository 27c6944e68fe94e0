//! HF directory export and import (`--to hf`, HF dir → GGUF).
//!
//! Oracles, independent of the code under test: tensor values are compared with
//! `quant::dequantize` of the original bytes (itself pinned to ggml by `tests/oracle.rs`) and
//! read back through `SafetensorsModel` plus a hand parse of the JSON files; the llama Q/K row
//! order is checked by applying llama.cpp's `permute` (restated here as index arithmetic on
//! `reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)`) to the exported rows; round trips
//! are compared byte for byte with `convert --dtype` of the original. Real-model tests
//! (`--ignored`) live in `hf/real.rs`.

mod real;

use std::path::{Path, PathBuf};

use apr_qa::convert::hf_export::{export_hf, export_hf_with, HfDtype, HfExportOptions};
use apr_qa::convert::hf_import::{import_hf, import_hf_with, open_hf_dir, HfImportOptions};
use apr_qa::convert::{write_model, ConvertError, DtypeChoice, Target};
use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::{GgufArray, GgufFile, GgufValue, GgufValueType};
use apr_qa::formats::gguf_write::{write_gguf_to_vec, GgufTensorSpec};
use apr_qa::formats::safetensors::{SafetensorsModel, StDtype};
use apr_qa::model::Model;
use apr_qa::quant::{dequantize, quantize};
use serde_json::Value;

/// Deterministic pseudo-random values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// GPT-2's byte → printable-char map (`bytes_to_unicode`).
fn byte_char(b: u8) -> char {
    let printable = |c: u32| {
        (0x21..=0x7e).contains(&c) || (0xa1..=0xac).contains(&c) || (0xae..=0xff).contains(&c)
    };
    if printable(u32::from(b)) {
        return char::from(b);
    }
    let n = (0..u32::from(b)).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

fn s(v: &str) -> GgufValue {
    GgufValue::String(v.as_bytes().to_vec())
}

fn arr(t: GgufValueType, items: Vec<GgufValue>) -> GgufValue {
    GgufValue::Array(GgufArray {
        elem_type: t,
        items,
    })
}

pub struct Synth {
    pub arch: &'static str,
    pub n_embd: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    pub n_layer: u64,
    pub tied: bool,
    pub biases: bool,
}

pub const LLAMA: Synth = Synth {
    arch: "llama",
    n_embd: 64,
    n_head: 4,
    n_head_kv: 2,
    n_ff: 96,
    n_layer: 2,
    tied: true,
    biases: false,
};
pub const QWEN2: Synth = Synth {
    arch: "qwen2",
    n_embd: 64,
    n_head: 4,
    n_head_kv: 2,
    n_ff: 96,
    n_layer: 2,
    tied: false,
    biases: true,
};

/// Tokens: the 256 byte tokens, three merges, two control tokens and one user-defined token.
pub fn synth_vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let merges = vec!["Ġ t".to_string(), "h e".to_string(), "Ġt he".to_string()];
    tokens.extend(["Ġt", "he", "Ġthe"].map(String::from));
    let mut types = vec![1; tokens.len()];
    for (t, ty) in [
        ("<|endoftext|>", 3),
        ("<|im_start|>", 3),
        ("<|im_end|>", 3),
        ("<tool>", 4),
    ] {
        tokens.push(t.into());
        types.push(ty);
    }
    (tokens, types, merges)
}

/// A small model of `cfg`'s architecture as GGUF bytes: Q8_0/Q4_0/F16 matrices, F32 norms.
pub fn synth_gguf(cfg: &Synth) -> Vec<u8> {
    let a = cfg.arch;
    let (tokens, types, merges) = synth_vocab();
    let n_vocab = tokens.len() as u64;
    let hd = cfg.n_embd / cfg.n_head;
    let mut md: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), s(a)),
        ("general.name".into(), s("synth")),
        (
            format!("{a}.block_count"),
            GgufValue::U32(cfg.n_layer as u32),
        ),
        (format!("{a}.context_length"), GgufValue::U32(256)),
        (
            format!("{a}.embedding_length"),
            GgufValue::U32(cfg.n_embd as u32),
        ),
        (
            format!("{a}.feed_forward_length"),
            GgufValue::U32(cfg.n_ff as u32),
        ),
        (
            format!("{a}.attention.head_count"),
            GgufValue::U32(cfg.n_head as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            GgufValue::U32(cfg.n_head_kv as u32),
        ),
        (format!("{a}.rope.freq_base"), GgufValue::F32(10000.0)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            GgufValue::F32(1e-5),
        ),
        ("general.file_type".into(), GgufValue::U32(7)),
    ];
    if a == "llama" {
        md.push(("llama.vocab_size".into(), GgufValue::U32(n_vocab as u32)));
        md.push((
            "llama.rope.dimension_count".into(),
            GgufValue::U32(hd as u32),
        ));
    }
    md.extend([
        ("tokenizer.ggml.model".into(), s("gpt2")),
        (
            "tokenizer.ggml.pre".into(),
            s(if a == "llama" { "smollm" } else { "qwen2" }),
        ),
        (
            "tokenizer.ggml.tokens".into(),
            arr(GgufValueType::String, tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            arr(
                GgufValueType::I32,
                types.iter().map(|&t| GgufValue::I32(t)).collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges".into(),
            arr(GgufValueType::String, merges.iter().map(|m| s(m)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(260)),
        ("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(261)),
        (
            "tokenizer.ggml.padding_token_id".into(),
            GgufValue::U32(259),
        ),
        ("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(0)),
        (
            "tokenizer.chat_template".into(),
            s("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"),
        ),
        ("general.quantization_version".into(), GgufValue::U32(2)),
    ]);
    // (name, ne, dtype)
    let mut ts: Vec<(String, Vec<u64>, GgmlType)> = vec![(
        "token_embd.weight".into(),
        vec![cfg.n_embd, n_vocab],
        GgmlType::Q8_0,
    )];
    if !cfg.tied {
        ts.push((
            "output.weight".into(),
            vec![cfg.n_embd, n_vocab],
            GgmlType::F16,
        ));
    }
    ts.push(("output_norm.weight".into(), vec![cfg.n_embd], GgmlType::F32));
    let kv = cfg.n_head_kv * hd;
    for l in 0..cfg.n_layer {
        let b = |p: &str| format!("blk.{l}.{p}");
        ts.push((b("attn_norm.weight"), vec![cfg.n_embd], GgmlType::F32));
        ts.push((
            b("attn_q.weight"),
            vec![cfg.n_embd, cfg.n_embd],
            GgmlType::Q8_0,
        ));
        ts.push((b("attn_k.weight"), vec![cfg.n_embd, kv], GgmlType::Q4_0));
        ts.push((b("attn_v.weight"), vec![cfg.n_embd, kv], GgmlType::Q8_0));
        if cfg.biases {
            ts.push((b("attn_q.bias"), vec![cfg.n_embd], GgmlType::F32));
            ts.push((b("attn_k.bias"), vec![kv], GgmlType::F32));
            ts.push((b("attn_v.bias"), vec![kv], GgmlType::F32));
        }
        ts.push((
            b("attn_output.weight"),
            vec![cfg.n_embd, cfg.n_embd],
            GgmlType::Q8_0,
        ));
        ts.push((b("ffn_norm.weight"), vec![cfg.n_embd], GgmlType::F32));
        ts.push((
            b("ffn_gate.weight"),
            vec![cfg.n_embd, cfg.n_ff],
            GgmlType::Q4_0,
        ));
        ts.push((
            b("ffn_up.weight"),
            vec![cfg.n_embd, cfg.n_ff],
            GgmlType::Q8_0,
        ));
        ts.push((
            b("ffn_down.weight"),
            vec![cfg.n_ff, cfg.n_embd],
            GgmlType::Q8_0,
        ));
    }
    let data: Vec<Vec<u8>> = ts
        .iter()
        .enumerate()
        .map(|(i, (_, ne, t))| {
            let n: u64 = ne.iter().product();
            let xs = values(i as u64 + 1, n as usize);
            let mut out = vec![0u8; t.row_bytes(n).unwrap() as usize];
            quantize(*t, &xs, &mut out).unwrap();
            out
        })
        .collect();
    let specs: Vec<GgufTensorSpec> = ts
        .iter()
        .map(|(n, ne, t)| GgufTensorSpec {
            name: n,
            ne,
            dtype: *t,
        })
        .collect();
    write_gguf_to_vec(3, &md, &specs, &mut |i, w| w.write_all(&data[i])).unwrap()
}

pub fn model_of(bytes: Vec<u8>) -> Model {
    Model::from_gguf(GgufFile::from_bytes(bytes).unwrap())
}

pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `dequantize` of a tensor of `m`, as f32 bits.
pub fn deq_bits(m: &Model, name: &str) -> Vec<u32> {
    let t = m.tensor(name).unwrap_or_else(|| panic!("no {name}"));
    let mut out = vec![0f32; t.n_elements() as usize];
    dequantize(t.dtype, m.tensor_data(t), &mut out).unwrap();
    out.iter().map(|x| x.to_bits()).collect()
}

/// f32 bits of an exported F32 tensor.
pub fn st_f32_bits(st: &SafetensorsModel, name: &str) -> Vec<u32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|| panic!("no {name} in the export"));
    assert_eq!(t.dtype, StDtype::Ggml(GgmlType::F32), "{name}");
    st.tensor_data(t)
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// llama.cpp `permute(w, n_head, n_head)` on whole rows of `row_len` elements: HF order in,
/// GGUF order out. `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`.
pub fn llama_permute(w: &[u32], row_len: usize, n_head: usize) -> Vec<u32> {
    let rows = w.len() / row_len;
    let half = rows / n_head / 2;
    let mut out = Vec::with_capacity(w.len());
    for h in 0..n_head {
        for i in 0..half {
            for s in 0..2 {
                let src = h * 2 * half + s * half + i; // element [h][s][i] of the reshaped input
                out.extend_from_slice(&w[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    out
}

/// The HF name of a GGUF name, written out independently of `names.rs`.
pub fn hf_name(g: &str) -> String {
    match g {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = g.strip_prefix("blk.").unwrap();
            let (l, part) = rest.split_once('.').unwrap();
            let (stem, suf) = part.rsplit_once('.').unwrap();
            let hf = match stem {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                o => panic!("unmapped {o}"),
            };
            format!("model.layers.{l}.{hf}.{suf}")
        }
    }
}

/// Checks every exported tensor against the dequantized original (Q/K through `permute`).
pub fn check_export_values(
    orig: &Model,
    dir: &Path,
    arch_llama: bool,
    n_head: usize,
    n_head_kv: usize,
) -> usize {
    let st = SafetensorsModel::open(dir).unwrap();
    assert_eq!(st.tensors.len(), orig.tensors.len());
    let mut permuted = 0;
    for t in &orig.tensors {
        let want = deq_bits(orig, &t.name);
        let got = st_f32_bits(&st, &hf_name(&t.name));
        let shape = &st.tensor(&hf_name(&t.name)).unwrap().shape;
        let ne_rev: Vec<u64> = t.ne.iter().rev().copied().collect();
        assert_eq!(shape, &ne_rev, "{} shape", t.name);
        let heads = match () {
            _ if arch_llama && t.name.contains(".attn_q.") => Some(n_head),
            _ if arch_llama && t.name.contains(".attn_k.") => Some(n_head_kv),
            _ => None,
        };
        match heads {
            Some(h) => {
                let back = llama_permute(&got, t.ne[0] as usize, h);
                assert!(back == want, "{}: permute(exported) != GGUF values", t.name);
                assert!(got != want, "{}: rows were not un-permuted at all", t.name);
                permuted += 1;
            }
            None => assert!(
                got == want,
                "{}: exported values differ from dequantize",
                t.name
            ),
        }
    }
    permuted
}

pub fn converted_bytes(m: &Model, dtype: DtypeChoice, dir: &Path, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    write_model(m, &out, Target::Gguf, dtype).unwrap();
    std::fs::read(&out).unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn llama_export_is_dequantized_unpermuted_and_tied() {
    let m = model_of(synth_gguf(&LLAMA));
    let t = tmp();
    let dir = t.path().join("hf");
    let r = export_hf(&m, &dir, HfDtype::F32).unwrap();
    assert!(r.tie_word_embeddings);
    let permuted = check_export_values(&m, &dir, true, 4, 2);
    assert_eq!(permuted, 4, "2 layers × (q, k)");
    let st = SafetensorsModel::open(&dir).unwrap();
    assert!(st.tensor("lm_head.weight").is_none());
    let cfg = read_json(&dir.join("config.json"));
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    assert_eq!(cfg["model_type"], "llama");
    assert_eq!(cfg["tie_word_embeddings"], true);
    for (k, v) in [
        ("hidden_size", 64),
        ("intermediate_size", 96),
        ("num_hidden_layers", 2),
        ("num_attention_heads", 4),
        ("num_key_value_heads", 2),
        ("vocab_size", 263),
        ("max_position_embeddings", 256),
        ("bos_token_id", 260),
        ("eos_token_id", 261),
    ] {
        assert_eq!(cfg[k], v, "{k}");
    }
    assert_eq!(cfg["rms_norm_eps"].as_f64().map(|x| x as f32), Some(1e-5));
    assert_eq!(cfg["torch_dtype"], "float32");
    assert_eq!(cfg["hidden_act"], "silu");
    assert!(r
        .tensors
        .iter()
        .all(|t| t.max_abs_err == 0.0 && t.to == "F32"));
    assert_eq!(
        r.tensors
            .iter()
            .filter(|t| t.unpermuted_heads.is_some())
            .count(),
        4
    );
    let files: Vec<&str> = r.files.iter().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
}

#[test]
fn qwen2_export_keeps_lm_head_and_biases() {
    let m = model_of(synth_gguf(&QWEN2));
    let t = tmp();
    let dir = t.path().join("hf");
    let r = export_hf(&m, &dir, HfDtype::F32).unwrap();
    assert!(!r.tie_word_embeddings);
    assert_eq!(check_export_values(&m, &dir, false, 4, 2), 0);
    let cfg = read_json(&dir.join("config.json"));
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(cfg["tie_word_embeddings"], false);
    assert_eq!(cfg["attention_bias"], true);
}

#[test]
fn tokenizer_files_carry_the_gguf_vocabulary() {
    let m = model_of(synth_gguf(&LLAMA));
    let t = tmp();
    let dir = t.path().join("hf");
    export_hf(&m, &dir, HfDtype::F32).unwrap();
    let tok = read_json(&dir.join("tokenizer.json"));
    let (tokens, _, merges) = synth_vocab();
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    assert_eq!(vocab.len(), tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(vocab[t], i, "{t:?}");
    }
    assert_eq!(tok["model"]["type"], "BPE");
    assert_eq!(tok["model"]["merges"], serde_json::json!(merges));
    let added: Vec<(u64, String, bool)> = tok["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().unwrap(),
                a["content"].as_str().unwrap().to_string(),
                a["special"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        added,
        vec![
            (259, "<|endoftext|>".into(), true),
            (260, "<|im_start|>".into(), true),
            (261, "<|im_end|>".into(), true),
            (262, "<tool>".into(), false)
        ]
    );
    // smollm: single digits, then byte-level with the GPT-2 regex (SmolLM2's own tokenizer.json)
    assert_eq!(
        tok["pre_tokenizer"]["pretokenizers"][0],
        serde_json::json!({"type": "Digits", "individual_digits": true})
    );
    assert_eq!(tok["pre_tokenizer"]["pretokenizers"][1]["use_regex"], true);
    assert_eq!(tok["normalizer"], Value::Null);
    let tc = read_json(&dir.join("tokenizer_config.json"));
    assert_eq!(tc["bos_token"], "<|im_start|>");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(tc["pad_token"], "<|endoftext|>");
    assert_eq!(tc["add_bos_token"], false);
    assert_eq!(tc["model_max_length"], 256);
    assert!(tc["chat_template"]
        .as_str()
        .unwrap()
        .starts_with("{% for m in messages %}"));
    let gen = read_json(&dir.join("generation_config.json"));
    assert_eq!(gen["eos_token_id"], 261);
}

#[test]
fn other_architectures_are_refused_by_name() {
    let bytes = synth_gguf(&LLAMA);
    let mut m = model_of(bytes);
    for (k, v) in m.metadata.iter_mut() {
        if k == "general.architecture" {
            *v = s("gemma3");
        }
    }
    let t = tmp();
    let dir = t.path().join("hf");
    let e = export_hf(&m, &dir, HfDtype::F32).unwrap_err();
    assert!(
        matches!(e, ConvertError::Usage(_)) && e.to_string().contains("gemma3"),
        "{e}"
    );
    assert!(!dir.exists());
}

#[test]
fn output_dir_must_be_new_or_empty_and_failures_leave_nothing() {
    let m = model_of(synth_gguf(&LLAMA));
    let t = tmp();
    let full = t.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let e = export_hf(&m, &full, HfDtype::F32).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(export_hf(&m, &file, HfDtype::F32).is_err());
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    export_hf(&m, &empty, HfDtype::F32).unwrap();
    assert!(empty.join("model.safetensors").is_file());
    // a tensor without an HF name fails the export before anything is published
    let mut bad = model_of(synth_gguf(&LLAMA));
    bad.tensors[1].name = "rope_freqs.weight".into();
    let dir = t.path().join("bad");
    let e = export_hf(&bad, &dir, HfDtype::F32).unwrap_err();
    assert!(e.to_string().contains("rope_freqs.weight"), "{e}");
    assert!(!dir.exists());
    let left: Vec<PathBuf> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left.len(), 3, "no temp directory left behind: {left:?}");
}

/// GGUF → HF (dtype) → GGUF equals `convert --dtype <dtype>` of the original, byte for byte,
/// through both import paths, with one file and with 3 shards.
fn round_trip(cfg: &Synth, dtype: HfDtype, choice: GgmlType) {
    let m = model_of(synth_gguf(cfg));
    let t = tmp();
    let want = converted_bytes(&m, DtypeChoice::To(choice), t.path(), "want.gguf");
    for shards in [1, 3] {
        let dir = t.path().join(format!("hf{shards}"));
        export_hf_with(&m, &dir, &HfExportOptions { dtype, shards }).unwrap();
        if shards == 3 {
            assert!(dir.join("model.safetensors.index.json").is_file());
            assert!(dir.join("model-00003-of-00003.safetensors").is_file());
        }
        let imp = import_hf(&dir).unwrap();
        assert!(imp.carried);
        let out = t.path().join(format!("direct{shards}.gguf"));
        imp.write_gguf(&out).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{} {dtype:?} {shards} shards: direct import differs",
            cfg.arch
        );
        let model = open_hf_dir(&dir, t.path()).unwrap();
        let got = converted_bytes(
            &model,
            DtypeChoice::To(choice),
            t.path(),
            &format!("via{shards}.gguf"),
        );
        assert!(
            got == want,
            "{} {dtype:?} {shards} shards: import + convert differs",
            cfg.arch
        );
    }
}

#[test]
fn llama_round_trip_f32_is_byte_identical() {
    round_trip(&LLAMA, HfDtype::F32, GgmlType::F32);
}

#[test]
fn qwen2_round_trip_f32_is_byte_identical() {
    round_trip(&QWEN2, HfDtype::F32, GgmlType::F32);
}

#[test]
fn f16_and_bf16_round_trips_equal_convert_dtype() {
    round_trip(&LLAMA, HfDtype::F16, GgmlType::F16);
    round_trip(&QWEN2, HfDtype::Bf16, GgmlType::BF16);
}

/// Without the carried lists, import derives the metadata as llama.cpp's converter would: every
/// derived key equals the original GGUF's.
#[test]
fn import_without_carried_lists_derives_the_gguf_keys() {
    for cfg in [&LLAMA, &QWEN2] {
        let m = model_of(synth_gguf(cfg));
        let t = tmp();
        let dir = t.path().join("hf");
        export_hf(&m, &dir, HfDtype::F32).unwrap();
        let imp = import_hf_with(&dir, &HfImportOptions { use_carried: false }).unwrap();
        assert!(!imp.carried);
        let skip = [
            "general.name",
            "general.file_type",
            "general.quantization_version",
        ];
        for (k, v) in &m.metadata {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let got = imp.metadata.iter().find(|(ik, _)| ik == k).map(|(_, v)| v);
            assert_eq!(got, Some(v), "{}: {k}", cfg.arch);
        }
        assert_eq!(
            imp.metadata
                .iter()
                .find(|(k, _)| k == "general.file_type")
                .map(|(_, v)| v),
            Some(&GgufValue::U32(0))
        );
        // tensors: same names and types, values in GGUF row order again
        let f32m = model_of(
            std::fs::read({
                let p = t.path().join("f32.gguf");
                write_model(&m, &p, Target::Gguf, DtypeChoice::To(GgmlType::F32)).unwrap();
                p
            })
            .unwrap(),
        );
        for (i, it) in imp.tensors.iter().enumerate() {
            let mut buf = Vec::new();
            imp.write_tensor(i, &mut buf).unwrap();
            let orig = f32m.tensor(&it.name).unwrap();
            assert!(buf == f32m.tensor_data(orig), "{}", it.name);
        }
    }
}

#[test]
fn an_edited_config_is_refused_by_field() {
    let m = model_of(synth_gguf(&LLAMA));
    let t = tmp();
    let dir = t.path().join("hf");
    export_hf(&m, &dir, HfDtype::F32).unwrap();
    let mut cfg = read_json(&dir.join("config.json"));
    cfg["num_key_value_heads"] = serde_json::json!(4);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let e = import_hf(&dir).unwrap_err();
    assert!(e.to_string().contains("num_key_value_heads"), "{e}");
    let e = import_hf(t.path()).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn dtype_choices_map_to_export_types() {
    assert_eq!(
        HfDtype::from_choice(DtypeChoice::Keep).unwrap(),
        HfDtype::F32
    );
    assert_eq!(
        HfDtype::from_choice(DtypeChoice::To(GgmlType::BF16)).unwrap(),
        HfDtype::Bf16
    );
    let e = HfDtype::from_choice(DtypeChoice::To(GgmlType::Q8_0)).unwrap_err();
    assert!(e.to_string().contains("Q8_0"), "{e}");
}
