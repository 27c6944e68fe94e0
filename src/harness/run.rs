//! One `apr-qa run`: load the playbook, get the model (a file, or synthesized into the run's
//! temp dir), plan, execute, score, write `evidence.json` atomically, choose the exit code.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::executor::{execute, now_utc, plan, write_atomic, ExecOptions, PlanItem};
use super::hooks::Hook;
use super::mqs::score;
use super::playbook::{Playbook, SynthSpec};
use crate::evidence::{
    Evidence, EvidenceFile, ModelRef, Outcome, PlaybookRef, RunInfo, Summary, SCHEMA_VERSION,
};
use crate::gates::Artifacts;

/// All gates judged corroborated, none required skipped.
pub const EXIT_PASS: u8 = 0;
/// A gate falsified, timed out or crashed.
pub const EXIT_FAIL: u8 = 1;
/// Bad playbook or input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Incomplete: a required gate was not judged, or the run was interrupted.
pub const EXIT_INCOMPLETE: u8 = 3;

/// Options of a run.
pub struct RunOptions {
    /// The playbook file.
    pub playbook: PathBuf,
    /// Output directory (default `./apr-qa-out/<playbook>-<UTC time>/`).
    pub out_dir: Option<PathBuf>,
    /// Model path overriding the playbook's.
    pub model: Option<PathBuf>,
    /// Parallel gates.
    pub jobs: usize,
    /// Seed overriding the playbook's.
    pub seed: Option<u64>,
    /// Stop starting gates after the first failure.
    pub fail_fast: bool,
    /// `(i, n)`: run shard i of n.
    pub shard: Option<(usize, usize)>,
    /// Set by Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
    /// The fault to inject (`--inject`), if any.
    pub inject: Option<crate::fault::Fault>,
    /// Progress callback.
    pub on_done: Box<dyn Fn(&Evidence) + Send + Sync>,
    /// Called once with the plan size.
    pub on_plan: Box<dyn Fn(usize)>,
}

/// What a run produced.
pub struct RunOutput {
    /// Where `evidence.json` was written.
    pub evidence_path: PathBuf,
    /// Its contents.
    pub file: EvidenceFile,
    /// The exit code the run maps to.
    pub exit_code: u8,
}

/// A run that could not start (bad playbook or model): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

fn sha256_file(p: &Path) -> Result<(String, u64), String> {
    let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), n))
}

/// Synthesizes the playbook's model into `dir`.
fn synth_model(spec: &SynthSpec, dir: &Path) -> Result<PathBuf, String> {
    let out = dir.join("synthetic.gguf");
    crate::synth::synthesize(&synth_options(spec)?, &out)
        .map_err(|e| format!("synthesizing the model: {e}"))?;
    Ok(out)
}

/// The synth options a playbook spec names (arch and quant by name; unknown names are errors).
pub fn synth_options(spec: &SynthSpec) -> Result<crate::synth::SynthOptions, String> {
    use crate::synth::{SynthArch, SynthOptions};
    let arch = match spec.arch.as_str() {
        "qwen2" => SynthArch::Qwen2,
        "llama" => SynthArch::Llama,
        other => return Err(format!("synth arch {other:?}: expected qwen2 or llama")),
    };
    let quant = parse_quant(&spec.quant)?;
    Ok(SynthOptions {
        arch,
        layers: spec.layers,
        hidden: spec.hidden,
        heads: spec.heads,
        kv_heads: spec.kv_heads,
        ffn: spec.ffn,
        vocab: spec.vocab,
        tied_embeddings: spec.tied_embeddings,
        quant,
        seed: spec.seed,
        rope_theta: arch.default_rope_theta(),
        ..SynthOptions::default()
    })
}

/// A synth quant name (`q4_k_m`, `q8_0`, `f16`, `f32`, `mixed`).
pub fn parse_quant(s: &str) -> Result<crate::synth::SynthQuant, String> {
    use crate::synth::SynthQuant;
    match s.to_ascii_lowercase().as_str() {
        "q4_k_m" => Ok(SynthQuant::Q4KM),
        "q8_0" => Ok(SynthQuant::Q8_0),
        "f16" => Ok(SynthQuant::F16),
        "f32" => Ok(SynthQuant::F32),
        "mixed" => Ok(SynthQuant::Mixed),
        other => Err(format!(
            "synth quant {other:?}: expected q4_k_m, q8_0, f16, f32 or mixed"
        )),
    }
}

fn exit_code(evidence: &[Evidence], items: &[PlanItem], interrupted: bool) -> (u8, bool) {
    let failed = evidence.iter().any(|e| e.outcome.fails());
    let required_unjudged = evidence
        .iter()
        .zip(items)
        .any(|(e, it)| it.required && e.outcome == Outcome::Skipped);
    let incomplete = interrupted || required_unjudged;
    let code = if failed {
        EXIT_FAIL
    } else if incomplete {
        EXIT_INCOMPLETE
    } else {
        EXIT_PASS
    };
    (code, incomplete)
}

/// Runs a playbook.
pub fn run(opts: RunOptions) -> Result<RunOutput, RunError> {
    let started = now_utc();
    let t0 = Instant::now();
    let hook = Hook::from_env().map_err(RunError)?;
    crate::fault::set(opts.inject);
    let (pb, text) = Playbook::load(&opts.playbook, opts.model.is_none())
        .map_err(|e| RunError(e.to_string()))?;
    let work = tempfile::Builder::new()
        .prefix("apr-qa-run-")
        .tempdir()
        .map_err(|e| RunError(format!("temp dir: {e}")))?;
    let (source, model_label) = match (&opts.model, pb.model_path(), &pb.model.synth) {
        (Some(p), _, _) => (p.clone(), p.display().to_string()),
        (None, Some(p), _) => (p.clone(), p.display().to_string()),
        (None, None, Some(spec)) => (
            synth_model(spec, work.path()).map_err(RunError)?,
            format!("synth:{}", serde_json::to_string(spec).unwrap_or_default()),
        ),
        (None, None, None) => return Err(RunError("the playbook names no model".into())),
    };
    if source.is_dir() {
        return Err(RunError(format!(
            "model {} is a directory; a model file is meant here",
            source.display()
        )));
    }
    let (model_sha, model_bytes) = sha256_file(&source).map_err(RunError)?;
    let art = Arc::new(Artifacts::new(
        work.path(),
        source.clone(),
        model_sha.clone(),
    ));
    let model = art.model(&source).map_err(RunError)?;
    if let Some(exp) = &pb.model.expect {
        if let Some(a) = &exp.arch {
            if model.arch() != Some(a.as_str()) {
                return Err(RunError(format!(
                    "model {} has architecture {:?}, the playbook expects {a:?}",
                    source.display(),
                    model.arch()
                )));
            }
        }
        if let Some(n) = exp.tensors {
            if model.tensors.len() != n {
                return Err(RunError(format!(
                    "model {} holds {} tensors, the playbook expects {n}",
                    source.display(),
                    model.tensors.len()
                )));
            }
        }
    }
    let items = plan(&pb, opts.shard);
    (opts.on_plan)(items.len());
    let exec = ExecOptions {
        jobs: opts.jobs,
        fail_fast: opts.fail_fast,
        interrupted: Arc::clone(&opts.interrupted),
        hook: hook.clone(),
        infer: pb
            .inference
            .as_ref()
            .map(|i| crate::gates::inference::InferSettings {
                prompts: i.prompts.clone(),
                chat: i.chat,
                max_tokens: i.max_tokens,
                threads: i.threads,
                references: i.references.as_ref().map(|r| {
                    let r = super::playbook::expand(r).unwrap_or_else(|_| r.clone());
                    opts.playbook.parent().unwrap_or(Path::new(".")).join(r)
                }),
            }),
        on_done: opts.on_done,
    };
    let evidence = execute(&items, Arc::clone(&art), pb.formats.clone(), &exec);
    let interrupted = opts.interrupted.load(std::sync::atomic::Ordering::SeqCst);
    let (code, incomplete) = exit_code(&evidence, &items, interrupted);
    let file = EvidenceFile {
        schema_version: SCHEMA_VERSION.into(),
        run: RunInfo {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            git: option_env!("APR_QA_GIT").map(str::to_string),
            host: super::executor::host(),
            started,
            finished: now_utc(),
            playbook: PlaybookRef {
                name: pb.name.clone(),
                sha256: Sha256::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                path: Some(
                    std::fs::canonicalize(&opts.playbook)
                        .unwrap_or_else(|_| opts.playbook.clone())
                        .display()
                        .to_string(),
                ),
            },
            model: ModelRef {
                path: model_label,
                sha256: model_sha,
                bytes: model_bytes,
            },
            seed: opts.seed.unwrap_or(pb.seed),
            backends: pb
                .backends
                .iter()
                .map(|b| format!("{b:?}").to_lowercase())
                .collect(),
            jobs: opts.jobs,
            inject: opts
                .inject
                .map(|f| f.name().to_string())
                .or_else(|| hook.as_ref().map(|h| format!("test-hook {}", h.raw()))),
            test_hook: hook.as_ref().map(Hook::raw),
            shard: opts.shard.map(|(i, n)| format!("{i}/{n}")),
            incomplete,
            interrupted,
        },
        summary: Summary::of(&evidence, t0.elapsed().as_millis() as u64),
        mqs: {
            let mut m = score(&evidence);
            if incomplete && m.status == "QUALIFIED" {
                m.status = "INCOMPLETE".into();
            }
            m
        },
        evidence,
    };
    let out_dir = opts.out_dir.unwrap_or_else(|| {
        let stamp = file.run.started.replace([':', '-'], "");
        PathBuf::from("apr-qa-out").join(format!("{}-{stamp}", pb.name))
    });
    let evidence_path = out_dir.join("evidence.json");
    let json = serde_json::to_vec_pretty(&file).map_err(|e| RunError(e.to_string()))?;
    write_atomic(&evidence_path, &json)
        .map_err(|e| RunError(format!("writing {}: {e}", evidence_path.display())))?;
    drop(model);
    Ok(RunOutput {
        evidence_path,
        file,
        exit_code: code,
    })
}
