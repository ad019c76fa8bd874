//! The inventory SKU entity: one actor per SKU owns its [`Stock`]. Because it handles one
//! message at a time, "check available, then reserve" is atomic without locks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::Millis;
use crate::domain::event::DomainEvent;
use crate::domain::inventory::{InventoryError, Stock, StockLevel};
use crate::storage::{StorageError, Store, WriteBatch};

use super::entity::{Answer, Directory, Effect, Entity};

/// The typed face of the SKU actors: one method per command (the checkout saga, inside
/// `actors`, also sends commands directly, answered as soon as applied).
#[derive(Clone)]
pub(crate) struct SkuHandle(pub(crate) Arc<Directory<SkuEntity>>);

impl SkuHandle {
    async fn stock(&self, sku: &str, cmd: SkuCmd) -> Answer<StockLevel, SkuFailure> {
        self.0.call(sku, || cmd.clone()).await
    }

    /// Stock on hand and reserved (lapsed reservations released first).
    pub async fn get(&self, sku: &str) -> Answer<StockLevel, SkuFailure> {
        self.stock(sku, SkuCmd::Get).await
    }

    /// Sets the units on hand.
    pub async fn set_on_hand(&self, sku: &str, on_hand: i64) -> Answer<StockLevel, SkuFailure> {
        self.stock(sku, SkuCmd::SetOnHand(on_hand)).await
    }

    /// Adds received units.
    pub async fn restock(&self, sku: &str, quantity: i64) -> Answer<StockLevel, SkuFailure> {
        self.stock(sku, SkuCmd::Restock(quantity)).await
    }

    /// Holds `quantity` units under reservation `id`.
    pub async fn reserve(
        &self,
        sku: &str,
        id: &str,
        quantity: u32,
    ) -> Answer<StockLevel, SkuFailure> {
        let id = id.to_owned();
        self.stock(sku, SkuCmd::Reserve { id, quantity }).await
    }

    /// Commits reservation `id` (a lapsed one takes `quantity` again, if not 0).
    pub async fn commit(
        &self,
        sku: &str,
        id: &str,
        quantity: u32,
    ) -> Answer<StockLevel, SkuFailure> {
        let id = id.to_owned();
        self.stock(sku, SkuCmd::Commit { id, quantity }).await
    }

    /// Releases reservation `id`.
    pub async fn release(&self, sku: &str, id: &str) -> Answer<StockLevel, SkuFailure> {
        let id = id.to_owned();
        self.stock(sku, SkuCmd::Release { id }).await
    }
}

/// Commands a SKU accepts.
#[derive(Debug, Clone)]
pub(crate) enum SkuCmd {
    Get,
    SetOnHand(i64),
    Restock(i64),
    Reserve {
        id: String,
        quantity: u32,
    },
    /// Commits `id`; `quantity` is what a lapsed reservation takes again.
    Commit {
        id: String,
        quantity: u32,
    },
    Release {
        id: String,
    },
    Return {
        id: String,
        quantity: u32,
    },
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

/// A SKU actor's state: the stock, and what of it is not written yet.
///
/// A SKU *coalesces* its writes: each command changes the stock in memory and the host
/// calls [`Entity::flush`] once the commands queued so far are handled, which writes the
/// stock once, with every command's event, in one atomic write. No reply leaves before
/// that write (see the host), so what callers see is always what the store holds. A
/// hot SKU under many concurrent checkouts thus writes once per mailbox-full, not once
/// per reservation.
pub(crate) struct SkuState {
    stock: Stock,
    /// The stock as last written: `Some` exactly while `stock` has changes not written
    /// yet.
    written: Option<Stock>,
    /// The events of the unwritten changes, in order.
    events: Vec<DomainEvent>,
}

impl SkuState {
    fn new(stock: Stock) -> Self {
        SkuState {
            stock,
            written: None,
            events: Vec::new(),
        }
    }
}

impl Entity for SkuEntity {
    const KIND: &'static str = "sku";
    type State = SkuState;
    type Cmd = SkuCmd;
    type Reply = Result<StockLevel, SkuFailure>;

    fn load(&self, sku: &str) -> Result<SkuState, StorageError> {
        Ok(SkuState::new(
            self.store.tables().stock.get(sku)?.unwrap_or_default(),
        ))
    }

    async fn handle(&self, sku: &str, st: &mut SkuState, cmd: SkuCmd) -> Effect<Self::Reply> {
        let now = self.store.clock().now();
        // Expired holds never count, even if the timer has not fired yet.
        let expire = self.expiry.load(Ordering::Acquire) && st.stock.has_expired(now);
        let pending = st.written.is_some();
        if (expire || !matches!(cmd, SkuCmd::Get)) && !pending {
            st.written = Some(st.stock.clone());
        }
        let on_hand = st.stock.on_hand;
        let expired = expire && st.stock.expire(now);
        let result = match cmd {
            SkuCmd::Get => Ok(false),
            SkuCmd::SetOnHand(n) => st.stock.set_on_hand(n),
            SkuCmd::Restock(n) => st.stock.restock(n),
            SkuCmd::Reserve { id, quantity } => {
                let r = st
                    .stock
                    .reserve(&id, quantity, now, self.reservation_ttl_ms);
                let result = if r.is_ok() { "ok" } else { "refused" };
                metrics::counter!("emporium_reservations_total", "result" => result).increment(1);
                r
            }
            SkuCmd::Commit { id, quantity } => st.stock.commit(&id, quantity),
            SkuCmd::Release { id } => Ok(st.stock.release(&id)),
            SkuCmd::Return { id, quantity } => st.stock.return_units(&id, quantity),
        };
        // Reservations come and go without an event; a change of stock on hand is one.
        if st.stock.on_hand != on_hand {
            st.events.push(DomainEvent::StockChanged {
                sku: sku.to_owned(),
                on_hand: st.stock.on_hand,
                available: st.stock.available(),
            });
        }
        let changed = expired || result == Ok(true);
        if !(pending || changed) {
            st.written = None;
        }
        let reply = result.map(|_| st.stock.level()).map_err(SkuFailure::from);
        if st.written.is_some() {
            Effect::deferred(reply)
        } else {
            Effect::read(reply)
        }
    }

    /// Writes the stock and the events of every command since the last flush in one
    /// atomic write; when availability crossed zero the SKU is queued for re-indexing
    /// (the `in_stock` filter) in the same write. On failure the stock goes back to what
    /// was last written.
    fn flush(&self, sku: &str, st: &mut SkuState) -> Result<bool, StorageError> {
        let Some(before) = st.written.take() else {
            return Ok(false);
        };
        let flips = (before.available() > 0) != (st.stock.available() > 0);
        let write = || {
            let mut batch = WriteBatch::default();
            batch.put(&self.store.tables().stock, sku, &st.stock)?;
            if flips {
                self.store.enqueue_reindex(&mut batch, sku)?;
            }
            self.store.write_with_events(batch, &st.events)
        };
        let result = write();
        st.events.clear();
        match result {
            Ok(_) => {
                if flips {
                    (self.on_stock_flip)();
                }
                Ok(true)
            }
            Err(e) => {
                st.stock = before;
                Err(e)
            }
        }
    }

    fn timer_due(&self, st: &SkuState) -> Option<Millis> {
        if !self.expiry.load(Ordering::Acquire) {
            return None;
        }
        st.stock.next_expiry()
    }

    /// The host flushes pending changes before it runs the timer, so this writes alone.
    fn on_timer(&self, sku: &str, st: &mut SkuState) -> bool {
        let now = self.store.clock().now();
        if !st.stock.has_expired(now) {
            return false;
        }
        st.written = Some(st.stock.clone());
        st.stock.expire(now);
        match self.flush(sku, st) {
            Ok(wrote) => wrote,
            Err(e) => {
                tracing::warn!(sku, error = %e, "could not release expired reservations; will retry");
                false
            }
        }
    }

    /// A SKU with open reservations stays resident so that its expiry timer runs.
    fn may_passivate(&self, st: &SkuState) -> bool {
        st.stock.reservations.is_empty() && st.written.is_none()
    }
}
