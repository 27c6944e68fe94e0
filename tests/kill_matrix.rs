//! The kill matrix (`apr-qa faults --matrix`), judged from the evidence files the runs wrote:
//! the clean synthetic run corroborates every gate; every fault of the catalogue is Falsified
//! (never merely Crashed, Timeout or Skipped) by a gate that passed clean, including the gate
//! its seed ticket names; each ticket's verification playbook bites on that ticket's faults.
//!
//! The synthetic matrix runs once per test binary ([`synthetic_matrix`]; `tests/faults.rs`
//! reads the same runs for its needles).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use apr_qa::evidence::{EvidenceFile, Outcome};
use apr_qa::fault::Fault;
use apr_qa::harness::catalog::lookup;
use apr_qa::harness::matrix::Matrix;
use apr_qa::harness::playbook::Playbook;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");
const SYNTHETIC: &str = "playbooks/synthetic.playbook.yaml";

/// A finished `apr-qa faults --matrix` run.
pub struct MatrixRun {
    /// The output directory.
    pub dir: PathBuf,
    /// Exit code.
    pub code: i32,
    /// `matrix.json`.
    pub matrix: Matrix,
    /// stdout (the JSON or the table).
    pub stdout: String,
}

impl MatrixRun {
    /// The evidence a run of the matrix wrote (`clean` or a fault name).
    pub fn evidence(&self, run: &str) -> EvidenceFile {
        let p = self.dir.join(run).join("evidence.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

/// Runs `apr-qa faults --matrix PLAYBOOK -o DIR ARGS…` with `hook` as `APR_QA_TEST_HOOK`.
pub fn matrix(playbook: &Path, dir: &Path, args: &[&str], hook: Option<&str>) -> MatrixRun {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["faults", "--no-progress", "--matrix"])
        .arg(playbook)
        .arg("-o")
        .arg(dir)
        .args(args);
    match hook {
        Some(h) => c.env("APR_QA_TEST_HOOK", h),
        None => c.env_remove("APR_QA_TEST_HOOK"),
    };
    let o = c.output().expect("run apr-qa faults --matrix");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let p = dir.join("matrix.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n{stdout}{}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    MatrixRun {
        dir: dir.to_path_buf(),
        code: o.status.code().unwrap_or(-1),
        matrix: serde_json::from_str(&text).expect("matrix.json parses"),
        stdout,
    }
}

/// The whole catalogue on the synthetic playbook, run once (two fault runs at a time).
pub fn synthetic_matrix() -> &'static MatrixRun {
    static M: OnceLock<MatrixRun> = OnceLock::new();
    M.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("kill-matrix-synthetic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        matrix(
            Path::new(SYNTHETIC),
            &dir,
            &["--json", "--parallel", "2"],
            None,
        )
    })
}

/// The canonical gate ids a playbook lists.
fn playbook_gates(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read playbook");
    let pb = Playbook::parse(&text, &path.display().to_string(), false).expect("playbook parses");
    pb.gates
        .iter()
        .map(|g| lookup(&g.id).expect("catalogued").id.clone())
        .collect()
}

/// Whether `gate` is Falsified in `fault_run` and every record of it Corroborated in `clean`
/// (read from the evidence files, not from the matrix's own verdicts).
fn kills(clean: &EvidenceFile, fault_run: &EvidenceFile, gate: &str) -> bool {
    let clean_ok = clean.evidence.iter().any(|e| e.gate_id == gate)
        && clean
            .evidence
            .iter()
            .filter(|e| e.gate_id == gate)
            .all(|e| e.outcome == Outcome::Corroborated);
    clean_ok
        && fault_run
            .evidence
            .iter()
            .any(|e| e.gate_id == gate && e.outcome == Outcome::Falsified)
}

#[test]
fn the_clean_synthetic_run_corroborates_every_gate() {
    let m = synthetic_matrix();
    let clean = m.evidence("clean");
    assert_eq!(clean.run.inject, None);
    let bad: Vec<String> = clean
        .evidence
        .iter()
        .filter(|e| e.outcome != Outcome::Corroborated)
        .map(|e| format!("{} {:?}: {}", e.gate_id, e.outcome, e.reason))
        .collect();
    assert!(bad.is_empty(), "clean run: {bad:#?}");
    let mut judged: Vec<String> = clean.evidence.iter().map(|e| e.gate_id.clone()).collect();
    judged.dedup();
    assert_eq!(judged, playbook_gates(Path::new(SYNTHETIC)));
    assert_eq!(m.matrix.gates, judged);
    assert!(m.matrix.clean.false_positives.is_empty());
    assert!(m.matrix.clean.known_failures.is_empty());
}

#[test]
fn every_fault_is_killed_and_the_matrix_passes() {
    let m = synthetic_matrix();
    let clean = m.evidence("clean");
    let names: Vec<&str> = m.matrix.faults.iter().map(|f| f.fault.as_str()).collect();
    let all: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names, all,
        "one run per catalogued fault, in catalogue order"
    );
    let mut survivors = Vec::new();
    for f in &m.matrix.faults {
        let ev = m.evidence(&f.fault);
        assert_eq!(ev.run.inject.as_deref(), Some(f.fault.as_str()));
        assert_eq!(
            f.run.exit_code,
            Some(1),
            "{}: an injected run exits 1",
            f.fault
        );
        for k in &f.killers {
            assert!(kills(&clean, &ev, k), "{}: {k} is no killer", f.fault);
        }
        if !f.killed || f.killers.is_empty() {
            survivors.push(f.fault.clone());
        }
    }
    assert!(
        survivors.is_empty(),
        "survivors: {survivors:?}\n{}",
        m.stdout
    );
    assert!(m.matrix.pass);
    assert_eq!(m.code, 0, "{}", m.stdout);
    let on_stdout: Matrix = serde_json::from_str(&m.stdout).expect("--json prints the matrix");
    assert_eq!(on_stdout, m.matrix);
}

/// The gate each seed ticket names for the failure a fault reproduces (None: no seed ticket).
/// Where the ticket names a symptom but no gate id, the catalogue gate citing it is used.
pub const SEED: [(&str, Option<(&str, &str)>); 19] = [
    // GH-191 verification table: "F-APR-FORMAT-001 dtype metadata matches actual tensor data".
    ("GH191-DTYPE-RENUMBER", Some(("GH-191", "F-APR-FORMAT-001"))),
    // GH-191: the `_ => F32` arms "should be Err() returns" (invariant I-3, no silent
    // fallbacks); F-EDGE-005 feeds the reader an unknown id. (F-CONTRACT-I3-001, alias I-3,
    // checks the dtype table, not the reader, so it does not see this mutant.)
    ("SILENT-F32-FALLBACK", Some(("GH-191", "F-EDGE-005"))),
    // GH-191: "F-ROSETTA-FP-001 Tensor checksums match between GGUF and APR".
    ("SILENT-DEQUANT", Some(("GH-191", "F-ROSETTA-FP-001"))),
    // #172 / #181: GGUF → APR (F-CONV-001) not bit-exact after Q4_K → F32 → Q4_K.
    ("REQUANT", Some(("#172", "F-CONV-G-A"))),
    // #202: F-LAYOUT-002 row-major layout violation.
    ("QK-TRANSPOSE", Some(("#202", "F-LAYOUT-002"))),
    // GH-190 (cited by GH-191 and TICKET-215): tensor names.
    ("NAME-SWAP", Some(("GH-190", "F-NAMES-001"))),
    // #172: "GGUF → SafeTensors: Missing tokenizer.json/config.json" (F-CONV-003).
    ("DROP-TOKENIZER", Some(("#172", "F-CONV-G-S"))),
    // #172: the same row; config.json belongs to the HF export (F-CONV-G-HF).
    ("DROP-CONFIG", Some(("#172", "F-CONV-G-HF"))),
    // #172 / #181: round trip GGUF→APR→ST→GGUF (F-CONV-RT-001) "NaN/Inf values in tensors".
    ("NAN-INJECT", Some(("#172", "F-CONV-RT-001"))),
    ("INF-INJECT", Some(("#172", "F-CONV-RT-001"))),
    // #215: "Are tokenizer differences causing output divergence?" on F-CONV-S-G.
    ("VOCAB-TRUNCATE", Some(("#215", "F-CONV-S-G"))),
    // #202: "directory passed instead of file" (F-EDGE-003 cites aprender #202).
    ("DIR-PATH", Some(("#202", "F-EDGE-003"))),
    // #181: Q4_K_M super-block d/dmin "MUST preserve full precision"; the conversion gates it
    // names compare raw bytes, which a dequantizer mutant leaves alone, so the verify playbook
    // holds F-QUANT-001 (every dequantizer against ggml's vectors).
    ("FP16-SCALE-TRUNC", Some(("#181", "F-QUANT-001"))),
    ("Q5-NIBBLE-ORDER", None),
    ("OFFSET-MISALIGN", None),
    ("TIED-EMBED-DROP", None),
    ("ROPE-THETA-DEFAULT", None),
    ("NONDETERMINISTIC-REDUCTION", None),
    ("KV-CACHE-OFF-BY-ONE", None),
];

#[test]
fn every_seeded_fault_is_killed_by_the_gate_its_ticket_names() {
    let names: Vec<&str> = SEED.iter().map(|(f, _)| *f).collect();
    let all: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names, all, "SEED covers the catalogue in order");
    let m = synthetic_matrix();
    let clean = m.evidence("clean");
    let synthetic = playbook_gates(Path::new(SYNTHETIC));
    let mut missed = Vec::new();
    for (fault, seed) in SEED {
        let Some((ticket, gate)) = seed else { continue };
        assert!(
            synthetic.iter().any(|g| g == gate),
            "{gate} is in the synthetic playbook"
        );
        let f = m
            .matrix
            .faults
            .iter()
            .find(|f| f.fault == fault)
            .expect("run");
        let by_matrix = f.killers.iter().any(|k| k == gate);
        if !(by_matrix && kills(&clean, &m.evidence(fault), gate)) {
            missed.push(format!("{fault} ({ticket}): {gate} did not kill it"));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

/// Each verification playbook, with each fault of its ticket, and the gate (of that playbook)
/// that must falsify it.
pub const TICKETS: [(&str, &[(&str, &str)]); 6] = [
    (
        "172",
        &[
            ("REQUANT", "F-CONV-G-A"),
            ("NAN-INJECT", "F-CONV-RT-001"),
            ("DROP-TOKENIZER", "F-CONV-G-S"),
            ("DROP-CONFIG", "F-CONV-G-HF"),
        ],
    ),
    (
        "177",
        &[
            ("NAN-INJECT", "F-CONV-RT-001"),
            ("INF-INJECT", "F-CONV-RT-001"),
        ],
    ),
    ("181", &[("FP16-SCALE-TRUNC", "F-QUANT-001")]),
    (
        "191",
        &[
            ("GH191-DTYPE-RENUMBER", "F-APR-FORMAT-001"),
            ("SILENT-DEQUANT", "F-ROSETTA-FP-001"),
            ("SILENT-F32-FALLBACK", "F-EDGE-005"),
        ],
    ),
    (
        "202",
        &[("QK-TRANSPOSE", "F-LAYOUT-002"), ("DIR-PATH", "F-EDGE-003")],
    ),
    (
        "215",
        &[
            ("QK-TRANSPOSE", "F-CONV-S-G"),
            ("NAME-SWAP", "F-NAMES-001"),
            ("VOCAB-TRUNCATE", "F-CONV-S-G"),
        ],
    ),
];

/// Runs each ticket's playbook (as `prepare` rewrites it) through the matrix with its faults;
/// returns what went wrong.
fn tickets_bite(prepare: impl Fn(&Path, &Path) -> PathBuf) -> Vec<String> {
    let mut bad = Vec::new();
    for (t, faults) in TICKETS {
        let d = tempfile::tempdir().expect("tempdir");
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("playbooks/verify/TICKET-{t}.yaml"));
        let gates = playbook_gates(&src);
        let pb = prepare(&src, d.path());
        let names: Vec<&str> = faults.iter().map(|(f, _)| *f).collect();
        let list = names.join(",");
        let out = d.path().join("out");
        let m = matrix(&pb, &out, &["--faults", &list, "--parallel", "2"], None);
        if m.code != 0 {
            bad.push(format!("TICKET-{t}: matrix exit {}\n{}", m.code, m.stdout));
        }
        let clean = m.evidence("clean");
        if clean
            .evidence
            .iter()
            .any(|e| e.outcome != Outcome::Corroborated)
        {
            bad.push(format!("TICKET-{t}: the clean run does not pass"));
        }
        for (fault, gate) in faults.iter() {
            assert!(gates.iter().any(|g| g == gate), "TICKET-{t} lists {gate}");
            let f = m
                .matrix
                .faults
                .iter()
                .find(|f| f.fault == *fault)
                .expect("run");
            if f.run.exit_code != Some(1) {
                bad.push(format!("TICKET-{t} {fault}: exit {:?}", f.run.exit_code));
            }
            if !kills(&clean, &m.evidence(fault), gate) {
                bad.push(format!("TICKET-{t} {fault}: {gate} not falsified"));
            }
        }
    }
    bad
}

/// The verification playbooks' gates on the synthetic model (no download): each ticket's
/// playbook, its `model` replaced by the synthetic default's, passes clean and falsifies its
/// own gates under each of its ticket's faults.
#[test]
fn ticket_playbooks_bite_on_the_synthetic_model() {
    let syn: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SYNTHETIC))
            .expect("read"),
    )
    .expect("yaml");
    let bad = tickets_bite(|src, dir| {
        let mut v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(src).expect("read")).expect("yaml");
        v["model"] = syn["model"].clone();
        let p = dir.join("playbook.yaml");
        std::fs::write(&p, serde_yaml_ng::to_string(&v).expect("yaml")).expect("write");
        p
    });
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The verification playbooks as shipped, on the real Qwen file.
#[test]
#[ignore = "needs real models: scripts/fetch-models.sh"]
fn ticket_playbooks_bite_on_the_real_model() {
    let _ = crate::util::real_model(crate::util::QWEN);
    let bad = tickets_bite(|src, _| src.to_path_buf());
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn named_faults_run_alone_and_the_table_names_their_killers() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = matrix(
        Path::new(SYNTHETIC),
        d.path(),
        &["--faults", "drop-config, DIR-PATH,DROP-CONFIG"],
        None,
    );
    assert_eq!(m.code, 0, "{}", m.stdout);
    let names: Vec<&str> = m.matrix.faults.iter().map(|f| f.fault.as_str()).collect();
    assert_eq!(names, ["DROP-CONFIG", "DIR-PATH"]);
    let mut dirs: Vec<String> = std::fs::read_dir(d.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["DIR-PATH", "DROP-CONFIG", "clean", "matrix.json"]);
    let line = |f: &str| {
        m.stdout
            .lines()
            .find(|l| l.starts_with(f))
            .unwrap_or_else(|| panic!("no {f} row:\n{}", m.stdout))
            .to_string()
    };
    assert!(line("DROP-CONFIG").contains("KILLED") && line("DROP-CONFIG").contains("F-CONV-G-HF"));
    assert!(line("DIR-PATH").contains("KILLED") && line("DIR-PATH").contains("F-EDGE-003"));
    assert!(
        m.stdout.contains("false positives (clean run): none"),
        "{}",
        m.stdout
    );
}

#[test]
fn bad_input_exits_2_naming_it() {
    let d = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], &str); 4] = [
        (&["--matrix", SYNTHETIC, "--faults", "NOPE"], "NOPE"),
        (&["--matrix", "no/such.yaml"], "no/such.yaml"),
        (
            &["--matrix", SYNTHETIC, "--known-clean-failure", "F-NOPE-1"],
            "F-NOPE-1",
        ),
        (&["--matrix", SYNTHETIC, "--parallel", "0"], "--parallel"),
    ];
    for (args, needle) in cases {
        let o = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("faults")
            .args(args)
            .arg("-o")
            .arg(d.path().join("m"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!d.path().join("m/clean").exists(), "{args:?}: nothing runs");
    }
    // A playbook the run refuses (exit 2) stops the matrix after the clean run.
    let bad = d.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\nmodel: { path: /no/such/model.gguf }\ngates: [{ id: F-EDGE-003 }]\n",
    )
    .expect("write");
    let o = Command::new(BIN)
        .args(["faults", "--no-progress", "--matrix"])
        .arg(&bad)
        .arg("-o")
        .arg(d.path().join("m2"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/no/such/model.gguf"), "{err}");
    assert!(!d.path().join("m2/DIR-PATH").exists());
}

/// A gate that fails clean is a false positive (exit 1) unless declared a known clean failure;
/// then it is reported as such, does not fail the matrix, and never kills.
#[test]
fn known_clean_failures_are_reported_not_hidden() {
    // The hook makes F-PERF-001's timed work 4x slower in every run, clean included.
    let hook = Some("slow4:F-PERF-001");
    let d = tempfile::tempdir().expect("tempdir");
    let m = matrix(
        Path::new(SYNTHETIC),
        d.path(),
        &["--faults", "DROP-CONFIG"],
        hook,
    );
    assert_eq!(m.code, 1, "{}", m.stdout);
    assert_eq!(m.matrix.summary.false_positives, ["F-PERF-001"]);
    assert!(!m.matrix.pass);
    assert!(
        m.stdout.contains("  F-PERF-001 falsified: "),
        "{}",
        m.stdout
    );
    let d = tempfile::tempdir().expect("tempdir");
    let m = matrix(
        Path::new(SYNTHETIC),
        d.path(),
        &[
            "--faults",
            "DROP-CONFIG",
            "--known-clean-failure",
            "F-PERF-001",
        ],
        hook,
    );
    assert_eq!(m.code, 0, "{}", m.stdout);
    assert!(m.matrix.summary.false_positives.is_empty());
    assert_eq!(m.matrix.summary.known_clean_failures, ["F-PERF-001"]);
    let f = &m.matrix.faults[0];
    assert_eq!(f.run.outcome("F-PERF-001"), Some(Outcome::Falsified));
    assert_eq!(
        f.discounted,
        ["F-PERF-001"],
        "falsified, but never a killer"
    );
    assert_eq!(f.killers, ["F-CONV-G-HF"]);
    assert!(
        m.stdout.contains(
            "known clean failure (does not fail the matrix, never a killer): F-PERF-001 falsified"
        ),
        "{}",
        m.stdout
    );
}

/// A run that hangs is killed at --run-timeout; it judges nothing and kills nothing.
#[test]
fn a_hanging_run_is_killed_and_kills_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    let m = matrix(
        Path::new(SYNTHETIC),
        d.path(),
        &["--faults", "DIR-PATH", "--run-timeout", "3"],
        Some("hang:F-EDGE-004"),
    );
    assert_eq!(m.code, 1, "{}", m.stdout);
    let err = m.matrix.clean.run.error.as_deref().unwrap_or_default();
    assert!(err.contains("timed out after 3 s"), "{err}");
    let f = &m.matrix.faults[0];
    assert!(!f.killed, "a killed run kills nothing");
    assert!(f
        .run
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("timed out"));
}
