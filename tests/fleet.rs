//! Fleet runs: `apr-qa run --shard I/N` partitions the plan deterministically and exactly once,
//! `apr-qa merge` puts the shards back together (same records, outcomes and MQS as the
//! unsharded run) and refuses anything that is not the shards of one run; and
//! `apr-qa playbook import` reads the incumbent's playbook format.

use std::path::{Path, PathBuf};
use std::process::Command;

use apr_qa::evidence::EvidenceFile;
use apr_qa::harness::playbook::{BackendName, Fmt, Playbook};

use crate::util::root;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");

fn apr_qa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("APR_QA_TEST_HOOK")
        .output()
        .expect("run apr-qa");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read(p: &Path) -> EvidenceFile {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("evidence")
}

/// The synthetic playbook without its one wall-time gate (F-PERF-001), whose verdict may differ
/// between two runs on a loaded machine; every other gate is deterministic, so the unsharded
/// run and the merged shards must agree exactly. Written into `dir` with the inference
/// references made absolute.
fn fleet_playbook(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("playbooks/synthetic.playbook.yaml"))
        .expect("synthetic playbook");
    let refs = root().join("tests/data/infer/synthetic-qwen2.json");
    let text = text
        .replace("../tests/data/infer/synthetic-qwen2.json", s(&refs))
        .replace("  - id: F-PERF-001\n    tolerance: 3.0\n", "");
    assert!(
        !text.contains("F-PERF"),
        "the playbook's F-PERF entry changed shape"
    );
    let p = dir.join("fleet.playbook.yaml");
    std::fs::write(&p, text).expect("write playbook");
    p
}

/// Runs the playbook (a shard of it); the outcomes are compared, not assumed to be passes.
fn run(pb: &Path, out: &Path, shard: Option<&str>) -> (i32, EvidenceFile) {
    let mut args = vec!["run", "--no-progress", s(pb), "-o", s(out)];
    if let Some(sh) = shard {
        args.extend(["--shard", sh]);
    }
    let (code, stdout, err) = apr_qa(&args);
    assert!(code == 0 || code == 1, "{stdout}{err}");
    (code, read(&out.join("evidence.json")))
}

fn ids(e: &EvidenceFile) -> Vec<String> {
    e.evidence.iter().map(|x| x.id.clone()).collect()
}

/// Writes a copy of `src` with `edit` applied to its JSON.
fn variant(src: &Path, dst: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).expect("read")).expect("json");
    edit(&mut v);
    std::fs::write(dst, serde_json::to_vec(&v).expect("json")).expect("write");
    dst.to_path_buf()
}

#[test]
fn shards_partition_the_plan_and_merge_back_to_the_unsharded_run() {
    let d = tempfile::tempdir().expect("tempdir");
    let pb = fleet_playbook(d.path());
    let (whole_code, whole) = run(&pb, &d.path().join("whole"), None);
    let shards: Vec<EvidenceFile> = (1..=3)
        .map(|i| {
            run(
                &pb,
                &d.path().join(format!("s{i}")),
                Some(&format!("{i}/3")),
            )
            .1
        })
        .collect();
    // Deterministic: the same shard gets the same gates on every run.
    let (_, again) = run(&pb, &d.path().join("s2-again"), Some("2/3"));
    assert_eq!(ids(&again), ids(&shards[1]));
    // Exactly once: the shards' records are the plan's, none twice, none left out.
    let mut union: Vec<String> = shards.iter().flat_map(ids).collect();
    let mut plan = ids(&whole);
    assert_eq!(union.len(), plan.len());
    union.sort();
    plan.sort();
    assert_eq!(union, plan);
    assert!(shards.iter().all(|x| !x.evidence.is_empty()));

    // Merge, inputs out of order, into a .json path.
    let f = |i: usize| d.path().join(format!("s{i}/evidence.json"));
    let merged_path = d.path().join("merged.json");
    let (code, out, err) = apr_qa(&["merge", s(&f(3)), s(&f(1)), s(&f(2)), "-o", s(&merged_path)]);
    assert_eq!(
        code, whole_code,
        "the merge exits as the unsharded run: {out}{err}"
    );
    crate::harness::assert_schema_valid(&merged_path);
    let merged = read(&merged_path);
    assert_eq!(ids(&merged), ids(&whole), "plan order restored");
    let outcomes = |e: &EvidenceFile| -> Vec<_> { e.evidence.iter().map(|x| x.outcome).collect() };
    assert_eq!(outcomes(&merged), outcomes(&whole));
    assert_eq!(merged.mqs, whole.mqs);
    assert_eq!(merged.summary.total, whole.summary.total);
    assert_eq!(merged.summary.corroborated, whole.summary.corroborated);
    assert!(!merged.run.incomplete && merged.run.shard.is_none());
    assert_eq!(merged.run.playbook, whole.run.playbook);

    // Into a directory: DIR/evidence.json.
    let mdir = d.path().join("merged-dir");
    let (code, _, err) = apr_qa(&["merge", s(&f(1)), s(&f(2)), s(&f(3)), "-o", s(&mdir)]);
    assert_eq!(code, whole_code, "{err}");
    assert_eq!(read(&mdir.join("evidence.json")).mqs, whole.mqs);

    // A missing shard: merged, marked incomplete, exit 3, the shard named.
    let part = d.path().join("partial.json");
    let (code, _, err) = apr_qa(&["merge", s(&f(1)), s(&f(3)), "-o", s(&part)]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("2/3"), "{err}");
    let p = read(&part);
    assert!(p.run.incomplete);
    if p.summary.falsified + p.summary.crashed + p.summary.timeout == 0 {
        assert_eq!(p.mqs.status, "INCOMPLETE");
    }
    assert_eq!(
        p.evidence.len(),
        shards[0].evidence.len() + shards[2].evidence.len()
    );

    // Refusals: exit 2 naming the offending file and the field.
    let v = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        variant(&f(2), &d.path().join(name), edit)
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            v("pb.json", &|j| {
                j["run"]["playbook"]["sha256"] = "0".repeat(64).into()
            }),
            "run.playbook.sha256",
        ),
        (
            v("model.json", &|j| {
                j["run"]["model"]["sha256"] = "1".repeat(64).into()
            }),
            "run.model.sha256",
        ),
        (v("seed.json", &|j| j["run"]["seed"] = 7.into()), "run.seed"),
        (
            v("tool.json", &|j| j["run"]["tool_version"] = "9.9.9".into()),
            "run.tool_version",
        ),
        (
            v("inject.json", &|j| {
                j["run"]["inject"] = "DROP-TOKENIZER".into()
            }),
            "injected and clean",
        ),
    ];
    for (bad, field) in &cases {
        let (code, _, err) = apr_qa(&[
            "merge",
            s(&f(1)),
            s(bad),
            s(&f(3)),
            "-o",
            s(&d.path().join("x.json")),
        ]);
        assert_eq!(code, 2, "{field}: {err}");
        assert!(
            err.contains(s(bad)) && err.contains(field),
            "{field}: {err}"
        );
    }
    // Different faults.
    let a = variant(&f(1), &d.path().join("fa.json"), |j| {
        j["run"]["inject"] = "NAN-INJECT".into()
    });
    let b = variant(&f(2), &d.path().join("fb.json"), |j| {
        j["run"]["inject"] = "INF-INJECT".into()
    });
    let (code, _, err) = apr_qa(&["merge", s(&a), s(&b), "-o", s(&d.path().join("x.json"))]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("fb.json") && err.contains("run.inject"),
        "{err}"
    );
    // A duplicated shard.
    let dup = d.path().join("dup.json");
    std::fs::copy(f(1), &dup).expect("copy");
    let (code, _, err) = apr_qa(&[
        "merge",
        s(&f(1)),
        s(&f(2)),
        s(&dup),
        s(&f(3)),
        "-o",
        s(&d.path().join("x.json")),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("dup.json") && err.contains("duplicated shard 1/3"),
        "{err}"
    );
    // An unsharded run among shards.
    let w = d.path().join("whole/evidence.json");
    let (code, _, err) = apr_qa(&["merge", s(&f(1)), s(&w), "-o", s(&d.path().join("x.json"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(s(&w)) && err.contains("not a shard"), "{err}");
    // Not evidence at all.
    let junk = d.path().join("junk.json");
    std::fs::write(&junk, "[1,2]").expect("write");
    let (code, _, err) = apr_qa(&[
        "merge",
        s(&f(1)),
        s(&junk),
        "-o",
        s(&d.path().join("x.json")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("junk.json"), "{err}");
    assert!(
        !d.path().join("x.json").exists(),
        "a refused merge writes nothing"
    );
}

fn import_dir() -> PathBuf {
    root().join("tests/data/import")
}

#[test]
fn import_keeps_what_it_can_and_lists_what_it_drops() {
    let d = tempfile::tempdir().expect("tempdir");
    let model = d.path().join("tiny.gguf");
    let (code, _, err) = apr_qa(&["synth", "--layers", "1", "--output", s(&model)]);
    assert_eq!(code, 0, "{err}");
    let old = import_dir().join("qwen2.5-coder-0.5b-mvp.playbook.yaml");
    let new = d.path().join("imported.playbook.yaml");
    let (code, out, import_err) = apr_qa(&[
        "playbook",
        "import",
        s(&old),
        "-o",
        s(&new),
        "--model",
        s(&model),
    ]);
    assert_eq!(code, 0, "{out}{import_err}");
    let (code, out, err) = apr_qa(&["playbook", "check", s(&new)]);
    assert_eq!(code, 0, "{out}{err}");
    let (pb, text) = Playbook::load(&new, true).expect("loads strictly");

    assert_eq!(pb.name, "qwen2.5-coder-0.5b-mvp");
    assert_eq!(pb.model.path.as_deref(), Some(s(&model)));
    assert_eq!(
        pb.model.expect.as_ref().and_then(|e| e.arch.as_deref()),
        Some("qwen2")
    );
    assert_eq!(pb.formats, vec![Fmt::Safetensors, Fmt::Apr, Fmt::Gguf]);
    assert_eq!(pb.backends, vec![BackendName::Cpu, BackendName::Cuda]);
    assert_eq!((pb.seed, pb.timeout_s), (42, 60));
    assert_eq!(pb.ticket.as_deref(), Some("aprender#215"));
    let inf = pb.inference.as_ref().expect("inference from the prompts");
    assert_eq!(
        inf.prompts,
        vec!["What is 2+2?".to_string()],
        "scenario_count 1 ran prompts[0] only"
    );
    assert!(!inf.chat);
    let gates: Vec<&str> = pb.gates.iter().map(|g| g.id.as_str()).collect();
    for id in [
        "F-CONV-S-A",
        "F-CONV-A-G",
        "F-CONV-G-S",
        "F-CONV-RT-001",
        "F-CONV-IDEM-001",
        "F-GOLDEN-RULE-001",
        "F-NAMES-001",
        "F-CONTRACT-I3-001",
        "F-CONV-G-A",
        "F-APR-FORMAT-001",
        "F-APR-FORMAT-003",
        "F-ROSETTA-FP-001",
    ] {
        assert!(gates.contains(&id), "{id} kept: {gates:?}");
    }
    assert!(
        pb.gates.iter().all(|g| g.tolerance.is_none()),
        "no condition became a tolerance"
    );
    let mut sorted = gates.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), gates.len(), "no gate twice");

    // Every field it cannot honour is listed, on stderr and at the top of the new file.
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    for path in [
        "version",
        "model.hf_repo",
        "model.quantizations",
        "model.size_category",
        "model.expected_hidden_dim",
        "model.expected_vocab_size",
        "model.size_variant",
        "test_matrix.modalities[1]",
        "test_matrix.modalities[2]",
        "test_matrix.prompts",
        "kernel_profile",
        "gates",
        "oracles",
        "failure_policy",
        "property_tests",
        "profile_ci",
        "falsification_gates[0].condition",
        "falsification_gates[1].id",
        "differential_tests.fingerprint.gates[1]",
        "differential_tests.tensor_diff",
        "differential_tests.format_validation.checks",
        "metadata.owner",
    ] {
        let prefix = format!("#   {path}: ");
        assert!(
            header.iter().any(|l| l.starts_with(&prefix)),
            "{path} in the header:\n{}",
            header.join("\n")
        );
    }
    let listed: Vec<&str> = header
        .iter()
        .filter_map(|l| l.strip_prefix("#   "))
        .collect();
    assert!(!listed.is_empty());
    for entry in &listed {
        assert!(
            import_err.contains(&format!("not honoured: {entry}")),
            "{entry} on stderr"
        );
    }
    assert!(!header
        .iter()
        .any(|l| l.contains("test_matrix.seed") || l.contains("test_matrix.backends")));
}

#[test]
fn import_of_a_verify_playbook_keeps_its_gates_and_guesses_the_model() {
    let d = tempfile::tempdir().expect("tempdir");
    let new = d.path().join("verify.yaml");
    let (code, _, err) = apr_qa(&[
        "playbook",
        "import",
        s(&import_dir().join("TICKET-177.yaml")),
        "-o",
        s(&new),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&new).expect("written");
    let pb = Playbook::parse(&text, "verify.yaml", false).expect("parses");
    let gates: Vec<&str> = pb.gates.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(gates, ["F-CONV-G-A", "F-CONV-A-G", "F-CONV-RT-001"]);
    assert_eq!(
        pb.ticket.as_deref(),
        Some("https://github.com/paiml/aprender/issues/177")
    );
    assert_eq!(
        pb.model.path.as_deref(),
        Some("${APR_QA_MODELS}/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf")
    );
    for path in [
        "model.hf_repo",
        "acceptance",
        "verification_gates[2].condition",
        "failure_policy",
    ] {
        assert!(text.contains(&format!("#   {path}: ")), "{path}:\n{text}");
    }
}

#[test]
fn import_refuses_unknown_and_invalid_fields_naming_the_path() {
    let d = tempfile::tempdir().expect("tempdir");
    let base = std::fs::read_to_string(import_dir().join("TICKET-177.yaml")).expect("read");
    for (edit, path) in [
        (
            base.replace("  quantizations:", "  hf_rep: x\n  quantizations:"),
            "model.hf_rep",
        ),
        (
            base.replace("[gguf, apr, safetensors]", "[gguf, onnx]"),
            "model.formats[1]",
        ),
        (
            base.replace("backends: [cpu]", "backends: [tpu]"),
            "test_matrix.backends[0]",
        ),
        (
            base.replace("scenario_count: 1", "scenario_count: many"),
            "test_matrix.scenario_count",
        ),
        (base.replace("name: verify-ticket-177\n", ""), "name"),
        (format!("{base}extra_block: {{}}\n"), "extra_block"),
    ] {
        let old = d.path().join("old.yaml");
        std::fs::write(&old, &edit).expect("write");
        let new = d.path().join("new.yaml");
        let (code, _, err) = apr_qa(&["playbook", "import", s(&old), "-o", s(&new)]);
        assert_eq!(code, 2, "{path}: {err}");
        assert!(
            err.contains(&format!("old.yaml: {path}: ")),
            "{path}: {err}"
        );
        assert!(!new.exists(), "nothing written for {path}");
    }
}
