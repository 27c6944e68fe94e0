//! The harness through the real binary: exit codes, timeouts, crashes, Ctrl-C, strict
//! playbooks, reproducible evidence. A tiny GGUF is built per test, so these run in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use apr_qa::dtype::GgmlType;
use apr_qa::evidence::{EvidenceFile, Outcome};
use apr_qa::formats::gguf::GgufValue;
use apr_qa::formats::gguf_write::{write_gguf, GgufTensorSpec};

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

/// A small qwen2-named GGUF with Q8_0, Q4_0 and F32 tensors.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    let s = |x: &str| GgufValue::String(x.as_bytes().to_vec());
    let md = vec![
        ("general.architecture".to_string(), s("qwen2")),
        ("qwen2.block_count".to_string(), GgufValue::U32(1)),
        ("qwen2.embedding_length".to_string(), GgufValue::U32(64)),
    ];
    let tensors: Vec<(&str, Vec<u64>, GgmlType)> = vec![
        ("token_embd.weight", vec![64, 16], GgmlType::Q8_0),
        ("blk.0.attn_q.weight", vec![64, 64], GgmlType::Q4_0),
        ("blk.0.attn_q.bias", vec![64], GgmlType::F32),
        ("output_norm.weight", vec![64], GgmlType::F32),
    ];
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, ne, t)| {
            let n = t.row_bytes(ne.iter().product()).expect("whole blocks") as usize;
            // Small finite fp16 scales and f32 values: bytes 0x00..0x3f never form NaN/Inf.
            (0..n).map(|j| (j * 7 % 61) as u8).collect()
        })
        .collect();
    let specs: Vec<GgufTensorSpec> = tensors
        .iter()
        .map(|(n, ne, t)| GgufTensorSpec {
            name: n,
            ne,
            dtype: *t,
        })
        .collect();
    write_gguf(&path, 3, &md, &specs, &mut |i, w| w.write_all(&data[i])).expect("write tiny model");
    path
}

const GATES: &str = "  - id: F-CONV-G-A\n  - id: F-CONV-S-G\n  - id: F-CONV-RT-001\n  - id: F-CONV-IDEM-001\n  - id: F-ROSETTA-FP-001\n  - id: F-APR-FORMAT-001\n  - id: F-EDGE-003\n  - id: F-EDGE-004\n  - id: F-STAB-001\n";

fn playbook(dir: &Path, model: &Path, extra_gate_fields: &str) -> PathBuf {
    let p = dir.join("pb.yaml");
    let text = format!(
        "name: tiny\nmodel:\n  path: {}\ntimeout_s: 60\ngates:\n{GATES}{extra_gate_fields}",
        model.display()
    );
    std::fs::write(&p, text).expect("write playbook");
    p
}

fn run(pb: &Path, out: &Path, hook: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(["run", "--no-progress", "-o"]).arg(out).arg(pb);
    match hook {
        Some(h) => c.env("APR_QA_TEST_HOOK", h),
        None => c.env_remove("APR_QA_TEST_HOOK"),
    };
    let o = c.output().expect("run apr-qa");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn evidence(out: &Path) -> EvidenceFile {
    serde_json::from_str(
        &std::fs::read_to_string(out.join("evidence.json")).expect("evidence.json written"),
    )
    .expect("evidence parses")
}

#[test]
fn a_clean_run_corroborates_everything_and_exits_0() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let (code, out, err) = run(&playbook(d.path(), &m, ""), &d.path().join("out"), None);
    assert_eq!(code, 0, "{out}{err}");
    let e = evidence(&d.path().join("out"));
    assert!(
        e.evidence
            .iter()
            .all(|x| x.outcome == Outcome::Corroborated),
        "{out}"
    );
    assert_eq!(e.summary.corroborated, e.evidence.len());
    // Nothing was written beside the model.
    let beside: Vec<String> = std::fs::read_dir(d.path())
        .expect("ls")
        .filter_map(|x| x.ok())
        .map(|x| x.file_name().to_string_lossy().into_owned())
        .collect();
    let mut beside = beside;
    beside.sort();
    assert_eq!(beside, ["out", "pb.yaml", "tiny.gguf"]);
}

#[test]
fn a_hanging_gate_times_out_and_the_run_goes_on() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let pb = playbook(d.path(), &m, "  - id: F-EDGE-001\n    timeout_s: 2\n");
    let t0 = Instant::now();
    let (code, out, err) = run(&pb, &d.path().join("out"), Some("hang:F-EDGE-001"));
    assert_eq!(code, 1, "{out}{err}");
    let e = evidence(&d.path().join("out"));
    let hung = e
        .evidence
        .iter()
        .find(|x| x.gate_id == "F-EDGE-001")
        .expect("recorded");
    assert_eq!(hung.outcome, Outcome::Timeout);
    assert!(
        hung.duration_ms <= 4_000,
        "timed out within limit + 2 s: {} ms",
        hung.duration_ms
    );
    assert!(e
        .evidence
        .iter()
        .filter(|x| x.gate_id != "F-EDGE-001")
        .all(|x| x.outcome == Outcome::Corroborated));
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_panicking_gate_is_crashed_and_the_run_goes_on() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let (code, out, err) = run(
        &playbook(d.path(), &m, ""),
        &d.path().join("out"),
        Some("panic:F-EDGE-004"),
    );
    assert_eq!(code, 1, "{out}{err}");
    let e = evidence(&d.path().join("out"));
    let c = e
        .evidence
        .iter()
        .find(|x| x.gate_id == "F-EDGE-004")
        .expect("recorded");
    assert_eq!(c.outcome, Outcome::Crashed);
    assert!(c.reason.contains("panicked"), "{}", c.reason);
    assert_eq!(
        e.evidence
            .iter()
            .filter(|x| x.outcome == Outcome::Corroborated)
            .count(),
        e.evidence.len() - 1
    );
    assert!(
        e.run.inject.is_some(),
        "a hooked run says so in its evidence"
    );
}

#[test]
fn sigint_leaves_incomplete_evidence_and_exits_3() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let pb = playbook(d.path(), &m, "  - id: F-EDGE-001\n");
    let out = d.path().join("out");
    let mut child = Command::new(BIN)
        .args(["run", "--no-progress", "--jobs", "1", "-o"])
        .arg(&out)
        .arg(&pb)
        .env("APR_QA_TEST_HOOK", "hang:F-EDGE-001")
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3));
    assert_schema_valid(&out.join("evidence.json"));
    let e = evidence(&out);
    assert!(e.run.incomplete && e.run.interrupted);
    assert_eq!(e.evidence.len(), 10, "every planned gate has a record");
    assert!(e
        .evidence
        .iter()
        .any(|x| x.outcome == Outcome::Skipped && x.reason.contains("interrupted")));
}

#[test]
fn bad_playbooks_exit_2_naming_the_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let base = format!(
        "name: tiny\nmodel:\n  path: {}\ngates:\n  - id: F-CONV-G-A\n",
        m.display()
    );
    let cases = [
        (base.replace("gates:", "gatez: 1\ngates:"), 4, "gatez"),
        (
            base.replace("name: tiny", "name: tiny\ntimeout_s: soon"),
            2,
            "timeout_s",
        ),
        (
            base.replace(&m.display().to_string(), "/nonexistent/m.gguf"),
            3,
            "/nonexistent/m.gguf",
        ),
        (base.replace("F-CONV-G-A", "F-NOPE"), 5, "F-NOPE"),
    ];
    for (i, (text, line, needle)) in cases.iter().enumerate() {
        let p = d.path().join(format!("bad{i}.yaml"));
        std::fs::write(&p, text).expect("write");
        for args in [vec!["run", "--no-progress"], vec!["playbook", "check"]] {
            let o = Command::new(BIN).args(&args).arg(&p).output().expect("run");
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?} case {i}: {err}");
            assert!(
                err.contains(&format!("{}:{line}:", p.display())),
                "case {i}: line {line} not named: {err}"
            );
            assert!(err.contains(needle), "case {i}: {err}");
        }
    }
}

#[test]
fn rerunning_gives_identical_evidence_apart_from_times() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let pb = playbook(d.path(), &m, "");
    let strip = |out: &Path| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("evidence.json")).expect("read"),
        )
        .expect("json");
        for k in ["started", "finished"] {
            v["run"][k] = serde_json::Value::Null;
        }
        v["summary"]["duration_ms"] = serde_json::Value::Null;
        for e in v["evidence"].as_array_mut().expect("array") {
            e["duration_ms"] = serde_json::Value::Null;
            e["timestamp"] = serde_json::Value::Null;
            // Scratch paths inside the run's temp dir differ between runs by its random suffix.
            let r = e["reason"].as_str().unwrap_or_default().to_string();
            e["reason"] = serde_json::json!(mask_run_dir(&r));
            e["metrics"] = serde_json::json!(mask_run_dir(&e["metrics"].to_string()));
        }
        v
    };
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    assert_eq!(run(&pb, &a, None).0, 0);
    assert_eq!(run(&pb, &b, None).0, 0);
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn score_says_why_an_empty_category_scores_zero() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    assert_eq!(
        run(&playbook(d.path(), &m, ""), &d.path().join("out"), None).0,
        0
    );
    let o = Command::new(BIN)
        .arg("score")
        .arg(d.path().join("out/evidence.json"))
        .output()
        .expect("score");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("no PERF gate was judged: 0 of 150 points"),
        "{text}"
    );
    assert!(text.contains("COMP   150.0/150"), "{text}");
}

/// Replaces the random suffix of `apr-qa-run-XXXXXX` temp dirs with `*`.
fn mask_run_dir(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("apr-qa-run-") {
        out.push_str(&rest[..i + "apr-qa-run-".len()]);
        out.push('*');
        rest =
            rest[i + "apr-qa-run-".len()..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    out.push_str(rest);
    out
}

/// Checks an evidence file against the shipped JSON Schema.
pub fn assert_schema_valid(evidence_json: &Path) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("evidence/evidence.schema.json"),
        )
        .expect("schema shipped"),
    )
    .expect("schema is JSON");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evidence_json).expect("read")).expect("json");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{} violates the schema: {errors:?}",
        evidence_json.display()
    );
}

#[test]
fn evidence_of_clean_hooked_and_interrupted_runs_passes_the_schema() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = tiny_model(d.path());
    let pb = playbook(d.path(), &m, "");
    assert_eq!(run(&pb, &d.path().join("clean"), None).0, 0);
    assert_schema_valid(&d.path().join("clean/evidence.json"));
    assert_eq!(
        run(&pb, &d.path().join("crash"), Some("panic:F-EDGE-004")).0,
        1
    );
    assert_schema_valid(&d.path().join("crash/evidence.json"));
    // A record that breaks the schema is caught (the check can fail).
    let mut bad: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("clean/evidence.json")).expect("read"),
    )
    .expect("json");
    bad["evidence"][0]["outcome"] = serde_json::json!("Passed");
    std::fs::write(d.path().join("bad.json"), bad.to_string()).expect("write");
    let r = std::panic::catch_unwind(|| assert_schema_valid(&d.path().join("bad.json")));
    assert!(r.is_err(), "an invalid outcome must fail the schema");
}
