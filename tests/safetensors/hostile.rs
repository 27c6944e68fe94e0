//! Hostile SafeTensors inputs: each gives its own error kind, never a panic. The bytes are
//! hand-built, so they double as documentation of what the reader refuses.

use std::path::{Path, PathBuf};

use apr_qa::dtype::GgmlType;
use apr_qa::formats::safetensors::{
    SafetensorsError, SafetensorsErrorKind as Kind, SafetensorsModel, SizeProblem, StDtype,
    StOtherDtype, MAX_HEADER_SIZE,
};
use indexmap::IndexMap;
use proptest::prelude::*;

use super::{kind_of, meta, parse, st_file, write, zoo, Owned};

// ------------------------------------------------------------------------------------------
// Hostile inputs: each gives its own error, never a panic.
// ------------------------------------------------------------------------------------------

const T2: &str = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;

#[test]
fn rejects_header_problems() {
    assert!(matches!(
        kind_of(&[1, 0, 0]),
        Kind::FileTooSmall { file_len: 3 }
    ));
    let mut f = st_file(T2, &[0; 8]);
    f[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert!(matches!(
        kind_of(&f),
        Kind::HeaderPastEnd {
            header_len: 1000,
            ..
        }
    ));
    f[..8].copy_from_slice(&(MAX_HEADER_SIZE + 1).to_le_bytes());
    assert!(matches!(kind_of(&f), Kind::HeaderTooLarge { .. }));
    f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(kind_of(&f), Kind::HeaderTooLarge { .. }));
    assert!(matches!(
        kind_of(&st_file("[1, 2]  ", &[])),
        Kind::HeaderNotObject
    ));
    assert!(matches!(
        kind_of(&st_file(" {}     ", &[])),
        Kind::HeaderNotObject
    ));
    assert!(matches!(
        kind_of(&st_file("{\"a\":  ", &[])),
        Kind::Json { .. }
    ));
    assert!(matches!(
        kind_of(&st_file("{} {}   ", &[])),
        Kind::Json { .. }
    ));
    let mut bad_utf8 = st_file("{\"\u{e9}\":1}", &[]);
    bad_utf8[11] = 0xff;
    assert!(matches!(
        kind_of(&bad_utf8),
        Kind::HeaderNotUtf8 { offset: 10 }
    ));
    // Smallest valid file, padded with spaces.
    assert!(parse(&st_file("{}      ", &[])).unwrap().tensors.is_empty());
}

#[test]
fn rejects_metadata_problems() {
    let k = kind_of(&st_file(r#"{"__metadata__":{"a":"x","n":1}}"#, &[]));
    assert!(matches!(k, Kind::MetadataNotString { ref key, .. } if key == "n"));
    let k = kind_of(&st_file(r#"{"__metadata__":["a"]}"#, &[]));
    assert!(matches!(k, Kind::MetadataNotObject { .. }));
    let k = kind_of(&st_file(r#"{"__metadata__":{"a":"x","a":"y"}}"#, &[]));
    assert!(matches!(k, Kind::DuplicateKey { ref key, .. } if key == "a"));
    let k = kind_of(&st_file(r#"{"__metadata__":{},"__metadata__":{}}"#, &[]));
    assert!(matches!(k, Kind::DuplicateKey { ref key, .. } if key == "__metadata__"));
    // `null` metadata is accepted, as by the reference (`Option<HashMap>`).
    assert!(parse(&st_file(r#"{"__metadata__":null}"#, &[]))
        .unwrap()
        .metadata
        .is_empty());
}

#[test]
fn rejects_tensor_entry_problems() {
    let entry = |e: &str, data: &[u8]| kind_of(&st_file(&format!("{{\"t\":{e}}}"), data));
    let is_entry = |k: Kind| matches!(k, Kind::TensorEntry { ref tensor, .. } if tensor == "t");
    assert!(is_entry(entry("[]", &[])));
    assert!(is_entry(entry(r#"{"dtype":"F32","shape":[0]}"#, &[])));
    assert!(is_entry(entry(
        r#"{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}"#,
        &[]
    )));
    assert!(is_entry(entry(
        r#"{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}"#,
        &[]
    )));
    assert!(is_entry(entry(
        r#"{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}"#,
        &[]
    )));
    assert!(is_entry(entry(
        r#"{"dtype":"F32","shape":[],"data_offsets":[0,4,4]}"#,
        &[0; 4]
    )));
    assert!(is_entry(entry(
        r#"{"dtype":32,"shape":[],"data_offsets":[0,4]}"#,
        &[0; 4]
    )));
    assert!(is_entry(entry(
        r#"{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}"#,
        &[0; 4]
    )));
    let k = entry(
        r#"{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}"#,
        &[0; 4],
    );
    assert!(matches!(k, Kind::DuplicateKey { ref key, .. } if key == "dtype"));
    let k = entry(
        r#"{"dtype":"Q4_K","shape":[],"data_offsets":[0,4]}"#,
        &[0; 4],
    );
    assert!(matches!(k, Kind::UnknownDtype { ref dtype, .. } if dtype == "Q4_K"));
    let k = entry(
        r#"{"dtype":"f32","shape":[],"data_offsets":[0,4]}"#,
        &[0; 4],
    );
    assert!(matches!(k, Kind::UnknownDtype { .. }));
    let two = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert!(
        matches!(kind_of(&st_file(two, &[0; 8])), Kind::DuplicateKey { ref key, .. } if key == "a")
    );
}

#[test]
fn rejects_layout_problems() {
    let two = |a: [u64; 2], b: [u64; 2], n: usize| {
        let h = format!(
            r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}},"b":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}}}"#,
            a[0], a[1], b[0], b[1]
        );
        kind_of(&st_file(&h, &vec![0; n]))
    };
    // Gap.
    let k = two([0, 4], [8, 12], 12);
    assert!(
        matches!(k, Kind::NotContiguous { ref tensor, expected: 4, found: 8 } if tensor == "b")
    );
    // Overlap.
    let k = two([0, 4], [2, 6], 6);
    assert!(
        matches!(k, Kind::NotContiguous { ref tensor, expected: 4, found: 2 } if tensor == "b")
    );
    // Not starting at 0.
    let k = two([4, 8], [8, 12], 12);
    assert!(
        matches!(k, Kind::NotContiguous { ref tensor, expected: 0, found: 4 } if tensor == "a")
    );
    // Two tensors at one offset: only empty ones may share it.
    let k = kind_of(&st_file(
        r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,0]}}"#,
        &[],
    ));
    assert!(
        matches!(k, Kind::SizeMismatch { ref tensor, expected: 4, found: 0, .. } if tensor == "b")
    );
    // Reversed.
    let k = kind_of(&st_file(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
        &[0; 4],
    ));
    assert!(matches!(k, Kind::ReversedOffsets { ref tensor, begin: 4, end: 0 } if tensor == "b"));
    // Size != numel × dtype size; the order in the JSON does not matter (sorted by offset).
    let k = two([4, 8], [0, 5], 8);
    assert!(
        matches!(k, Kind::SizeMismatch { ref tensor, expected: 4, found: 5, offset, .. } if tensor == "b" && offset > 8)
    );
    // numel overflow.
    let h = r#"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
    assert!(matches!(
        kind_of(&st_file(h, &[])),
        Kind::BadSize {
            problem: SizeProblem::Overflow,
            ..
        }
    ));
    let h = r#"{"a":{"dtype":"U64","shape":[4611686018427387904],"data_offsets":[0,0]}}"#;
    assert!(matches!(kind_of(&st_file(h, &[])), Kind::BadSize { .. }));
    // F4 with an odd element count is not whole bytes.
    let h = r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    assert!(matches!(
        kind_of(&st_file(h, &[0; 2])),
        Kind::BadSize { .. }
    ));
    // Trailing bytes and truncated data.
    let k = kind_of(&st_file(T2, &[0; 9]));
    assert!(matches!(k, Kind::BufferLength { file_len, expected } if file_len == expected + 1));
    let k = kind_of(&st_file(T2, &[0; 7]));
    assert!(matches!(k, Kind::BufferLength { file_len, expected } if file_len + 1 == expected));
    assert_eq!(parse(&st_file(T2, &[0; 8])).unwrap().tensors.len(), 1);
}

#[test]
fn rejects_ggml_scheme_problems() {
    let q = |md: &str, dtype: &str, shape: &str, n: usize| {
        let h = format!(
            r#"{{"__metadata__":{{{md}}},"w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,{n}]}}}}"#
        );
        parse(&st_file(&h, &vec![0; n]))
    };
    let ok = q(
        r#""w.ggml_type":"Q4_0","w.shape":"[2,32]""#,
        "U8",
        "[2,18]",
        36,
    )
    .unwrap();
    assert_eq!(
        (ok.tensors[0].dtype, ok.tensors[0].shape.as_slice()),
        (StDtype::Ggml(GgmlType::Q4_0), &[2u64, 32][..])
    );
    let kind = |r: Result<SafetensorsModel, SafetensorsError>| *r.expect_err("must fail").kind;
    // Sizes disagree: 2 rows of 64 Q4_0 values are 36 bytes each, stored as 18.
    let k = kind(q(
        r#""w.ggml_type":"Q4_0","w.shape":"[2,64]""#,
        "U8",
        "[2,18]",
        36,
    ));
    assert!(
        matches!(k, Kind::GgmlSizeMismatch { ref tensor, ref expected, .. } if tensor == "w" && expected == &[2, 36])
    );
    let k = kind(q(
        r#""w.ggml_type":"Q4_0","w.shape":"[36]""#,
        "U8",
        "[36]",
        36,
    ));
    assert!(
        matches!(k, Kind::GgmlScheme { .. }),
        "36 is not whole Q4_0 blocks: {k:?}"
    );
    let scheme = |r| matches!(kind(r), Kind::GgmlScheme { ref tensor, .. } if tensor == "w");
    assert!(scheme(q(r#""w.ggml_type":"Q4_0""#, "U8", "[2,18]", 36)));
    assert!(scheme(q(r#""w.shape":"[2,32]""#, "U8", "[2,18]", 36)));
    assert!(scheme(q(
        r#""w.ggml_type":"Q4_0","w.shape":"[2,32]""#,
        "I8",
        "[2,18]",
        36
    )));
    assert!(scheme(q(
        r#""w.ggml_type":"Q4_9","w.shape":"[2,32]""#,
        "U8",
        "[2,18]",
        36
    )));
    assert!(scheme(q(
        r#""w.ggml_type":"q4_0","w.shape":"[2,32]""#,
        "U8",
        "[2,18]",
        36
    )));
    assert!(scheme(q(
        r#""w.ggml_type":"F16","w.shape":"[36]""#,
        "U8",
        "[36]",
        36
    )));
    assert!(scheme(q(
        r#""w.ggml_type":"Q4_0","w.shape":"2,32""#,
        "U8",
        "[2,18]",
        36
    )));
    assert!(scheme(q(
        r#""w.ggml_type":"Q4_0","w.shape":"[]""#,
        "U8",
        "[2,18]",
        36
    )));
    // Entries for a tensor that does not exist are ordinary metadata.
    let m = q(r#""v.ggml_type":"Q4_0","v.shape":"[1]""#, "U8", "[4]", 4).unwrap();
    assert_eq!(m.tensors[0].dtype, StDtype::Other(StOtherDtype::U8));
}

#[test]
fn every_strict_prefix_of_a_valid_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zoo.safetensors");
    write(&out, &meta(&[("format", "pt")]), &zoo()).unwrap();
    let file = std::fs::read(&out).unwrap();
    assert!(parse(&file).is_ok());
    for n in 0..file.len() {
        assert!(parse(&file[..n]).is_err(), "prefix of {n} bytes parsed");
    }
}

fn write_index(dir: &Path, json: &str) -> PathBuf {
    let p = dir.join("model.safetensors.index.json");
    std::fs::write(&p, json).unwrap();
    p
}

#[test]
fn rejects_index_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ts = vec![
        Owned {
            name: "a".into(),
            dtype: StDtype::Ggml(GgmlType::F32),
            shape: vec![1],
            data: vec![0; 4],
        },
        Owned {
            name: "b".into(),
            dtype: StDtype::Ggml(GgmlType::F32),
            shape: vec![1],
            data: vec![0; 4],
        },
    ];
    write(&d.join("s1.safetensors"), &IndexMap::new(), &ts).unwrap();
    let ok = write_index(
        d,
        r#"{"metadata":{"total_size":8,"total_parameters":2},"weight_map":{"b":"s1.safetensors","a":"s1.safetensors"}}"#,
    );
    assert_eq!(SafetensorsModel::open(&ok).unwrap().tensors.len(), 2);
    let k = |json: &str| {
        *SafetensorsModel::open(&write_index(d, json))
            .expect_err("must fail")
            .kind
    };
    let missing = k(r#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#);
    assert!(
        matches!(missing, Kind::MissingShard { ref shard } if shard.ends_with("s2.safetensors"))
    );
    let not_in_shard =
        k(r#"{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s1.safetensors"}}"#);
    assert!(matches!(not_in_shard, Kind::TensorNotInShard { ref tensor, .. } if tensor == "c"));
    let not_in_index = k(r#"{"weight_map":{"a":"s1.safetensors"}}"#);
    assert!(matches!(not_in_index, Kind::TensorNotInIndex { ref tensor, .. } if tensor == "b"));
    assert!(matches!(
        k(r#"{"weight_map":{"a":"../s1.safetensors"}}"#),
        Kind::ShardName { .. }
    ));
    assert!(matches!(
        k(r#"{"weight_map":{"a":"/tmp/s1.safetensors"}}"#),
        Kind::ShardName { .. }
    ));
    assert!(matches!(
        k(r#"{"weight_map":{"a":".."}}"#),
        Kind::ShardName { .. }
    ));
    assert!(matches!(k(r#"{"weight_map":{}}"#), Kind::Index { .. }));
    assert!(matches!(k(r#"{"metadata":{}}"#), Kind::Index { .. }));
    assert!(matches!(k(r#"{"weight_map":{"a":1}}"#), Kind::Index { .. }));
    assert!(matches!(
        k(r#"{"weight_map":{"a":"s1.safetensors"},"x":1}"#),
        Kind::Index { .. }
    ));
    assert!(matches!(
        k(r#"{"metadata":{"total_size":"8"},"weight_map":{"a":"s1.safetensors"}}"#),
        Kind::Index { .. }
    ));
    assert!(matches!(k(r#"[]"#), Kind::Index { .. }));
    assert!(matches!(k(r#"{"weight_map":"#), Kind::Json { .. }));
    let dup = k(r#"{"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}}"#);
    assert!(matches!(dup, Kind::DuplicateKey { ref key, .. } if key == "a"));
    // Shards whose metadata disagree.
    write(
        &d.join("m1.safetensors"),
        &meta(&[("format", "pt")]),
        &ts[..1],
    )
    .unwrap();
    write(
        &d.join("m2.safetensors"),
        &meta(&[("format", "tf")]),
        &ts[1..],
    )
    .unwrap();
    let conflict = k(r#"{"weight_map":{"a":"m1.safetensors","b":"m2.safetensors"}}"#);
    assert!(matches!(conflict, Kind::MetadataConflict { ref key, .. } if key == "format"));
}

// ------------------------------------------------------------------------------------------
// Random mutations: Ok or Err, never a panic.
// ------------------------------------------------------------------------------------------

fn valid_file() -> Vec<u8> {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(build_valid_file).clone()
}

fn build_valid_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.safetensors");
    let ts: Vec<Owned> = zoo().into_iter().filter(|t| t.data.len() <= 40).collect();
    write(&out, &meta(&[("format", "pt")]), &ts).unwrap();
    std::fs::read(out).unwrap()
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn arbitrary_mutation() -> impl Strategy<Value = Mutation> {
    let printable = prop::sample::select(b"{}[]\",:0123456789 -.eE\\ntfU8F".to_vec());
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), printable.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), printable).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(f: &mut Vec<u8>, m: &Mutation) {
    let n = f.len().max(1);
    match *m {
        Mutation::Set(i, b) => {
            if let Some(x) = f.get_mut(i % n) {
                *x = b;
            }
        }
        Mutation::Insert(i, b) => f.insert(i % (f.len() + 1), b),
        Mutation::Remove(i) => {
            if !f.is_empty() {
                f.remove(i % n);
            }
        }
        Mutation::Truncate(i) => f.truncate(i % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Mutations anywhere in the file (length prefix, header, data).
    #[test]
    fn mutated_files_never_panic(muts in prop::collection::vec(arbitrary_mutation(), 1..6)) {
        let mut f = valid_file();
        for m in &muts {
            mutate(&mut f, m);
        }
        if let Ok(m) = parse(&f) {
            for t in &m.tensors {
                prop_assert_eq!(m.tensor_data(t).len() as u64, t.end - t.start);
            }
        }
    }

    /// Mutations of the JSON header only, with the length prefix kept consistent, so they
    /// reach the JSON and layout checks.
    #[test]
    fn mutated_headers_never_panic(muts in prop::collection::vec(arbitrary_mutation(), 1..6)) {
        let f = valid_file();
        let n = u64::from_le_bytes(f[..8].try_into().unwrap()) as usize;
        let mut header = f[8..8 + n].to_vec();
        for m in &muts {
            mutate(&mut header, m);
        }
        let mut g = (header.len() as u64).to_le_bytes().to_vec();
        g.extend_from_slice(&header);
        g.extend_from_slice(&f[8 + n..]);
        if let Ok(m) = parse(&g) {
            for t in &m.tensors {
                prop_assert_eq!(m.tensor_data(t).len() as u64, t.end - t.start);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(f in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&f);
    }
}
