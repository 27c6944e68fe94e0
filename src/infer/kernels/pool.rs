//! A small persistent thread pool for the forward pass.
//!
//! [`Pool::chunks`] calls `f(c)` exactly once for every chunk `c` of a job; the caller's thread
//! and the workers claim chunks from a shared counter until none are left. Which thread takes
//! which chunk varies from run to run, so callers make every chunk's result independent of
//! that (each kernel chunk is a set of output rows computed in the contract's fixed order):
//! results never depend on the number of threads or on scheduling.
//!
//! A worker that arrives late (descheduled by the OS, or parked) skips a job the other
//! threads have already finished, so a loaded machine slows a step down but never makes it
//! wait for a thread that is not running. Idle workers spin briefly between jobs (a decode
//! step dispatches ~150 short jobs; waking through the OS each time would cost more than the
//! work), then park.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);

/// `state` layout: job epoch (31 bits) << 32 | CLOSED | number of workers that joined.
const CLOSED: u64 = 1 << 31;
const COUNT: u64 = CLOSED - 1;
const EPOCH_MASK: usize = 0x7FFF_FFFF;

type Job = dyn Fn() + Sync;

struct Shared {
    n_threads: usize,
    /// Epoch of the current job; workers look for a value they have not seen.
    epoch: AtomicUsize,
    /// Epoch, closed flag and joined count of the current job (see [`CLOSED`]).
    state: AtomicU64,
    /// Joined workers that have finished the current job.
    done: AtomicU64,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// Per worker: parked (or about to park), so the dispatcher must unpark it.
    sleeping: Vec<AtomicBool>,
    /// The current job; written only by the dispatcher while no worker can read it.
    job: UnsafeCell<Option<*const Job>>,
}

// SAFETY: `job` is written by the dispatcher only while no worker is joined to a job (before a
// job opens, and after it is closed and every joined worker is done); a worker reads it only
// after joining the open job (an acquire CAS on `state`, which the dispatcher released after
// writing `job`). The pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A fixed set of worker threads.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
    /// Serializes jobs submitted from different threads.
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
    /// A pool of `n_threads` (at least 1; the calling thread counts as one). If the OS refuses
    /// a thread, the pool has fewer (results do not depend on it).
    pub fn new(n_threads: usize) -> Self {
        let wanted = n_threads.max(1);
        let shared = |n: usize| {
            Arc::new(Shared {
                n_threads: n,
                epoch: AtomicUsize::new(0),
                state: AtomicU64::new(CLOSED),
                done: AtomicU64::new(0),
                shutdown: AtomicBool::new(false),
                panicked: AtomicBool::new(false),
                sleeping: (1..n).map(|_| AtomicBool::new(false)).collect(),
                job: UnsafeCell::new(None),
            })
        };
        let mut n = wanted;
        loop {
            let s = shared(n);
            let mut handles = Vec::with_capacity(n - 1);
            for i in 1..n {
                let s2 = Arc::clone(&s);
                match std::thread::Builder::new()
                    .name(format!("apr-qa-infer-{i}"))
                    .spawn(move || worker(&s2, i))
                {
                    Ok(h) => handles.push(h),
                    Err(_) => break,
                }
            }
            if handles.len() + 1 == n || n == 1 {
                let threads = handles.iter().map(|h| h.thread().clone()).collect();
                return Self {
                    shared: s,
                    threads,
                    handles,
                    dispatch: Mutex::new(()),
                };
            }
            // Fewer threads than asked: stop these and build a pool of the size we got.
            s.shutdown.store(true, Ordering::SeqCst);
            for h in &handles {
                h.thread().unpark();
            }
            n = handles.len() + 1;
            for h in handles {
                let _ = h.join();
            }
        }
    }

    /// Number of threads, the caller included.
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Calls `f(c)` exactly once for each `c` in `0..n_chunks`, on the pool's threads (the
    /// caller's included); returns when all calls have returned. A panic is re-raised here.
    pub fn chunks(&self, n_chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_chunks == 0 {
            return;
        }
        let next = AtomicUsize::new(0);
        let claim = || loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                return;
            }
            f(c);
        };
        if self.shared.n_threads == 1 || n_chunks == 1 {
            claim();
        } else {
            self.run(&claim);
        }
    }

    /// Like [`Pool::chunks`], with per-thread scratch: each participating thread makes one
    /// `S` with `init` (on its first chunk) and passes it to every chunk it takes.
    pub fn chunks_with<S>(
        &self,
        n_chunks: usize,
        init: &(dyn Fn() -> S + Sync),
        f: &(dyn Fn(&mut S, usize) + Sync),
    ) {
        if n_chunks == 0 {
            return;
        }
        let next = AtomicUsize::new(0);
        let claim = || {
            let mut scratch: Option<S> = None;
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= n_chunks {
                    return;
                }
                let s = scratch.get_or_insert_with(init);
                f(s, c);
            }
        };
        if self.shared.n_threads == 1 || n_chunks == 1 {
            claim();
        } else {
            self.run(&claim);
        }
    }

    /// Runs `f` on the caller's thread and on every worker that joins before the caller has
    /// finished; returns when all of them have returned.
    fn run(&self, f: &(dyn Fn() + Sync)) {
        let _guard = self
            .dispatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &*self.shared;
        // SAFETY: no worker is joined to any job (the previous `run` waited for all joined
        // workers and closed its job; a worker can join only an open job). The pointer is erased
        // to 'static but dereferenced only by workers joined to this job, which we wait for
        // below before returning.
        unsafe {
            let ptr: *const Job = std::mem::transmute::<&(dyn Fn() + Sync), &'static Job>(f);
            *s.job.get() = Some(ptr);
        }
        let e = s.epoch.load(Ordering::Relaxed).wrapping_add(1) & EPOCH_MASK;
        s.done.store(0, Ordering::SeqCst);
        s.state.store((e as u64) << 32, Ordering::SeqCst);
        s.epoch.store(e, Ordering::SeqCst);
        for (flag, t) in s.sleeping.iter().zip(&self.threads) {
            if flag.swap(false, Ordering::SeqCst) {
                t.unpark();
            }
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let joined = s.state.fetch_or(CLOSED, Ordering::AcqRel) & COUNT;
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) != joined {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the job is closed and every joined worker is done with it.
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

/// Joins the open job of epoch `e`, if it is still open.
fn join(s: &Shared, e: usize) -> bool {
    let mut st = s.state.load(Ordering::Acquire);
    loop {
        if (st >> 32) as usize != e || st & CLOSED != 0 {
            return false;
        }
        match s
            .state
            .compare_exchange_weak(st, st + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(now) => st = now,
        }
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0usize;
    let flag = &s.sleeping[index - 1];
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        let e = loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            flag.store(true, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::SeqCst) {
                std::thread::park();
            }
            flag.store(false, Ordering::SeqCst);
        };
        seen = e;
        if !join(s, e) {
            continue;
        }
        // SAFETY: joined to the open job, whose pointer the dispatcher set before opening it and
        // keeps alive until this worker reports done.
        let job = unsafe { *s.job.get() };
        if let Some(job) = job {
            // SAFETY: see above.
            let f = unsafe { &*job };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

/// Number of chunks of `align`-multiple size to cut `len` items into for `n_threads`: about
/// four per thread, so that a slow or late thread leaves most of its share to the others
/// (more chunks cost streaming efficiency at chunk starts).
pub fn n_chunks(len: usize, n_threads: usize, align: usize) -> usize {
    let align = align.max(1);
    let units = len.div_ceil(align);
    units.min(4 * n_threads.max(1)).max(1)
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
                    assert!(r.start.is_multiple_of(4) || r.is_empty());
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn every_chunk_runs_exactly_once() {
        for n in [1, 2, 3] {
            let pool = Pool::new(n);
            for n_chunks in [1usize, 2, 7, 64] {
                let hits: Vec<AtomicU64> = (0..n_chunks).map(|_| AtomicU64::new(0)).collect();
                for _ in 0..500 {
                    pool.chunks(n_chunks, &|c| {
                        hits[c].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 500),
                    "{n} threads"
                );
            }
        }
    }

    #[test]
    fn scratch_is_per_thread() {
        let pool = Pool::new(3);
        let made = AtomicU64::new(0);
        let sum = AtomicU64::new(0);
        pool.chunks_with(
            100,
            &|| {
                made.fetch_add(1, Ordering::Relaxed);
                0u64
            },
            &|s: &mut u64, c| {
                *s += 1;
                sum.fetch_add(c as u64, Ordering::Relaxed);
            },
        );
        assert_eq!(sum.load(Ordering::Relaxed), (0..100).sum::<u64>());
        assert!((1..=3).contains(&made.load(Ordering::Relaxed)));
    }

    #[test]
    fn worker_panic_is_reraised() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.chunks(64, &|c| assert_ne!(c, 37, "boom"));
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let hits = AtomicU64::new(0);
        pool.chunks(10, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 10);
    }
}
