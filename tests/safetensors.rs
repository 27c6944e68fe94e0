//! SafeTensors reader/writer: exact bytes, round trips, sharding, hostile inputs.
//!
//! Oracles: hand-written header literals and hand-built hostile files (the bytes double as
//! format docs), and serde_json's own parse of headers we write (independent of our reader).

mod hostile;

use std::path::Path;

use apr_qa::dtype::GgmlType;
use apr_qa::formats::safetensors::{
    SafetensorsError, SafetensorsErrorKind as Kind, SafetensorsModel, StDtype, StOtherDtype,
};
use apr_qa::formats::safetensors_write::{
    shard_file_name, shard_ranges, write_safetensors, write_safetensors_sharded, StTensorSpec,
};
use indexmap::IndexMap;

/// Deterministic pseudo-random bytes (xorshift64*), so every bit pattern can occur.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A file from a header literal and a data buffer (no padding added).
fn st_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn parse(file: &[u8]) -> Result<SafetensorsModel, SafetensorsError> {
    SafetensorsModel::from_bytes(Path::new("mem.safetensors"), file.to_vec())
}

fn kind_of(file: &[u8]) -> Kind {
    match parse(file) {
        Ok(m) => panic!("expected an error, parsed {:?}", m.tensors),
        Err(e) => {
            // Every error displays on one line and names the file.
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && msg.contains("mem.safetensors"),
                "{msg}"
            );
            *e.kind
        }
    }
}

fn meta(entries: &[(&str, &str)]) -> IndexMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Owned {
    name: String,
    dtype: StDtype,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn specs(ts: &[Owned]) -> Vec<StTensorSpec<'_>> {
    ts.iter()
        .map(|t| StTensorSpec {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
        })
        .collect()
}

fn write(out: &Path, md: &IndexMap<String, String>, ts: &[Owned]) -> Result<(), SafetensorsError> {
    write_safetensors(out, md, &specs(ts), &mut |i, w| w.write_all(&ts[i].data))
}

/// One tensor per plain dtype, quantized type and opaque dtype, with expected byte sizes
/// computed by hand from ggml's block table (reference §2.1).
fn zoo() -> Vec<Owned> {
    let mut out = Vec::new();
    let mut add = |name: &str, dtype, shape: &[u64], n_bytes: usize| {
        let data = bytes(out.len() as u64 + 1, n_bytes);
        out.push(Owned {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data,
        });
    };
    use GgmlType as G;
    add("f32", StDtype::Ggml(G::F32), &[2, 3], 24);
    add("f16", StDtype::Ggml(G::F16), &[3, 2], 12);
    add("bf16", StDtype::Ggml(G::BF16), &[5], 10);
    add("f64", StDtype::Ggml(G::F64), &[1, 2], 16);
    add("i8", StDtype::Ggml(G::I8), &[7], 7);
    add("i16", StDtype::Ggml(G::I16), &[2, 2], 8);
    add("i32", StDtype::Ggml(G::I32), &[], 4);
    add("i64", StDtype::Ggml(G::I64), &[0, 4], 0);
    add("blk.0.q4_0", StDtype::Ggml(G::Q4_0), &[3, 64], 3 * 2 * 18);
    add("blk.0.q8_0", StDtype::Ggml(G::Q8_0), &[32], 34);
    add("blk.0.q4_k", StDtype::Ggml(G::Q4_K), &[2, 512], 2 * 2 * 144);
    add("blk.0.q6_k", StDtype::Ggml(G::Q6_K), &[2, 1, 256], 2 * 210);
    add("blk.0.iq4_xs", StDtype::Ggml(G::IQ4_XS), &[1, 256], 136);
    add("blk.0.mxfp4", StDtype::Ggml(G::MXFP4), &[4, 32], 4 * 17);
    add("blk.0.tq2_0", StDtype::Ggml(G::TQ2_0), &[0, 256], 0);
    add("u8", StDtype::Other(StOtherDtype::U8), &[3], 3);
    add("bool", StDtype::Other(StOtherDtype::BOOL), &[2], 2);
    add("u16", StDtype::Other(StOtherDtype::U16), &[2], 4);
    add("u32", StDtype::Other(StOtherDtype::U32), &[2], 8);
    add("u64", StDtype::Other(StOtherDtype::U64), &[2], 16);
    add("f8", StDtype::Other(StOtherDtype::F8_E4M3), &[2], 2);
    add("c64", StDtype::Other(StOtherDtype::C64), &[1], 8);
    add("f4", StDtype::Other(StOtherDtype::F4), &[6], 3);
    add("f6", StDtype::Other(StOtherDtype::F6_E2M3), &[4], 3);
    out
}

/// Header entries (dtype string, stored shape) a correct writer must produce for [`zoo`],
/// written out by hand from the scheme (module doc of `formats::safetensors`).
const ZOO_STORED: [(&str, &str, &[u64]); 24] = [
    ("f32", "F32", &[2, 3]),
    ("f16", "F16", &[3, 2]),
    ("bf16", "BF16", &[5]),
    ("f64", "F64", &[1, 2]),
    ("i8", "I8", &[7]),
    ("i16", "I16", &[2, 2]),
    ("i32", "I32", &[]),
    ("i64", "I64", &[0, 4]),
    ("blk.0.q4_0", "U8", &[3, 36]),
    ("blk.0.q8_0", "U8", &[34]),
    ("blk.0.q4_k", "U8", &[2, 288]),
    ("blk.0.q6_k", "U8", &[2, 1, 210]),
    ("blk.0.iq4_xs", "U8", &[1, 136]),
    ("blk.0.mxfp4", "U8", &[4, 17]),
    ("blk.0.tq2_0", "U8", &[0, 66]),
    ("u8", "U8", &[3]),
    ("bool", "BOOL", &[2]),
    ("u16", "U16", &[2]),
    ("u32", "U32", &[2]),
    ("u64", "U64", &[2]),
    ("f8", "F8_E4M3", &[2]),
    ("c64", "C64", &[1]),
    ("f4", "F4", &[6]),
    ("f6", "F6_E2M3", &[4]),
];

#[test]
fn writes_the_exact_bytes_of_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let ts = vec![
        Owned {
            name: "w.q".into(),
            dtype: StDtype::Ggml(GgmlType::Q8_0),
            shape: vec![2, 32],
            data: bytes(1, 68),
        },
        Owned {
            name: "b".into(),
            dtype: StDtype::Ggml(GgmlType::F32),
            shape: vec![2],
            data: bytes(2, 8),
        },
    ];
    write(&out, &meta(&[("format", "pt")]), &ts).unwrap();
    let json = concat!(
        r#"{"__metadata__":{"format":"pt","w.q.ggml_type":"Q8_0","w.q.shape":"[2,32]"},"#,
        r#""w.q":{"dtype":"U8","shape":[2,34],"data_offsets":[0,68]},"#,
        r#""b":{"dtype":"F32","shape":[2],"data_offsets":[68,76]}}"#
    );
    let padded = format!("{json:<width$}", width = json.len().div_ceil(8) * 8);
    let mut expected = st_file(&padded, &ts[0].data);
    expected.extend_from_slice(&ts[1].data);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    // Same input, same bytes (idempotence).
    let out2 = dir.path().join("y.safetensors");
    write(&out2, &meta(&[("format", "pt")]), &ts).unwrap();
    assert_eq!(std::fs::read(&out2).unwrap(), expected);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "a model file must not be private to its writer: {mode:o}"
        );
    }
}

#[test]
fn round_trips_every_dtype_with_exact_bytes_and_metadata_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zoo.safetensors");
    let ts = zoo();
    let md = meta(&[
        ("z", "last?"),
        ("format", "pt"),
        ("a", "{\"json\": 1}"),
        ("é", "ü\n"),
    ]);
    write(&out, &md, &ts).unwrap();

    // Independent view of the header: serde_json, keys in file order.
    let file = std::fs::read(&out).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&file[8..8 + n]).unwrap();
    let keys: Vec<&String> = header.keys().collect();
    assert_eq!(keys[0], "__metadata__");
    for ((name, dtype, shape), key) in ZOO_STORED.iter().zip(&keys[1..]) {
        assert_eq!(key, name);
        assert_eq!(header[*name]["dtype"], *dtype, "{name}");
        assert_eq!(header[*name]["shape"], serde_json::json!(shape), "{name}");
    }
    let stored_md = header["__metadata__"].as_object().unwrap();
    let md_keys: Vec<&str> = stored_md.keys().map(String::as_str).collect();
    assert_eq!(
        md_keys,
        [
            "z",
            "format",
            "a",
            "é",
            "blk.0.q4_0.ggml_type",
            "blk.0.q4_0.shape",
            "blk.0.q8_0.ggml_type",
            "blk.0.q8_0.shape",
            "blk.0.q4_k.ggml_type",
            "blk.0.q4_k.shape",
            "blk.0.q6_k.ggml_type",
            "blk.0.q6_k.shape",
            "blk.0.iq4_xs.ggml_type",
            "blk.0.iq4_xs.shape",
            "blk.0.mxfp4.ggml_type",
            "blk.0.mxfp4.shape",
            "blk.0.tq2_0.ggml_type",
            "blk.0.tq2_0.shape",
        ]
    );
    assert_eq!(stored_md["blk.0.q6_k.ggml_type"], "Q6_K");
    assert_eq!(stored_md["blk.0.q6_k.shape"], "[2,1,256]");
    assert_eq!(stored_md["blk.0.iq4_xs.ggml_type"], "IQ4_XS");

    // Our reader.
    let m = SafetensorsModel::open(&out).unwrap();
    assert_eq!(m.tensors.len(), ts.len());
    let mut expected_start = 8 + n as u64;
    for (t, want) in m.tensors.iter().zip(&ts) {
        assert_eq!(
            (t.name.as_str(), t.dtype, t.shape.as_slice()),
            (want.name.as_str(), want.dtype, want.shape.as_slice())
        );
        assert_eq!(t.start, expected_start, "{}", t.name);
        assert_eq!(m.tensor_data(t), want.data.as_slice(), "{}", t.name);
        assert_eq!(m.tensor(&t.name), Some(t));
        expected_start = t.end;
    }
    assert_eq!(expected_start, file.len() as u64);
    assert_eq!(m.user_metadata(), md);
    let all: Vec<(&str, &str)> = m
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        &all[..4],
        &[
            ("z", "last?"),
            ("format", "pt"),
            ("a", "{\"json\": 1}"),
            ("é", "ü\n")
        ]
    );
    assert_eq!(m.metadata.len(), 4 + 14);

    // Rewriting what was read (metadata including scheme entries) reproduces the file.
    let again = dir.path().join("again.safetensors");
    let specs: Vec<StTensorSpec> = m.tensors.iter().map(StTensorSpec::of).collect();
    write_safetensors(&again, &m.metadata, &specs, &mut |i, w| {
        w.write_all(m.tensor_data(&m.tensors[i]))
    })
    .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), file);
}

#[test]
fn sharded_write_reads_back_equal_to_single() {
    let dir = tempfile::tempdir().unwrap();
    let ts = zoo();
    let md = meta(&[("format", "pt")]);
    let single = dir.path().join("single.safetensors");
    write(&single, &md, &ts).unwrap();
    let set = dir.path().join("set");
    let index = write_safetensors_sharded(&set, "model", 3, &md, &specs(&ts), &mut |i, w| {
        w.write_all(&ts[i].data)
    })
    .unwrap();
    assert_eq!(index, set.join("model.safetensors.index.json"));
    let a = SafetensorsModel::open(&single).unwrap();
    for path in [index.clone(), set.clone()] {
        let b = SafetensorsModel::open(&path).unwrap();
        assert_eq!(b.shards.len(), 3);
        assert_eq!(b.shards[0], set.join("model-00001-of-00003.safetensors"));
        assert_eq!(b.metadata, a.metadata);
        assert_eq!(b.tensors.len(), a.tensors.len());
        for (x, y) in a.tensors.iter().zip(&b.tensors) {
            assert_eq!((&x.name, x.dtype, &x.shape), (&y.name, y.dtype, &y.shape));
            assert_eq!(a.tensor_data(x), b.tensor_data(y));
        }
        let total: u64 = ts.iter().map(|t| t.data.len() as u64).sum();
        assert_eq!(b.index_total_size, Some(total));
    }
    // The index, read independently.
    let idx: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    let wm = idx["weight_map"].as_object().unwrap();
    assert_eq!(
        wm.keys().map(String::as_str).collect::<Vec<_>>(),
        ts.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(wm["f32"], "model-00001-of-00003.safetensors");
    assert_eq!(wm["f6"], "model-00003-of-00003.safetensors");
    // Each shard is a valid file on its own, carrying its own tensors' scheme entries only.
    let s2 = SafetensorsModel::open(&set.join("model-00002-of-00003.safetensors")).unwrap();
    for t in &s2.tensors {
        assert_eq!(wm[&t.name], "model-00002-of-00003.safetensors");
    }
    // By hand: 1472 bytes in all, so shard 1 ends at the first tensor reaching 490.7 bytes
    // (blk.0.q4_k, 799), shard 2 at the first reaching 981.3 (blk.0.q6_k, 1219).
    assert_eq!(
        s2.tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["blk.0.q6_k"]
    );
    let keys: Vec<&str> = s2.metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["format", "blk.0.q6_k.ggml_type", "blk.0.q6_k.shape"]);
}

#[test]
fn shard_plan_is_balanced_and_never_empty() {
    assert_eq!(
        shard_ranges(&[10, 10, 10, 10], 2).unwrap(),
        vec![0..2, 2..4]
    );
    assert_eq!(shard_ranges(&[100, 1, 1, 1], 2).unwrap(), vec![0..1, 1..4]);
    assert_eq!(
        shard_ranges(&[1, 1, 1, 100], 3).unwrap(),
        vec![0..2, 2..3, 3..4]
    );
    assert_eq!(shard_ranges(&[0, 0, 0], 3).unwrap(), vec![0..1, 1..2, 2..3]);
    assert_eq!(shard_ranges(&[5], 1).unwrap(), vec![0..1]);
    assert!(shard_ranges(&[5], 2).is_err());
    assert!(shard_ranges(&[5], 0).is_err());
    assert_eq!(
        shard_file_name("model", 0, 12),
        "model-00001-of-00012.safetensors"
    );
}

#[test]
fn opens_a_directory_only_when_unambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let empty = kind_of_open(dir.path());
    assert!(matches!(empty, Kind::DirectoryModel { ref candidates } if candidates.is_empty()));
    let ts = zoo();
    write(&dir.path().join("a.safetensors"), &IndexMap::new(), &ts).unwrap();
    assert_eq!(
        SafetensorsModel::open(dir.path()).unwrap().shards,
        [dir.path().join("a.safetensors")]
    );
    write(&dir.path().join("b.safetensors"), &IndexMap::new(), &ts).unwrap();
    assert!(
        matches!(kind_of_open(dir.path()), Kind::DirectoryModel { ref candidates } if candidates.len() == 2)
    );
    write(&dir.path().join("model.safetensors"), &IndexMap::new(), &ts).unwrap();
    assert_eq!(
        SafetensorsModel::open(dir.path()).unwrap().shards,
        [dir.path().join("model.safetensors")]
    );
}

fn kind_of_open(path: &Path) -> Kind {
    *SafetensorsModel::open(path).expect_err("must fail").kind
}

#[test]
fn writer_rejects_bad_input_and_wrong_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.safetensors");
    let f32s = |name: &str| Owned {
        name: name.into(),
        dtype: StDtype::Ggml(GgmlType::F32),
        shape: vec![2],
        data: vec![1; 8],
    };
    let kind = |r: Result<(), SafetensorsError>| *r.expect_err("must fail").kind;
    let ts = vec![f32s("a"), f32s("b")];
    // Short and long callbacks name the tensor; nothing is left at `out`.
    let k = kind(write_safetensors(
        &out,
        &IndexMap::new(),
        &specs(&ts),
        &mut |i, w| w.write_all(&ts[i].data[..7 + i]),
    ));
    assert!(
        matches!(k, Kind::WriteSize { ref tensor, expected: 8, written: 7, .. } if tensor == "a")
    );
    let k = kind(write_safetensors(
        &out,
        &IndexMap::new(),
        &specs(&ts),
        &mut |i, w| w.write_all(&[0; 9][..8 + i]),
    ));
    assert!(
        matches!(k, Kind::WriteSize { ref tensor, expected: 8, written: 9, .. } if tensor == "b")
    );
    let k = kind(write_safetensors(
        &out,
        &IndexMap::new(),
        &specs(&ts),
        &mut |_, _| Err(std::io::Error::other("boom")),
    ));
    assert!(matches!(k, Kind::DataCallback { ref tensor, .. } if tensor == "a"));
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temp files must be cleaned up"
    );
    // Invalid inputs.
    let k = kind(write(&out, &IndexMap::new(), &[f32s("a"), f32s("a")]));
    assert!(matches!(k, Kind::DuplicateTensor { .. }));
    assert!(matches!(
        kind(write(&out, &IndexMap::new(), &[f32s("__metadata__")])),
        Kind::WriteInput { .. }
    ));
    let q = |shape: Vec<u64>| Owned {
        name: "q".into(),
        dtype: StDtype::Ggml(GgmlType::Q4_K),
        shape,
        data: vec![],
    };
    assert!(matches!(
        kind(write(&out, &IndexMap::new(), &[q(vec![2, 100])])),
        Kind::WriteInput { .. }
    ));
    assert!(matches!(
        kind(write(&out, &IndexMap::new(), &[q(vec![])])),
        Kind::WriteInput { .. }
    ));
    let k = kind(write(
        &out,
        &meta(&[("q.ggml_type", "Q6_K")]),
        &[q(vec![0, 256])],
    ));
    assert!(matches!(k, Kind::WriteInput { ref tensor, .. } if tensor == "q"));
    let k = kind(write(&out, &meta(&[("a.shape", "[2]")]), &[f32s("a")]));
    assert!(matches!(k, Kind::WriteInput { ref tensor, .. } if tensor == "a"));
    // The same scheme entry given by the caller is kept once, where the caller put it.
    write(
        &out,
        &meta(&[("q.shape", "[0,256]"), ("x", "y")]),
        &[q(vec![0, 256])],
    )
    .unwrap();
    let m = SafetensorsModel::open(&out).unwrap();
    assert_eq!(
        m.metadata.keys().collect::<Vec<_>>(),
        ["q.shape", "x", "q.ggml_type"]
    );
    // A directory is not an output file.
    assert!(matches!(
        kind(write(dir.path(), &IndexMap::new(), &[f32s("a")])),
        Kind::OutputIsDirectory
    ));
}
