//! Test-only hooks, read from `APR_QA_TEST_HOOK`. They exist so paths that a correct engine never
//! takes can be tested on the real binary; with the variable unset nothing changes.
//!
//! - `hang:GATE`, `panic:GATE`, `slowN:GATE` (`hang:F-EDGE-004`, `slow3:F-PERF-001`): the gate
//!   never returns, panics, or its timed engine work takes N times longer (the executor's
//!   timeout, crash and timing paths).
//! - `corrupt-output:apr:TENSOR` (`corrupt-output:apr:blk.0.ffn_down.weight`): every APR file a
//!   conversion of the run writes is rewritten after the conversion returns, with every bit of
//!   the first data byte of `TENSOR` (its GGUF name, or its stored name) inverted and every
//!   `tokenizer.*` key dropped (top-level keys and the carried `gguf_kv` entries). The gates
//!   compare a conversion's input with its output, so this is a converter bug they must catch;
//!   the ticket and fleet tests use it.
//!
//! A run with a hook records it (`run.test_hook`, and `run.inject` says `test-hook …`), so its
//! evidence is never mistaken for a clean run's.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::formats::apr::AprFile;
use crate::formats::apr_write::{write_apr, AprTensorSpec};
use crate::formats::names::canonical_name;
use crate::gates::Fmt;

/// The environment variable naming the hook.
pub const HOOK_ENV: &str = "APR_QA_TEST_HOOK";

/// What a hook does.
#[derive(Clone, Debug, PartialEq)]
pub enum HookKind {
    /// The gate never returns.
    Hang,
    /// The gate panics.
    Panic,
    /// Timed engine work in the gate takes this many times longer.
    Slow(f64),
    /// Conversion outputs of this format are corrupted (see the module doc).
    CorruptOutput {
        /// The output format corrupted (APR only).
        format: Fmt,
        /// The tensor whose first byte is inverted.
        tensor: String,
    },
}

/// An active hook.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// What it does.
    pub kind: HookKind,
    /// The canonical gate id it applies to (empty for `corrupt-output`, which acts on
    /// conversions, not on one gate).
    pub gate: String,
}

impl Hook {
    /// The hook named by `APR_QA_TEST_HOOK`, if any; a malformed value is an error.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(HOOK_ENV) {
            Ok(v) if !v.is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Parses `KIND:GATE` or `corrupt-output:FORMAT:TENSOR`.
    pub fn parse(v: &str) -> Result<Self, String> {
        let (kind, gate) = v
            .split_once(':')
            .ok_or_else(|| format!("{HOOK_ENV}={v:?}: expected KIND:GATE"))?;
        let kind = match kind {
            "hang" => HookKind::Hang,
            "panic" => HookKind::Panic,
            "corrupt-output" => {
                let (format, tensor) = gate.split_once(':').ok_or_else(|| {
                    format!("{HOOK_ENV}={v:?}: expected corrupt-output:apr:TENSOR")
                })?;
                if format != "apr" || tensor.is_empty() {
                    return Err(format!(
                        "{HOOK_ENV}={v:?}: corrupt-output supports apr outputs and needs a tensor"
                    ));
                }
                return Ok(Self {
                    kind: HookKind::CorruptOutput {
                        format: Fmt::Apr,
                        tensor: tensor.to_string(),
                    },
                    gate: String::new(),
                });
            }
            k => match k.strip_prefix("slow").and_then(|f| f.parse::<f64>().ok()) {
                Some(f) if f >= 1.0 => HookKind::Slow(f),
                _ => {
                    return Err(format!(
                        "{HOOK_ENV}: unknown kind {k:?} (hang, panic, slowN, corrupt-output)"
                    ))
                }
            },
        };
        Ok(Self {
            kind,
            gate: gate.to_string(),
        })
    }

    /// The hook as `APR_QA_TEST_HOOK` spells it (`Hook::parse(&h.raw()) == Ok(h)`).
    pub fn raw(&self) -> String {
        match &self.kind {
            HookKind::Hang => format!("hang:{}", self.gate),
            HookKind::Panic => format!("panic:{}", self.gate),
            HookKind::Slow(f) => format!("slow{f}:{}", self.gate),
            HookKind::CorruptOutput { format, tensor } => {
                format!("corrupt-output:{}:{tensor}", format.ext())
            }
        }
    }

    /// Applies the hook inside its gate's thread; returns the slowdown factor.
    pub fn apply(&self) -> f64 {
        match self.kind {
            HookKind::Hang => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            HookKind::Panic => panic!("test hook: {} panics", self.gate),
            HookKind::Slow(f) => f,
            HookKind::CorruptOutput { .. } => 1.0,
        }
    }
}

/// Called by every conversion of a run once `out` (format `to`) is written: applies an active
/// `corrupt-output` hook for that format. Without such a hook it does nothing.
pub fn after_conversion(out: &Path, to: Fmt) -> Result<(), String> {
    match Hook::from_env()? {
        Some(Hook {
            kind: HookKind::CorruptOutput { format, tensor },
            ..
        }) if format == to => corrupt_apr(out, &tensor),
        _ => Ok(()),
    }
}

fn is_tokenizer_kv(entry: &Value) -> bool {
    entry
        .get("key")
        .and_then(Value::as_str)
        .is_some_and(|k| k.starts_with("tokenizer."))
}

/// Rewrites the APR file at `path` (atomically) with the first data byte of `tensor` inverted
/// and every `tokenizer.*` key dropped.
pub fn corrupt_apr(path: &Path, tensor: &str) -> Result<(), String> {
    let f = AprFile::open(path).map_err(|e| format!("test hook: {e}"))?;
    let target = f
        .entries
        .iter()
        .position(|e| e.name == tensor || canonical_name(&e.name) == tensor)
        .ok_or_else(|| format!("test hook: {} has no tensor {tensor:?}", path.display()))?;
    let mut metadata = f.metadata.clone();
    metadata.retain(|k, _| !k.starts_with("tokenizer."));
    if let Some(Value::Array(kv)) = metadata.get_mut("gguf_kv") {
        kv.retain(|e| !is_tokenizer_kv(e));
    }
    let specs: Vec<AprTensorSpec> = f
        .entries
        .iter()
        .map(|e| AprTensorSpec {
            name: &e.name,
            dtype: e.dtype,
            dims: &e.dims,
        })
        .collect();
    let mut data = |i: usize, w: &mut dyn Write| -> std::io::Result<()> {
        let bytes = f.entries.get(i).map(|e| f.tensor_data(e)).unwrap_or(&[]);
        match bytes.split_first() {
            Some((first, rest)) if i == target => {
                w.write_all(&[!*first])?;
                w.write_all(rest)
            }
            _ => w.write_all(bytes),
        }
    };
    write_apr(path, &metadata, &specs, &mut data).map_err(|e| format!("test hook: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_round_trip_through_their_spelling() {
        for v in [
            "hang:F-EDGE-004",
            "panic:F-EDGE-001",
            "slow3:F-PERF-001",
            "corrupt-output:apr:blk.0.ffn_down.weight",
        ] {
            let h = Hook::parse(v).expect(v);
            assert_eq!(h.raw(), v);
        }
        assert!(Hook::parse("corrupt-output:gguf:x").is_err());
        assert!(Hook::parse("corrupt-output:apr").is_err());
        assert!(Hook::parse("explode:F-EDGE-001").is_err());
    }
}
