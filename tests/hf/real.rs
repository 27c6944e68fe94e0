//! HF export/import on the real models (`cargo test --test tests hf::real -- --ignored`).
//! Each test fails, naming the file, when its model is missing (`scripts/fetch-models.sh`).
//! Models are looked up in `$APR_QA_MODELS`, else `~/.cache/apr-qa/models`.

use std::path::PathBuf;

use apr_qa::convert::hf_export::{export_hf, export_hf_with, HfDtype, HfExportOptions};
use apr_qa::convert::hf_import::{import_hf, import_hf_with, open_hf_dir, HfImportOptions};
use apr_qa::convert::{ConvertError, DtypeChoice};
use apr_qa::dtype::GgmlType;
use apr_qa::model::Model;

use super::util::{check_export_values, converted_bytes, read_json};

const QWEN: &str = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf";
const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-Q4_K_M.gguf";

fn model_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("APR_QA_MODELS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/apr-qa/models")))
        .expect("HOME or APR_QA_MODELS");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "missing model {}: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

fn open(name: &str) -> Model {
    Model::open(&model_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_f32_export_equals_dequantization() {
    let m = open(QWEN);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("qwen-hf");
    let r = export_hf(&m, &dir, HfDtype::F32).unwrap();
    assert_eq!(r.tensors.len(), 291);
    assert!(
        !r.tie_word_embeddings,
        "Qwen2.5-Coder GGUF has output.weight"
    );
    assert!(r.tensors.iter().all(|t| t.max_abs_err == 0.0));
    assert_eq!(check_export_values(&m, &dir, false, 14, 2), 0);
    let cfg = read_json(&dir.join("config.json"));
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(cfg["tie_word_embeddings"], false);
    assert_eq!(cfg["vocab_size"], 151936);
    assert_eq!(cfg["num_key_value_heads"], 2);
    assert_eq!(cfg["rope_theta"].as_f64(), Some(1_000_000.0));
    assert_eq!(cfg["eos_token_id"], 151645);
    let tok = read_json(&dir.join("tokenizer.json"));
    assert_eq!(
        tok["model"]["vocab"].as_object().map(|v| v.len()),
        Some(151_665)
    );
    assert_eq!(
        tok["model"]["merges"].as_array().map(Vec::len),
        Some(151_387)
    );
    assert_eq!(tok["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn smollm2_f32_export_is_unpermuted_and_tied() {
    let m = open(SMOL);
    assert!(m.tensor("output.weight").is_none());
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("smol-hf");
    let r = export_hf(&m, &dir, HfDtype::F32).unwrap();
    assert!(r.tie_word_embeddings);
    assert_eq!(
        check_export_values(&m, &dir, true, 9, 3),
        60,
        "30 layers × (q, k)"
    );
    let st = apr_qa::formats::safetensors::SafetensorsModel::open(&dir).unwrap();
    assert!(st.tensor("lm_head.weight").is_none());
    let cfg = read_json(&dir.join("config.json"));
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    assert_eq!(cfg["num_attention_heads"], 9);
    assert_eq!(cfg["num_key_value_heads"], 3);
    let tok = read_json(&dir.join("tokenizer.json"));
    assert_eq!(tok["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
    assert_eq!(tok["added_tokens"].as_array().map(Vec::len), Some(17));
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn gemma3_is_refused_by_name() {
    let m = open(GEMMA);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("gemma-hf");
    let e = export_hf(&m, &dir, HfDtype::F32).unwrap_err();
    assert!(matches!(e, ConvertError::Usage(_)), "{e}");
    assert!(e.to_string().contains("gemma3"), "{e}");
    assert!(!dir.exists());
}

/// The acceptance test: SmolLM2 GGUF → HF (f32) → GGUF (f32) equals `convert ORIG --dtype f32`
/// byte for byte, from one model.safetensors and from 3 shards + index.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn smollm2_hf_round_trip_is_byte_identical() {
    let m = open(SMOL);
    let t = tempfile::tempdir().unwrap();
    let want = converted_bytes(&m, DtypeChoice::To(GgmlType::F32), t.path(), "want.gguf");
    for shards in [1, 3] {
        let dir = t.path().join(format!("hf{shards}"));
        export_hf_with(
            &m,
            &dir,
            &HfExportOptions {
                dtype: HfDtype::F32,
                shards,
            },
        )
        .unwrap();
        let imp = import_hf(&dir).unwrap();
        assert!(imp.carried);
        let out = t.path().join(format!("back{shards}.gguf"));
        imp.write_gguf(&out).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{shards} shard(s): HF → GGUF differs"
        );
        let model = open_hf_dir(&dir, t.path()).unwrap();
        let got = converted_bytes(
            &model,
            DtypeChoice::To(GgmlType::F32),
            t.path(),
            &format!("via{shards}.gguf"),
        );
        assert!(
            got == want,
            "{shards} shard(s): open_hf_dir + convert --dtype f32 differs"
        );
    }
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_hf_round_trip_is_byte_identical() {
    let m = open(QWEN);
    let t = tempfile::tempdir().unwrap();
    let want = converted_bytes(&m, DtypeChoice::To(GgmlType::F32), t.path(), "want.gguf");
    let dir = t.path().join("hf");
    export_hf(&m, &dir, HfDtype::F32).unwrap();
    let out = t.path().join("back.gguf");
    import_hf(&dir).unwrap().write_gguf(&out).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == want,
        "Qwen HF → GGUF differs"
    );
}

/// Without the carried lists, every key llama.cpp's converter derives from config.json and the
/// tokenizer files equals the one in the real GGUF (which llama.cpp's converter wrote).
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn derived_metadata_matches_the_real_gguf() {
    for name in [SMOL, QWEN] {
        let m = open(name);
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("hf");
        export_hf(&m, &dir, HfDtype::F32).unwrap();
        let imp = import_hf_with(&dir, &HfImportOptions { use_carried: false }).unwrap();
        let mut checked = 0;
        for (k, v) in &m.metadata {
            if k.starts_with("general.") {
                continue;
            }
            let got = imp.metadata.iter().find(|(ik, _)| ik == k).map(|(_, v)| v);
            assert_eq!(got, Some(v), "{name}: {k}");
            checked += 1;
        }
        assert!(checked >= 15, "{name}: only {checked} keys compared");
    }
}
