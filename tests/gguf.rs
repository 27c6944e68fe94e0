//! GGUF reader and writer, through the library API only.
//!
//! Every input here is built byte by byte by the small encoder below, written from the GGUF
//! spec (`shared/reference/ggml-gguf-safetensors.md` §1), not by the code under test; the
//! bytes double as format documentation. Round trips compare the writer's output with these
//! hand-built bytes.

use apr_qa::dtype::GgmlType;
use apr_qa::formats::gguf::{GgufArray, GgufFile, GgufLayoutNote, GgufValue, GgufValueType};
use apr_qa::formats::gguf_write::{
    write_gguf, write_gguf_to_vec, write_gguf_to_vec_with, write_gguf_with, GgufTensorSpec,
};
use apr_qa::formats::{detect, Format, FormatError, FormatErrorKind};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// A GGUF encoder written from the spec (the oracle).
// ---------------------------------------------------------------------------------------------

fn gstr(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// One metadata entry: key, type id, encoded value.
struct Kv(Vec<u8>, u32, Vec<u8>);

fn kv(key: &str, type_id: u32, value: impl AsRef<[u8]>) -> Kv {
    Kv(key.as_bytes().to_vec(), type_id, value.as_ref().to_vec())
}

/// One tensor info: name, ne, dtype id, offset.
struct Ti(Vec<u8>, Vec<u64>, u32, u64);

fn ti(name: &str, ne: &[u64], dtype: u32, offset: u64) -> Ti {
    Ti(name.as_bytes().to_vec(), ne.to_vec(), dtype, offset)
}

/// Header + metadata + tensor infos (no padding).
fn header(version: u32, kvs: &[Kv], tis: &[Ti]) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(version.to_le_bytes());
    v.extend((tis.len() as u64).to_le_bytes());
    v.extend((kvs.len() as u64).to_le_bytes());
    for Kv(k, t, val) in kvs {
        v.extend(gstr(k));
        v.extend(t.to_le_bytes());
        v.extend(val);
    }
    for Ti(name, ne, dtype, offset) in tis {
        v.extend(gstr(name));
        v.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            v.extend(d.to_le_bytes());
        }
        v.extend(dtype.to_le_bytes());
        v.extend(offset.to_le_bytes());
    }
    v
}

fn pad_to(v: &mut Vec<u8>, alignment: usize) {
    while !v.len().is_multiple_of(alignment) {
        v.push(0);
    }
}

/// A whole file: header, zero padding to `alignment`, then `data` (the data section as given).
fn file(kvs: &[Kv], tis: &[Ti], data: &[u8], alignment: usize) -> Vec<u8> {
    let mut v = header(3, kvs, tis);
    pad_to(&mut v, alignment);
    v.extend_from_slice(data);
    v
}

fn arr(elem_type: u32, items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = elem_type.to_le_bytes().to_vec();
    v.extend((items.len() as u64).to_le_bytes());
    for i in items {
        v.extend(i);
    }
    v
}

const NAN_BITS: u32 = 0x7FC0_0001;

/// Every value type, odd values included (empty string, non-UTF-8 string, bool byte 2, empty
/// and nested arrays, extremes), as (encoded entry, expected decoded value).
fn all_value_kvs() -> Vec<(Kv, GgufValue)> {
    use GgufValue as V;
    let s = |b: &[u8]| V::String(b.to_vec());
    let a = |t, items| {
        V::Array(GgufArray {
            elem_type: t,
            items,
        })
    };
    vec![
        (kv("general.architecture", 8, gstr(b"llama")), s(b"llama")),
        (kv("t.u8", 0, [0xFE]), V::U8(0xFE)),
        (kv("t.i8", 1, [0x80]), V::I8(-128)),
        (kv("t.u16", 2, 0xBEEFu16.to_le_bytes()), V::U16(0xBEEF)),
        (kv("t.i16", 3, (-2i16).to_le_bytes()), V::I16(-2)),
        (
            kv("t.u32", 4, 0xDEAD_BEEFu32.to_le_bytes()),
            V::U32(0xDEAD_BEEF),
        ),
        (kv("t.i32", 5, i32::MIN.to_le_bytes()), V::I32(i32::MIN)),
        (kv("t.f32", 6, 0.1f32.to_le_bytes()), V::F32(0.1)),
        (
            kv("t.f32_nan", 6, NAN_BITS.to_le_bytes()),
            V::F32(f32::from_bits(NAN_BITS)),
        ),
        (kv("t.bool", 7, [1]), V::Bool(1)),
        (kv("t.bool_odd", 7, [2]), V::Bool(2)),
        (kv("t.str_empty", 8, gstr(b"")), s(b"")),
        (
            kv("t.str_raw", 8, gstr(&[0xFF, 0xFE, 0])),
            s(&[0xFF, 0xFE, 0]),
        ),
        (kv("t.u64", 10, u64::MAX.to_le_bytes()), V::U64(u64::MAX)),
        (kv("t.i64", 11, i64::MIN.to_le_bytes()), V::I64(i64::MIN)),
        (kv("t.f64", 12, (-0.0f64).to_le_bytes()), V::F64(-0.0)),
        (
            kv(
                "t.arr_str",
                9,
                arr(8, &[gstr(b"a"), gstr(b""), gstr("ü".as_bytes())]),
            ),
            a(
                GgufValueType::String,
                vec![s(b"a"), s(b""), s("ü".as_bytes())],
            ),
        ),
        (
            kv("t.arr_empty", 9, arr(4, &[])),
            a(GgufValueType::U32, vec![]),
        ),
        (
            kv(
                "t.arr_i32",
                9,
                arr(
                    5,
                    &[(-1i32).to_le_bytes().to_vec(), 7i32.to_le_bytes().to_vec()],
                ),
            ),
            a(GgufValueType::I32, vec![V::I32(-1), V::I32(7)]),
        ),
        (
            kv("t.arr_bool", 9, arr(7, &[vec![0], vec![1], vec![2]])),
            a(
                GgufValueType::Bool,
                vec![V::Bool(0), V::Bool(1), V::Bool(2)],
            ),
        ),
        (
            kv(
                "t.arr_nested",
                9,
                arr(9, &[arr(0, &[vec![1], vec![2]]), arr(12, &[])]),
            ),
            a(
                GgufValueType::Array,
                vec![
                    a(GgufValueType::U8, vec![V::U8(1), V::U8(2)]),
                    a(GgufValueType::F64, vec![]),
                ],
            ),
        ),
    ]
}

/// Bitwise equality of values (floats by bits, so NaN payloads count).
fn same(a: &GgufValue, b: &GgufValue) -> bool {
    use GgufValue as V;
    match (a, b) {
        (V::F32(x), V::F32(y)) => x.to_bits() == y.to_bits(),
        (V::F64(x), V::F64(y)) => x.to_bits() == y.to_bits(),
        (V::Array(x), V::Array(y)) => {
            x.elem_type == y.elem_type
                && x.items.len() == y.items.len()
                && x.items.iter().zip(&y.items).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// Tensor data section of [`model`]: each tensor's bytes followed by zero padding to 32.
struct Model {
    bytes: Vec<u8>,
    values: Vec<(String, GgufValue)>,
    /// (name, ne, dtype, data) in file order.
    tensors: Vec<(&'static str, Vec<u64>, GgmlType, Vec<u8>)>,
    /// Offset of the end of the last tensor's data (before its final padding).
    last_data_end: usize,
}

/// A small valid v3 model: every metadata value type and tensors of several types, one with
/// zero elements, one with a trailing 1 in its shape, the last one needing final padding.
fn model(alignment: u32) -> Model {
    let mut entries = all_value_kvs();
    if alignment != 32 {
        entries.push((
            kv("general.alignment", 4, alignment.to_le_bytes()),
            GgufValue::U32(alignment),
        ));
    }
    let q8_block: Vec<u8> = (0u8..34).collect();
    let tensors: Vec<(&'static str, Vec<u64>, GgmlType, Vec<u8>)> = vec![
        (
            "token_embd.weight",
            vec![4, 2],
            GgmlType::F32,
            (0u8..32).map(|b| b ^ 0x5A).collect(),
        ),
        ("blk.0.attn_q.weight", vec![32, 1], GgmlType::Q8_0, q8_block),
        ("blk.0.empty", vec![0, 4], GgmlType::F32, vec![]),
        (
            "output_norm.weight",
            vec![3],
            GgmlType::F16,
            vec![0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7C],
        ),
    ];
    let a = alignment as usize;
    let mut data = Vec::new();
    let mut tis = Vec::new();
    let mut last_data_end = 0;
    for (name, ne, dtype, bytes) in &tensors {
        tis.push(ti(name, ne, dtype.id(), data.len() as u64));
        data.extend_from_slice(bytes);
        last_data_end = data.len();
        pad_to(&mut data, a);
    }
    let kvs: Vec<Kv> = entries
        .iter()
        .map(|(k, _)| Kv(k.0.clone(), k.1, k.2.clone()))
        .collect();
    let bytes = file(&kvs, &tis, &data, a);
    let data_offset = bytes.len() - data.len();
    let values = entries
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k.0).unwrap(), v))
        .collect();
    Model {
        bytes,
        values,
        tensors,
        last_data_end: data_offset + last_data_end,
    }
}

fn parse(bytes: &[u8]) -> Result<GgufFile, FormatError> {
    GgufFile::from_bytes(bytes.to_vec())
}

fn kind(bytes: &[u8]) -> FormatErrorKind {
    match parse(bytes) {
        Ok(f) => panic!("expected an error, parsed {} tensors", f.tensors.len()),
        Err(e) => e.kind,
    }
}

fn rewrite(f: &GgufFile) -> Vec<u8> {
    let opts = f.write_options();
    write_gguf_to_vec_with(
        &opts,
        f.version,
        &f.metadata,
        &f.tensor_specs(),
        &mut |i, w| w.write_all(f.tensor_data(&f.tensors[i])),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Reading and round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn reads_every_value_type_and_tensor_exactly() {
    for alignment in [32u32, 64, 1] {
        let m = model(alignment);
        let f = parse(&m.bytes).unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.alignment, u64::from(alignment));
        assert_eq!(f.file_size, m.bytes.len() as u64);
        assert_eq!(f.metadata.len(), m.values.len());
        for ((k, v), (ek, ev)) in f.metadata.iter().zip(&m.values) {
            assert_eq!(k, ek);
            assert!(same(v, ev), "{k}: {v:?} != {ev:?}");
        }
        assert_eq!(f.tensors.len(), m.tensors.len());
        for (t, (name, ne, dtype, data)) in f.tensors.iter().zip(&m.tensors) {
            assert_eq!(&t.name, name);
            assert_eq!(&t.ne, ne);
            assert_eq!(t.dtype, *dtype);
            assert_eq!(t.n_bytes, data.len() as u64);
            assert_eq!(t.offset % u64::from(alignment), 0);
            assert_eq!(f.tensor_data(t), &data[..]);
        }
        assert!(f.is_canonical(), "{:?}", f.layout_notes);
        f.check_strict().unwrap();
        assert_eq!(f.get("t.u64").and_then(GgufValue::as_u64), Some(u64::MAX));
        assert_eq!(f.get("t.i8").and_then(GgufValue::as_u64), None);
        assert_eq!(f.get("t.i8").and_then(GgufValue::as_i64), Some(-128));
        assert_eq!(
            f.get("general.architecture").and_then(GgufValue::as_str),
            Some("llama")
        );
        assert_eq!(f.get("t.str_raw").and_then(GgufValue::as_str), None);
        assert_eq!(f.get("t.bool_odd").and_then(GgufValue::as_bool), Some(true));
        assert_eq!(
            f.get("t.f32").and_then(GgufValue::as_f64),
            Some(f64::from(0.1f32))
        );
        assert_eq!(
            f.get("t.f32").map(GgufValue::type_of),
            Some(GgufValueType::F32)
        );
        assert!(f.get("missing").is_none());
    }
}

#[test]
fn round_trip_is_byte_identical() {
    for alignment in [32u32, 64, 1] {
        let m = model(alignment);
        let f = parse(&m.bytes).unwrap();
        assert!(rewrite(&f) == m.bytes, "alignment {alignment}");
    }
}

#[test]
fn writer_alone_reproduces_hand_built_bytes() {
    // Independent of the reader: the expected values and tensors go straight to the writer.
    let m = model(32);
    let specs: Vec<GgufTensorSpec> = m
        .tensors
        .iter()
        .map(|(name, ne, dtype, _)| GgufTensorSpec {
            name,
            ne,
            dtype: *dtype,
        })
        .collect();
    let out = write_gguf_to_vec(3, &m.values, &specs, &mut |i, w| {
        w.write_all(&m.tensors[i].3)
    });
    assert!(out.unwrap() == m.bytes);
}

#[test]
fn version_2_reads_and_round_trips() {
    let mut bytes = model(32).bytes;
    bytes[4] = 2;
    let f = parse(&bytes).unwrap();
    assert_eq!(f.version, 2);
    assert!(rewrite(&f) == bytes);
}

#[test]
fn file_round_trip_is_atomic_and_identical() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.gguf");
    let out = dir.path().join("out.gguf");
    let m = model(32);
    std::fs::write(&src, &m.bytes).unwrap();
    assert_eq!(detect(&src).unwrap(), Format::Gguf);
    let f = GgufFile::open(&src).unwrap();
    let write = |out: &std::path::Path| {
        write_gguf(
            out,
            f.version,
            &f.metadata,
            &f.tensor_specs(),
            &mut |i, w| w.write_all(f.tensor_data(&f.tensors[i])),
        )
    };
    write(&out).unwrap();
    assert!(std::fs::read(&out).unwrap() == m.bytes);
    // Overwriting the file we are reading from is safe: the rename replaces the inode.
    write(&src).unwrap();
    assert!(std::fs::read(&src).unwrap() == m.bytes);
    assert!(f.tensor_data(&f.tensors[0]) == &m.tensors[0].3[..]);
    // Only the two outputs remain: no temp files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    // The output has a new file's usual permissions, not the temp file's owner-only ones.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        let reference = dir.path().join("reference");
        std::fs::write(&reference, b"").unwrap();
        assert_eq!(mode(&out), mode(&reference));
        std::fs::remove_file(&reference).unwrap();
    }
    // A directory as output is refused and left alone.
    let e = write(dir.path()).unwrap_err();
    assert!(matches!(e.kind, FormatErrorKind::IsADirectory), "{e}");
}

#[test]
fn zero_tensor_file_round_trips() {
    let kvs = [kv("general.architecture", 8, gstr(b"x"))];
    let bytes = file(&kvs, &[], &[], 32);
    let f = parse(&bytes).unwrap();
    assert!(f.tensors.is_empty() && f.is_canonical());
    assert_eq!(f.data_offset, bytes.len() as u64);
    assert!(rewrite(&f) == bytes);
    // gguf-py's vocab-only files stop at the end of the metadata (no padding): also canonical.
    let unpadded = header(3, &kvs, &[]);
    assert!(!unpadded.len().is_multiple_of(32));
    let f = parse(&unpadded).unwrap();
    assert!(f.is_canonical() && !f.write_options().pad_empty_data_section);
    assert!(rewrite(&f) == unpadded);
    // The default options pad, as ggml does.
    let padded = write_gguf_to_vec(3, &f.metadata, &[], &mut |_, _| Ok(())).unwrap();
    assert!(padded == bytes);
}

#[test]
fn error_display_is_one_line_naming_the_file() {
    let e = parse(b"GGUF\x63\0\0\0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid GGUF file <memory>: unsupported version 99"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.bin");
    std::fs::write(&p, b"\x7fELF\x02\x01\x01\0\0").unwrap();
    let e = detect(&p).unwrap_err();
    assert!(matches!(
        e.kind,
        FormatErrorKind::BadMagic {
            found: [0x7F, b'E', b'L', b'F']
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()) && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(detect(dir.path()).unwrap(), Format::Directory);
    assert!(matches!(
        GgufFile::open(dir.path()).unwrap_err().kind,
        FormatErrorKind::IsADirectory
    ));
}

#[test]
fn detects_formats_by_magic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], Option<Format>); 5] = [
        ("a", b"APR\0\x02\0\0\0", Some(Format::Apr)),
        ("b", b"APR2\x02\0\0\0", Some(Format::Apr)),
        (
            "c",
            b"\x10\0\0\0\0\0\0\0{\"a\":1}",
            Some(Format::SafeTensors),
        ),
        ("d", b"APRN\x01\0", None),
        ("e", b"", None),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        match (detect(&p), want) {
            (Ok(f), Some(w)) => assert_eq!(f, w),
            (Err(e), None) => assert_eq!(e.path, p),
            (got, want) => panic!("{name}: {got:?} vs {want:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every error variant, from hand-built bytes
// ---------------------------------------------------------------------------------------------

/// A file with one tensor info and one 32-byte data section (for tensor-info errors).
fn one_tensor(name: &[u8], ne: &[u64], dtype: u32, offset: u64) -> Vec<u8> {
    let t = Ti(name.to_vec(), ne.to_vec(), dtype, offset);
    file(&[], &[t], &[0u8; 32], 32)
}

#[test]
fn every_proper_prefix_is_an_error_or_short_padding() {
    let m = model(32);
    for len in 0..m.bytes.len() {
        match parse(&m.bytes[..len]) {
            Err(_) => assert!(len < m.last_data_end, "prefix {len} should parse"),
            Ok(f) => {
                // Only the last tensor's padding is missing: accepted (llama.cpp's mmap loader
                // does), recorded, and refused by the strict check.
                assert!(len >= m.last_data_end, "prefix {len} parsed");
                let missing = (m.bytes.len() - len) as u64;
                assert_eq!(
                    f.layout_notes,
                    vec![GgufLayoutNote::ShortFinalPadding { missing }]
                );
                assert!(f.check_strict().is_err());
            }
        }
    }
    // Counts are bounded by the bytes left: a cut header reports the count that cannot fit.
    let kv1 = header(3, &[kv("k", 4, [0; 4])], &[]);
    assert!(matches!(
        kind(&kv1[..39]),
        FormatErrorKind::Truncated { at: 37, need: 4 }
    ));
    assert!(matches!(
        kind(&m.bytes[..3]),
        FormatErrorKind::Truncated { at: 0, need: 4 }
    ));
    assert!(matches!(
        kind(&m.bytes[..30]),
        FormatErrorKind::TooMany {
            what: "tensor",
            count: 4,
            at: 8
        }
    ));
}

#[test]
fn bad_magic_and_versions() {
    assert!(matches!(
        kind(b"GGUG\x03\0\0\0"),
        FormatErrorKind::BadMagic {
            found: [b'G', b'G', b'U', b'G']
        }
    ));
    for version in [0u32, 1, 4, 99, 0x0300_0000] {
        let mut b = model(32).bytes;
        b[4..8].copy_from_slice(&version.to_le_bytes());
        assert!(
            matches!(kind(&b), FormatErrorKind::UnsupportedVersion { version: v } if v == version)
        );
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut b = header(3, &[], &[]);
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        kind(&b),
        FormatErrorKind::TooMany {
            what: "tensor",
            count: 0x100_0000_0000,
            at: 8
        }
    ));
    let mut b = header(3, &[], &[]);
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        kind(&b),
        FormatErrorKind::TooMany {
            what: "metadata entry",
            count: 0x100_0000_0000,
            at: 16
        }
    ));
    let mut b = header(3, &[], &[]);
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        kind(&b),
        FormatErrorKind::TooMany {
            count: u64::MAX,
            ..
        }
    ));
    // An array count of 2^40: its count field sits after key (8+1), type (4), elem type (4).
    let b = header(
        3,
        &[kv(
            "a",
            9,
            [
                4u32.to_le_bytes().to_vec(),
                (1u64 << 40).to_le_bytes().to_vec(),
            ]
            .concat(),
        )],
        &[],
    );
    assert!(matches!(
        kind(&b),
        FormatErrorKind::TooMany {
            what: "array element",
            at: 41,
            ..
        }
    ));
    // A plausible count the remaining bytes cannot hold: 3 u32 elements, 8 bytes left.
    let mut v = arr(
        4,
        &[1u32.to_le_bytes().to_vec(), 2u32.to_le_bytes().to_vec()],
    );
    v[4..12].copy_from_slice(&3u64.to_le_bytes());
    assert!(matches!(
        kind(&header(3, &[kv("a", 9, v)], &[])),
        FormatErrorKind::TooMany { count: 3, .. }
    ));
}

#[test]
fn string_errors() {
    // A string length past EOF: key length field at 24.
    let mut b = header(3, &[kv("key", 8, gstr(b"v"))], &[]);
    b[24..32].copy_from_slice(&1000u64.to_le_bytes());
    let rest = b.len() as u64 - 32;
    assert!(
        matches!(kind(&b), FormatErrorKind::StringTooLong { at: 24, len: 1000, limit } if limit == rest)
    );
    // A value string length past EOF.
    let mut v = gstr(b"abc");
    v[0] = 4;
    assert!(matches!(
        kind(&header(3, &[kv("k", 8, v)], &[])),
        FormatErrorKind::StringTooLong {
            len: 4,
            limit: 3,
            ..
        }
    ));
    assert!(matches!(
        kind(&header(3, &[kv("", 4, [0; 4])], &[])),
        FormatErrorKind::EmptyKey { at: 24 }
    ));
    let bad_key = Kv(vec![b'k', 0xFF], 4, vec![0; 4]);
    assert!(matches!(
        kind(&header(3, &[bad_key], &[])),
        FormatErrorKind::NotUtf8 {
            what: "metadata key",
            at: 24
        }
    ));
}

#[test]
fn metadata_errors() {
    let dup = [kv("k", 4, [0; 4]), kv("k", 0, [0])];
    assert!(
        matches!(kind(&header(3, &dup, &[])), FormatErrorKind::DuplicateKey { key } if key == "k")
    );
    // Value type 13 at offset 24 + 8 + 1.
    assert!(matches!(
        kind(&header(3, &[kv("k", 13, [0; 4])], &[])),
        FormatErrorKind::UnknownValueType {
            type_id: 13,
            at: 33
        }
    ));
    // Array element type 13: its field is at 37.
    assert!(matches!(
        kind(&header(3, &[kv("k", 9, arr(13, &[]))], &[])),
        FormatErrorKind::UnknownValueType {
            type_id: 13,
            at: 37
        }
    ));
    // Nesting at the cap (8 arrays) reads; 9 does not.
    let nest = |depth: usize| {
        let mut v = arr(0, &[]);
        for _ in 1..depth {
            v = arr(9, &[v]);
        }
        v
    };
    parse(&file(&[kv("k", 9, nest(8))], &[], &[], 32)).unwrap();
    assert!(matches!(
        kind(&header(3, &[kv("k", 9, nest(9))], &[])),
        FormatErrorKind::NestedArray {
            depth: 9,
            limit: 8,
            ..
        }
    ));
    for bad in [
        kv("general.alignment", 4, 0u32.to_le_bytes()),
        kv("general.alignment", 4, 48u32.to_le_bytes()),
        kv("general.alignment", 10, 32u64.to_le_bytes()),
        kv("general.alignment", 5, 32i32.to_le_bytes()),
    ] {
        assert!(matches!(
            kind(&header(3, &[bad], &[])),
            FormatErrorKind::BadAlignment { .. }
        ));
    }
}

#[test]
fn tensor_info_errors() {
    let k = |b: Vec<u8>| kind(&b);
    assert!(matches!(
        k(one_tensor(b"t", &[1; 9], 0, 0)),
        FormatErrorKind::TooManyDims {
            n_dims: 9,
            limit: 4,
            ..
        }
    ));
    assert!(matches!(
        k(one_tensor(b"t", &[1 << 32, 1 << 32], 0, 0)),
        FormatErrorKind::ElementOverflow { .. }
    ));
    assert!(matches!(
        k(one_tensor(b"t", &[u64::MAX], 0, 0)),
        FormatErrorKind::ElementOverflow { .. }
    ));
    // 2^62 f32 elements fit in i64, their 2^64 bytes do not fit in u64.
    assert!(matches!(
        k(one_tensor(b"t", &[1 << 62], 0, 0)),
        FormatErrorKind::ElementOverflow { .. }
    ));
    assert!(matches!(
        k(one_tensor(b"t", &[33, 1], 2, 0)),
        FormatErrorKind::PartialBlock {
            ne0: 33,
            block_size: 32,
            dtype: GgmlType::Q4_0,
            ..
        }
    ));
    // 0-dimensional tensors have one element, which is not a whole Q4_0 block.
    assert!(matches!(
        k(one_tensor(b"t", &[], 2, 0)),
        FormatErrorKind::PartialBlock { ne0: 1, .. }
    ));
    for id in [4u32, 31, 36, 99, u32::MAX] {
        assert!(
            matches!(k(one_tensor(b"w", &[8], id, 0)), FormatErrorKind::UnknownDtype { tensor, id: i } if tensor == "w" && i == id)
        );
    }
    let name63 = [b'n'; 63];
    parse(&one_tensor(&name63, &[8], 0, 0)).unwrap();
    assert!(matches!(
        k(one_tensor(&[b'n'; 64], &[8], 0, 0)),
        FormatErrorKind::NameTooLong {
            at: 24,
            len: 64,
            limit: 63
        }
    ));
    assert!(matches!(
        k(one_tensor(&[0xC3], &[8], 0, 0)),
        FormatErrorKind::NotUtf8 {
            what: "tensor name",
            at: 24
        }
    ));
    let two = [ti("t", &[8], 0, 0), ti("t", &[8], 0, 32)];
    assert!(
        matches!(kind(&file(&[], &two, &[0; 64], 32)), FormatErrorKind::DuplicateTensor { name } if name == "t")
    );
    // Truncated inside a dimension: 24 header + 9 name + 4 n_dims + 8 ne0, then 5 of ne1's 8.
    // (Cut shorter, the tensor count no longer fits the remaining bytes: TooMany.)
    let b = one_tensor(b"t", &[8, 1], 0, 0);
    assert!(matches!(
        kind(&b[..50]),
        FormatErrorKind::Truncated { at: 45, need: 8 }
    ));
}

#[test]
fn tensor_offset_errors() {
    // 32 bytes of f32 data in a 32-byte data section: offset 32 ends past EOF.
    assert!(matches!(
        kind(&one_tensor(b"t", &[8], 0, 32)),
        FormatErrorKind::OffsetOutOfBounds {
            offset: 32,
            n_bytes: 32,
            ..
        }
    ));
    assert!(matches!(
        kind(&one_tensor(b"t", &[8], 0, u64::MAX - 31)),
        FormatErrorKind::OffsetOutOfBounds { .. }
    ));
    assert!(matches!(
        kind(&one_tensor(b"t", &[4], 0, 16)),
        FormatErrorKind::OffsetMisaligned {
            offset: 16,
            alignment: 32,
            ..
        }
    ));
    let overlap = [ti("a", &[16], 0, 0), ti("b", &[8], 0, 32)];
    assert!(matches!(
        kind(&file(&[], &overlap, &[0; 64], 32)),
        FormatErrorKind::Overlap { first, second } if first == "a" && second == "b"
    ));
    // Zero-size tensors overlap nothing.
    let empty = [ti("a", &[0], 0, 0), ti("b", &[8], 0, 0)];
    parse(&file(&[], &empty, &[0; 32], 32)).unwrap();
}

#[test]
fn valid_non_canonical_layouts_are_recorded() {
    // A gap: "b" at 64 instead of 32.
    let gap = [ti("a", &[8], 0, 0), ti("b", &[8], 0, 64)];
    let f = parse(&file(&[], &gap, &[0; 96], 32)).unwrap();
    assert_eq!(
        f.layout_notes,
        vec![GgufLayoutNote::NotContiguous {
            tensor: "b".into(),
            found: 64,
            expected: 32
        }]
    );
    let e = f.check_strict().unwrap_err();
    assert!(matches!(
        e.kind,
        FormatErrorKind::OffsetMismatch {
            found: 64,
            expected: 32,
            ..
        }
    ));
    // Out of file order.
    let swapped = [ti("a", &[8], 0, 32), ti("b", &[8], 0, 0)];
    let f = parse(&file(&[], &swapped, &[0; 64], 32)).unwrap();
    assert_eq!(f.layout_notes.len(), 2);
    // Trailing bytes and non-zero padding.
    let one = [ti("a", &[4], 0, 0)];
    let mut data = vec![0u8; 32];
    data.extend([1, 2, 3]);
    let b = file(&[], &one, &data, 32);
    let f = parse(&b).unwrap();
    assert_eq!(
        f.layout_notes,
        vec![GgufLayoutNote::TrailingBytes {
            at: b.len() as u64 - 3,
            n_bytes: 3
        }]
    );
    data.truncate(32);
    data[20] = 7;
    let b = file(&[], &one, &data, 32);
    let f = parse(&b).unwrap();
    let at = (b.len() - 12) as u64;
    assert_eq!(f.layout_notes, vec![GgufLayoutNote::NonZeroPadding { at }]);
    assert!(
        rewrite(&f) != b,
        "non-canonical files are normalised, not copied"
    );
}

// ---------------------------------------------------------------------------------------------
// Writer errors
// ---------------------------------------------------------------------------------------------

#[test]
fn writer_refuses_what_the_reader_would_refuse() {
    let spec = |name, ne, dtype| GgufTensorSpec { name, ne, dtype };
    let w = |meta: &[(String, GgufValue)], t: &[GgufTensorSpec], n: usize| {
        write_gguf_to_vec(3, meta, t, &mut |_, w| w.write_all(&vec![0u8; n]))
            .unwrap_err()
            .kind
    };
    let t8 = [spec("t", &[8][..], GgmlType::F32)];
    assert!(matches!(
        w(&[], &t8, 31),
        FormatErrorKind::WrongDataSize {
            written: 31,
            expected: 32,
            ..
        }
    ));
    assert!(matches!(
        w(&[], &t8, 33),
        FormatErrorKind::WrongDataSize {
            written: 33,
            expected: 32,
            ..
        }
    ));
    let e =
        write_gguf_to_vec(3, &[], &t8, &mut |_, _| Err(std::io::Error::other("boom"))).unwrap_err();
    assert!(matches!(e.kind, FormatErrorKind::TensorData { tensor, .. } if tensor == "t"));
    let bad_align = [("general.alignment".to_string(), GgufValue::U64(32))];
    assert!(matches!(
        w(&bad_align, &t8, 32),
        FormatErrorKind::BadAlignment { .. }
    ));
    let mixed = GgufValue::Array(GgufArray {
        elem_type: GgufValueType::U32,
        items: vec![GgufValue::U8(1)],
    });
    assert!(matches!(
        w(&[("k".into(), mixed)], &[], 0),
        FormatErrorKind::ArrayTypeMismatch { index: 0, .. }
    ));
    let dup = [
        ("k".to_string(), GgufValue::U8(1)),
        ("k".to_string(), GgufValue::U8(2)),
    ];
    assert!(matches!(
        w(&dup, &[], 0),
        FormatErrorKind::DuplicateKey { .. }
    ));
    let q = [spec("q", &[16][..], GgmlType::Q4_0)];
    assert!(matches!(
        w(&[], &q, 0),
        FormatErrorKind::PartialBlock { .. }
    ));
    let two = [
        spec("t", &[8][..], GgmlType::F32),
        spec("t", &[8][..], GgmlType::F32),
    ];
    assert!(matches!(
        w(&[], &two, 32),
        FormatErrorKind::DuplicateTensor { .. }
    ));
    assert!(matches!(
        write_gguf_to_vec(1, &[], &[], &mut |_, _| Ok(()))
            .unwrap_err()
            .kind,
        FormatErrorKind::UnsupportedVersion { version: 1 }
    ));
}

// ---------------------------------------------------------------------------------------------
// Hostile input: never a panic
// ---------------------------------------------------------------------------------------------

/// Positions worth mutating: every count, length and offset field of [`model`], plus random ones.
fn mutation() -> impl Strategy<Value = Vec<(usize, u8)>> {
    let len = model(32).bytes.len();
    prop::collection::vec((0..len, any::<u8>()), 1..8)
}

/// Shrunk failures go to `tests/gguf.proptest-regressions` (commit them).
fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Homogeneous arrays of every element type but Array.
fn arbitrary_flat_array() -> impl Strategy<Value = GgufValue> {
    use GgufValue as V;
    use GgufValueType as T;
    let n = 0..4usize;
    let mk = |t: T| {
        move |items: Vec<GgufValue>| {
            V::Array(GgufArray {
                elem_type: t,
                items,
            })
        }
    };
    prop_oneof![
        prop::collection::vec(any::<u8>().prop_map(V::U8), n.clone()).prop_map(mk(T::U8)),
        prop::collection::vec(any::<i16>().prop_map(V::I16), n.clone()).prop_map(mk(T::I16)),
        prop::collection::vec(
            any::<u32>().prop_map(|b| V::F32(f32::from_bits(b))),
            n.clone()
        )
        .prop_map(mk(T::F32)),
        prop::collection::vec(any::<u8>().prop_map(V::Bool), n.clone()).prop_map(mk(T::Bool)),
        prop::collection::vec(
            prop::collection::vec(any::<u8>(), 0..6).prop_map(V::String),
            n.clone()
        )
        .prop_map(mk(T::String)),
        prop::collection::vec(any::<i64>().prop_map(V::I64), n.clone()).prop_map(mk(T::I64)),
        prop::collection::vec(any::<u64>().prop_map(|b| V::F64(f64::from_bits(b))), n)
            .prop_map(mk(T::F64)),
    ]
}

/// Any metadata value: every scalar type (floats from raw bits, so NaN payloads too), flat
/// arrays and arrays of arrays.
fn arbitrary_value() -> impl Strategy<Value = GgufValue> {
    use GgufValue as V;
    prop_oneof![
        any::<u8>().prop_map(V::U8),
        any::<i8>().prop_map(V::I8),
        any::<u16>().prop_map(V::U16),
        any::<i16>().prop_map(V::I16),
        any::<u32>().prop_map(V::U32),
        any::<i32>().prop_map(V::I32),
        any::<u32>().prop_map(|b| V::F32(f32::from_bits(b))),
        any::<u8>().prop_map(V::Bool),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(V::String),
        any::<u64>().prop_map(V::U64),
        any::<i64>().prop_map(V::I64),
        any::<u64>().prop_map(|b| V::F64(f64::from_bits(b))),
        arbitrary_flat_array(),
        prop::collection::vec(arbitrary_flat_array(), 0..3).prop_map(|items| V::Array(GgufArray {
            elem_type: GgufValueType::Array,
            items
        })),
    ]
}

/// A tensor: (dtype, ne, data) with ne[0] whole blocks and random bytes of the right length.
fn arbitrary_tensor() -> impl Strategy<Value = (GgmlType, Vec<u64>, Vec<u8>)> {
    let dtype = prop::sample::select(vec![
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::I8,
    ]);
    (dtype, 0..3u64, 0..3u64, any::<bool>()).prop_flat_map(|(dtype, blocks, rows, trailing_one)| {
        let mut ne = vec![blocks * dtype.block_size() as u64, rows];
        if trailing_one {
            ne.push(1);
        }
        let n = (blocks * rows) as usize * dtype.type_size();
        prop::collection::vec(any::<u8>(), n).prop_map(move |d| (dtype, ne.clone(), d))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..proptest_config() })]

    #[test]
    fn arbitrary_models_round_trip(
        values in prop::collection::vec(arbitrary_value(), 0..10),
        tensors in prop::collection::vec(arbitrary_tensor(), 0..5),
        alignment in prop::sample::select(vec![None, Some(1u32), Some(8), Some(64)]),
        version in 2u32..=3,
    ) {
        let mut metadata: Vec<(String, GgufValue)> =
            values.into_iter().enumerate().map(|(i, v)| (format!("k.{i}"), v)).collect();
        if let Some(a) = alignment {
            metadata.push(("general.alignment".into(), GgufValue::U32(a)));
        }
        let names: Vec<String> = (0..tensors.len()).map(|i| format!("blk.{i}.w")).collect();
        let specs: Vec<GgufTensorSpec> = tensors
            .iter()
            .zip(&names)
            .map(|((dtype, ne, _), name)| GgufTensorSpec { name, ne, dtype: *dtype })
            .collect();
        let bytes = write_gguf_to_vec(version, &metadata, &specs, &mut |i, w| {
            w.write_all(&tensors[i].2)
        })
        .unwrap();
        let f = parse(&bytes).unwrap();
        prop_assert!(f.is_canonical());
        prop_assert_eq!(f.version, version);
        prop_assert_eq!(f.metadata.len(), metadata.len());
        for ((k, v), (ek, ev)) in f.metadata.iter().zip(&metadata) {
            prop_assert_eq!(k, ek);
            prop_assert!(same(v, ev));
        }
        for (t, (spec, (_, _, data))) in f.tensors.iter().zip(specs.iter().zip(&tensors)) {
            prop_assert_eq!((t.name.as_str(), t.ne.as_slice(), t.dtype), (spec.name, spec.ne, spec.dtype));
            prop_assert!(f.tensor_data(t) == &data[..]);
            prop_assert_eq!(t.offset % f.alignment, 0);
        }
        prop_assert!(rewrite(&f) == bytes);
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn mutated_files_give_ok_or_err(muts in mutation()) {
        let mut b = model(32).bytes;
        for (i, v) in muts {
            b[i] = v;
        }
        if let Ok(f) = parse(&b) {
            // Whatever parses hands out in-bounds data and can be rewritten.
            for t in &f.tensors {
                prop_assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
            }
            let _ = write_gguf_to_vec(f.version, &f.metadata, &f.tensor_specs(), &mut |i, w| {
                w.write_all(f.tensor_data(&f.tensors[i]))
            });
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_give_ok_or_err(
        tail in prop::collection::vec(any::<u8>(), 0..512),
        n_tensors in prop::sample::select(vec![0u64, 1, 2, 3, 255, 1 << 33, u64::MAX]),
        n_kv in prop::sample::select(vec![0u64, 1, 2, 3, 255, 1 << 33, u64::MAX]),
    ) {
        let mut b = b"GGUF\x03\0\0\0".to_vec();
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b.extend(tail);
        let _ = parse(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// An external oracle: a file written by gguf-py 0.19.0 (`GGUFWriter`, custom alignment 64;
// Q8_0/Q4_0 data from `gguf.quants.quantize`). Script: add_custom_alignment(64), u32, f32,
// bool, string array, int array, u64, string; tensors F32 [3,5], F16 [7], Q8_0 [2,64],
// Q4_0 [2,64], F32 [4,1,3] (numpy shapes). Expected values are gguf-py's `GGUFReader` output.
// ---------------------------------------------------------------------------------------------

const GGUF_PY_A64: &str = concat!(
    "474755460300000005000000000000000900000000000000140000000000000067656e6572616c2e6172636869746563",
    "747572650800000005000000000000006c6c616d61110000000000000067656e6572616c2e616c69676e6d656e740400",
    "00004000000011000000000000006c6c616d612e626c6f636b5f636f756e74040000000100000014000000000000006c",
    "6c616d612e726f70652e667265715f626173650600000000401c460600000000000000742e626f6f6c07000000010600",
    "000000000000742e73747273090000000800000003000000000000000100000000000000610200000000000000626302",
    "00000000000000c3bc0600000000000000742e696e747309000000050000000300000000000000010000000200000003",
    "0000000500000000000000742e6269670a00000005000000000000801700000000000000746f6b656e697a65722e6368",
    "61745f74656d706c6174650800000007000000000000007b7b2078207d7d1100000000000000746f6b656e5f656d6264",
    "2e7765696768740200000005000000000000000300000000000000000000000000000000000000160000000000000062",
    "6c6b2e302e6174746e5f6e6f726d2e776569676874010000000700000000000000010000004000000000000000130000",
    "0000000000626c6b2e302e6174746e5f712e776569676874020000004000000000000000020000000000000008000000",
    "80000000000000001300000000000000626c6b2e302e66666e5f75702e77656967687402000000400000000000000002",
    "000000000000000200000040010000000000000d000000000000006f75747075742e7765696768740300000003000000",
    "000000000100000000000000040000000000000000000000c00100000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000a2ae07bf85d271be4982e83f1afc4bbd",
    "7165b13d6758bebf02dcd23f7ee06a3f5291883f7b44433de3a96a3fbeecbd3ef6f91c3f79d81bbe5ca8bcbf00000000",
    "1e3cbdbfaeb38bb22cbce83869b200000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000a824e81de64c13e695b83cfdf05ab9e0e620dcdea8282ce609b9e64c077fd520",
    "f51f432600e9dd7dfdaee51cec3829faedd7e3c43141cdd0b8d981d135f223ec4808f0688e25f1c809fe31d62527e108",
    "da6ce0ebcff00023e4f7bfda7f30dcc2d3ff02dec5429b270ff3f9ee9d04dcdeea19d9d01619e013f60ad61c29151381",
    "09fffbeb020ef7f000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000009fb4aaa6ea5357aa7fcda4388902bc6a9a663636b8c7565f3863065ab77cab78",
    "d79576f483b5896ca798c5ab0656aac8ba818aa9cb498b37799758a7b2989606978a8675899a76790000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "93689d3fab7c8dbf20dc833f540e353efae64dbf827894beb3846bbf07d12c3f2e20b23e328a0ebf7d158dbf887a9a3e",
    "00000000000000000000000000000000",
);

#[test]
fn reads_and_reproduces_a_gguf_py_file() {
    let bytes: Vec<u8> = (0..GGUF_PY_A64.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GGUF_PY_A64[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes.len(), 1216);
    let f = parse(&bytes).unwrap();
    assert_eq!((f.version, f.alignment), (3, 64));
    let keys: Vec<(&str, GgufValueType)> = f
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.type_of()))
        .collect();
    use GgufValueType as T;
    assert_eq!(
        keys,
        [
            ("general.architecture", T::String),
            ("general.alignment", T::U32),
            ("llama.block_count", T::U32),
            ("llama.rope.freq_base", T::F32),
            ("t.bool", T::Bool),
            ("t.strs", T::Array),
            ("t.ints", T::Array),
            ("t.big", T::U64),
            ("tokenizer.chat_template", T::String),
        ]
    );
    assert_eq!(
        f.get("t.big").and_then(GgufValue::as_u64),
        Some((1 << 63) + 5)
    );
    assert_eq!(
        f.get("t.ints")
            .and_then(GgufValue::as_array)
            .map(|a| a.elem_type),
        Some(T::I32)
    );
    // (name, ne, dtype, absolute data offset, n_bytes) as gguf-py reports them.
    let want: [(&str, &[u64], GgmlType, u64, u64); 5] = [
        ("token_embd.weight", &[5, 3], GgmlType::F32, 704, 60),
        ("blk.0.attn_norm.weight", &[7], GgmlType::F16, 768, 14),
        ("blk.0.attn_q.weight", &[64, 2], GgmlType::Q8_0, 832, 136),
        ("blk.0.ffn_up.weight", &[64, 2], GgmlType::Q4_0, 1024, 72),
        ("output.weight", &[3, 1, 4], GgmlType::F32, 1152, 48),
    ];
    for (t, (name, ne, dtype, abs, n)) in f.tensors.iter().zip(want) {
        assert_eq!(
            (t.name.as_str(), t.ne.as_slice(), t.dtype),
            (name, ne, dtype)
        );
        assert_eq!((f.data_offset + t.offset, t.n_bytes), (abs, n));
    }
    assert!(f.is_canonical(), "{:?}", f.layout_notes);
    assert!(rewrite(&f) == bytes);
}

// ---------------------------------------------------------------------------------------------
// Real files (opt-in): `APR_QA_GGUF_DIR=<dir> cargo test --test tests gguf::real -- --ignored`
// (default dir: ~/.cache/apr-qa/models). Every *.gguf below it must read without layout notes
// and rewrite byte-identically.
// ---------------------------------------------------------------------------------------------

fn gguf_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            gguf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "gguf") {
            out.push(p);
        }
    }
}

#[test]
#[ignore = "needs real models: scripts/fetch-models.sh (or APR_QA_GGUF_DIR)"]
fn real_files_round_trip_byte_identically() {
    let dir = std::env::var_os("APR_QA_GGUF_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/apr-qa/models"))
        })
        .unwrap();
    let mut files = Vec::new();
    gguf_files(&dir, &mut files);
    assert!(!files.is_empty(), "no .gguf files under {}", dir.display());
    if std::env::var_os("APR_QA_GGUF_DIR").is_none() {
        // The default directory must hold the three real models: a missing one fails by name.
        for m in [crate::util::QWEN, crate::util::SMOLLM, crate::util::GEMMA] {
            let _ = crate::util::real_model(m);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    for p in files {
        let f = GgufFile::open(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.is_canonical(), "{}: {:?}", p.display(), f.layout_notes);
        let out = tmp.path().join("rt.gguf");
        write_gguf_with(
            &out,
            &f.write_options(),
            f.version,
            &f.metadata,
            &f.tensor_specs(),
            &mut |i, w| w.write_all(f.tensor_data(&f.tensors[i])),
        )
        .unwrap();
        let back = GgufFile::open(&out).unwrap();
        assert!(
            back.bytes() == f.bytes(),
            "{} differs after rewrite",
            p.display()
        );
        eprintln!(
            "ok {} ({} tensors, {} kv, {} bytes)",
            p.display(),
            f.tensors.len(),
            f.metadata.len(),
            f.file_size
        );
    }
}
