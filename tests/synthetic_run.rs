//! The README's main job: `apr-qa run playbooks/synthetic.playbook.yaml`, on the real binary.

use std::collections::BTreeSet;
use std::process::Command;

use apr_qa::evidence::{EvidenceFile, Outcome};

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

fn run(out: &std::path::Path, hook: Option<&str>, playbook: &str) -> (i32, EvidenceFile) {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--no-progress", playbook, "-o"])
        .arg(out);
    match hook {
        Some(h) => c.env("APR_QA_TEST_HOOK", h),
        None => c.env_remove("APR_QA_TEST_HOOK"),
    };
    let o = c.output().expect("run");
    let code = o.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(out.join("evidence.json")).unwrap_or_else(|e| {
        panic!(
            "no evidence ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (code, serde_json::from_str(&text).expect("evidence parses"))
}

/// Families of DESIGN §3.2, each with the id prefixes that belong to it.
const FAMILIES: [(&str, &[&str]); 13] = [
    ("HF export", &["F-CONV-G-HF"]),
    (
        "conversion pairs",
        &[
            "F-CONV-G-A",
            "F-CONV-A-G",
            "F-CONV-G-S",
            "F-CONV-S-G",
            "F-CONV-A-S",
            "F-CONV-S-A",
        ],
    ),
    ("round trips", &["F-CONV-RT-"]),
    (
        "idempotence/commutativity",
        &["F-CONV-IDEM-", "F-CONV-COM-"],
    ),
    ("golden rule", &["F-GOLDEN-RULE-"]),
    ("rosetta", &["F-ROSETTA-"]),
    ("APR format", &["F-APR-FORMAT-"]),
    ("I-3", &["F-CONTRACT-I3-"]),
    ("quant paths", &["F-QUANT-"]),
    ("inference", &["F-INFER-"]),
    ("performance", &["F-PERF-"]),
    ("edge", &["F-EDGE-"]),
    ("stability", &["F-STAB-"]),
];

#[test]
fn the_synthetic_default_judges_every_family_and_category_and_passes() {
    let d = tempfile::tempdir().expect("tempdir");
    let (code, e) = run(d.path(), None, "playbooks/synthetic.playbook.yaml");
    let failed: Vec<String> = e
        .evidence
        .iter()
        .filter(|x| x.outcome != Outcome::Corroborated)
        .map(|x| format!("{} {:?}: {}", x.gate_id, x.outcome, x.reason))
        .collect();
    assert_eq!(code, 0, "{failed:?}");
    assert!(
        failed.is_empty(),
        "no CPU gate may be skipped or fail: {failed:?}"
    );
    for (family, prefixes) in FAMILIES {
        assert!(
            e.evidence
                .iter()
                .any(|x| x.outcome.judged() && prefixes.iter().any(|p| x.gate_id.starts_with(p))),
            "family {family} was not judged"
        );
    }
    let cats: BTreeSet<&str> = e
        .evidence
        .iter()
        .filter(|x| x.outcome.judged())
        .map(|x| x.category.as_str())
        .collect();
    assert_eq!(
        cats,
        ["COMP", "EDGE", "PERF", "QUAL", "REGR", "STAB"]
            .into_iter()
            .collect()
    );
    assert_eq!(e.mqs.status, "QUALIFIED");
    assert!(e.run.model.path.starts_with("synth:"));
}

#[test]
fn a_3x_slower_engine_falsifies_the_perf_gate() {
    let d = tempfile::tempdir().expect("tempdir");
    let (code, e) = run(
        d.path(),
        Some("slow3:F-PERF-001"),
        "playbooks/synthetic.playbook.yaml",
    );
    assert_eq!(code, 1);
    let p = e
        .evidence
        .iter()
        .find(|x| x.gate_id == "F-PERF-001")
        .expect("perf gate");
    assert_eq!(p.outcome, Outcome::Falsified, "{}", p.reason);
}
