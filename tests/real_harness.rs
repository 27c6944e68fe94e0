//! The shipped real-model playbooks on the real Qwen file.

use std::path::Path;
use std::process::Command;

use apr_qa::evidence::{EvidenceFile, Outcome};

use crate::util::{real_model, QWEN};

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

fn run(playbook: &str, out: &Path) -> (i32, EvidenceFile) {
    let _ = real_model(QWEN);
    let o = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("APR_QA_TEST_HOOK")
        .args(["run", "--no-progress", playbook, "-o"])
        .arg(out)
        .output()
        .expect("run");
    let text = std::fs::read_to_string(out.join("evidence.json")).unwrap_or_else(|e| {
        panic!(
            "{playbook}: no evidence ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (
        o.status.code().unwrap_or(-1),
        serde_json::from_str(&text).expect("evidence parses"),
    )
}

/// Each verification playbook passes on the clean engine (issue #8 proves each one bites).
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn verify_playbooks_pass_clean() {
    for t in ["172", "177", "181", "191", "202", "215"] {
        let d = tempfile::tempdir().expect("tempdir");
        let (code, e) = run(&format!("playbooks/verify/TICKET-{t}.yaml"), d.path());
        let bad: Vec<String> = e
            .evidence
            .iter()
            .filter(|x| x.outcome != Outcome::Corroborated)
            .map(|x| format!("{} {:?} {}", x.gate_id, x.outcome, x.reason))
            .collect();
        assert_eq!(code, 0, "TICKET-{t}: {bad:?}");
    }
}

/// The ci playbook writes nothing beside the model and leaves the model's directory unchanged.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn the_ci_run_leaves_the_model_directory_unchanged() {
    let dir = real_model(QWEN).parent().expect("models dir").to_path_buf();
    let snapshot = || -> Vec<(String, u64, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| {
                let m = e.metadata().expect("stat");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.len(),
                    m.modified().expect("mtime"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot();
    let d = tempfile::tempdir().expect("tempdir");
    let (_, e) = run(
        "playbooks/models/qwen2.5-coder-0.5b-ci.playbook.yaml",
        d.path(),
    );
    assert_eq!(snapshot(), before);
    let cats: std::collections::BTreeSet<&str> = e
        .evidence
        .iter()
        .filter(|x| x.outcome.judged())
        .map(|x| x.category.as_str())
        .collect();
    assert_eq!(cats.len(), 6, "every MQS category judged: {cats:?}");
    // Every gate but the conversion-speed ratio must be corroborated on the real model. The
    // speed floor (issue #4: GGUF->APR within 1.5x of cp) is reported, not asserted here: it
    // is a measured target still open, and its verdict stays in the evidence and the MQS.
    let failed: Vec<String> = e
        .evidence
        .iter()
        .filter(|x| {
            x.gate_id != "F-PERF-001" && x.outcome != apr_qa::evidence::Outcome::Corroborated
        })
        .map(|x| format!("{} {:?}: {}", x.gate_id, x.outcome, x.reason))
        .collect();
    assert!(
        failed.is_empty(),
        "gates not corroborated on Qwen: {failed:#?}"
    );
    for x in e.evidence.iter().filter(|x| x.gate_id == "F-PERF-001") {
        println!("F-PERF-001 {:?}: {}", x.outcome, x.reason);
    }
    println!(
        "Qwen ci playbook: MQS {:.1} ({}), {} s",
        e.mqs.normalized,
        e.mqs.status,
        e.summary.duration_ms / 1000
    );
}

/// Issue #5: chat "What is 2+2?", greedy, 16 tokens → "2 + 2 equals 4."
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn qwen_answers_two_plus_two() {
    let o = Command::new(BIN)
        .args([
            "infer",
            "-p",
            "What is 2+2?",
            "--chat",
            "--max-tokens",
            "16",
            "--threads",
            "2",
            "--json",
        ])
        .arg(real_model(QWEN))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["text"], "2 + 2 equals 4.", "{j}");
    assert_eq!(j["finish_reason"], "stop");
}
