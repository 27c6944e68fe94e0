//! The kill matrix on the synthetic default, fault by fault: every fault of the catalogue is
//! killed — the gate below is Falsified (not Crashed, Timeout or Skipped) and its evidence names
//! what the fault touched (tensor, key, step) — while the clean run corroborates every gate.
//! The runs are the shared matrix of `tests/kill_matrix.rs` (one subprocess per fault).
//!
//! Needles are whole names or phrases: a bare number or short word also matches the random
//! temp-dir names in paths, which made a fault look killed when it was not.

use std::process::Command;

use apr_qa::evidence::Outcome;
use apr_qa::fault::Fault;

use crate::kill_matrix::synthetic_matrix;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

/// (fault, a gate that must falsify it, text its evidence must contain).
const EXPECTED: [(&str, &str, &str); 19] = [
    (
        "GH191-DTYPE-RENUMBER",
        "F-APR-FORMAT-001",
        "model.embed_tokens.weight",
    ),
    ("SILENT-F32-FALLBACK", "F-EDGE-005", "token_embd.weight"),
    ("SILENT-DEQUANT", "F-CONTRACT-I3-001", "read back as F32"),
    ("REQUANT", "F-CONV-G-A", "blk.1.ffn_down.weight"),
    ("QK-TRANSPOSE", "F-LAYOUT-002", "attn_k.weight"),
    ("NAME-SWAP", "F-NAMES-001", "attn_q"),
    ("DROP-TOKENIZER", "F-CONV-G-A", "tokenizer.ggml"),
    ("DROP-CONFIG", "F-CONV-G-HF", "config.json"),
    (
        "NAN-INJECT",
        "F-ROSETTA-STATS-001",
        "blk.0.attn_norm.weight",
    ),
    (
        "INF-INJECT",
        "F-ROSETTA-STATS-001",
        "blk.0.attn_norm.weight",
    ),
    ("VOCAB-TRUNCATE", "F-CONV-G-A", "tokenizer.ggml.tokens"),
    ("DIR-PATH", "F-EDGE-003", "does not name"),
    ("FP16-SCALE-TRUNC", "F-QUANT-001", "first: Q4_K via"),
    ("Q5-NIBBLE-ORDER", "F-QUANT-001", "first: Q5_0 via"),
    (
        "OFFSET-MISALIGN",
        "F-APR-FORMAT-002",
        "tensor \"model.embed_tokens.weight\": data offset 32 (relative to data_offset) is not a multiple of 64",
    ),
    (
        "TIED-EMBED-DROP",
        "F-GOLDEN-RULE-003",
        "gguf prompt 0: token 0 repeated 32 times",
    ),
    (
        "ROPE-THETA-DEFAULT",
        "F-INFER-001",
        "the engine ignores qwen2.rope.freq_base",
    ),
    (
        "NONDETERMINISTIC-REDUCTION",
        "F-STAB-002",
        "1 vs 2 threads: prompt 0: max|Δlogit|",
    ),
    (
        "KV-CACHE-OFF-BY-ONE",
        "F-INFER-003",
        "incremental decode differs from the full recomputation, first at step 1",
    ),
];

#[test]
fn every_fault_is_killed_by_the_synthetic_playbook() {
    let names: Vec<&str> = EXPECTED.iter().map(|(f, _, _)| *f).collect();
    let all: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names, all,
        "every catalogued fault has an expected killer, in order"
    );
    let m = synthetic_matrix();
    let mut unkilled = Vec::new();
    for (fault, gate, needle) in EXPECTED {
        let e = m.evidence(fault);
        assert_eq!(
            e.run.inject.as_deref(),
            Some(fault),
            "evidence records run.inject"
        );
        let f = m
            .matrix
            .faults
            .iter()
            .find(|f| f.fault == fault)
            .expect("the matrix ran it");
        assert_eq!(
            f.run.exit_code,
            Some(1),
            "{fault}: an injected run must exit 1"
        );
        let killed = e.evidence.iter().any(|x| {
            x.gate_id == gate
                && x.outcome == Outcome::Falsified
                && (x.reason.contains(needle)
                    || serde_json::to_string(&x.metrics)
                        .unwrap_or_default()
                        .contains(needle))
        }) && f.killers.iter().any(|k| k == gate);
        if !killed {
            let seen: Vec<_> = e
                .evidence
                .iter()
                .filter(|x| x.gate_id == gate)
                .map(|x| (x.outcome, x.reason.clone()))
                .collect();
            unkilled.push(format!("{fault}: {gate} {seen:?}"));
        }
    }
    assert!(
        unkilled.is_empty(),
        "faults not killed as expected: {unkilled:#?}"
    );
}

#[test]
fn the_catalogue_lists_every_fault() {
    let o = Command::new(BIN).arg("faults").output().expect("run");
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let all: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names, all);
    for (l, f) in text.lines().zip(Fault::ALL) {
        assert!(l.ends_with(f.description()), "{l}");
    }
    let o = Command::new(BIN)
        .args(["faults", "--json"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let j: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j.len(), Fault::ALL.len());
    for (v, f) in j.iter().zip(Fault::ALL) {
        assert_eq!(v["name"], f.name());
        assert_eq!(v["description"], f.description());
    }
}
