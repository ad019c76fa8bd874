//! The inventory SKU entity: one actor per SKU owns its [`Stock`]. Because it handles one
//! message at a time, "check available, then reserve" is atomic without locks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::event::DomainEvent;
use crate::domain::inventory::{InventoryError, Stock};
use crate::domain::{Millis, now_millis};
use crate::storage::{StorageError, Store, WriteBatch};

use super::entity::{Effect, Entity};

/// Commands a SKU accepts.
#[derive(Debug, Clone)]
pub(crate) enum SkuCmd {
    Get,
    SetOnHand(i64),
    Restock(i64),
    Reserve { id: String, quantity: u32 },
    Commit { id: String },
    Release { id: String },
    Return { id: String, quantity: u32 },
}

/// Why an inventory command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SkuFailure {
    /// A stock rule refused the change.
    #[error(transparent)]
    Rule(#[from] InventoryError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct SkuEntity {
    pub store: Store,
    pub reservation_ttl_ms: Millis,
    /// Wakes the search indexer when a SKU goes in or out of stock.
    pub on_stock_flip: Arc<dyn Fn() + Send + Sync>,
    /// Whether reservations may lapse. Off while startup recovery runs, so that a paid
    /// order's reservations are committed, not expired, after a long downtime.
    pub expiry: Arc<AtomicBool>,
}

impl SkuEntity {
    /// Writes `next`; when availability crosses zero the SKU is queued for re-indexing
    /// (the `in_stock` filter) in the same atomic batch.
    fn write(&self, sku: &str, before: &Stock, next: &Stock) -> Result<(), StorageError> {
        let flips = (before.available() > 0) != (next.available() > 0);
        let mut batch = WriteBatch::default();
        batch.put(&self.store.tables().stock, sku, next)?;
        if flips {
            self.store.enqueue_reindex(&mut batch, sku)?;
        }
        // Reservations come and go without an event; a change of stock on hand is one.
        let events = if before.on_hand == next.on_hand {
            Vec::new()
        } else {
            vec![DomainEvent::StockChanged {
                sku: sku.to_owned(),
                on_hand: next.on_hand,
                available: next.available(),
            }]
        };
        self.store.write_with_events(batch, &events)?;
        if flips {
            (self.on_stock_flip)();
        }
        Ok(())
    }

    fn save(&self, sku: &str, state: &mut Stock, next: Stock) -> Effect<Result<Stock, SkuFailure>> {
        match self.write(sku, state, &next) {
            Ok(()) => {
                *state = next.clone();
                Effect::wrote(Ok(next))
            }
            Err(e) => Effect::read(Err(e.into())),
        }
    }
}

impl Entity for SkuEntity {
    const KIND: &'static str = "sku";
    type State = Stock;
    type Cmd = SkuCmd;
    type Reply = Result<Stock, SkuFailure>;

    fn load(&self, sku: &str) -> Result<Stock, StorageError> {
        Ok(self.store.tables().stock.get(sku)?.unwrap_or_default())
    }

    async fn handle(&self, sku: &str, state: &mut Stock, cmd: SkuCmd) -> Effect<Self::Reply> {
        let now = now_millis();
        // Expired holds never count, even if the timer has not fired yet.
        let mut wrote_expiry = false;
        let expiring = self.expiry.load(Ordering::Acquire);
        if let Some(next) = state.expire(now).filter(|_| expiring) {
            if let Err(e) = self.write(sku, state, &next) {
                return Effect::read(Err(e.into()));
            }
            *state = next;
            wrote_expiry = true;
        }
        let next = match cmd {
            SkuCmd::Get => Ok(None),
            SkuCmd::SetOnHand(n) => state.set_on_hand(n).map(Some),
            SkuCmd::Restock(n) => state.restock(n).map(Some),
            SkuCmd::Reserve { id, quantity } => {
                let r = state.reserve(&id, quantity, now, self.reservation_ttl_ms);
                let result = if r.is_ok() { "ok" } else { "refused" };
                metrics::counter!("emporium_reservations_total", "result" => result).increment(1);
                r
            }
            SkuCmd::Commit { id } => state.commit(&id),
            SkuCmd::Release { id } => Ok(state.release(&id)),
            SkuCmd::Return { id, quantity } => state.return_units(&id, quantity),
        };
        match next {
            Ok(Some(next)) => self.save(sku, state, next),
            Ok(None) => Effect {
                reply: Ok(state.clone()),
                wrote: wrote_expiry,
            },
            Err(e) => Effect {
                reply: Err(e.into()),
                wrote: wrote_expiry,
            },
        }
    }

    fn timer_due(&self, state: &Stock) -> Option<Millis> {
        if !self.expiry.load(Ordering::Acquire) {
            return None;
        }
        state.next_expiry()
    }

    fn on_timer(&self, sku: &str, state: &mut Stock) -> bool {
        let Some(next) = state.expire(now_millis()) else {
            return false;
        };
        match self.write(sku, state, &next) {
            Ok(()) => {
                *state = next;
                true
            }
            Err(e) => {
                tracing::warn!(sku, error = %e, "could not release expired reservations; will retry");
                false
            }
        }
    }

    /// A SKU with open reservations stays resident so that its expiry timer runs.
    fn may_passivate(&self, state: &Stock) -> bool {
        state.reservations.is_empty()
    }
}
