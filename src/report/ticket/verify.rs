//! The verification playbook of a ticket, and the run's source playbook it borrows from
//! (see the invariants of [`super`]).

use std::path::Path;

use serde_json::Value;

use super::{injected, tolerance, SourcePlaybook};
use crate::evidence::{Evidence, EvidenceFile};
use crate::harness::import::playbook_yaml;
use crate::harness::playbook::{
    expand, BackendName, Fmt, GateEntry, ModelSpec, Playbook, SynthSpec,
};

/// The model of the run as a playbook model spec (a synth spec is recorded as `synth:{json}`).
fn model_spec(file: &EvidenceFile, src: Option<&SourcePlaybook>) -> Result<ModelSpec, String> {
    let expect = src.and_then(|s| s.playbook.model.expect.clone());
    let label = &file.run.model.path;
    Ok(match label.strip_prefix("synth:") {
        Some(json) => ModelSpec {
            path: None,
            synth: Some(
                serde_json::from_str::<SynthSpec>(json)
                    .map_err(|e| format!("run.model.path: synth spec: {e}"))?,
            ),
            expect,
        },
        // A relative path was relative to the run's working directory: pin it when it can be
        // resolved from here, since a playbook's model path is resolved where it is run.
        None => ModelSpec {
            path: Some(
                std::fs::canonicalize(label)
                    .map_or_else(|_| label.clone(), |p| p.display().to_string()),
            ),
            synth: None,
            expect,
        },
    })
}

/// The verification playbook of one family (see the module invariants).
pub fn verification_playbook(
    file: &EvidenceFile,
    fam: &str,
    records: &[&Evidence],
    src: Option<&SourcePlaybook>,
) -> Result<String, String> {
    let stem = format!("TICKET-{fam}");
    let timeout_of = |e: &Evidence| e.metadata.get("timeout_s").and_then(Value::as_u64);
    let base_timeout = src.map_or_else(
        || {
            records
                .iter()
                .filter_map(|e| timeout_of(e))
                .max()
                .unwrap_or(120)
        },
        |s| s.playbook.timeout_s,
    );
    let mut gates: Vec<GateEntry> = Vec::new();
    for e in records {
        let id = e
            .scenario
            .strip_prefix("alias ")
            .unwrap_or(&e.gate_id)
            .to_string();
        if gates.iter().any(|g| g.id == id) {
            continue;
        }
        gates.push(GateEntry {
            id,
            required: e.metadata.get("required").and_then(Value::as_bool),
            tolerance: tolerance(e),
            timeout_s: timeout_of(e).filter(|t| *t != base_timeout),
        });
    }
    let formats: Vec<Fmt> = match src {
        Some(s) => s.playbook.formats.clone(),
        None => {
            let mut f: Vec<Fmt> = Vec::new();
            for name in records.iter().flat_map(|e| e.format.split(',')) {
                let parsed: Option<Fmt> =
                    serde_json::from_value(Value::String(name.trim().into())).ok();
                if let Some(x) = parsed.filter(|x| !f.contains(x)) {
                    f.push(x);
                }
            }
            f
        }
    };
    let backends: Vec<BackendName> = file
        .run
        .backends
        .iter()
        .filter_map(|b| serde_json::from_value(Value::String(b.clone())).ok())
        .collect();
    let inference = src.and_then(|s| {
        s.playbook.inference.clone().map(|mut i| {
            if let Some(r) = &i.references {
                let r = expand(r).unwrap_or_else(|_| r.clone());
                let p = s.dir.join(r);
                i.references = Some(std::fs::canonicalize(&p).unwrap_or(p).display().to_string());
            }
            i
        })
    });
    let pb = Playbook {
        name: format!("verify-{}-{fam}", file.run.playbook.name),
        description: Some(format!(
            "Verifies the fix for {stem}: the {fam} gates of playbook {} on the same model and seed.",
            file.run.playbook.name
        )),
        ticket: Some(stem.clone()),
        model: model_spec(file, src)?,
        formats: if formats.is_empty() { vec![Fmt::Gguf, Fmt::Apr, Fmt::Safetensors] } else { formats },
        backends: if backends.is_empty() { vec![BackendName::Cpu] } else { backends },
        seed: file.run.seed,
        timeout_s: base_timeout,
        inference,
        gates,
    };
    let mut text = format!(
        "# Verification playbook for {stem} (written by `apr-qa ticket`).\n\
         # Passes (exit 0, every gate corroborated) once the bug is fixed; the tolerances are the\n\
         # ones in force when the ticket was written.\n"
    );
    if let Some(i) = injected(file) {
        text.push_str(&format!(
            "# FAULT INJECTED in the ticketed run ({i}): this playbook passes on the clean engine.\n"
        ));
    }
    text.push_str(&playbook_yaml(&pb)?);
    Playbook::parse(&text, &format!("{stem}.yaml"), false)
        .map_err(|e| format!("the verification playbook does not check: {e}"))?;
    Ok(text)
}

/// Reads the run's source playbook when its recorded path still has the recorded sha256;
/// otherwise says why not.
pub fn source_playbook(file: &EvidenceFile) -> Result<SourcePlaybook, String> {
    use sha2::{Digest, Sha256};
    let path = file
        .run
        .playbook
        .path
        .as_deref()
        .ok_or("the evidence does not record the playbook's path")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("playbook {path}: {e}"))?;
    let sha: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sha != file.run.playbook.sha256 {
        return Err(format!(
            "playbook {path} changed since the run (sha256 {sha}, the run's {}): the \
             reproduction runs the changed file",
            file.run.playbook.sha256
        ));
    }
    let playbook = Playbook::parse(&text, path, false).map_err(|e| e.to_string())?;
    let dir = Path::new(path)
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(SourcePlaybook { playbook, dir })
}
