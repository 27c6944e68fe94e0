//! Tests of `apr-qa report` (HTML dashboard, JUnit XML, markdown) and the regression triage.
//!
//! JUnit structure is read back with an independent XML parser (roxmltree); the schema test
//! validates against the Jenkins xUnit plugin's `junit-10.xsd` with lxml; the browser tests
//! render the dashboard with headless Chromium and decode its screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;

use apr_qa::evidence::{Evidence, EvidenceFile, Outcome, Summary};
use apr_qa::report::{html, junit, markdown, triage};
use serde_json::{json, Map};

use crate::util::{root, run};

const HOSTILE: &str = "</td></table><script>alert(1)</script><img src=x onerror=alert(2)> & \"q\" 'a' | *b* \u{1} \n# h";

fn real_path() -> PathBuf {
    root().join("evidence/qwen2.5-coder-0.5b/evidence.json")
}

fn real() -> EvidenceFile {
    let text = std::fs::read_to_string(real_path()).expect("read the committed evidence file");
    serde_json::from_str(&text).expect("parse the committed evidence file")
}

fn record(id: &str, outcome: Outcome, reason: &str) -> Evidence {
    let (gate_id, scenario) = id.split_once('/').unwrap_or((id, "default"));
    let mut metrics = Map::new();
    metrics.insert("max_abs_diff".into(), json!(0.5));
    metrics.insert("tolerance".into(), json!(0.0));
    Evidence {
        id: id.into(),
        gate_id: gate_id.into(),
        scenario: scenario.into(),
        format: "gguf,apr".into(),
        backend: "cpu".into(),
        category: "COMP".into(),
        severity: "P1".into(),
        outcome,
        reason: reason.into(),
        metrics,
        duration_ms: 1234,
        output: String::new(),
        stderr: None,
        exit_code: None,
        timestamp: "2026-01-01T00:00:00Z".into(),
        host: "h".into(),
        metadata: Map::new(),
    }
}

/// A file with one record of each outcome (and a hostile reason on every non-pass).
fn five_outcomes() -> EvidenceFile {
    let mut f = real();
    f.evidence = vec![
        record("F-A-001/one", Outcome::Corroborated, "fine"),
        record("F-B-001/two", Outcome::Falsified, HOSTILE),
        record("F-C-001/three", Outcome::Skipped, HOSTILE),
        record("F-D-001/four", Outcome::Timeout, HOSTILE),
        record("F-E-001/five", Outcome::Crashed, HOSTILE),
    ];
    f.evidence[4].stderr = Some("panicked at <here>".into());
    f.summary = Summary::of(&f.evidence, 5000);
    f
}

fn write_json(dir: &Path, name: &str, f: &EvidenceFile) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(f).expect("serialize")).expect("write");
    p
}

// ---------------------------------------------------------------- JUnit

#[test]
fn junit_has_one_testcase_per_record_with_outcome_mapping() {
    let f = five_outcomes();
    let xml = junit::junit_xml(&[&f]);
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml parses as XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let s = suites[0];
    assert_eq!(s.attribute("name"), Some(f.run.playbook.name.as_str()));
    assert_eq!(s.attribute("tests"), Some("5"));
    assert_eq!(s.attribute("failures"), Some("1"));
    assert_eq!(s.attribute("errors"), Some("2"));
    assert_eq!(s.attribute("skipped"), Some("1"));
    let cases: Vec<_> = s
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), f.evidence.len());
    let child = |i: usize| {
        cases[i]
            .children()
            .filter(|n| n.is_element() && !n.has_tag_name("system-out"))
            .filter(|n| !n.has_tag_name("system-err"))
            .collect::<Vec<_>>()
    };
    assert!(
        child(0).is_empty(),
        "a corroborated gate is a bare testcase"
    );
    let fail = child(1);
    assert_eq!(fail.len(), 1);
    assert!(fail[0].has_tag_name("failure"));
    assert_eq!(fail[0].attribute("type"), Some("Falsified"));
    assert_eq!(
        fail[0].attribute("message"),
        Some(HOSTILE.replace('\u{1}', "\u{FFFD}").as_str())
    );
    let body = fail[0].text().unwrap_or("");
    assert!(
        body.contains("\"max_abs_diff\": 0.5"),
        "metrics JSON in the body: {body}"
    );
    let skip = child(2);
    assert!(skip.len() == 1 && skip[0].has_tag_name("skipped"));
    assert!(skip[0]
        .attribute("message")
        .is_some_and(|m| m.starts_with("</td>")));
    let timeout = child(3);
    assert!(timeout.len() == 1 && timeout[0].has_tag_name("error"));
    assert_eq!(timeout[0].attribute("type"), Some("Timeout"));
    let crash = child(4);
    assert!(crash.len() == 1 && crash[0].has_tag_name("error"));
    assert_eq!(crash[0].attribute("type"), Some("Crashed"));
    for (c, e) in cases.iter().zip(&f.evidence) {
        assert_eq!(c.attribute("name"), Some(e.id.as_str()));
        assert_eq!(c.attribute("classname"), Some("COMP"));
        assert_eq!(c.attribute("time"), Some("1.234"));
    }
}

#[test]
fn junit_of_the_real_run_counts_its_records() {
    let f = real();
    let xml = junit::junit_xml(&[&f]);
    let doc = roxmltree::Document::parse(&xml).expect("parses");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(cases, f.evidence.len());
    let falsified = f
        .evidence
        .iter()
        .filter(|e| e.outcome == Outcome::Falsified)
        .count();
    assert_eq!(failures, falsified);
    assert!(
        falsified > 0,
        "the committed run has a falsified gate (F-PERF)"
    );
}

// ---------------------------------------------------------------- escaping

#[test]
fn html_escapes_a_hostile_reason_and_loads_nothing() {
    let mut f = five_outcomes();
    f.run.playbook.name = "<b>pb</b>".into();
    f.run.inject = Some("<i>FAULT</i>".into());
    let page = html::html(&[f.clone(), f]);
    assert!(
        !page.contains("<script"),
        "no script element may reach the page"
    );
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>pb</b>") && !page.contains("<i>FAULT</i>"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("FAULT INJECTED: &lt;i&gt;FAULT&lt;/i&gt;"));
    for banned in ["<link", "@import", "url(", "src=\"", "https://", "<iframe"] {
        assert!(
            !page.contains(banned),
            "the page must be self-contained: found {banned}"
        );
    }
    let without_svg_ns = page.replace("http://www.w3.org/2000/svg", "");
    assert!(!without_svg_ns.contains("http://"));
}

#[test]
fn markdown_escapes_a_hostile_reason() {
    let f = five_outcomes();
    let md = markdown::markdown(&[f]);
    assert!(!md.contains("<script") && !md.contains("<img") && !md.contains("</td>"));
    assert!(md.contains("&lt;script&gt;"));
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let unescaped = line.replace("\\|", "");
        let cells = unescaped.matches('|').count();
        assert!(
            cells == 7 || cells == 8 || cells == 9,
            "a reason broke a table row: {line}"
        );
    }
}

// ---------------------------------------------------------------- triage

#[test]
fn triage_lists_exactly_the_one_gate_that_changed() {
    let before = real();
    let mut after = before.clone();
    after.run.started = "2099-01-01T00:00:00Z".into();
    let victim = after
        .evidence
        .iter_mut()
        .find(|e| e.outcome == Outcome::Corroborated)
        .expect("a corroborated record");
    let id = victim.id.clone();
    let old_reason = victim.reason.clone();
    victim.outcome = Outcome::Falsified;
    victim.reason = "now broken: max|Δ| 3.5".into();
    victim.metrics.insert("max_abs_diff".into(), json!(3.5));
    // Same outcome, other numbers: not a change of outcome.
    let other = after
        .evidence
        .iter_mut()
        .rev()
        .find(|e| e.id != id)
        .expect("another record");
    other.reason.push_str(" (reworded)");

    let t = triage::triage(&[before.clone(), after.clone()]).expect("two runs");
    assert!(t.comparable && t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(t.changes.len(), 1, "{:#?}", t.changes);
    let c = &t.changes[0];
    assert_eq!(c.id, id);
    assert!(c.is_regression());
    let (b, a) = (
        c.before.as_ref().expect("before"),
        c.after.as_ref().expect("after"),
    );
    assert_eq!(
        (b.outcome, a.outcome),
        (Outcome::Corroborated, Outcome::Falsified)
    );
    assert_eq!(
        (b.reason.as_str(), a.reason.as_str()),
        (old_reason.as_str(), "now broken: max|Δ| 3.5")
    );
    let d = c
        .metrics
        .iter()
        .find(|d| d.key == "max_abs_diff")
        .expect("metric delta");
    assert_eq!(d.after, Some(json!(3.5)));

    // Through the CLI, with the files given newest first: the series is ordered by start time.
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = write_json(dir.path(), "after.json", &after);
    let pb = write_json(dir.path(), "before.json", &before);
    let out = dir.path().join("out");
    let (code, stdout, stderr) = report([
        pa.as_os_str(),
        pb.as_os_str(),
        "--json".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("--json output");
    let changes = v["triage"]["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], json!(id));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    let page = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        md.contains("now broken"),
        "markdown shows the latest run's reason"
    );
    assert_eq!(page.matches("<tr class=\"change ").count(), 1);
}

#[test]
fn triage_refuses_to_compare_different_models_or_playbooks() {
    let a = real();
    let mut b = a.clone();
    b.run.model.sha256 = "0".repeat(64);
    b.evidence[0].outcome = Outcome::Falsified;
    let t = triage::triage(&[a.clone(), b]).expect("two runs");
    assert!(!t.comparable && t.changes.is_empty());
    assert!(
        t.warnings.iter().any(|w| w.contains("different models")),
        "{:?}",
        t.warnings
    );
    let mut c = a.clone();
    c.run.playbook.name = "another".into();
    let t = triage::triage(&[a, c]).expect("two runs");
    assert!(!t.comparable);
    assert!(
        t.warnings.iter().any(|w| w.contains("different playbooks")),
        "{:?}",
        t.warnings
    );
}

// ---------------------------------------------------------------- CLI

fn report<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> (i32, String, String) {
    let mut v: Vec<std::ffi::OsString> = vec!["report".into()];
    v.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
    run(v)
}

#[test]
fn cli_exit_codes_and_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let missing = dir.path().join("missing.json");
    let (code, _, err) = report([missing.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&*missing.to_string_lossy()),
        "names the file: {err}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"evidence\": 3").expect("write");
    let (code, _, err) = report([
        real_path().as_os_str(),
        bad.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.json"), "{err}");
    assert!(!out.exists(), "nothing written when an input is bad");

    let (code, _, err) = report([real_path().as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["junit.xml", "report.html", "report.md"],
        "and no temp files"
    );

    let only = dir.path().join("only");
    let (code, _, err) = report([
        real_path().as_os_str(),
        "--junit".as_ref(),
        "-o".as_ref(),
        only.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<_> = std::fs::read_dir(&only).expect("dir").collect();
    assert_eq!(names.len(), 1);
    assert!(only.join("junit.xml").is_file());

    let (code, _, _) = report(["-o", &*out.to_string_lossy()]);
    assert_eq!(code, 2, "no evidence file is a usage error");
}

#[test]
fn latest_run_is_reported_and_banners_show() {
    let old = real();
    let mut new = five_outcomes();
    new.run.started = "2099-12-31T00:00:00Z".into();
    new.run.inject = Some("NAN-INJECT".into());
    new.run.incomplete = true;
    new.mqs.grade = "C-".into();
    let md = markdown::markdown(&[old.clone(), new.clone()]);
    assert!(
        md.lines().next().is_some_and(|l| l.contains("grade C-")),
        "{md}"
    );
    assert!(md.contains("FAULT INJECTED: NAN-INJECT") && md.contains("INCOMPLETE"));
    let page = html::html(&[old, new]);
    assert!(page.contains("id=\"fault-injected\">FAULT INJECTED: NAN-INJECT"));
    assert!(page.contains("id=\"incomplete\">INCOMPLETE"));
    assert!(page.contains(">C-</div>"));
    assert_eq!(page.matches("class=\"trend-point\"").count(), 2);
}

// ---------------------------------------------------------------- schema (lxml + junit-10.xsd)

/// Where `junit-10.xsd` (Jenkins xUnit plugin, as shipped in the pytest sdist's
/// `testing/example_scripts/`) is installed by the setup script; panics naming it when missing.
fn junit_xsd() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let p = std::env::var_os("APR_QA_JUNIT_XSD")
        .map_or_else(|| home.join(".cache/apr-qa/junit-10.xsd"), PathBuf::from);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "missing {} ({e}) — see tests/data/junit/README.md for the install step",
            p.display()
        )
    });
    let sha = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes));
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        XSD_SHA256,
        "{} is not the pinned junit-10.xsd",
        p.display()
    );
    p
}

/// sha256 of pytest 9.2.0's `testing/example_scripts/junit-10.xsd`.
const XSD_SHA256: &str = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6";

fn validate(xsd: &Path, xml: &Path) -> (bool, String) {
    let script = "import sys\nfrom lxml import etree\n\
        s = etree.XMLSchema(etree.parse(sys.argv[1]))\n\
        ok = s.validate(etree.parse(sys.argv[2]))\n\
        print(s.error_log)\nsys.exit(0 if ok else 1)\n";
    let out = Command::new(crate::util::venv_python())
        .args(["-c", script])
        .arg(xsd)
        .arg(xml)
        .output()
        .expect("run python");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ModuleNotFoundError"),
        "lxml missing in the venv: {text}"
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs lxml in the oracle venv and junit-10.xsd (tests/data/junit/README.md)"]
fn junit_validates_against_the_jenkins_schema() {
    let xsd = junit_xsd();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut injected = real();
    injected.run.inject = Some("NAN-INJECT".into());
    for (name, f) in [
        ("real", real()),
        ("five", five_outcomes()),
        ("inject", injected),
    ] {
        let p = dir.path().join(format!("{name}.xml"));
        std::fs::write(&p, junit::junit_xml(&[&f])).expect("write");
        let (ok, log) = validate(&xsd, &p);
        assert!(ok, "{name}: junit.xml does not validate: {log}");
    }
    // The validator can say no: a testcase without its required name, a bad time.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<testsuites><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\" time=\"1.23456\">\
         <testcase classname=\"c\"/></testsuite></testsuites>",
    )
    .expect("write");
    assert!(
        !validate(&xsd, &bad).0,
        "the schema must reject a nameless testcase"
    );
}

// ---------------------------------------------------------------- browser

fn chromium(args: &[&str], page: &Path) -> Vec<u8> {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium (apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn render(evidence: &[PathBuf], out: &Path) -> PathBuf {
    let mut args: Vec<std::ffi::OsString> = evidence.iter().map(|p| p.clone().into()).collect();
    args.extend(["--html".into(), "-o".into(), out.as_os_str().to_os_string()]);
    let (code, _, err) = report(args);
    assert_eq!(code, 0, "{err}");
    out.join("report.html")
}

#[test]
#[ignore = "needs chromium: apt-get install chromium"]
fn browser_renders_the_real_dashboard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = render(&[real_path()], dir.path());
    let shot = dir.path().join("shot.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        &page,
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot written"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("decode");
    assert_eq!((info.width, info.height), (1280, 2000));
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let mut colours: Vec<&[u8]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 200,
        "only {} colours: blank page?",
        colours.len()
    );
    let bg = pixels[0];
    let differ = pixels.iter().filter(|p| **p != bg).count();
    assert!(
        differ * 10 > pixels.len(),
        "{differ} of {} pixels differ from the corner",
        pixels.len()
    );
    let green = pixels
        .iter()
        .filter(|p| p[1] > 100 && p[0] < 80 && p[2] < 80)
        .count();
    assert!(
        green > 1000,
        "grade A tile and full category bars are green: {green} px"
    );

    let dom = String::from_utf8(chromium(&["--dump-dom"], &page)).expect("utf-8 DOM");
    let f = real();
    assert!(
        dom.contains(&format!(">{}</div>", f.mqs.grade)),
        "grade {} shown",
        f.mqs.grade
    );
    assert!(dom.contains(&format!("MQS {:.1}", f.mqs.normalized)));
    for c in ["QUAL", "REGR", "EDGE", "PERF", "STAB", "COMP"] {
        assert!(
            dom.contains(&format!(">{c}<")),
            "category {c} in the page text"
        );
    }
    let falsified = f
        .evidence
        .iter()
        .find(|e| e.outcome == Outcome::Falsified)
        .expect("one");
    assert!(dom.contains(&format!("data-id=\"{}\"", falsified.id)));
}

#[test]
#[ignore = "needs chromium: apt-get install chromium"]
fn browser_shows_the_trend_of_three_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = real();
    let mut files = Vec::new();
    for (i, mqs) in [(1, 61.0), (2, 84.5), (3, base.mqs.normalized)] {
        let mut f = base.clone();
        f.run.started = format!("2026-0{i}-01T00:00:00Z");
        f.mqs.normalized = mqs;
        files.push(write_json(dir.path(), &format!("run{i}.json"), &f));
    }
    files.reverse();
    let page = render(&files, &dir.path().join("out"));
    let dom = String::from_utf8(chromium(&["--dump-dom"], &page)).expect("utf-8 DOM");
    assert!(
        dom.contains("<svg id=\"trend\" data-points=\"3\""),
        "trend chart present"
    );
    assert_eq!(dom.matches("class=\"trend-point\"").count(), 3);
    assert_eq!(dom.matches("class=\"trend-line\"").count(), 1);
    let labels: Vec<usize> = ["61.0", "84.5"]
        .iter()
        .filter_map(|l| dom.find(&format!(">{l} ")))
        .collect();
    assert!(
        labels.len() == 2 && labels[0] < labels[1],
        "points in time order"
    );
}
