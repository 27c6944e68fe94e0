//! Hostile GGUF files through the real binary: `apr-qa inspect` must exit 2 with a one-line
//! error naming the problem — never a panic, never a large allocation. Each run happens under
//! an address-space limit of 1 GiB (`ulimit -v`), so an allocation sized by a hostile count
//! aborts the process and fails the test.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

/// GGUF type ids of the tensors used here (test data may hold numbers).
const F32: u32 = 0;
const Q8_0: u32 = 8;

struct TensorInfo {
    name: &'static str,
    ne: Vec<u64>,
    ty: u32,
    offset: u64,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A GGUF file: one string KV, the given tensor infos, data padded to 32.
fn build(
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    infos: &[TensorInfo],
    data: &[u8],
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(version.to_le_bytes());
    b.extend(n_tensors.unwrap_or(infos.len() as u64).to_le_bytes());
    b.extend(n_kv.unwrap_or(1).to_le_bytes());
    gstr(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    gstr(&mut b, "llama");
    for t in infos {
        gstr(&mut b, t.name);
        b.extend((t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            b.extend(d.to_le_bytes());
        }
        b.extend(t.ty.to_le_bytes());
        b.extend(t.offset.to_le_bytes());
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b.extend(data);
    b
}

fn valid_infos() -> Vec<TensorInfo> {
    vec![
        TensorInfo {
            name: "a",
            ne: vec![4],
            ty: F32,
            offset: 0,
        },
        TensorInfo {
            name: "b",
            ne: vec![32],
            ty: Q8_0,
            offset: 32,
        },
    ]
}

fn valid_data() -> Vec<u8> {
    let mut d = vec![0u8; 32 + 34];
    d[..4].copy_from_slice(&1.0f32.to_le_bytes());
    d.resize(96, 0);
    d
}

/// Runs `apr-qa inspect` on `bytes` under a 1 GiB address-space limit.
fn inspect(dir: &Path, name: &str, bytes: &[u8]) -> (i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 1048576; exec \"{BIN}\" inspect \"$1\""))
        .arg("sh")
        .arg(&path)
        .output()
        .expect("run apr-qa");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_rejected(dir: &Path, name: &str, bytes: &[u8], needle: &str) {
    let (code, err) = inspect(dir, name, bytes);
    assert_eq!(code, 2, "{name}: exit {code}, stderr {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{name}: not one line: {err}"
    );
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{name}: {err:?} does not mention {needle:?}"
    );
}

#[test]
fn valid_file_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, err) = inspect(
        dir.path(),
        "ok.gguf",
        &build(3, None, None, &valid_infos(), &valid_data()),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn hostile_files_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = valid_data();
    let good = build(3, None, None, &valid_infos(), &data);

    let mut bad_magic = good.clone();
    bad_magic[..4].copy_from_slice(b"GGUX");
    assert_rejected(d, "magic.gguf", &bad_magic, "magic");
    assert_rejected(
        d,
        "version.gguf",
        &build(99, None, None, &valid_infos(), &data),
        "version",
    );
    assert_rejected(
        d,
        "ntensors.gguf",
        &build(3, Some(1 << 40), None, &valid_infos(), &data),
        "tensor",
    );
    assert_rejected(
        d,
        "nkv.gguf",
        &build(3, None, Some(1 << 40), &valid_infos(), &data),
        "",
    );

    let mut infos = valid_infos();
    infos[0].ne = vec![1; 9];
    assert_rejected(d, "ndims.gguf", &build(3, None, None, &infos, &data), "dim");

    let mut infos = valid_infos();
    infos[0].ne = vec![1 << 40, 1 << 40];
    assert_rejected(
        d,
        "overflow.gguf",
        &build(3, None, None, &infos, &data),
        "overflow",
    );

    let mut infos = valid_infos();
    infos[1].ne = vec![31];
    assert_rejected(
        d,
        "partial_block.gguf",
        &build(3, None, None, &infos, &data),
        "block",
    );

    let mut infos = valid_infos();
    infos[1].offset = 1 << 20;
    assert_rejected(
        d,
        "offset_eof.gguf",
        &build(3, None, None, &infos, &data),
        "b",
    );

    let mut infos = valid_infos();
    infos[1].offset = 4;
    assert_rejected(
        d,
        "misaligned.gguf",
        &build(3, None, None, &infos, &data),
        "align",
    );

    let mut infos = valid_infos();
    infos[1].offset = 0;
    assert_rejected(
        d,
        "overlap.gguf",
        &build(3, None, None, &infos, &data),
        "overlap",
    );

    let mut infos = valid_infos();
    infos[1].ty = 100;
    assert_rejected(d, "dtype.gguf", &build(3, None, None, &infos, &data), "100");
    let mut infos = valid_infos();
    infos[1].ty = 4;
    assert_rejected(
        d,
        "dtype4.gguf",
        &build(3, None, None, &infos, &data),
        "dtype",
    );

    // A string length far past the end of the file (the architecture value's length field).
    let mut long_string = good.clone();
    let at = 4 + 4 + 8 + 8 + 8 + "general.architecture".len() + 4;
    long_string[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_rejected(d, "string.gguf", &long_string, "string");

    // Truncated at many points: every prefix shorter than the data section is refused.
    let header_end = good.len() - data.len();
    for cut in (0..header_end).step_by(5) {
        let (code, err) = inspect(d, "cut.gguf", &good[..cut]);
        assert_eq!(code, 2, "cut at {cut}: exit {code}: {err}");
        assert!(!err.contains("panicked"), "cut at {cut}: {err}");
    }
}

#[test]
fn a_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains("directory"),
        "{err}"
    );
}
