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
mod util;

use std::path::PathBuf;

use apr_qa::convert::hf_export::{export_hf, export_hf_with, HfDtype, HfExportOptions};
use apr_qa::convert::hf_import::{import_hf, import_hf_with, open_hf_dir, HfImportOptions};
use apr_qa::convert::{write_model, ConvertError, DtypeChoice, Target};
use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::GgufValue;
use apr_qa::formats::safetensors::SafetensorsModel;
use serde_json::Value;
use util::{
    check_export_values, converted_bytes, model_of, read_json, s, synth_gguf, synth_vocab, Synth,
    LLAMA, QWEN2,
};

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
