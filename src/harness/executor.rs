//! The executor: plan → run gates in parallel with per-gate timeouts → evidence.
//!
//! Invariants: every planned gate yields exactly one evidence record; a gate that panics is
//! Crashed and the run goes on; a gate past its limit is Timeout (its thread is abandoned, the
//! run goes on); Ctrl-C stops starting gates and records the rest as Skipped "interrupted";
//! evidence is written atomically; all work happens in a private temp dir.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map};

use super::catalog::lookup;
use super::hooks::Hook;
use super::playbook::{BackendName, Playbook};
use crate::evidence::{Evidence, Outcome};
use crate::gates::{self, Artifacts, GateCtx, Judgement};

/// One planned gate execution.
#[derive(Clone, Debug)]
pub struct PlanItem {
    /// Canonical gate id.
    pub gate_id: String,
    /// Scenario label.
    pub scenario: String,
    /// Formats involved (label).
    pub format: String,
    /// Backend label.
    pub backend: String,
    /// Tolerance in force.
    pub tolerance: f64,
    /// Time limit.
    pub timeout: Duration,
    /// Whether not judging it makes the run incomplete.
    pub required: bool,
    /// Why it will not run at all (absent backend), when so.
    pub skip: Option<String>,
}

/// Whether the gate needs a CUDA device.
fn needs_cuda(id: &str) -> bool {
    id == "F-CONV-BE-001" || id.contains("-GPU-")
}

/// The formats a gate exercises, for the evidence's `format` field (reports draw a gate ×
/// format × backend matrix from it): a conversion pair names its direction, a container gate
/// its container, everything else the playbook's formats.
fn gate_formats(id: &str, formats: &[&str]) -> String {
    let ext = |c: &str| match c {
        "G" => Some("gguf"),
        "A" => Some("apr"),
        "S" => Some("safetensors"),
        "HF" => Some("hf"),
        _ => None,
    };
    if let Some(pair) = id.strip_prefix("F-CONV-") {
        if let Some((a, b)) = pair.split_once('-') {
            if let (Some(a), Some(b)) = (ext(a), ext(b)) {
                return format!("{a}->{b}");
            }
        }
    }
    if id.starts_with("F-APR-FORMAT-") {
        return "apr".into();
    }
    if id.starts_with("F-EDGE-") && id != "F-EDGE-006" {
        return "gguf".into();
    }
    formats.join(",")
}

/// The backend a gate runs on: `cpu`/`cuda` for gates that run inference, `-` for gates that
/// only read and write files.
fn gate_backend(id: &str, cuda: bool) -> &'static str {
    let infers = id == "F-GOLDEN-RULE-001"
        || id == "F-GOLDEN-RULE-003"
        || id.starts_with("F-INFER-")
        || id == "F-STAB-002"
        || id == "F-STAB-003"
        || id == "F-EDGE-006"
        || id == "F-PERF-002";
    match (cuda, infers) {
        (true, _) => "cuda",
        (false, true) => "cpu",
        (false, false) => "-",
    }
}

/// Builds the plan: one item per gate entry (gates × scenarios; the conversions they share are
/// computed once by [`Artifacts`]). `shard = Some((i, n))` keeps items whose index ≡ i−1 mod n.
pub fn plan(pb: &Playbook, shard: Option<(usize, usize)>) -> Vec<PlanItem> {
    let formats: Vec<&str> = pb.formats.iter().map(|f| f.ext()).collect();
    let mut items: Vec<PlanItem> = pb
        .gates
        .iter()
        .filter_map(|g| {
            let def = lookup(&g.id)?;
            let cuda = needs_cuda(&def.id);
            let cuda_present = cfg!(feature = "cuda") && pb.backends.contains(&BackendName::Cuda);
            let skip = (cuda && !cuda_present).then(|| "no CUDA device".to_string());
            Some(PlanItem {
                gate_id: def.id.clone(),
                scenario: if g.id == def.id {
                    "default".into()
                } else {
                    format!("alias {}", g.id)
                },
                format: gate_formats(&def.id, &formats),
                backend: gate_backend(&def.id, cuda).into(),
                tolerance: g.tolerance.unwrap_or(def.tolerance),
                timeout: Duration::from_secs(g.timeout_s.unwrap_or(pb.timeout_s)),
                required: g.required.unwrap_or(skip.is_none()),
                skip,
            })
        })
        .collect();
    if let Some((i, n)) = shard {
        items = items
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, it)| it)
            .collect();
    }
    items
}

/// Host name for evidence.
pub fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Current UTC time, RFC 3339 (seconds).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Settings of one execution.
pub struct ExecOptions {
    /// Parallel gates.
    pub jobs: usize,
    /// Stop starting gates after the first failure.
    pub fail_fast: bool,
    /// Set by Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
    /// Test-only hook.
    pub hook: Option<Hook>,
    /// Inference settings for inference gates.
    pub infer: Option<crate::gates::inference::InferSettings>,
    /// Called after each record (progress).
    pub on_done: Box<dyn Fn(&Evidence) + Send + Sync>,
}

fn record(
    item: &PlanItem,
    outcome: Outcome,
    reason: String,
    metrics: Map<String, serde_json::Value>,
    took: Duration,
    host: &str,
) -> Evidence {
    let def = lookup(&item.gate_id);
    let mut metadata = Map::new();
    metadata.insert("tolerance".into(), json!(item.tolerance));
    metadata.insert("required".into(), json!(item.required));
    metadata.insert("timeout_s".into(), json!(item.timeout.as_secs()));
    Evidence {
        id: format!("{}/{}", item.gate_id, item.scenario),
        gate_id: item.gate_id.clone(),
        scenario: item.scenario.clone(),
        format: item.format.clone(),
        backend: item.backend.clone(),
        category: def.map(|d| d.category.clone()).unwrap_or_default(),
        severity: def.map(|d| d.severity.clone()).unwrap_or_default(),
        outcome,
        reason,
        metrics,
        duration_ms: took.as_millis() as u64,
        output: String::new(),
        stderr: None,
        exit_code: None,
        timestamp: now_utc(),
        host: host.to_string(),
        metadata,
    }
}

/// Runs one gate in its own thread, waiting at most its time limit.
fn run_one(
    item: &PlanItem,
    art: &Arc<Artifacts>,
    formats: &Arc<Vec<gates::Fmt>>,
    infer: Option<&crate::gates::inference::InferSettings>,
    hook: Option<&Hook>,
    interrupted: &AtomicBool,
    host: &str,
) -> Evidence {
    if let Some(why) = &item.skip {
        return record(
            item,
            Outcome::Skipped,
            why.clone(),
            Map::new(),
            Duration::ZERO,
            host,
        );
    }
    let (tx, rx) = mpsc::channel::<Result<Option<Result<Judgement, String>>, String>>();
    let (art2, formats2, it, hook, infer) = (
        Arc::clone(art),
        Arc::clone(formats),
        item.clone(),
        hook.cloned(),
        infer.cloned(),
    );
    let t0 = Instant::now();
    let spawned = std::thread::Builder::new()
        .name(format!("gate {}", item.gate_id))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let slowdown = match &hook {
                    Some(h) if h.gate == it.gate_id => h.apply(),
                    _ => 1.0,
                };
                let ctx = GateCtx {
                    art: &art2,
                    gate_id: &it.gate_id,
                    tolerance: it.tolerance,
                    formats: &formats2,
                    infer: infer.as_ref(),
                    slowdown,
                };
                gates::run(&ctx)
            }));
            let _ = tx.send(r.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            }));
        });
    if let Err(e) = spawned {
        return record(
            item,
            Outcome::Crashed,
            format!("could not start the gate thread: {e}"),
            Map::new(),
            Duration::ZERO,
            host,
        );
    }
    let waited = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) if t0.elapsed() < item.timeout => {
                if interrupted.load(Ordering::SeqCst) {
                    let took = t0.elapsed();
                    return record(
                        item,
                        Outcome::Skipped,
                        "interrupted while running (Ctrl-C)".into(),
                        json_ms(took),
                        took,
                        host,
                    );
                }
            }
            other => break other,
        }
    };
    match waited {
        Ok(Ok(Some(Ok(j)))) => {
            let mut e = record(item, j.outcome, j.reason, j.metrics, t0.elapsed(), host);
            e.output = j.output;
            e
        }
        Ok(Ok(Some(Err(why)))) => {
            let mut e = record(
                item,
                Outcome::Crashed,
                format!("could not judge: {why}"),
                Map::new(),
                t0.elapsed(),
                host,
            );
            e.stderr = Some(why);
            e
        }
        Ok(Ok(None)) => record(
            item,
            Outcome::Skipped,
            "no implementation of this gate in this build".into(),
            Map::new(),
            t0.elapsed(),
            host,
        ),
        Ok(Err(panic)) => {
            let mut e = record(
                item,
                Outcome::Crashed,
                format!("the gate panicked: {panic}"),
                Map::new(),
                t0.elapsed(),
                host,
            );
            e.stderr = Some(panic);
            e
        }
        Err(_) => {
            let took = t0.elapsed();
            record(
                item,
                Outcome::Timeout,
                format!(
                    "no verdict after {:.1}s (limit {}s)",
                    took.as_secs_f64(),
                    item.timeout.as_secs()
                ),
                json_ms(took),
                took,
                host,
            )
        }
    }
}

fn json_ms(d: Duration) -> Map<String, serde_json::Value> {
    let mut m = Map::new();
    m.insert("elapsed_ms".into(), json!(d.as_millis() as u64));
    m
}

/// Runs `items` over `art` with `opts.jobs` workers; evidence in plan order.
pub fn execute(
    items: &[PlanItem],
    art: Arc<Artifacts>,
    formats: Vec<gates::Fmt>,
    opts: &ExecOptions,
) -> Vec<Evidence> {
    let host = host();
    let formats = Arc::new(formats);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Evidence>>> = Mutex::new(vec![None; items.len()]);
    let failed = AtomicBool::new(false);
    // F-PERF gates time work against a reference: they run last, alone, so no other gate
    // competes for the cores or the disk while they measure.
    let exclusive = |it: &PlanItem| it.gate_id.starts_with("F-PERF");
    let order: Vec<usize> = (0..items.len())
        .filter(|&i| !exclusive(&items[i]))
        .chain((0..items.len()).filter(|&i| exclusive(&items[i])))
        .collect();
    let n_shared = order.iter().filter(|&&i| !exclusive(&items[i])).count();
    let work = |k: usize| {
        let i = order[k];
        let item = &items[i];
        let e = if opts.interrupted.load(Ordering::SeqCst) {
            record(
                item,
                Outcome::Skipped,
                "interrupted before it started (Ctrl-C)".into(),
                Map::new(),
                Duration::ZERO,
                &host,
            )
        } else if opts.fail_fast && failed.load(Ordering::SeqCst) {
            record(
                item,
                Outcome::Skipped,
                "not started: --fail-fast after an earlier failure".into(),
                Map::new(),
                Duration::ZERO,
                &host,
            )
        } else {
            run_one(
                item,
                &art,
                &formats,
                opts.infer.as_ref(),
                opts.hook.as_ref(),
                &opts.interrupted,
                &host,
            )
        };
        if e.outcome.fails() {
            failed.store(true, Ordering::SeqCst);
        }
        (opts.on_done)(&e);
        results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(e);
    };
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                let k = {
                    let mut n = next
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let k = *n;
                    *n += 1;
                    k
                };
                if k >= n_shared {
                    break;
                }
                work(k);
            });
        }
    });
    for k in n_shared..order.len() {
        work(k);
    }
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .zip(items)
        .map(|(e, item)| {
            e.unwrap_or_else(|| {
                record(
                    item,
                    Outcome::Skipped,
                    "interrupted".into(),
                    Map::new(),
                    Duration::ZERO,
                    &host,
                )
            })
        })
        .collect()
}

/// Writes `bytes` to `path` atomically (temp file beside it, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = crate::formats::temp_file_beside(path)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod gate_fields {
    use super::*;

    #[test]
    fn conversion_pairs_name_their_direction_and_file_gates_no_backend() {
        let all = ["gguf", "apr", "safetensors"];
        assert_eq!(gate_formats("F-CONV-G-A", &all), "gguf->apr");
        assert_eq!(gate_formats("F-CONV-S-G", &all), "safetensors->gguf");
        assert_eq!(gate_formats("F-CONV-G-HF", &all), "gguf->hf");
        assert_eq!(gate_formats("F-CONV-RT-001", &all), "gguf,apr,safetensors");
        assert_eq!(gate_formats("F-APR-FORMAT-002", &all), "apr");
        assert_eq!(gate_formats("F-EDGE-006", &all), "gguf,apr,safetensors");
        assert_eq!(gate_backend("F-CONV-G-A", false), "-");
        assert_eq!(gate_backend("F-GOLDEN-RULE-001", false), "cpu");
        assert_eq!(gate_backend("F-GOLDEN-RULE-002", false), "-");
        assert_eq!(gate_backend("F-QUANT-GPU-001", true), "cuda");
    }
}
