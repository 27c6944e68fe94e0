//! Regression case files: what a hunt finding leaves behind, and what `tests/hunt.rs` replays.
//!
//! # Format (`tests/regressions/*.txt`)
//! Plain text, one `key: value` per line; lines starting with `#` are comments; unknown keys
//! are errors (a typo must not silently disable a check). Keys:
//!
//! | key | meaning |
//! |---|---|
//! | `kind` | `dequant` (a dequantization path differed), `requant` (a requantization identity failed), `case` (a format-chain or model case; replayed from its seed) |
//! | `family` | `blocks`, `requant`, `chains` or `models` |
//! | `dtype` | GGML type name (`dequant`, `requant`) |
//! | `bytes` | the shrunk block(s), lower-case hex, whole blocks of `dtype` |
//! | `path` | the path that differed (`scalar-reference`, `avx2-decode`, `avx512-matvec`, …; `requantize`) |
//! | `what` | `value` (element `index` of block `unit`), `dot` (the dot product of the row at block `unit`), `block` (requant) |
//! | `unit`, `index` | where in `bytes` |
//! | `expected`, `actual` | f32 bits as `0x…` (`value`, `dot`); block hex (`requant`) |
//! | `x_seed`, `plain_row` | the activation-vector seed and plain-type row length of the matvec paths |
//! | `seed` | the case seed (every kind; `case` replays it) |
//! | `fault` | the fault injected when it was found (`none` on the clean engine) |
//! | `strict_nan` | `true` when computed NaNs were compared by payload (`hunt --strict-nan`) |
//! | `detail` | one line for humans |
//!
//! Replay ([`replay`]) runs the clean engine: `dequant` — every path agrees on `bytes` and the
//! reference gives the recorded `expected` bits; `requant` — requantizing the dequantized
//! `bytes` gives `expected`; `case` — the case of `seed` passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dtype::GgmlType;

/// Lower-case hex of `b` (the crate's one hex encoder, `convert::fingerprint::hex`).
pub fn hex(b: &[u8]) -> String {
    crate::convert::fingerprint::hex(b)
}

/// Bytes of a hex string (whitespace ignored).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks_exact(2)
        .map(|p| {
            let t = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            u8::from_str_radix(t, 16).map_err(|e| format!("bad hex {t:?}: {e}"))
        })
        .collect()
}

/// The keys a regression file may hold, in the order they are written.
pub const KEYS: [&str; 17] = [
    "kind",
    "family",
    "dtype",
    "path",
    "what",
    "unit",
    "index",
    "expected",
    "actual",
    "x_seed",
    "plain_row",
    "seed",
    "fault",
    "strict_nan",
    "detail",
    "bytes",
    "found_by",
];

/// One regression case: its keys and values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regression {
    /// Key → value (only keys in [`KEYS`]).
    pub fields: BTreeMap<String, String>,
}

impl Regression {
    /// Sets `key` (must be one of [`KEYS`]).
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        debug_assert!(KEYS.contains(&key), "unknown regression key {key}");
        let v = value.to_string().replace(['\n', '\r'], " ");
        self.fields.insert(key.to_string(), v);
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.fields
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("missing key `{key}`"))
    }

    /// A numeric value (decimal or `0x` hex).
    pub fn num(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key)?;
        let r = match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => v.parse(),
        };
        r.map_err(|e| format!("key `{key}`: {v:?}: {e}"))
    }

    /// The `dtype` key.
    pub fn dtype(&self) -> Result<GgmlType, String> {
        self.get("dtype")?.parse().map_err(|e| format!("{e}"))
    }

    /// The `bytes` key, decoded.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        unhex(self.get("bytes")?)
    }

    /// The file text.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# apr-qa hunt regression case (format: src/harness/hunt/regression.rs).\n\
             # Replayed by tests/hunt.rs on the clean engine; keep it committed.\n",
        );
        for k in KEYS {
            if let Some(v) = self.fields.get(k) {
                let _ = writeln!(s, "{k}: {v}");
            }
        }
        s
    }

    /// Parses a file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut r = Regression::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: no `key: value`", n + 1))?;
            let k = k.trim();
            if !KEYS.contains(&k) {
                return Err(format!("line {}: unknown key `{k}`", n + 1));
            }
            if r.fields
                .insert(k.to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(format!("line {}: duplicate key `{k}`", n + 1));
            }
        }
        r.get("kind")?;
        Ok(r)
    }

    /// A file name from the kind, type and a hash of the content (same finding, same name).
    pub fn file_name(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.fields {
            if k != "found_by" && k != "detail" {
                h.update(k.as_bytes());
                h.update([0]);
                h.update(v.as_bytes());
                h.update([0]);
            }
        }
        let digest = hex(&h.finalize()[..6]);
        let kind = self.fields.get("kind").map_or("case", String::as_str);
        let what = self
            .fields
            .get("dtype")
            .or_else(|| self.fields.get("family"))
            .map_or("x".to_string(), |s| s.to_ascii_lowercase());
        format!("{kind}-{what}-{digest}.txt")
    }

    /// Writes the case into `dir` (created if missing), atomically; returns the path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = dir.join(self.file_name());
        let mut tmp = crate::formats::temp_file_beside(&out)
            .map_err(|e| format!("temp file in {}: {e}", dir.display()))?;
        tmp.write_all(self.render().as_bytes())
            .map_err(|e| format!("write {}: {e}", out.display()))?;
        tmp.persist(&out)
            .map_err(|e| format!("rename to {}: {}", out.display(), e.error))?;
        Ok(out)
    }

    /// Reads a case file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Every `*.txt` case file in `dir`, sorted (none when the folder does not exist).
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("read {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd {
        let p = e
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "txt") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Replays one case on the clean engine (see the module doc); Err says what failed.
pub fn replay(r: &Regression) -> Result<(), String> {
    match r.get("kind")? {
        "dequant" => super::replay_dequant(r),
        "requant" => super::requant::replay(r),
        "case" => super::replay_case(r),
        other => Err(format!("unknown kind `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parse_round_trip() {
        let mut r = Regression::default();
        r.set("kind", "dequant")
            .set("dtype", "Q4_K")
            .set("bytes", "00ff");
        let back = Regression::parse(&r.render()).unwrap();
        assert_eq!(back, r);
        assert!(Regression::parse("kind: x\nbogus: 1\n").is_err());
        assert_eq!(unhex("0aFf").unwrap(), vec![0x0a, 0xff]);
    }
}
