//! The engine's clock: every business time (cart TTL, reservation expiry, idempotency
//! retention, reminders, mail retries, event timestamps) is read from one [`Clock`] the
//! engine owns (`Config::clock`).
//!
//! In production it is the system clock. Tests use [`Clock::manual`]: time stands still
//! until the test moves it with [`Clock::advance`], and everything waiting on it through
//! [`Clock::sleep_until`] (entity timers, the mail sender) wakes at once. So a test of a
//! one-week cart TTL takes no longer than one of a one-second TTL, and neither sleeps.
//!
//! What is not business time stays on tokio's monotonic timers: passivation of idle
//! actors, call timeouts, retry backoff of the gateway and the dispatcher.
//!
//! Architecture invariant: `clock` uses no other module of this crate, so every layer,
//! `storage` included, may use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC (the same unit as `domain::Millis`).
type Millis = i64;

/// A source of the current time, shared by clones.
#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System,
    Manual {
        now: AtomicI64,
        moved: tokio::sync::watch::Sender<()>,
    },
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual { now, .. } => {
                write!(f, "Clock::Manual({})", now.load(Ordering::Acquire))
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

fn system_now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock that stands at `start` (ms since the epoch) until moved.
    pub fn manual(start: Millis) -> Self {
        Self(Arc::new(Source::Manual {
            now: AtomicI64::new(start),
            moved: tokio::sync::watch::Sender::new(()),
        }))
    }

    /// A manual clock that starts at the current wall-clock time (stored times look real).
    pub fn manual_from_now() -> Self {
        Self::manual(system_now())
    }

    /// The current time, ms since the Unix epoch.
    pub fn now(&self) -> Millis {
        match &*self.0 {
            Source::System => system_now(),
            Source::Manual { now, .. } => now.load(Ordering::Acquire),
        }
    }

    /// Whether this is a manual (test) clock.
    pub fn is_manual(&self) -> bool {
        matches!(&*self.0, Source::Manual { .. })
    }

    /// Moves a manual clock forward by `by` and wakes everything waiting on it.
    ///
    /// # Panics
    /// On the system clock: a test that means to move time must own a manual clock.
    pub fn advance(&self, by: Duration) {
        match &*self.0 {
            Source::System => panic!("Clock::advance on the system clock"),
            Source::Manual { now, moved } => {
                now.fetch_add(by.as_millis() as Millis, Ordering::AcqRel);
                moved.send_replace(());
            }
        }
    }

    /// Returns once the clock reads `at` or later. On the system clock this is a timer;
    /// on a manual clock it wakes on every [`Clock::advance`] and checks.
    pub async fn sleep_until(&self, at: Millis) {
        match &*self.0 {
            Source::System => {
                let wait = (at - system_now()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Source::Manual { now, moved } => {
                let mut rx = moved.subscribe();
                while now.load(Ordering::Acquire) < at {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now(), 1_000);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), 1_000);
        let shared = clock.clone();
        shared.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), 3_000);
    }

    #[tokio::test]
    async fn sleepers_on_a_manual_clock_wake_when_it_passes_their_time() {
        let clock = Clock::manual(0);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(10_000).await }
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its time");
        clock.advance(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke once its time came")
            .unwrap();
        // A time already past returns at once.
        clock.sleep_until(5).await;
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let before = system_now();
        let now = Clock::system().now();
        assert!(now >= before && now - before < 60_000);
        assert!(!Clock::system().is_manual());
    }
}
