//! The files a run produces and shares: the source model and every conversion route, each
//! computed once (memoized, thread-safe) in the run's private temp dir. Nothing is ever
//! written beside the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Fmt;
use crate::convert::fingerprint::{fingerprint, TensorPrint};
use crate::convert::{convert, DtypeChoice, Target};
use crate::model::Model;

type Slot<T> = Arc<OnceLock<Result<T, String>>>;

/// Shared run artifacts.
pub struct Artifacts {
    dir: PathBuf,
    /// The model under qualification (a GGUF file).
    pub source: PathBuf,
    /// sha256 of the source file (hashed once by the run).
    pub source_sha256: String,
    routes: Mutex<HashMap<String, Slot<PathBuf>>>,
    models: Mutex<HashMap<PathBuf, Slot<Arc<Model>>>>,
    prints: Mutex<HashMap<PathBuf, Slot<Arc<Vec<TensorPrint>>>>>,
    memo: Mutex<HashMap<String, Slot<Arc<dyn std::any::Any + Send + Sync>>>>,
    fresh: std::sync::atomic::AtomicUsize,
}

fn target(f: Fmt) -> Target {
    match f {
        Fmt::Gguf => Target::Gguf,
        Fmt::Apr => Target::Apr,
        Fmt::Safetensors => Target::Safetensors,
    }
}

fn slot<K: std::hash::Hash + Eq + Clone, T>(map: &Mutex<HashMap<K, Slot<T>>>, key: &K) -> Slot<T> {
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(key.clone()).or_default().clone()
}

impl Artifacts {
    /// Artifacts for `source` (whose sha256 the caller computed), produced under `dir`.
    pub fn new(dir: &Path, source: PathBuf, source_sha256: String) -> Self {
        Self {
            dir: dir.to_path_buf(),
            source,
            source_sha256,
            routes: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            prints: Mutex::new(HashMap::new()),
            memo: Mutex::new(HashMap::new()),
            fresh: Default::default(),
        }
    }

    /// The run's temp dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file reached by converting the source along `route` (`route[0]` is the source's
    /// format, GGUF), each hop computed once and shared.
    pub fn route(&self, route: &[Fmt]) -> Result<PathBuf, String> {
        match route {
            [] => Err("empty route".into()),
            [Fmt::Gguf] => Ok(self.source.clone()),
            [first, ..] if *first != Fmt::Gguf => {
                Err(format!("routes start at the GGUF source, not {first:?}"))
            }
            [prefix @ .., last] => {
                let key: Vec<&str> = route.iter().map(|f| f.ext()).collect();
                let key = key.join("-");
                let s = slot(&self.routes, &key);
                s.get_or_init(|| {
                    let input = self.route(prefix)?;
                    let out = self.dir.join(format!("route-{key}.{}", last.ext()));
                    convert(&input, &out, target(*last), DtypeChoice::Keep)
                        .map_err(|e| e.to_string())?;
                    crate::harness::hooks::after_conversion(&out, *last)?;
                    Ok(out)
                })
                .clone()
            }
        }
    }

    /// A new, unshared conversion of `input` to `to` (for idempotence, stability and timing),
    /// with its wall time.
    pub fn convert_fresh(
        &self,
        input: &Path,
        to: Fmt,
        dtype: DtypeChoice,
    ) -> Result<(PathBuf, Duration), String> {
        let n = self
            .fresh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.dir.join(format!("fresh-{n}.{}", to.ext()));
        let t0 = Instant::now();
        convert(input, &out, target(to), dtype).map_err(|e| e.to_string())?;
        let took = t0.elapsed();
        crate::harness::hooks::after_conversion(&out, to)?;
        Ok((out, took))
    }

    /// A path in the run dir for `name`.
    ///
    /// The path depends only on `name` (never on scheduling), so evidence that names it is
    /// identical between runs; each caller picks a name no other gate uses.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(format!("scratch-{name}"))
    }

    /// A scratch directory for a large throwaway output (`need` bytes): in RAM (`/dev/shm`)
    /// when the tmpfs is there and memory has room for twice `need`, else [`Self::scratch`].
    /// Writing gigabytes to disk only to delete them costs writeback throttling, not work the
    /// gate judges. The directory is removed when the guard drops.
    pub fn ram_scratch(&self, name: &str, need: u64) -> ScratchDir {
        let shm = Path::new("/dev/shm");
        let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        let in_ram = shm.is_dir() && avail.is_some_and(|a| a / 2 >= need);
        let path = if in_ram {
            let run = self.dir.file_name().unwrap_or_default().to_string_lossy();
            shm.join(format!("{run}-{name}"))
        } else {
            self.scratch(name)
        };
        ScratchDir(path)
    }

    /// The model view of `path`, opened once and shared.
    pub fn model(&self, path: &Path) -> Result<Arc<Model>, String> {
        let s = slot(&self.models, &path.to_path_buf());
        s.get_or_init(|| Model::open(path).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }

    /// The model reached by `route`.
    pub fn route_model(&self, route: &[Fmt]) -> Result<Arc<Model>, String> {
        self.model(&self.route(route)?)
    }

    /// Per-tensor fingerprints of the file at `path`, computed once and shared.
    pub fn fingerprints(&self, path: &Path) -> Result<Arc<Vec<TensorPrint>>, String> {
        let s = slot(&self.prints, &path.to_path_buf());
        s.get_or_init(|| {
            let m = self.model(path)?;
            fingerprint(&m).map(Arc::new).map_err(|e| e.to_string())
        })
        .clone()
    }

    /// A value computed once per `key` and shared (e.g. a generation many gates compare).
    pub fn memo<T: Send + Sync + 'static>(
        &self,
        key: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        let s = slot(&self.memo, &key.to_string());
        let any = s
            .get_or_init(|| f().map(|v| Arc::new(v) as Arc<dyn std::any::Any + Send + Sync>))
            .clone()?;
        any.downcast::<T>()
            .map_err(|_| format!("memo {key}: stored under another type"))
    }
}

/// A scratch directory removed (with its contents) on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
