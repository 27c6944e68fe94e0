//! Every shipped playbook parses under the strict schema (model paths are checked where the
//! models are installed, in `.ci/run`).

use apr_qa::harness::playbook::Playbook;

#[test]
fn every_shipped_playbook_parses_strictly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let mut n = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read playbooks/") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&p).expect("read");
                Playbook::parse(&text, &p.display().to_string(), false)
                    .unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert!(n >= 2, "found {n} playbooks");
}
