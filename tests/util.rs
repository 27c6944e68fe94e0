//! Shared test helpers: real-model paths, the binary, the oracle venv.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The three real models of MODELS.md.
pub const QWEN: &str = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf";
pub const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA: &str = "gemma-3-270m-Q4_K_M.gguf";

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// Where `scripts/fetch-models.sh` installs the models.
pub fn models_dir() -> PathBuf {
    std::env::var_os("APR_QA_MODELS")
        .map_or_else(|| home().join(".cache/apr-qa/models"), PathBuf::from)
}

/// A real model's path; panics (fails the test) naming the path when it is missing, because a
/// real-model test that returns early would be counted as passed.
pub fn real_model(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.is_file(),
        "missing real model {} — run scripts/fetch-models.sh",
        p.display()
    );
    p
}

/// The oracle venv's python (scripts/setup-oracles.sh); panics naming it when missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("APR_QA_VENV")
        .map_or_else(|| home().join(".cache/apr-qa/venv"), PathBuf::from);
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "missing oracle venv {} — run scripts/setup-oracles.sh",
        py.display()
    );
    py
}

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `apr-qa` with string-ish arguments and returns (exit code, stdout, stderr).
pub fn run<I, S>(args: I) -> (i32, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_apr-qa"))
        .args(args)
        .output()
        .expect("run apr-qa");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
