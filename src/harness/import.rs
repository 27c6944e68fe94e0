//! Importing the incumbent tool's playbooks (apr-model-qa-playbook, `anchor-apr-qa-playbook.md`
//! §2) into ours (`playbook.rs`).
//!
//! Invariants:
//! - Every field of the incumbent's format is either honoured (mapped onto a field of ours) or
//!   listed in [`Imported::dropped`] with its path and the reason; nothing is dropped silently.
//! - A key outside the incumbent's format, or a value of the wrong type, is an
//!   [`ImportError`] naming the field path (`model.formats[2]`).
//! - The gates are the ones the incumbent's `apr-qa run` would have produced that apr-qa has
//!   (its conversion suite over the listed formats, the golden rule, `contract_tests`
//!   invariants), then every gate id the playbook lists that the catalogue knows. A verify
//!   playbook (`verification_gates`) keeps only its verification gates and invariants.
//! - Conditions (`"diff < 1e-6"`) never become tolerances: a gate is judged by the catalogue's
//!   falsifier and tolerance, and an import must not relax or tighten it silently.
//! - The written text always parses as a playbook ([`Playbook::parse`]).

mod gates;

use serde_json::{Map, Value};

use gates::{import_gates, import_misc};

use super::catalog::lookup;
use super::playbook::{BackendName, Expect, Fmt, GateEntry, InferenceSpec, ModelSpec, Playbook};

/// A field that could not be honoured, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The field path (`test_matrix.modalities[2]`).
    pub path: String,
    /// Why.
    pub why: String,
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Our playbook.
    pub playbook: Playbook,
    /// What could not be honoured.
    pub dropped: Vec<Dropped>,
    /// The playbook as written: the dropped list as YAML comments, then the YAML.
    pub text: String,
}

/// An input that is not an incumbent playbook: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ImportError {
    /// The input file.
    pub file: String,
    /// The field path (`-` for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Serializes a playbook as YAML without the unset (null) fields.
pub fn playbook_yaml(pb: &Playbook) -> Result<String, String> {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    let v = serde_json::to_value(pb).map_err(|e| e.to_string())?;
    serde_yaml_ng::to_string(&strip(v)).map_err(|e| e.to_string())
}

const TOP: [&str; 19] = [
    "name",
    "version",
    "model",
    "test_matrix",
    "property_tests",
    "falsification_gates",
    "state_machine",
    "differential_tests",
    "profile_ci",
    "trace_payload",
    "contract_tests",
    "ollama_parity",
    "gates",
    "oracles",
    "failure_policy",
    "metadata",
    "kernel_profile",
    "verification_gates",
    "acceptance",
];
const MODEL: [&str; 13] = [
    "hf_repo",
    "local_path",
    "formats",
    "quantizations",
    "size_category",
    "expected_hidden_dim",
    "expected_num_layers",
    "expected_num_heads",
    "expected_num_kv_heads",
    "expected_vocab_size",
    "expected_intermediate_dim",
    "family",
    "size_variant",
];
const MATRIX: [&str; 6] = [
    "modalities",
    "backends",
    "scenario_count",
    "prompts",
    "seed",
    "timeout_ms",
];
const DIFFERENTIAL: [&str; 5] = [
    "format_validation",
    "tensor_diff",
    "inference_compare",
    "fingerprint",
    "validate_stats",
];

struct Ctx<'a> {
    file: &'a str,
    dropped: Vec<Dropped>,
    gates: Vec<String>,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError {
            file: self.file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
    fn drop(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.dropped.push(Dropped {
            path: path.into(),
            why: why.into(),
        });
    }
    fn gate(&mut self, id: &str) {
        if let Some(def) = lookup(id) {
            if !self.gates.contains(&def.id) {
                self.gates.push(def.id.clone());
            }
        }
    }
    /// A gate id the playbook lists: kept when the catalogue knows it.
    fn listed_gate(&mut self, path: &str, v: Option<&Value>) -> Result<(), ImportError> {
        let id = v
            .and_then(Value::as_str)
            .ok_or_else(|| self.err(path, "expected a gate id (string)"))?;
        match lookup(id) {
            Some(_) => self.gate(id),
            None => self.drop(
                path,
                format!("gate {id} is not in apr-qa's catalogue (`apr-qa gates`)"),
            ),
        }
        Ok(())
    }
    fn map<'v>(
        &self,
        v: &'v Value,
        path: &str,
        keys: &[&str],
    ) -> Result<&'v Map<String, Value>, ImportError> {
        let m = v
            .as_object()
            .ok_or_else(|| self.err(path, "expected a mapping"))?;
        if let Some(k) = m.keys().find(|k| !keys.contains(&k.as_str())) {
            let p = if path == "-" {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            return Err(self.err(
                &p,
                "unknown field: the incumbent's playbook format has no such field",
            ));
        }
        Ok(m)
    }
    fn strings(&self, v: &Value, path: &str) -> Result<Vec<String>, ImportError> {
        let a = v
            .as_array()
            .ok_or_else(|| self.err(path, "expected a list of strings"))?;
        a.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.err(&format!("{path}[{i}]"), "expected a string"))
            })
            .collect()
    }
    fn uint(&self, v: &Value, path: &str) -> Result<u64, ImportError> {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| self.err(path, "expected a non-negative integer"))
    }
    /// The incumbent's booleans accept `"true"`/`"yes"`/`"on"` strings.
    fn boolean(&self, v: &Value, path: &str) -> Result<bool, ImportError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Ok(true),
                "false" | "no" | "off" => Ok(false),
                _ => Err(self.err(path, format!("expected a boolean, got {s:?}"))),
            },
            _ => Err(self.err(path, "expected a boolean")),
        }
    }
}

fn str_field<'v>(
    c: &Ctx,
    m: &'v Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'v str, ImportError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(c.err(path, "expected a string")),
        None => Err(c.err(path, "required field missing")),
    }
}

/// Imports incumbent playbook text. `file` is for messages; `model` overrides the model path
/// (otherwise `model.local_path`, otherwise a guess under `${APR_QA_MODELS}`).
pub fn import(text: &str, file: &str, model: Option<&str>) -> Result<Imported, ImportError> {
    let mut c = Ctx {
        file,
        dropped: Vec::new(),
        gates: Vec::new(),
    };
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()));
        c.err("-", format!("not YAML{}: {e}", loc.unwrap_or_default()))
    })?;
    let top = c.map(&doc, "-", &TOP)?;
    let name = str_field(&c, top, "name", "name")?.to_string();
    let version = str_field(&c, top, "version", "version")?.to_string();
    c.drop("version", "a playbook is identified by the sha256 of its bytes (evidence run.playbook.sha256); the version is kept in the description");
    let m = c.map(
        top.get("model")
            .ok_or_else(|| c.err("model", "required field missing"))?,
        "model",
        &MODEL,
    )?;
    let hf_repo = str_field(&c, m, "hf_repo", "model.hf_repo")?.to_string();
    let (spec, formats) = import_model(&mut c, m, &hf_repo, model)?;
    let tm = c.map(
        top.get("test_matrix")
            .ok_or_else(|| c.err("test_matrix", "required field missing"))?,
        "test_matrix",
        &MATRIX,
    )?;
    let (backends, seed, timeout_s, inference) = import_matrix(&mut c, tm)?;
    let verify = top.contains_key("verification_gates");
    if !verify {
        pipeline_gates(&mut c, &formats);
    }
    import_gates(&mut c, top)?;
    if c.gates.is_empty() {
        return Err(c.err("-", "no gate apr-qa knows results from this playbook"));
    }
    let ticket = import_misc(&mut c, top)?;
    let pb = Playbook {
        name: name.clone(),
        description: Some(format!(
            "Imported from {file} (incumbent playbook {name} version {version}, hf_repo {hf_repo})."
        )),
        ticket,
        model: spec,
        formats,
        backends,
        seed,
        timeout_s,
        inference,
        gates: c
            .gates
            .iter()
            .map(|id| GateEntry {
                id: id.clone(),
                required: None,
                tolerance: None,
                timeout_s: None,
            })
            .collect(),
    };
    let mut out = format!(
        "# Imported by `apr-qa playbook import` from {file} (the incumbent's playbook format).\n\
         # Not honoured ({}):\n",
        c.dropped.len()
    );
    for d in &c.dropped {
        out.push_str(&format!("#   {}: {}\n", d.path, d.why.replace('\n', " ")));
    }
    out.push_str(&playbook_yaml(&pb).map_err(|e| c.err("-", e))?);
    Playbook::parse(&out, file, false)
        .map_err(|e| c.err("-", format!("the imported playbook does not parse: {e}")))?;
    Ok(Imported {
        playbook: pb,
        dropped: c.dropped,
        text: out,
    })
}

fn import_model(
    c: &mut Ctx,
    m: &Map<String, Value>,
    hf_repo: &str,
    model: Option<&str>,
) -> Result<(ModelSpec, Vec<Fmt>), ImportError> {
    let local = match m.get("local_path") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(_) => return Err(c.err("model.local_path", "expected a string")),
    };
    let quants = match m.get("quantizations") {
        Some(v) => c.strings(v, "model.quantizations")?,
        None => Vec::new(),
    };
    let path = match (model, local) {
        (Some(p), _) => p.to_string(),
        (None, Some(p)) => {
            if !p.ends_with(".gguf") {
                c.drop("model.local_path", format!("{p}: apr-qa qualifies a GGUF source file and converts it to the other formats; import with --model FILE.gguf"));
            }
            p
        }
        (None, None) => {
            let repo = hf_repo.rsplit('/').next().unwrap_or(hf_repo);
            let repo = repo.strip_suffix("-GGUF").unwrap_or(repo);
            let quant = match quants.as_slice() {
                [q] => format!("-{}", q.to_ascii_uppercase()),
                _ => String::new(),
            };
            c.drop("model.hf_repo", format!(
                "apr-qa downloads nothing: model.path is a guess, ${{APR_QA_MODELS}}/{repo}{quant}.gguf; fetch the file there or import with --model"
            ));
            format!("${{APR_QA_MODELS}}/{repo}{quant}.gguf")
        }
    };
    if model.is_some() || m.contains_key("local_path") {
        c.drop("model.hf_repo", "apr-qa downloads nothing; the model is the file at model.path (kept in the description)");
    }
    if !quants.is_empty() {
        c.drop("model.quantizations", "the tensor types are the model file's own (the incumbent parsed this field and used it nowhere)");
    }
    let formats = match m.get("formats") {
        None => vec![Fmt::Gguf, Fmt::Safetensors, Fmt::Apr],
        Some(v) => {
            let names = c.strings(v, "model.formats")?;
            let mut f = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let x = match n.to_ascii_lowercase().as_str() {
                    "gguf" => Fmt::Gguf,
                    "apr" => Fmt::Apr,
                    "safetensors" => Fmt::Safetensors,
                    _ => {
                        return Err(c.err(
                            &format!("model.formats[{i}]"),
                            format!("unknown format {n:?} (gguf, safetensors, apr)"),
                        ))
                    }
                };
                if !f.contains(&x) {
                    f.push(x);
                }
            }
            f
        }
    };
    if let Some(v) = m.get("size_category") {
        let s = v
            .as_str()
            .ok_or_else(|| c.err("model.size_category", "expected a string"))?;
        if !["tiny", "small", "medium", "large", "xlarge", "huge"].contains(&s) {
            return Err(c.err(
                "model.size_category",
                format!("unknown size category {s:?}"),
            ));
        }
        c.drop(
            "model.size_category",
            "parallelism is `apr-qa run --jobs N` (the incumbent's worker cap was unused)",
        );
    }
    for k in MODEL.iter().filter(|k| k.starts_with("expected_")) {
        if let Some(v) = m.get(*k) {
            c.uint(v, &format!("model.{k}"))?;
            c.drop(format!("model.{k}"), "model.expect checks the architecture and the tensor count; dimensions are checked by the gates against the file itself");
        }
    }
    let arch = match m.get("family") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(c.err("model.family", "expected a string")),
        None => None,
    };
    if m.contains_key("size_variant") {
        c.drop("model.size_variant", "tensor templates from aprender's contract files are not used: F-NAMES-001 checks names against the source model");
    }
    let expect = arch.map(|a| Expect {
        arch: Some(a),
        tensors: None,
    });
    Ok((
        ModelSpec {
            path: Some(path),
            synth: None,
            expect,
        },
        formats,
    ))
}

type Matrix = (Vec<BackendName>, u64, u64, Option<InferenceSpec>);

fn import_matrix(c: &mut Ctx, tm: &Map<String, Value>) -> Result<Matrix, ImportError> {
    let mut backends = Vec::new();
    let names = match tm.get("backends") {
        Some(v) => c.strings(v, "test_matrix.backends")?,
        None => vec!["cpu".into(), "gpu".into()],
    };
    for (i, b) in names.iter().enumerate() {
        let x = match b.as_str() {
            "cpu" => BackendName::Cpu,
            "gpu" | "cuda" => BackendName::Cuda,
            _ => {
                return Err(c.err(
                    &format!("test_matrix.backends[{i}]"),
                    format!("unknown backend {b:?} (cpu, gpu)"),
                ))
            }
        };
        if !backends.contains(&x) {
            backends.push(x);
        }
    }
    let modalities = match tm.get("modalities") {
        Some(v) => c.strings(v, "test_matrix.modalities")?,
        None => vec!["run".into(), "chat".into(), "serve".into()],
    };
    for (i, m) in modalities.iter().enumerate() {
        let p = format!("test_matrix.modalities[{i}]");
        match m.as_str() {
            "run" => {}
            "chat" if modalities.iter().any(|x| x == "run") => c.drop(p, "one inference setting per playbook: raw prompts (run) are kept, the chat template variant is not"),
            "chat" => {}
            "serve" => c.drop(p, "apr-qa has no HTTP server mode; the engine is judged in process"),
            _ => return Err(c.err(&p, format!("unknown modality {m:?} (run, chat, serve)"))),
        }
    }
    let chat = !modalities.iter().any(|x| x == "run") && modalities.iter().any(|x| x == "chat");
    let count = tm
        .get("scenario_count")
        .map(|v| c.uint(v, "test_matrix.scenario_count"))
        .transpose()?
        .unwrap_or(100);
    let prompts = tm
        .get("prompts")
        .map(|v| c.strings(v, "test_matrix.prompts"))
        .transpose()?;
    let inference = match prompts {
        Some(p) if !p.is_empty() => {
            let keep = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .clamp(1, p.len());
            if keep < p.len() {
                c.drop("test_matrix.prompts", format!("the incumbent used prompts[i % len] for i < scenario_count: only the first {keep} of {} ran, and only those are kept", p.len()));
            }
            if count > p.len() as u64 {
                c.drop("test_matrix.scenario_count", "greedy decoding is deterministic: a prompt repeated adds nothing (F-STAB-003 checks that)");
            }
            Some(InferenceSpec {
                prompts: p[..keep].to_vec(),
                chat,
                max_tokens: 32,
                threads: 2,
                references: None,
            })
        }
        _ => {
            c.drop(
                "test_matrix.scenario_count",
                "no prompts listed: the inference gates use their own prompts",
            );
            None
        }
    };
    let seed = tm
        .get("seed")
        .map(|v| c.uint(v, "test_matrix.seed"))
        .transpose()?
        .unwrap_or(0);
    let timeout_s = match tm.get("timeout_ms") {
        Some(v) => c.uint(v, "test_matrix.timeout_ms")?.div_ceil(1000).max(1),
        None => 120,
    };
    Ok((backends, seed, timeout_s, inference))
}

/// The gates the incumbent's `run` pipeline produces that apr-qa has.
fn pipeline_gates(c: &mut Ctx, formats: &[Fmt]) {
    let letter = |f: &Fmt| match f {
        Fmt::Gguf => 'G',
        Fmt::Apr => 'A',
        Fmt::Safetensors => 'S',
    };
    for a in formats {
        for b in formats.iter().filter(|b| *b != a) {
            c.gate(&format!("F-CONV-{}-{}", letter(a), letter(b)));
        }
    }
    let has = |f: Fmt| formats.contains(&f);
    if has(Fmt::Gguf) && has(Fmt::Apr) && has(Fmt::Safetensors) {
        for id in [
            "F-CONV-RT-001",
            "F-CONV-RT-002",
            "F-CONV-RT-003",
            "F-CONV-COM-001",
        ] {
            c.gate(id);
        }
    }
    if has(Fmt::Gguf) && has(Fmt::Apr) {
        c.gate("F-CONV-IDEM-001");
    }
    if has(Fmt::Apr) || has(Fmt::Safetensors) {
        for id in [
            "F-GOLDEN-RULE-001",
            "F-GOLDEN-RULE-002",
            "F-GOLDEN-RULE-003",
        ] {
            c.gate(id);
        }
    }
}
