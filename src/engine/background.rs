//! Background tasks, in one place. Each runs while the engine lives and is stopped by
//! [`Engine::shutdown`]:
//!
//! | task | period | what |
//! | --- | --- | --- |
//! | cart sweep | `cart_sweep_interval` (1 h) | expired carts, old idempotency keys, failed checkouts past retention, abandoned-cart reminders |
//! | recovery sweep | `recovery_interval` (10 s) | drives every order with outstanding work |
//! | dispatcher, per subscriber | on append (≤ 1 s) | the event log to the notifier and the recommender |
//! | mail sender | on wake-up (≤ 5 s) | queued notifications to the mailer |
//! | recommender snapshot | 30 s | saves the model if it changed |
//! | webhook worker, per endpoint | on append (≤ 1 s), a retry's time, an admin's change | the event log to the endpoint (its actor, `crate::webhooks`, is stopped by `Engine::shutdown` too) |
//!
//! Outside the engine's tasks: the search indexer's thread and the store's flusher thread.

use std::sync::Arc;

use super::Engine;

impl Engine {
    /// Keeps a background task, to be stopped by [`Engine::shutdown`].
    pub(super) fn keep(&self, task: tokio::task::JoinHandle<()>) {
        self.inner
            .background
            .lock()
            .expect("background lock")
            .push(task);
    }

    /// Runs `job` every `period` (first after one period) while the engine lives.
    pub(super) fn every<F, Fut>(&self, period: std::time::Duration, job: F)
    where
        F: Fn(Engine) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        self.keep(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                job(Engine { inner }).await;
            }
        }));
    }

    pub(super) fn start_cart_sweeper(&self) {
        self.every(self.inner.config.cart_sweep_interval, |engine| async move {
            if let Err(e) = engine.sweep_expired_carts().await {
                tracing::warn!(error = %e, "cart expiry sweep failed");
            }
            if let Err(e) = engine.prune_idempotency_keys().await {
                tracing::warn!(error = %e, "idempotency key sweep failed");
            }
            if let Err(e) = engine.prune_failed_orders().await {
                tracing::warn!(error = %e, "failed order sweep failed");
            }
            if let Err(e) = engine.sweep_abandoned_carts().await {
                tracing::warn!(error = %e, "abandoned cart sweep failed");
            }
        });
    }
}
