//! The event log's use cases: reading it, subscribing to it, and where subscribers are.

use std::sync::Arc;

use super::{Engine, EngineError};
use crate::dispatcher::Subscriber;
use crate::domain::event::LoggedEvent;

impl Engine {
    /// Events after `after` (0 = from the start), at most `limit` (1–1000), and the cursor
    /// of the next page. Only durable events are returned.
    pub async fn events(
        &self,
        after: u64,
        limit: i64,
    ) -> Result<(Vec<LoggedEvent>, Option<u64>), EngineError> {
        if !(1..=1000).contains(&limit) {
            return Err(EngineError::BadQuery(
                "limit: must be between 1 and 1000".into(),
            ));
        }
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.current()).await?;
        let events = self.inner.store.events_after(after, limit as usize)?;
        let next = (events.len() == limit as usize)
            .then(|| events.last().map(|e| e.seq))
            .flatten();
        Ok((events, next))
    }

    /// Starts delivering the event log to `subscriber`, from its stored offset on.
    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.keep(tokio::spawn(crate::dispatcher::run(
            self.inner.store.clone(),
            subscriber,
            crate::dispatcher::RetryPolicy::default(),
        )));
    }

    /// Events subscriber `name` skipped after its retries were spent (poison events):
    /// sequence number and the last error.
    pub fn skipped_events(&self, name: &str) -> Result<Vec<(u64, String)>, EngineError> {
        Ok(crate::dispatcher::skipped(&self.inner.store, name)?)
    }

    /// How far subscriber `name` has got (the last delivered sequence number).
    pub fn subscriber_offset(&self, name: &str) -> u64 {
        crate::dispatcher::offset(&self.inner.store, name)
    }
}
