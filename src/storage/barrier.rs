//! The durability barrier: a reply is released only once the writes before it are on disk.
//!
//! sled's `Db::flush()` writes its buffers and calls `sync_file_range`, which is not an
//! fsync; measured here, acknowledging before a flush lost thousands of writes over a few
//! `kill -9`s. So a durable point is `flush()` **plus** `fdatasync` of sled's log file.
//!
//! How it works, step by step:
//!
//! 1. A writer applies its write to sled, then takes a *ticket* ([`Barrier::ticket`]): a
//!    number from a global counter, taken strictly after the write is in sled's log.
//! 2. It hands its reply to [`Barrier::on_durable`] together with the ticket and goes on
//!    with its next message; it never waits for the disk itself.
//! 3. One flusher thread loops: read the ticket counter (`target`), flush + fdatasync,
//!    then mark every ticket `<= target` durable and release those replies. Because sled's
//!    log is sequential, a flush that *started* after a write covers it and every write
//!    before it. All replies that arrived while a flush ran share the next one (group
//!    commit), and writers keep working while it runs (pipelining).
//! 4. If a flush or fsync fails, the barrier is *failed* for good, as PostgreSQL treats a
//!    failed fsync: no further reply is released, every waiter gets an error, and
//!    [`Barrier::failed`] resolves so that the server can exit non-zero.
//!
//! In [`Durability::Relaxed`] mode replies are released at once and sled's periodic flush
//! is the only flush: acknowledged writes may be lost in a crash (benchmarks and demos).

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::StorageError;

/// How acknowledged writes are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every acknowledged write has been flushed and fsynced (group-committed).
    #[default]
    Strict,
    /// Replies do not wait for the disk; sled flushes periodically. A crash may lose
    /// acknowledged writes. For benchmarks and demos only.
    Relaxed,
}

type Waiter = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Counters describing the barrier's work, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct BarrierStats {
    /// Flush + fsync rounds completed.
    pub flushes: u64,
    /// Replies released by those rounds (so `released / flushes` is the mean batch size).
    pub released: u64,
}

struct Pending {
    waiters: Vec<(u64, Waiter)>,
    shutdown: bool,
}

struct Inner {
    mode: Durability,
    /// Tickets handed out so far; a ticket is taken after its write reached sled.
    issued: AtomicU64,
    /// Every ticket up to this one is durable.
    durable: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<StorageError>>,
    pending: Mutex<Pending>,
    wake: Condvar,
    failed_tx: tokio::sync::watch::Sender<bool>,
    flushes: AtomicU64,
    released: AtomicU64,
}

/// Shared handle to the barrier; cheap to clone.
#[derive(Clone)]
pub struct Barrier {
    inner: Arc<Inner>,
}

/// Something that makes every write applied so far durable: the store's flush + fdatasync,
/// or a stand-in in tests.
pub(crate) trait Sync: Send + std::marker::Sync + 'static {
    fn sync(&self) -> Result<(), StorageError>;
}

/// What the flusher thread needs to make the store durable.
pub(crate) struct SyncTarget {
    pub db: sled::Db,
    /// sled's log file (`<dir>/db`), opened only to fdatasync it.
    pub log: File,
}

impl Sync for SyncTarget {
    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(|e| match e {
            sled::Error::Io(io) => StorageError::from_sync("flush", io),
            other => StorageError::Durability {
                step: "flush",
                source: Arc::new(other),
            },
        })?;
        self.log
            .sync_data()
            .map_err(|e| StorageError::from_sync("fdatasync", e))
    }
}

impl Barrier {
    /// Starts the barrier (and, in strict mode, its flusher thread).
    pub(crate) fn start(
        mode: Durability,
        target: Arc<dyn Sync>,
    ) -> (Barrier, Option<JoinHandle<()>>) {
        let (failed_tx, _) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            mode,
            issued: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            pending: Mutex::new(Pending {
                waiters: Vec::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            failed_tx,
            flushes: AtomicU64::new(0),
            released: AtomicU64::new(0),
        });
        let barrier = Barrier { inner };
        let thread = (mode == Durability::Strict).then(|| {
            let b = barrier.clone();
            std::thread::Builder::new()
                .name("emporium-flusher".into())
                .spawn(move || b.flusher_loop(&*target))
                .expect("spawning the flusher thread")
        });
        (barrier, thread)
    }

    /// The durability mode.
    pub fn mode(&self) -> Durability {
        self.inner.mode
    }

    /// Takes a ticket for a write that has just been applied to sled.
    pub fn ticket(&self) -> u64 {
        self.inner.issued.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The newest ticket handed out: waiting for it covers every write applied so far.
    pub fn current(&self) -> u64 {
        self.inner.issued.load(Ordering::Acquire)
    }

    /// Runs `f` once every write up to `ticket` is durable (at once if it already is, or
    /// in relaxed mode). `f` runs on the flusher thread, so it must be quick: send a
    /// reply, nothing more.
    pub fn on_durable(
        &self,
        ticket: u64,
        f: impl FnOnce(Result<(), StorageError>) + Send + 'static,
    ) {
        // What was durable before a failure stays durable: reads of it keep working.
        if self.inner.durable.load(Ordering::Acquire) >= ticket {
            return f(Ok(()));
        }
        if let Some(err) = self.failure() {
            return f(Err(err));
        }
        if self.inner.mode == Durability::Relaxed {
            return f(Ok(()));
        }
        let mut p = self.inner.pending.lock().expect("barrier lock");
        // Re-check under the lock: the flusher may have finished in between.
        if self.inner.durable.load(Ordering::Acquire) >= ticket {
            drop(p);
            return f(Ok(()));
        }
        if p.shutdown {
            drop(p);
            return f(Err(StorageError::Closed));
        }
        let was_idle = p.waiters.is_empty();
        p.waiters.push((ticket, Box::new(f)));
        drop(p);
        if was_idle {
            self.inner.wake.notify_one();
        }
    }

    /// Waits until every write up to `ticket` is durable.
    pub async fn wait(&self, ticket: u64) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.on_durable(ticket, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Blocks the calling (non-async) thread until every write up to `ticket` is durable.
    pub fn wait_blocking(&self, ticket: u64) -> Result<(), StorageError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.on_durable(ticket, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(StorageError::Closed))
    }

    /// The reason the barrier failed, if it did.
    pub fn failure(&self) -> Option<StorageError> {
        if !self.inner.failed.load(Ordering::Acquire) {
            return None;
        }
        let failure = self.inner.failure.lock().expect("failure lock").clone();
        Some(failure.unwrap_or_else(|| {
            StorageError::from_sync("sync", std::io::Error::other("the barrier failed"))
        }))
    }

    /// `Ok` unless the barrier has failed: after a failed flush (a full disk, an I/O
    /// error) the store is read-only — a write could never be acknowledged, so it is not
    /// applied either, and readers never see state that a restart would take back. Every
    /// write path of the store checks it.
    pub fn writable(&self) -> Result<(), StorageError> {
        self.failure().map_or(Ok(()), Err)
    }

    /// Resolves if the barrier ever fails (a flush or fsync error). From then on the store
    /// refuses writes; the server keeps serving reads and exits non-zero when stopped.
    pub async fn failed(&self) {
        let mut rx = self.inner.failed_tx.subscribe();
        let _ = rx.wait_for(|f| *f).await;
    }

    /// Flush and fsync counters.
    pub fn stats(&self) -> BarrierStats {
        BarrierStats {
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            released: self.inner.released.load(Ordering::Relaxed),
        }
    }

    /// Asks the flusher to finish the waiters it has and stop.
    pub(crate) fn shutdown(&self) {
        self.inner.pending.lock().expect("barrier lock").shutdown = true;
        self.inner.wake.notify_one();
    }

    /// Fails the barrier for good: every waiter gets an error, nothing more is released,
    /// and [`Barrier::failed`] resolves. Used when a flush fails, and when the store finds
    /// itself in a state it cannot vouch for (a multi-key write that failed half-way).
    pub(crate) fn fail(&self, reason: StorageError) {
        let inner = &self.inner;
        tracing::error!(
            error = %reason,
            "durability barrier failed: no further write will be acknowledged"
        );
        *inner.failure.lock().expect("failure lock") = Some(reason.clone());
        inner.failed.store(true, Ordering::Release);
        let waiters = {
            let mut p = inner.pending.lock().expect("barrier lock");
            p.shutdown = true;
            std::mem::take(&mut p.waiters)
        };
        inner.wake.notify_one();
        for (_, f) in waiters {
            f(Err(reason.clone()));
        }
        inner.failed_tx.send_replace(true);
    }

    fn flusher_loop(&self, target: &dyn Sync) {
        let inner = &self.inner;
        loop {
            {
                let mut p = inner.pending.lock().expect("barrier lock");
                while p.waiters.is_empty() && !p.shutdown {
                    p = inner.wake.wait(p).expect("barrier lock");
                }
                if p.shutdown && p.waiters.is_empty() {
                    return;
                }
            }
            // Every ticket up to `upto` was taken after its write reached sled, so the
            // flush that starts now covers all of them.
            let upto = inner.issued.load(Ordering::Acquire);
            let started = std::time::Instant::now();
            let result = target.sync();
            metrics::histogram!("emporium_barrier_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            let mut p = inner.pending.lock().expect("barrier lock");
            match result {
                Ok(()) => {
                    inner.durable.fetch_max(upto, Ordering::AcqRel);
                    let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut p.waiters)
                        .into_iter()
                        .partition(|(t, _)| *t <= upto);
                    p.waiters = waiting;
                    drop(p);
                    inner.flushes.fetch_add(1, Ordering::Relaxed);
                    inner
                        .released
                        .fetch_add(ready.len() as u64, Ordering::Relaxed);
                    metrics::histogram!("emporium_barrier_batch_size").record(ready.len() as f64);
                    for (_, f) in ready {
                        f(Ok(()));
                    }
                }
                Err(e) => {
                    drop(p);
                    self.fail(e);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Succeeds `ok_rounds` times, then fails.
    struct Flaky {
        ok_rounds: usize,
        calls: AtomicUsize,
    }

    impl Sync for Flaky {
        fn sync(&self) -> Result<(), StorageError> {
            std::thread::sleep(std::time::Duration::from_millis(2));
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.ok_rounds {
                Ok(())
            } else {
                Err(StorageError::from_sync(
                    "fsync",
                    std::io::Error::from_raw_os_error(5),
                ))
            }
        }
    }

    #[tokio::test]
    async fn many_waiters_share_one_flush() {
        let target = Arc::new(Flaky {
            ok_rounds: usize::MAX,
            calls: AtomicUsize::new(0),
        });
        let (b, _t) = Barrier::start(Durability::Strict, target.clone());
        let tickets: Vec<u64> = (0..100).map(|_| b.ticket()).collect();
        let waits: Vec<_> = tickets
            .into_iter()
            .map(|t| {
                let b = b.clone();
                tokio::spawn(async move { b.wait(t).await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let stats = b.stats();
        assert_eq!(stats.released, 100);
        assert!(
            stats.flushes < 100,
            "{} flushes for 100 waiters: no group commit",
            stats.flushes
        );
        b.shutdown();
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_waiter_and_every_later_write_but_keeps_what_was_durable() {
        let target = Arc::new(Flaky {
            ok_rounds: 1,
            calls: AtomicUsize::new(0),
        });
        let (b, _t) = Barrier::start(Durability::Strict, target);
        b.wait(b.ticket()).await.unwrap();
        // The next round fails: its waiter gets an error, never a success.
        assert!(matches!(
            b.wait(b.ticket()).await,
            Err(StorageError::Durability { .. })
        ));
        tokio::time::timeout(std::time::Duration::from_secs(5), b.failed())
            .await
            .expect("failed() resolves");
        // Nothing new is acknowledged any more; what was durable before stays durable
        // (reads of it keep working in the read-only mode that follows).
        assert!(matches!(
            b.wait(b.ticket()).await,
            Err(StorageError::Durability { .. })
        ));
        b.wait(1).await.unwrap();
        assert!(b.failure().is_some());
    }

    #[tokio::test]
    async fn relaxed_mode_releases_at_once_without_syncing() {
        let target = Arc::new(Flaky {
            ok_rounds: 0,
            calls: AtomicUsize::new(0),
        });
        let (b, t) = Barrier::start(Durability::Relaxed, target.clone());
        assert!(t.is_none(), "no flusher thread in relaxed mode");
        b.wait(b.ticket()).await.unwrap();
        assert_eq!(target.calls.load(Ordering::SeqCst), 0);
    }
}
