//! Issue #3 on the real models: inspect against gguf-py, and files we write read back by
//! gguf-py exactly as intended. (Byte-identical read→write of each real file: `gguf::real`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::{GgufArray, GgufFile, GgufValue, GgufValueType};
use apr_qa::formats::gguf_write::{write_gguf, GgufTensorSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::util::{real_model, root, run, venv_python, GEMMA, QWEN, SMOLLM};

fn inspect_json(path: &Path) -> Value {
    let (code, out, err) = run([
        std::ffi::OsStr::new("inspect"),
        path.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 0, "inspect {}: {err}", path.display());
    serde_json::from_str(&out).expect("inspect --json prints JSON")
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_inspect_reports_the_real_mix() {
    let r = inspect_json(&real_model(QWEN));
    assert_eq!(r["n_tensors"], 291);
    let h: BTreeMap<String, u64> =
        serde_json::from_value(r["dtype_histogram"].clone()).expect("histogram");
    let want: BTreeMap<String, u64> = [
        ("Q5_0", 133),
        ("F32", 121),
        ("Q8_0", 13),
        ("Q6_K", 12),
        ("Q4_K", 12),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(h, want);
}

/// Our inspect's tensor table and metadata keys/types equal what gguf-py read (committed by
/// scripts/py/gguf_table.py).
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn inspect_matches_gguf_py_tables() {
    for name in [QWEN, SMOLLM, GEMMA] {
        let ours = inspect_json(&real_model(name));
        let refp = root().join(format!("tests/data/real/{name}.gguf-py.json"));
        let theirs: Value =
            serde_json::from_str(&std::fs::read_to_string(&refp).expect("committed table"))
                .expect("json");
        assert_eq!(ours["version"], theirs["version"], "{name}");
        assert_eq!(ours["data_offset"], theirs["data_offset"], "{name}");
        assert_eq!(ours["alignment"], theirs["alignment"], "{name}");
        let (a, b) = (
            ours["tensors"].as_array().expect("tensors"),
            theirs["tensors"].as_array().expect("tensors"),
        );
        assert_eq!(a.len(), b.len(), "{name}: tensor count");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x["name"], y["name"], "{name}");
            assert_eq!(x["dtype"], y["type"], "{name} {}", x["name"]);
            assert_eq!(x["ne"], y["ne"], "{name} {}", x["name"]);
            assert_eq!(x["offset"], y["offset"], "{name} {}", x["name"]);
            assert_eq!(x["n_bytes"], y["n_bytes"], "{name} {}", x["name"]);
        }
        let (ma, mb) = (
            ours["metadata"].as_array().expect("md"),
            theirs["metadata"].as_array().expect("md"),
        );
        let keys = |m: &[Value], k: &str| {
            m.iter()
                .map(|e| e[k].as_str().unwrap_or_default().to_lowercase())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(ma, "key"), keys(mb, "key"), "{name}: metadata keys");
        let gguf_py_type = |t: &str| {
            match t {
                "u8" => "UINT8",
                "i8" => "INT8",
                "u16" => "UINT16",
                "i16" => "INT16",
                "u32" => "UINT32",
                "i32" => "INT32",
                "f32" => "FLOAT32",
                "bool" => "BOOL",
                "string" => "STRING",
                "array" => "ARRAY",
                "u64" => "UINT64",
                "i64" => "INT64",
                "f64" => "FLOAT64",
                other => other,
            }
            .to_lowercase()
        };
        let ours_t: Vec<String> = keys(ma, "type").iter().map(|t| gguf_py_type(t)).collect();
        assert_eq!(ours_t, keys(mb, "type"), "{name}: metadata types");
    }
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn check_with_gguf_py(file: &Path, expect: &Value) {
    let dir = file.parent().expect("parent");
    let exp = dir.join("expect.json");
    std::fs::write(&exp, serde_json::to_vec_pretty(expect).expect("json")).expect("write expect");
    let out = Command::new(venv_python())
        .arg(root().join("scripts/py/check_gguf_reads.py"))
        .arg(file)
        .arg(&exp)
        .output()
        .expect("run check_gguf_reads.py");
    assert!(
        out.status.success(),
        "gguf-py disagrees with what we meant to write:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A model built in memory, never having seen a source header, loads in gguf-py with exactly
/// the keys, types, tensor infos and bytes we meant.
#[test]
#[ignore = "needs the oracle venv: scripts/setup-oracles.sh"]
fn a_model_built_in_memory_loads_in_gguf_py() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("built.gguf");
    let s = |x: &str| GgufValue::String(x.as_bytes().to_vec());
    let md: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), s("llama")),
        ("general.alignment".into(), GgufValue::U32(64)),
        ("test.u8".into(), GgufValue::U8(200)),
        ("test.i16".into(), GgufValue::I16(-300)),
        ("test.u64".into(), GgufValue::U64(1 << 40)),
        ("test.f32".into(), GgufValue::F32(0.125)),
        ("test.f64".into(), GgufValue::F64(-2.5)),
        ("test.bool".into(), GgufValue::Bool(1)),
        (
            "test.strings".into(),
            GgufValue::Array(GgufArray {
                elem_type: GgufValueType::String,
                items: vec![s("a"), s("βγ")],
            }),
        ),
        (
            "test.ints".into(),
            GgufValue::Array(GgufArray {
                elem_type: GgufValueType::I32,
                items: vec![GgufValue::I32(-1), GgufValue::I32(7)],
            }),
        ),
    ];
    let tensors: Vec<(&str, Vec<u64>, GgmlType)> = vec![
        ("w.q8", vec![64, 3], GgmlType::Q8_0),
        ("w.f16", vec![5], GgmlType::F16),
        ("w.q4k", vec![256, 2], GgmlType::Q4_K),
        ("w.f32", vec![3, 1], GgmlType::F32),
    ];
    let datas: Vec<Vec<u8>> = tensors
        .iter()
        .enumerate()
        .map(|(i, (_, ne, t))| {
            let n = t.row_bytes(ne.iter().product()).expect("whole blocks") as usize;
            (0..n)
                .map(|j| ((j * 31 + i * 7) % 251) as u8 & 0x3f)
                .collect()
        })
        .collect();
    let specs: Vec<GgufTensorSpec> = tensors
        .iter()
        .map(|(n, ne, t)| GgufTensorSpec {
            name: n,
            ne,
            dtype: *t,
        })
        .collect();
    write_gguf(&path, 3, &md, &specs, &mut |i, w| w.write_all(&datas[i])).expect("write");
    let expect = json!({
        "version": 3,
        "alignment": 64,
        "metadata": [
            {"key": "general.architecture", "type": "STRING", "value": "llama"},
            {"key": "general.alignment", "type": "UINT32", "value": 64},
            {"key": "test.u8", "type": "UINT8", "value": 200},
            {"key": "test.i16", "type": "INT16", "value": -300},
            {"key": "test.u64", "type": "UINT64", "value": 1u64 << 40},
            {"key": "test.f32", "type": "FLOAT32", "value": 0.125},
            {"key": "test.f64", "type": "FLOAT64", "value": -2.5},
            {"key": "test.bool", "type": "BOOL", "value": true},
            {"key": "test.strings", "type": "ARRAY", "element_type": "STRING", "value": ["a", "βγ"]},
            {"key": "test.ints", "type": "ARRAY", "element_type": "INT32", "value": [-1, 7]},
        ],
        "tensors": tensors.iter().zip(&datas).map(|((n, ne, t), d)| json!({
            "name": n, "type": t.name(), "ne": ne, "n_bytes": d.len(), "sha256": sha(d)
        })).collect::<Vec<_>>(),
    });
    check_with_gguf_py(&path, &expect);
}

/// The Qwen file with one key added, one tensor removed and `general.alignment` = 64, written
/// by our writer, reads in gguf-py as exactly those changes to gguf-py's own table of the
/// original.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn edited_qwen_loads_in_gguf_py() {
    let src = GgufFile::open(&real_model(QWEN)).expect("open qwen");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("edited.gguf");
    let mut md = src.metadata.clone();
    md.insert(1, ("general.alignment".into(), GgufValue::U32(64)));
    md.push((
        "apr_qa.test_key".into(),
        GgufValue::String(b"added".to_vec()),
    ));
    let removed = "blk.3.ffn_up.weight";
    let kept: Vec<_> = src.tensors.iter().filter(|t| t.name != removed).collect();
    let specs: Vec<GgufTensorSpec> = kept
        .iter()
        .map(|t| GgufTensorSpec {
            name: &t.name,
            ne: &t.ne,
            dtype: t.dtype,
        })
        .collect();
    write_gguf(&path, 3, &md, &specs, &mut |i, w| {
        w.write_all(src.tensor_data(kept[i]))
    })
    .expect("write");

    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(format!("tests/data/real/{QWEN}.gguf-py.json")))
            .expect("committed table"),
    )
    .expect("json");
    let mut metadata: Vec<Value> = table["metadata"].as_array().expect("md").clone();
    metadata.insert(
        1,
        json!({"key": "general.alignment", "type": "UINT32", "value": 64}),
    );
    metadata.push(json!({"key": "apr_qa.test_key", "type": "STRING", "value": "added"}));
    let tensors: Vec<Value> = table["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .filter(|t| t["name"] != removed)
        .map(|t| json!({"name": t["name"], "type": t["type"], "ne": t["ne"], "n_bytes": t["n_bytes"], "sha256": t["sha256"]}))
        .collect();
    assert_eq!(tensors.len(), 290);
    let expect = json!({"version": 3, "alignment": 64, "metadata": metadata, "tensors": tensors});
    check_with_gguf_py(&path, &expect);
    let back = GgufFile::open(&path).expect("reads back");
    assert!(back.tensors.iter().all(|t| t.offset % 64 == 0));
}
