//! `apr-qa ticket`: one markdown ticket per falsified gate family, with the exact reproduction
//! command and a verification playbook. The falsifications come from a test hook that corrupts
//! the written APR output of every conversion (one tensor's first byte inverted, the tokenizer
//! keys dropped), so the expected tensor, offset and key are known before the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use apr_qa::evidence::{EvidenceFile, Outcome};
use apr_qa::harness::playbook::Playbook;
use apr_qa::report::ticket::family;

use crate::util::root;

const BIN: &str = env!("CARGO_BIN_EXE_apr-qa");
const TENSOR: &str = "blk.0.ffn_down.weight";
const HOOK: &str = "corrupt-output:apr:blk.0.ffn_down.weight";

fn synthetic() -> PathBuf {
    root().join("playbooks/synthetic.playbook.yaml")
}

/// Runs the binary with `env` set (the test hook removed unless given); (code, stdout, stderr).
fn apr_qa(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("APR_QA_TEST_HOOK");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run apr-qa");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn evidence(dir: &Path) -> EvidenceFile {
    let text = std::fs::read_to_string(dir.join("evidence.json")).expect("evidence.json");
    serde_json::from_str(&text).expect("evidence parses")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Splits a shell line into words (plain words and single-quoted strings, as
/// `ticket::shell_quote` writes them).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// A command line: (environment, arguments after `apr-qa`).
type ReproCommand = (Vec<(String, String)>, Vec<String>);

/// The reproduction command of a ticket.
fn reproduction(ticket: &str) -> ReproCommand {
    let section = ticket
        .split("## Reproduction")
        .nth(1)
        .expect("a Reproduction section");
    let block = section
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a bash block");
    let words = shell_words(block.trim());
    let mut env = Vec::new();
    let mut rest = words.into_iter().peekable();
    while let Some(w) = rest.peek() {
        match w.split_once('=') {
            Some((k, v)) if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                env.push((k.to_string(), v.to_string()));
                rest.next();
            }
            _ => break,
        }
    }
    assert_eq!(rest.next().as_deref(), Some("apr-qa"), "{block}");
    (env, rest.collect())
}

#[test]
fn hooked_run_tickets_name_the_tensor_the_key_and_reproduce() {
    let d = tempfile::tempdir().expect("tempdir");
    let run = d.path().join("run");
    let (code, _, err) = apr_qa(
        &["run", "--no-progress", s(&synthetic()), "-o", s(&run)],
        &[("APR_QA_TEST_HOOK", HOOK)],
    );
    assert_eq!(code, 1, "the corrupted conversions are falsified: {err}");
    crate::harness::assert_schema_valid(&run.join("evidence.json"));
    let ev = evidence(&run);
    assert_eq!(ev.run.test_hook.as_deref(), Some(HOOK));

    let tickets = d.path().join("tickets");
    let (code, out, err) = apr_qa(
        &["ticket", s(&run.join("evidence.json")), "-o", s(&tickets)],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");

    // One ticket per family with a falsified record, none for the others.
    let mut fams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in ev
        .evidence
        .iter()
        .filter(|e| e.outcome == Outcome::Falsified)
    {
        fams.entry(family(&e.gate_id))
            .or_default()
            .push(e.gate_id.clone());
    }
    let mds: Vec<String> = std::fs::read_dir(&tickets)
        .expect("tickets dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    assert_eq!(mds.len(), fams.len(), "{mds:?} vs {fams:?}");
    for fam in ["F-CONV", "F-ROSETTA"] {
        assert!(fams.contains_key(fam), "{fam} falsified: {fams:?}");
    }

    let conv = std::fs::read_to_string(tickets.join("TICKET-F-CONV.md")).expect("F-CONV ticket");
    let title = conv.lines().next().unwrap_or_default();
    assert!(
        title.starts_with("# [P0] [FAULT INJECTED] F-CONV"),
        "{title}"
    );
    assert!(conv.contains("| F-CONV-G-A | P0 | gguf → apr"), "{conv}");
    let g_a = ev
        .evidence
        .iter()
        .find(|e| e.gate_id == "F-CONV-G-A")
        .expect("F-CONV-G-A record");
    let g_a_section = conv
        .split("### F-CONV-G-A\n")
        .nth(1)
        .and_then(|x| x.split("\n### ").next())
        .expect("F-CONV-G-A evidence section");
    // The hook inverted the first byte of TENSOR: the excerpt names it at offset 0, with the
    // values the gate measured, and the tokenizer key the hook dropped as lost.
    let tensor_line = g_a_section
        .lines()
        .find(|l| l.starts_with(&format!("- tensor `{TENSOR}`")))
        .unwrap_or_else(|| panic!("no line for {TENSOR} in {g_a_section}"));
    assert!(tensor_line.contains("first byte offset 0"), "{tensor_line}");
    let values = &g_a.metrics["first_difference"]["values"];
    assert!(
        tensor_line.contains(&serde_json::to_string(values).expect("json")),
        "{tensor_line} lacks {values}"
    );
    let lost = g_a_section
        .lines()
        .find(|l| l.contains("metadata key(s) lost"))
        .expect("a lost-keys line");
    assert!(lost.contains("`tokenizer.ggml.model`"), "{lost}");
    assert!(
        !lost.contains("`general."),
        "only tokenizer keys were dropped: {lost}"
    );

    let rosetta =
        std::fs::read_to_string(tickets.join("TICKET-F-ROSETTA.md")).expect("F-ROSETTA ticket");
    assert!(rosetta.contains("| F-ROSETTA-FP-001 | P0 |"), "{rosetta}");
    let fp = rosetta
        .split("### F-ROSETTA-FP-001\n")
        .nth(1)
        .expect("FP section");
    assert!(
        fp.lines()
            .any(|l| l.starts_with("- disagreement: apr: ") && l.contains(TENSOR)),
        "{fp}"
    );

    // Every ticket's command, run as written (only -o changed), falsifies the same gates with
    // the same metrics. F-PERF measures wall time, so its numbers differ between any two runs.
    let mut ran: Option<(ReproCommand, EvidenceFile)> = None;
    for fam in fams.keys() {
        let md = std::fs::read_to_string(tickets.join(format!("TICKET-{fam}.md"))).expect("md");
        let (env, mut args) = reproduction(&md);
        assert_eq!(
            env,
            vec![("APR_QA_TEST_HOOK".to_string(), HOOK.to_string())]
        );
        assert!(
            args.iter().any(|a| a == s(&synthetic())),
            "the playbook as run: {args:?}"
        );
        let o = args.iter().position(|a| a == "-o").expect("-o") + 1;
        let repro_dir = d.path().join("repro");
        args[o] = s(&repro_dir).to_string();
        let again = match &ran {
            Some(((e, a), ev2)) if *e == env && *a == args => ev2.clone(),
            _ => {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let envs: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let (code, _, err) = apr_qa(&refs, &envs);
                assert_eq!(code, 1, "{args:?}: {err}");
                let ev2 = evidence(&repro_dir);
                ran = Some(((env.clone(), args.clone()), ev2.clone()));
                ev2
            }
        };
        for id in &fams[fam] {
            let a = ev.evidence.iter().find(|e| &e.gate_id == id).expect("a");
            let b = again.evidence.iter().find(|e| &e.gate_id == id).expect("b");
            assert_eq!(b.outcome, Outcome::Falsified, "{id} in the reproduction");
            if fam != "F-PERF" {
                assert_eq!(a.metrics, b.metrics, "{id}: same metrics");
                assert_eq!(a.reason, b.reason, "{id}");
            }
        }
    }

    // Each verification playbook checks, holds only its family's gates, the same model and
    // seed; the F-CONV one passes on the clean engine and fails again with the hook.
    let (synth_pb, _) = Playbook::load(&synthetic(), true).expect("synthetic playbook");
    for fam in fams.keys() {
        let yaml = tickets.join(format!("TICKET-{fam}.yaml"));
        let (code, out, err) = apr_qa(&["playbook", "check", s(&yaml)], &[]);
        assert_eq!(code, 0, "{fam}: {out}{err}");
        let (pb, _) = Playbook::load(&yaml, true).expect("verification playbook");
        assert!(pb.gates.iter().all(|g| family(&g.id) == *fam), "{fam}");
        for id in &fams[fam] {
            assert!(pb.gates.iter().any(|g| &g.id == id), "{fam} lacks {id}");
        }
        assert_eq!(pb.seed, ev.run.seed);
        assert_eq!(pb.model.synth, synth_pb.model.synth);
    }
    let verify = tickets.join("TICKET-F-CONV.yaml");
    let out = d.path().join("verify-clean");
    let (code, stdout, err) = apr_qa(&["run", "--no-progress", s(&verify), "-o", s(&out)], &[]);
    assert_eq!(code, 0, "the clean engine passes: {stdout}{err}");
    let out = d.path().join("verify-hooked");
    let (code, _, _) = apr_qa(
        &["run", "--no-progress", s(&verify), "-o", s(&out)],
        &[("APR_QA_TEST_HOOK", HOOK)],
    );
    assert_eq!(code, 1, "the hooked engine still fails it");
}

#[test]
fn clean_run_writes_no_ticket_and_injected_run_says_so() {
    let d = tempfile::tempdir().expect("tempdir");
    let clean = d.path().join("clean");
    let (code, _, err) = apr_qa(
        &["run", "--no-progress", s(&synthetic()), "-o", s(&clean)],
        &[],
    );
    assert!(code == 0 || code == 1, "{err}");
    let ev = evidence(&clean);
    let tickets = d.path().join("t-clean");
    let (code, out, err) = apr_qa(
        &["ticket", s(&clean.join("evidence.json")), "-o", s(&tickets)],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    if ev.summary.falsified == 0 {
        assert!(out.contains("no gate falsified"), "{out}");
        assert!(!tickets.exists() || std::fs::read_dir(&tickets).expect("dir").count() == 0);
    }

    let inj = d.path().join("inj");
    let (code, _, err) = apr_qa(
        &[
            "run",
            "--no-progress",
            s(&synthetic()),
            "--inject",
            "DROP-TOKENIZER",
            "-o",
            s(&inj),
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let tickets = d.path().join("t-inj");
    let (code, _, err) = apr_qa(
        &["ticket", s(&inj.join("evidence.json")), "-o", s(&tickets)],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(tickets.join("TICKET-F-CONV.md")).expect("ticket");
    assert!(md
        .lines()
        .next()
        .unwrap_or_default()
        .contains("[FAULT INJECTED]"));
    assert!(md.contains("**FAULT INJECTED:** `DROP-TOKENIZER`"), "{md}");
    let (env, args) = reproduction(&md);
    assert!(env.is_empty(), "no hook: {env:?}");
    let i = args.iter().position(|a| a == "--inject").expect("--inject");
    assert_eq!(args.get(i + 1).map(String::as_str), Some("DROP-TOKENIZER"));
    assert!(
        args.windows(2).any(|w| w[0] == "--seed" && w[1] == "42"),
        "{args:?}"
    );
}

#[test]
fn bad_evidence_exits_2_naming_the_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let bad = d.path().join("not-evidence.json");
    std::fs::write(&bad, b"{\"evidence\": 3}").expect("write");
    let (code, _, err) = apr_qa(&["ticket", s(&bad)], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not-evidence.json"), "{err}");
    let missing = d.path().join("missing.json");
    let (code, _, err) = apr_qa(&["ticket", s(&missing)], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}
