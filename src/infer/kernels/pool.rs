//! A small persistent thread pool for the forward pass: `run(f)` calls `f(i, n)` once on each
//! of `n` threads (the caller is thread 0) and returns when all have finished.
//!
//! Workers spin briefly between jobs (a forward pass dispatches a few hundred short jobs per
//! token, so waking through the OS each time would cost more than the work), then park. Work
//! partitioning is the caller's: every kernel here splits by output rows with [`split`], so
//! what a thread computes never depends on how many threads there are.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    n_threads: usize,
    /// Incremented once per job; workers run the job when they see a new value.
    epoch: AtomicUsize,
    /// Workers still running the current job.
    pending: AtomicUsize,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// Per worker: parked (or about to park), so the dispatcher must unpark it.
    sleeping: Vec<AtomicBool>,
    /// The current job; written only by the dispatcher while no worker reads it.
    job: UnsafeCell<Option<*const Job>>,
}

// SAFETY: `job` is written by the dispatcher only between jobs (after every worker has
// decremented `pending` for the previous one, and before `epoch` is bumped with SeqCst), and read
// by workers only after they observe the new `epoch`; the pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A fixed set of worker threads.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads.
    dispatch: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("n_threads", &self.shared.n_threads)
            .finish()
    }
}

impl Pool {
    /// A pool of `n_threads` (at least 1; the calling thread counts as one).
    pub fn new(n_threads: usize) -> Self {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            epoch: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            sleeping: (1..n_threads).map(|_| AtomicBool::new(false)).collect(),
            job: UnsafeCell::new(None),
        });
        let mut handles = Vec::with_capacity(n_threads - 1);
        for i in 1..n_threads {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name(format!("apr-qa-infer-{i}"))
                .spawn(move || worker(&s, i));
            match h {
                Ok(h) => handles.push(h),
                // Could not start a thread: shrink the pool (results do not depend on it).
                Err(_) => break,
            }
        }
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        if handles.len() + 1 != n_threads {
            // Rebuild with the threads we got.
            shared.shutdown.store(true, Ordering::SeqCst);
            for h in &handles {
                h.thread().unpark();
            }
            for h in handles {
                let _ = h.join();
            }
            return Self::new(n_threads - 1);
        }
        Self {
            shared,
            threads,
            handles,
            dispatch: Mutex::new(()),
        }
    }

    /// Number of threads, the caller included.
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Runs `f(i, n)` for i in 0..n on the pool's n threads; returns when all are done.
    /// A panic in any of them is re-raised here.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        let n = self.shared.n_threads;
        if n == 1 {
            f(0, 1);
            return;
        }
        let _guard = self
            .dispatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &*self.shared;
        // SAFETY: no worker is reading `job` (all finished the previous job: pending == 0 when
        // the previous `run` returned, and we hold the dispatch lock). The pointer is erased to
        // 'static but only dereferenced before this function returns, since we wait below for
        // every worker to finish.
        unsafe {
            let ptr: *const Job =
                std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), &'static Job>(f);
            *s.job.get() = Some(ptr);
        }
        s.pending.store(n - 1, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for (flag, t) in s.sleeping.iter().zip(&self.threads) {
            if flag.swap(false, Ordering::SeqCst) {
                t.unpark();
            }
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0, n)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every worker has finished with the job.
        unsafe {
            *s.job.get() = None;
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a worker thread of the inference pool panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for t in &self.threads {
            t.unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0usize;
    let flag = &s.sleeping[index - 1];
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins % 256 != 0 || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            flag.store(true, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::SeqCst) {
                std::thread::park();
            }
            flag.store(false, Ordering::SeqCst);
        }
        // SAFETY: the dispatcher set `job` before bumping `epoch` and keeps the closure alive
        // until `pending` reaches 0, which happens only after this call.
        let job = unsafe { *s.job.get() };
        if let Some(job) = job {
            // SAFETY: see above.
            let f = unsafe { &*job };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index, s.n_threads)))
                .is_err()
            {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

/// The `i`-th of `n` contiguous parts of `0..len`, with part boundaries on multiples of
/// `align` (the last part takes the rest).
pub fn split(len: usize, n: usize, i: usize, align: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let n = n.max(1);
    let start = (units * i / n * align).min(len);
    let end = (units * (i + 1) / n * align).min(len);
    start..end
}

/// A mutable slice that threads write at disjoint indices.
pub struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: writers promise disjoint indices (see `write`), so sharing the pointer is sound.
unsafe impl Sync for SharedOut<'_> {}
// SAFETY: as above.
unsafe impl Send for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    /// Wraps `out` for disjoint writes from several threads.
    pub fn new(out: &'a mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _life: std::marker::PhantomData,
        }
    }

    /// Length of the wrapped slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wrapped slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `v` at `i` (ignored when out of bounds).
    ///
    /// # Safety
    /// No other thread may read or write index `i` during the same pool job.
    #[inline]
    pub unsafe fn write(&self, i: usize, v: f32) {
        if i < self.len {
            // SAFETY: in bounds; exclusivity is the caller's promise.
            unsafe { *self.ptr.add(i) = v };
        }
    }

    /// A mutable view of `range` (clamped to the slice).
    ///
    /// # Safety
    /// No other thread may touch any index of `range` during the same pool job.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: std::ops::Range<usize>) -> &mut [f32] {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        // SAFETY: in bounds; exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn split_covers_range_once() {
        for len in [0, 1, 5, 64, 896, 151_936, 1001] {
            for n in 1..6 {
                let mut next = 0;
                for i in 0..n {
                    let r = split(len, n, i, 4);
                    assert_eq!(r.start, next, "len {len} n {n} i {i}");
                    assert!(r.start % 4 == 0 || r.is_empty());
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn run_calls_every_thread_once_per_job() {
        for n in [1, 2, 3] {
            let pool = Pool::new(n);
            let sum = AtomicU64::new(0);
            for _ in 0..1000 {
                pool.run(&|i, m| {
                    assert_eq!(m, n);
                    sum.fetch_add(1 << (8 * i), Ordering::Relaxed);
                });
            }
            let want: u64 = (0..n).map(|i| 1000u64 << (8 * i)).sum();
            assert_eq!(sum.load(Ordering::Relaxed), want);
        }
    }

    #[test]
    fn worker_panic_is_reraised() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(&|i, _| assert_ne!(i, 1, "boom"));
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let hits = AtomicU64::new(0);
        pool.run(&|_, _| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
