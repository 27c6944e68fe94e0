//! One run of the kill matrix: `apr-qa run` as a child process, its output in `run.log`, killed
//! past the run timeout (or the interrupt grace), its evidence read back and checked to be the
//! run's own (`run.inject`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{gate_results, MatrixOptions, RunRecord, INTERRUPT_GRACE};
use crate::evidence::EvidenceFile;
use crate::fault::Fault;

/// The last `n` bytes of a file, as text (for error messages).
pub(super) fn tail(path: &Path, n: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(n);
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default())
        .trim()
        .to_string()
}

/// Whether `f` is the evidence of a run with `inject` (a clean run's evidence may name only a
/// test hook, which `run.inject` records as `test-hook …`).
fn records_inject(f: &EvidenceFile, inject: Option<&str>) -> bool {
    match (f.run.inject.as_deref(), inject) {
        (got, Some(want)) => got == Some(want),
        (None, None) => true,
        (Some(got), None) => got.starts_with("test-hook"),
    }
}

/// Runs `apr-qa run` once as a child and reads its evidence.
pub(super) fn run_one(opts: &MatrixOptions, name: &str, inject: Option<Fault>) -> RunRecord {
    let t0 = Instant::now();
    let mut rec = RunRecord::new(name, inject);
    let dir = opts.out_dir.join(name);
    let log = dir.join("run.log");
    match spawn_and_wait(opts, &dir, &log, inject) {
        Ok(code) => rec.exit_code = code,
        Err(e) => rec.error = Some(e),
    }
    rec.duration_ms = t0.elapsed().as_millis() as u64;
    let ev = dir.join("evidence.json");
    match std::fs::read_to_string(&ev) {
        Ok(text) => match serde_json::from_str::<EvidenceFile>(&text) {
            Ok(f) if records_inject(&f, rec.inject.as_deref()) => {
                rec.set_results(gate_results(&f));
                rec.evidence = Some(format!("{name}/evidence.json"));
            }
            Ok(f) => {
                rec.error = Some(format!(
                    "{} records inject {:?}, expected {:?}",
                    ev.display(),
                    f.run.inject,
                    rec.inject
                ))
            }
            Err(e) => rec.error = Some(format!("{}: {e}", ev.display())),
        },
        Err(_) if rec.error.is_none() => {
            rec.error = Some(format!(
                "no evidence written (exit {}); {}: {}",
                rec.exit_code
                    .map_or_else(|| "by signal".into(), |c| c.to_string()),
                log.display(),
                tail(&log, 600)
            ))
        }
        Err(_) => {}
    }
    rec
}

/// Spawns the child with its output in `log`; returns its exit code (None: signal).
fn spawn_and_wait(
    opts: &MatrixOptions,
    dir: &Path,
    log: &Path,
    inject: Option<Fault>,
) -> Result<Option<i32>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match std::fs::remove_file(dir.join("evidence.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "removing stale {}/evidence.json: {e}",
                dir.display()
            ))
        }
        _ => {}
    }
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("run")
        .arg("--no-progress")
        .arg(&opts.playbook)
        .arg("-o")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(m) = &opts.model {
        cmd.arg("--model").arg(m);
    }
    if let Some(f) = inject {
        cmd.arg("--inject").arg(f.name());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", opts.exe.display()))?;
    let t0 = Instant::now();
    let mut interrupted_at: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code()),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the run: {e}")),
        }
        if interrupted_at.is_none() && opts.interrupted.load(Ordering::SeqCst) {
            interrupted_at = Some(Instant::now());
        }
        let over = t0.elapsed() > opts.run_timeout;
        let grace_over = interrupted_at.is_some_and(|t| t.elapsed() > INTERRUPT_GRACE);
        if over || grace_over {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if over {
                format!(
                    "timed out after {} s (killed); {}: {}",
                    opts.run_timeout.as_secs(),
                    log.display(),
                    tail(log, 300)
                )
            } else {
                "interrupted (killed)".to_string()
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub(super) fn not_run(f: Fault) -> RunRecord {
    let mut r = RunRecord::new(f.name(), Some(f));
    r.error = Some("not run (interrupted)".into());
    r
}
