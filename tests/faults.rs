//! The kill matrix on the synthetic default: every fault of the catalogue is killed — some gate
//! is Falsified (not Crashed, Timeout or Skipped) and its evidence names what the fault touched —
//! while the clean run corroborates every gate (`synthetic_run`).

use std::process::Command;

use apr_qa::evidence::{EvidenceFile, Outcome};
use apr_qa::fault::Fault;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

/// (fault, a gate that must falsify it, text its evidence must contain).
const EXPECTED: [(&str, &str, &str); 12] = [
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
];

#[test]
fn every_fault_is_killed_by_the_synthetic_playbook() {
    assert_eq!(
        EXPECTED.len(),
        Fault::ALL.len(),
        "every catalogued fault has an expected killer"
    );
    let mut unkilled = Vec::new();
    for (fault, gate, needle) in EXPECTED {
        assert!(Fault::from_name(fault).is_some(), "{fault} is catalogued");
        let d = tempfile::tempdir().expect("tempdir");
        let o = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("APR_QA_TEST_HOOK")
            .args([
                "run",
                "--no-progress",
                "playbooks/synthetic.playbook.yaml",
                "--inject",
                fault,
                "-o",
            ])
            .arg(d.path())
            .output()
            .expect("run");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{fault}: an injected run must exit 1"
        );
        let e: EvidenceFile = serde_json::from_str(
            &std::fs::read_to_string(d.path().join("evidence.json")).expect("evidence"),
        )
        .expect("json");
        assert_eq!(
            e.run.inject.as_deref(),
            Some(fault),
            "evidence records run.inject"
        );
        let killer = e.evidence.iter().find(|x| x.gate_id == gate);
        let killed = killer.is_some_and(|x| {
            x.outcome == Outcome::Falsified
                && (x.reason.contains(needle)
                    || serde_json::to_string(&x.metrics)
                        .unwrap_or_default()
                        .contains(needle))
        });
        if !killed {
            unkilled.push(format!(
                "{fault}: {gate} {:?}",
                killer.map(|x| (x.outcome, x.reason.clone()))
            ));
        }
    }
    assert!(
        unkilled.is_empty(),
        "faults not killed as expected: {unkilled:#?}"
    );
}
