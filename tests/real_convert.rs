//! Issue #4 on the real models: lossless conversion over every pair and chain, diff,
//! validate, and the safety rules of `convert` (never the input, atomic, dotted names).

use std::path::{Path, PathBuf};

use apr_qa::convert::diff::diff;
use apr_qa::convert::{convert, DtypeChoice, Target};
use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::{GgufArray, GgufFile, GgufValue};
use apr_qa::formats::gguf_write::{write_gguf, GgufTensorSpec};
use apr_qa::model::Model;

use crate::util::{real_model, run, GEMMA, QWEN, SMOLLM};

fn conv(input: &Path, output: &Path) {
    let to = Target::from_extension(output).expect("extension names the format");
    convert(input, output, to, DtypeChoice::Keep)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", input.display(), output.display()));
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (
        std::fs::read(a).expect("read"),
        std::fs::read(b).expect("read"),
    );
    assert!(
        x == y,
        "{} and {} differ ({} vs {} bytes)",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}

/// Every tensor's name, dtype, shape and bytes and every metadata key equal.
fn same_model(a: &Path, b: &Path) {
    let (ma, mb) = (
        Model::open(a).expect("open a"),
        Model::open(b).expect("open b"),
    );
    let r = diff(&ma, &mb, 0.0, false).expect("diff");
    assert!(
        !r.differs(),
        "{} vs {}: {:?}",
        a.display(),
        b.display(),
        (&r.missing, &r.extra, &r.metadata, r.tensors.first())
    );
    assert_eq!(ma.tensors.len(), mb.tensors.len());
    for (x, y) in ma.tensors.iter().zip(&mb.tensors) {
        assert_eq!((&x.name, x.dtype, &x.ne), (&y.name, y.dtype, &y.ne));
    }
}

/// The six direct pairs (F-CONV-G-A … S-A) and the three chains (F-CONV-RT-001..003).
fn all_pairs_and_chains(name: &str) {
    let g = real_model(name);
    let d = tempfile::tempdir().expect("tempdir");
    let p = |f: &str| -> PathBuf { d.path().join(f) };
    conv(&g, &p("a.apr")); // G-A
    same_model(&g, &p("a.apr"));
    conv(&p("a.apr"), &p("ag.gguf")); // A-G
    same_bytes(&g, &p("ag.gguf"));
    conv(&g, &p("s.safetensors")); // G-S
    same_model(&g, &p("s.safetensors"));
    conv(&p("s.safetensors"), &p("sg.gguf")); // S-G
    same_bytes(&g, &p("sg.gguf"));
    conv(&p("a.apr"), &p("as.safetensors")); // A-S
    same_bytes(&p("s.safetensors"), &p("as.safetensors"));
    conv(&p("s.safetensors"), &p("sa.apr")); // S-A, and F-CONV-COM-001: G→S→A == G→A
    same_bytes(&p("a.apr"), &p("sa.apr"));
    // RT-001: GGUF→APR→ST→GGUF
    conv(&p("as.safetensors"), &p("rt1.gguf"));
    same_bytes(&g, &p("rt1.gguf"));
    // RT-002: ST→APR→GGUF→ST
    conv(&p("sa.apr"), &p("rt2.gguf"));
    conv(&p("rt2.gguf"), &p("rt2.safetensors"));
    same_bytes(&p("s.safetensors"), &p("rt2.safetensors"));
    // RT-003: ST→APR→GGUF→APR→ST
    conv(&p("rt2.gguf"), &p("rt3.apr"));
    conv(&p("rt3.apr"), &p("rt3.safetensors"));
    same_bytes(&p("s.safetensors"), &p("rt3.safetensors"));
    // F-CONV-IDEM-001: converting twice gives the same bytes.
    conv(&g, &p("a2.apr"));
    same_bytes(&p("a.apr"), &p("a2.apr"));
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_every_pair_and_chain_is_lossless() {
    all_pairs_and_chains(QWEN);
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn smollm_every_pair_and_chain_is_lossless() {
    all_pairs_and_chains(SMOLLM);
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn gemma_lossless_conversions_are_byte_exact_and_hf_is_refused() {
    all_pairs_and_chains(GEMMA);
    let d = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run([
        std::ffi::OsStr::new("convert"),
        real_model(GEMMA).as_os_str(),
        "-o".as_ref(),
        d.path().join("hf").as_os_str(),
        "--to".as_ref(),
        "hf".as_ref(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gemma3"), "{err}");
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn diff_is_zero_for_lossless_and_nonzero_for_q8_0() {
    let g = real_model(SMOLLM);
    let d = tempfile::tempdir().expect("tempdir");
    let apr = d.path().join("m.apr");
    conv(&g, &apr);
    let (code, out, _) = run([std::ffi::OsStr::new("diff"), g.as_os_str(), apr.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 differ"), "{out}");
    let q8 = d.path().join("q8.gguf");
    let (code, out, err) = run([
        std::ffi::OsStr::new("convert"),
        g.as_os_str(),
        "-o".as_ref(),
        q8.as_os_str(),
        "--dtype".as_ref(),
        "q8_0".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Q4_1 -> Q8_0") && out.contains("max|Δ|"),
        "convert prints the measured error per tensor: {out}"
    );
    let (code, out, _) = run([
        std::ffi::OsStr::new("diff"),
        g.as_os_str(),
        q8.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 1);
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(r["max_abs"].as_f64().expect("max_abs") > 0.0);
}

/// Writes a copy of `src` with edited metadata, tensor list and bytes.
fn write_edited(
    src: &GgufFile,
    out: &Path,
    md: Vec<(String, GgufValue)>,
    rename: Option<(&str, &str)>,
    patch: &dyn Fn(&str, &mut Vec<u8>),
) {
    let names: Vec<String> = src
        .tensors
        .iter()
        .map(|t| match rename {
            Some((from, to)) if t.name == from => to.to_string(),
            _ => t.name.clone(),
        })
        .collect();
    let specs: Vec<GgufTensorSpec> = src
        .tensors
        .iter()
        .zip(&names)
        .map(|(t, n)| GgufTensorSpec {
            name: n,
            ne: &t.ne,
            dtype: t.dtype,
        })
        .collect();
    write_gguf(out, src.version, &md, &specs, &mut |i, w| {
        let t = &src.tensors[i];
        let mut b = src.tensor_data(t).to_vec();
        patch(&t.name, &mut b);
        w.write_all(&b)
    })
    .expect("write edited copy");
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn validate_passes_real_models_and_names_each_problem() {
    for m in [QWEN, SMOLLM, GEMMA] {
        let (code, out, err) = run([std::ffi::OsStr::new("validate"), real_model(m).as_os_str()]);
        assert_eq!(code, 0, "{m}: {out}{err}");
    }
    let src = GgufFile::open(&real_model(SMOLLM)).expect("open");
    let d = tempfile::tempdir().expect("tempdir");
    let f32_tensor = src
        .tensors
        .iter()
        .find(|t| t.dtype == GgmlType::F32)
        .expect("an F32 tensor")
        .name
        .clone();
    let nan = d.path().join("nan.gguf");
    write_edited(&src, &nan, src.metadata.clone(), None, &|n, b| {
        if n == f32_tensor {
            b[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    });
    let zero = d.path().join("zero.gguf");
    write_edited(&src, &zero, src.metadata.clone(), None, &|n, b| {
        if n == f32_tensor {
            b.fill(0);
        }
    });
    let vocab = d.path().join("vocab.gguf");
    let md: Vec<(String, GgufValue)> = src
        .metadata
        .iter()
        .map(|(k, v)| match (k.as_str(), v) {
            ("tokenizer.ggml.tokens", GgufValue::Array(a)) => {
                let items = a.items[..a.items.len() - 1].to_vec();
                (
                    k.clone(),
                    GgufValue::Array(GgufArray {
                        elem_type: a.elem_type,
                        items,
                    }),
                )
            }
            _ => (k.clone(), v.clone()),
        })
        .collect();
    write_edited(&src, &vocab, md, None, &|_, _| {});
    for (file, kind, subject) in [
        (&nan, "nan", f32_tensor.as_str()),
        (&zero, "all_zero", f32_tensor.as_str()),
        (&vocab, "vocab_mismatch", "token_embd.weight"),
    ] {
        let (code, out, err) = run([std::ffi::OsStr::new("validate"), file.as_os_str()]);
        assert_eq!(code, 1, "{}: {out}{err}", file.display());
        assert!(
            out.lines()
                .any(|l| l.starts_with(kind) && l.contains(subject)),
            "{}: {out}",
            file.display()
        );
    }
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn diff_names_flipped_byte_dropped_key_and_renamed_tensor() {
    let src = GgufFile::open(&real_model(SMOLLM)).expect("open");
    let d = tempfile::tempdir().expect("tempdir");
    let edited = d.path().join("edited.gguf");
    let md: Vec<(String, GgufValue)> = src
        .metadata
        .iter()
        .filter(|(k, _)| k != "general.name")
        .cloned()
        .collect();
    assert!(
        md.len() < src.metadata.len(),
        "general.name present in the original"
    );
    write_edited(
        &src,
        &edited,
        md,
        Some(("blk.2.ffn_up.weight", "blk.2.ffn_upp.weight")),
        &|n, b| {
            if n == "blk.1.attn_v.weight" {
                b[1000] ^= 0x10;
            }
        },
    );
    let (code, out, _) = run([
        std::ffi::OsStr::new("diff"),
        real_model(SMOLLM).as_os_str(),
        edited.as_os_str(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DIFF blk.1.attn_v.weight")
            && out.contains("first differing byte 1000")
            && out.contains("first at index"),
        "{out}"
    );
    assert!(out.contains("METADATA general.name"), "{out}");
    assert!(
        out.contains("MISSING in B: blk.2.ffn_up.weight")
            && out.contains("EXTRA in B: blk.2.ffn_upp.weight"),
        "{out}"
    );
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn convert_never_overwrites_its_input_and_is_atomic() {
    let d = tempfile::tempdir().expect("tempdir");
    let x = d.path().join("Qwen2.5-Coder-0.5B.gguf");
    std::fs::copy(real_model(QWEN), &x).expect("copy");
    let before = std::fs::read(&x).expect("read");
    let (code, _, err) = run([
        std::ffi::OsStr::new("convert"),
        x.as_os_str(),
        "-o".as_ref(),
        x.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        std::fs::read(&x).expect("read") == before,
        "input unchanged"
    );
    // Dotted names are never truncated.
    let (code, _, err) = run([
        std::ffi::OsStr::new("convert"),
        x.as_os_str(),
        "-o".as_ref(),
        d.path().join("Qwen2.5-Coder-0.5B.apr").as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(d.path().join("Qwen2.5-Coder-0.5B.apr").is_file());
    // A directory where a file is meant.
    let (code, _, err) = run([
        std::ffi::OsStr::new("convert"),
        d.path().as_os_str(),
        "-o".as_ref(),
        d.path().join("o.apr").as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("directory") && err.contains(&d.path().display().to_string()),
        "{err}"
    );
    // SIGKILL mid-write leaves nothing under the final name.
    let out = d.path().join("killed.safetensors");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apr-qa"))
        .args([
            std::ffi::OsStr::new("convert"),
            x.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(!out.exists(), "a killed conversion left {}", out.display());
}

/// Every SafeTensors file we write opens in PyPI `safetensors` with the names, dtypes and
/// shapes our scheme promises (quantized tensors as U8 byte tensors), single and sharded.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn safetensors_we_write_open_in_pypi_safetensors() {
    use apr_qa::formats::names::storage_name;
    use apr_qa::formats::safetensors::{SafetensorsModel, StDtype};
    use apr_qa::formats::safetensors_write::{write_safetensors_sharded, StTensorSpec};
    let d = tempfile::tempdir().expect("tempdir");
    for m in [QWEN, SMOLLM] {
        let g = real_model(m);
        let st = d.path().join(format!("{m}.safetensors"));
        conv(&g, &st);
        let model = Model::open(&g).expect("open");
        let arch = model.arch().expect("arch").to_string();
        // Also a 3-shard set of the same tensors.
        let single = SafetensorsModel::open(&st).expect("reads back");
        let specs: Vec<StTensorSpec> = single.tensors.iter().map(StTensorSpec::of).collect();
        let shard_dir = d.path().join(format!("{m}-sharded"));
        std::fs::create_dir(&shard_dir).expect("mkdir");
        write_safetensors_sharded(
            &shard_dir,
            "model",
            3,
            &single.user_metadata(),
            &specs,
            &mut |i, w| w.write_all(single.tensor_data(&single.tensors[i])),
        )
        .expect("sharded write");
        let shards: Vec<PathBuf> = (1..=3)
            .map(|i| shard_dir.join(format!("model-{i:05}-of-00003.safetensors")))
            .collect();
        for files in [vec![st.clone()], shards] {
            let out = std::process::Command::new(crate::util::venv_python())
                .arg(crate::util::root().join("scripts/py/st_table.py"))
                .args(&files)
                .output()
                .expect("run st_table.py");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(
                seen["tensors"].as_object().map(|o| o.len()),
                Some(model.tensors.len()),
                "{m}"
            );
            for t in &model.tensors {
                let name = storage_name(&arch, &t.name);
                let dt = StDtype::Ggml(t.dtype);
                let e = &seen["tensors"][&name];
                assert_eq!(e["dtype"], dt.stored_name(), "{m} {name}");
                let shape = dt.stored_shape(&t.shape()).expect("shape");
                assert_eq!(e["shape"], serde_json::json!(shape), "{m} {name}");
            }
        }
    }
}

/// The exported tokenizer.json, loaded by the PyPI `tokenizers` package, encodes the committed
/// corpus to llama.cpp's ids (both read live by scripts/py/hf_tokenizer_check.py; needs the
/// oracle venv with llama-cpp-python: `scripts/setup-oracles.sh --llama`).
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn exported_tokenizer_json_matches_llama_cpp() {
    for m in [QWEN, SMOLLM] {
        let g = real_model(m);
        let d = tempfile::tempdir().expect("tempdir");
        let hf = d.path().join("hf");
        convert(&g, &hf, Target::Hf, DtypeChoice::Keep).expect("export");
        let out = std::process::Command::new(crate::util::venv_python())
            .arg(crate::util::root().join("scripts/py/hf_tokenizer_check.py"))
            .arg("--gguf")
            .arg(&g)
            .arg("--hf")
            .arg(&hf)
            .output()
            .expect("run hf_tokenizer_check.py");
        assert!(
            out.status.success(),
            "{m}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
