//! [`HashingLimiter`]: a bound on how many argon2 computations run at once, and on how many may wait.
//!
//! Owns the admission rule for CPU- and memory-heavy password work (each argon2id run takes 19 MiB and tens of
//! milliseconds of a core). Must not know what is hashed or why: the API decides that and maps
//! [`HashingBusy`] to "too many requests".
//!
//! Without a bound, every parallel login is one more blocking thread with its own 19 MiB, so a burst of logins
//! grows memory without limit and delays everything else. With it, at most `permits` runs proceed at once,
//! `queue` more wait their turn, and anything beyond is refused at once with a retry hint: a flood costs the
//! server a bounded amount of memory, and a refused caller knows to come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How long a refused caller is asked to wait before retrying.
pub const HASHING_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The limiter is saturated: `permits` runs in progress and `queue` waiting. Answer 429 with `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks in progress; retry in {} s", retry_after.as_secs())]
pub struct HashingBusy {
    /// When to try again.
    pub retry_after: Duration,
}

/// Errors of [`HashingLimiter::run`].
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// No slot now, and the queue is full.
    #[error(transparent)]
    Busy(#[from] HashingBusy),
    /// The blocking task panicked or was cancelled.
    #[error("password hashing task failed: {0}")]
    Task(String),
}

/// Admits at most `permits` concurrent hashing jobs and `queue` waiting ones. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct HashingLimiter {
    running: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    max_admitted: usize,
}

impl Default for HashingLimiter {
    /// [`HashingLimiter::for_this_machine`].
    fn default() -> Self {
        Self::for_this_machine()
    }
}

impl HashingLimiter {
    /// One running job per available core, and a queue of four per core: a short wait (a few hundred
    /// milliseconds at worst) rather than an immediate refusal for a small burst.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::new(cores, cores * 4)
    }

    /// At most `permits` (at least 1) jobs at once and `queue` waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        let permits = permits.max(1);
        Self {
            running: Arc::new(Semaphore::new(permits)),
            admitted: Arc::new(AtomicUsize::new(0)),
            max_admitted: permits + queue,
        }
    }

    /// Jobs that may run or wait at once.
    pub fn capacity(&self) -> usize {
        self.max_admitted
    }

    /// Runs `job` on a blocking thread once a slot is free; [`HashingError::Busy`] at once if the queue is full.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashingError> {
        let _admission = self.admit()?;
        let _permit = self.running.acquire().await.map_err(|e| HashingError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(job).await.map_err(|e| HashingError::Task(e.to_string()))
    }

    /// Takes a place (running or queued), or refuses when all are taken; the place is returned on drop, also
    /// when the caller's future is dropped while it waits.
    fn admit(&self) -> Result<Admission<'_>, HashingBusy> {
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_admitted).then_some(n + 1));
        match taken {
            Ok(_) => Ok(Admission(&self.admitted)),
            Err(_) => Err(HashingBusy { retry_after: HASHING_RETRY_AFTER }),
        }
    }
}

struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_running_and_queued_jobs_are_refused_at_once() {
        let limiter = HashingLimiter::new(1, 2);
        assert_eq!(limiter.capacity(), 3);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        let mut jobs = Vec::new();
        for _ in 0..3 {
            let (limiter, release_rx) = (limiter.clone(), Arc::clone(&release_rx));
            jobs.push(tokio::spawn(async move {
                limiter.run(move || release_rx.lock().map(|rx| rx.recv().is_ok()).unwrap_or(false)).await
            }));
        }
        // Wait until all three hold a place.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while limiter.admitted.load(Ordering::Acquire) < 3 {
            assert!(std::time::Instant::now() < deadline, "jobs did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = limiter.run(|| true).await.expect_err("saturated");
        assert!(matches!(refused, HashingError::Busy(HashingBusy { retry_after }) if retry_after.as_secs() == 1));
        assert_eq!(refused.to_string(), "too many password checks in progress; retry in 1 s");
        for _ in 0..3 {
            release_tx.send(()).expect("release");
        }
        for job in jobs {
            assert!(job.await.expect("join").expect("ran"));
        }
        assert_eq!(limiter.admitted.load(Ordering::Acquire), 0, "places are returned");
        assert!(limiter.run(|| true).await.expect("free again"));
    }

    #[tokio::test]
    async fn a_dropped_waiter_returns_its_place() {
        let limiter = HashingLimiter::new(1, 0);
        let (tx, rx) = mpsc::channel::<()>();
        let busy = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.run(move || rx.recv().is_ok()).await })
        };
        while limiter.admitted.load(Ordering::Acquire) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(limiter.run(|| ()).await.is_err());
        tx.send(()).expect("release");
        assert!(busy.await.expect("join").expect("ran"));
        assert!(limiter.run(|| 7).await.is_ok_and(|v| v == 7));
    }
}
