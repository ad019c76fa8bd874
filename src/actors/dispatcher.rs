//! The event dispatcher: feeds the durable event log to in-process subscribers.
//!
//! Each subscriber has its own task and its own offset, stored in the `meta` table as
//! `offset:<name>`. The task reads the events after its offset, waits until they are
//! durable (a subscriber never acts on an event a crash could take back), hands them over
//! one at a time in order — retrying a failed one with backoff, never skipping it — and
//! stores the new offset after each round (one write per round, not per event: under load
//! a round holds many events). Delivery is therefore at-least-once: after a crash the
//! events of the last round may be delivered again, so subscribers must be idempotent (by
//! `seq`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::event::LoggedEvent;
use crate::storage::{MetaValue, Store};

/// What a subscriber returns for one event.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// An in-process consumer of the event log.
pub trait Subscriber: Send + Sync + 'static {
    /// A stable name: the key of the subscriber's stored offset.
    fn name(&self) -> &str;
    /// Handles one event. An `Err` is retried (with backoff) until it succeeds; the
    /// subscriber must be idempotent, as an event may be delivered more than once.
    fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a>;
}

/// Events read per round.
const BATCH: usize = 256;
/// Longest wait between retries of a failing event.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn offset_key(name: &str) -> String {
    format!("offset:{name}")
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
pub(crate) async fn run(store: Store, subscriber: Arc<dyn Subscriber>) {
    let name = subscriber.name().to_owned();
    let key = offset_key(&name);
    let mut at = offset(&store, &name);
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
            let mut backoff = Duration::from_millis(50);
            while let Err(e) = subscriber.handle(event).await {
                tracing::warn!(subscriber = %name, seq = event.seq, error = %e, "delivery failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            at = event.seq;
        }
        metrics::counter!("emporium_events_delivered_total", "subscriber" => name.clone())
            .increment(batch.len() as u64);
        if let Err(e) = store.tables().meta.put(&key, &MetaValue::Number(at)) {
            tracing::warn!(subscriber = %name, error = %e, "could not store the offset; events may be delivered again");
        }
    }
}
