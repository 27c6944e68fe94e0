//! Helpers of the HF tests: a synthetic GGUF model (llama or qwen2, quantized matrices, a
//! byte-level BPE vocabulary) and independent oracles (dequantize, llama.cpp's `permute` restated
//! on indices, HF names written out by hand).

use std::path::Path;

use apr_qa::convert::{write_model, DtypeChoice, Target};
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

pub fn s(v: &str) -> GgufValue {
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
