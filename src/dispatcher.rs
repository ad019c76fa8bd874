//! The event dispatcher: feeds the durable event log to in-process subscribers.
//!
//! Each subscriber has its own task and its own offset, stored in the `meta` table as
//! `offset:<name>`. The task reads the events after its offset, waits until they are
//! durable (a subscriber never acts on an event a crash could take back), hands them over
//! one at a time in order — retrying a failed one with backoff, a bounded number of times
//! ([`RetryPolicy`]), then recording it as *skipped* (`skipped:<name>:<seq>` in `meta`,
//! with the last error, logged and counted) and moving on, so that one poison event never
//! blocks the events behind it; a skip that cannot be recorded (the store refuses writes)
//! is not taken, and the event is retried — and stores the new offset at most every
//! [`OFFSET_PERIOD`] while events keep coming, and at once when it has caught up (one write
//! per period, not per event or per round: under a checkout load rounds are small and
//! many, and their offset writes were almost one store operation per flow). Delivery is
//! therefore at-least-once: after a crash the events of the last period may be delivered
//! again, so subscribers must be idempotent (by `seq`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::event::LoggedEvent;
use crate::storage::{MetaValue, Store};

/// What a subscriber returns for one event.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// Why a subscriber could not handle an event (retried, then recorded as skipped).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// Something the event needs is missing (a template, a record).
    #[error("missing {0}")]
    Missing(&'static str),
}

/// An in-process consumer of the event log.
pub trait Subscriber: Send + Sync + 'static {
    /// A stable name: the key of the subscriber's stored offset.
    fn name(&self) -> &str;
    /// Handles one event. An `Err` is retried (with backoff) a bounded number of times,
    /// then the event is recorded as skipped ([`skipped`]); the subscriber must be
    /// idempotent, as an event may be delivered more than once.
    fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a>;
}

/// Events read per round.
const BATCH: usize = 256;

/// How often a subscriber that is never idle stores its offset.
pub const OFFSET_PERIOD: Duration = Duration::from_millis(250);

/// How often, and how patiently, a failing event is retried before it is skipped.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before the event is skipped.
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Ten attempts over about a minute: long enough for a passing fault, short enough
    /// that a poison event holds the events behind it for a minute, not forever.
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(30),
        }
    }
}

fn offset_key(name: &str) -> String {
    format!("offset:{name}")
}

fn skipped_prefix(name: &str) -> String {
    format!("skipped:{name}:")
}

/// Events subscriber `name` skipped after its retries were spent: sequence number and
/// the last error, oldest first.
pub fn skipped(
    store: &Store,
    name: &str,
) -> Result<Vec<(u64, String)>, crate::storage::StorageError> {
    let prefix = skipped_prefix(name);
    let mut out = Vec::new();
    for page in store.tables().meta.pages(1000) {
        for (key, value) in page? {
            let Some(seq) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(&prefix))
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            if let MetaValue::Text(error) = value {
                out.push((seq, error));
            }
        }
    }
    Ok(out)
}

/// Hands `event` to `subscriber`, retrying as `policy` says; when the attempts are spent
/// the event is recorded as skipped (and retried for as long as that record cannot be
/// written).
async fn deliver(
    store: &Store,
    subscriber: &dyn Subscriber,
    event: &LoggedEvent,
    policy: RetryPolicy,
) {
    let name = subscriber.name();
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    loop {
        let Err(e) = subscriber.handle(event).await else {
            return;
        };
        attempts += 1;
        if attempts >= policy.attempts.max(1) {
            let key = format!("{}{:020}", skipped_prefix(name), event.seq);
            let e = e.to_string();
            let mut error: String = e.chars().take(1000).collect();
            if error.len() < e.len() {
                error.push('…');
            }
            match store.tables().meta.put(&key, &MetaValue::Text(error)) {
                Ok(()) => {
                    tracing::error!(subscriber = %name, seq = event.seq, attempts, error = %e,
                        "event skipped after its retries were spent");
                    metrics::counter!("emporium_events_skipped_total", "subscriber" => name.to_owned())
                        .increment(1);
                    return;
                }
                Err(w) => {
                    tracing::error!(subscriber = %name, seq = event.seq, error = %w,
                        "cannot record a skipped event; retrying it");
                }
            }
        } else {
            tracing::warn!(subscriber = %name, seq = event.seq, attempts, error = %e, "delivery failed; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

/// The stored offset of subscriber `name` (0 = nothing delivered yet).
pub fn offset(store: &Store, name: &str) -> u64 {
    match store.tables().meta.get(&offset_key(name)) {
        Ok(Some(MetaValue::Number(n))) => n,
        _ => 0,
    }
}

/// Sets the stored offset of subscriber `name` (a subscriber whose own state is saved
/// elsewhere rewinds its delivery to what that state has seen).
pub(crate) fn set_offset(
    store: &Store,
    name: &str,
    at: u64,
) -> Result<(), crate::storage::StorageError> {
    store
        .tables()
        .meta
        .put(&offset_key(name), &MetaValue::Number(at))
}

/// Runs the delivery loop of one subscriber until the task is aborted.
pub(crate) async fn run(store: Store, subscriber: Arc<dyn Subscriber>, policy: RetryPolicy) {
    let name = subscriber.name().to_owned();
    let key = offset_key(&name);
    let mut at = offset(&store, &name);
    let mut stored = at;
    let mut stored_when = std::time::Instant::now();
    let store_offset = |at: u64, stored: &mut u64| {
        if let Err(e) = store.tables().meta.put(&key, &MetaValue::Number(at)) {
            tracing::warn!(subscriber = %name, error = %e, "could not store the offset; events may be delivered again");
        } else {
            *stored = at;
        }
    };
    loop {
        // Register for the wake-up before reading, so an append in between is not missed.
        let appended = store.events_appended();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let batch = match store.events_after(at, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(subscriber = %name, error = %e, "cannot read the event log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            // Caught up: what was delivered is recorded before waiting.
            if stored != at {
                store_offset(at, &mut stored);
                stored_when = std::time::Instant::now();
            }
            tokio::select! {
                () = &mut appended => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // Everything read was written before this ticket: wait until it is durable.
        let barrier = store.barrier();
        if let Err(e) = barrier.wait(barrier.current()).await {
            tracing::error!(subscriber = %name, error = %e, "events are not durable; not delivering");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        for event in &batch {
            deliver(&store, &*subscriber, event, policy).await;
            at = event.seq;
        }
        metrics::counter!("emporium_events_delivered_total", "subscriber" => name.clone())
            .increment(batch.len() as u64);
        if stored_when.elapsed() >= OFFSET_PERIOD {
            store_offset(at, &mut stored);
            stored_when = std::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::event::DomainEvent;
    use crate::storage::{StoreOptions, WriteBatch};

    /// Fails every delivery of one sequence number; records the others.
    struct Picky {
        poison: u64,
        seen: Mutex<Vec<u64>>,
    }

    impl Subscriber for Picky {
        fn name(&self) -> &str {
            "picky"
        }
        fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a> {
            Box::pin(async move {
                if event.seq == self.poison {
                    return Err(DeliveryError::Missing("a digestible event"));
                }
                self.seen.lock().unwrap().push(event.seq);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_poison_event_is_recorded_and_skipped_and_the_events_behind_it_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let events: Vec<DomainEvent> = (0..3)
            .map(|i| DomainEvent::OrderDelivered {
                order_id: format!("o{i}"),
            })
            .collect();
        store
            .write_with_events(WriteBatch::default(), &events)
            .unwrap();
        let first = store.events_after(0, 10).unwrap()[0].seq;
        let picky = Arc::new(Picky {
            poison: first + 1,
            seen: Mutex::new(Vec::new()),
        });
        let policy = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        };
        let task = tokio::spawn(run(store.clone(), picky.clone(), policy));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while offset(&store, "picky") < first + 2 {
            assert!(std::time::Instant::now() < deadline, "delivery stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(*picky.seen.lock().unwrap(), [first, first + 2]);
        let skipped = skipped(&store, "picky").unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, first + 1);
        assert!(skipped[0].1.contains("digestible"), "{skipped:?}");
    }
}
