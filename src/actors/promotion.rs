//! Promotion codes: one actor per code (state = the stored [`Promotion`] or nothing), so
//! that its uses change one at a time and a usage limit cannot be raced — the same shape
//! as a SKU's stock. A customer's committed uses of a code live under
//! `promotion_uses/{code}\0{customer}`, the orders that committed one under
//! `promotion_orders/{code}\0{order}`, both written by the code's actor only.

use std::sync::Arc;

use crate::domain::Millis;
use crate::domain::event::DomainEvent;
use crate::domain::promotion::{CommittedUse, CustomerUses, Promotion, PromotionDraft, UseError};
use crate::storage::{StorageError, Store, WriteBatch, promotion_use_key};

use super::entity::{Answer, Directory, Effect, Entity};

/// Why a command to a promotion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PromotionFailure {
    /// No such code.
    #[error("no such promotion")]
    NotFound,
    /// `Create` of a code that exists.
    #[error("the promotion exists")]
    AlreadyExists,
    /// A use was refused.
    #[error(transparent)]
    Use(#[from] UseError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Commands a promotion takes.
#[derive(Debug, Clone)]
pub(crate) enum PromotionCmd {
    Get,
    Create(PromotionDraft),
    Put(PromotionDraft),
    Delete,
    Reserve {
        order_id: String,
        customer: String,
        expires_at: Millis,
    },
    Commit(String),
    Release(String),
    Return(String),
}

/// The typed face of the promotion actors.
#[derive(Clone)]
pub(crate) struct PromotionHandle(pub(crate) Arc<Directory<PromotionEntity>>);

impl PromotionHandle {
    async fn run(&self, code: &str, cmd: PromotionCmd) -> Answer<Promotion, PromotionFailure> {
        self.0.call(code, || cmd.clone()).await
    }

    /// The promotion.
    pub async fn get(&self, code: &str) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Get).await
    }

    /// Creates it (`AlreadyExists` if the code is taken).
    pub async fn create(
        &self,
        code: &str,
        d: PromotionDraft,
    ) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Create(d)).await
    }

    /// Creates or replaces its settings (its uses are kept).
    pub async fn put(&self, code: &str, d: PromotionDraft) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Put(d)).await
    }

    /// Deletes it; answers what it was.
    pub async fn delete(&self, code: &str) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Delete).await
    }

    /// Holds a use for an order (idempotent on the order).
    pub async fn reserve(
        &self,
        code: &str,
        order_id: &str,
        customer: &str,
        expires_at: Millis,
    ) -> Answer<Promotion, PromotionFailure> {
        let cmd = PromotionCmd::Reserve {
            order_id: order_id.to_owned(),
            customer: customer.to_owned(),
            expires_at,
        };
        self.run(code, cmd).await
    }

    /// Commits an order's held use (idempotent).
    pub async fn commit(&self, code: &str, order_id: &str) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Commit(order_id.to_owned()))
            .await
    }

    /// Releases an order's held use (idempotent).
    pub async fn release(&self, code: &str, order_id: &str) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Release(order_id.to_owned()))
            .await
    }

    /// Gives a committed use back (a cancelled order).
    pub async fn give_back(
        &self,
        code: &str,
        order_id: &str,
    ) -> Answer<Promotion, PromotionFailure> {
        self.run(code, PromotionCmd::Return(order_id.to_owned()))
            .await
    }
}

pub(crate) struct PromotionEntity {
    pub store: Store,
    /// Told of every stored change, for the automatic promotions.
    pub book: crate::pricebook::PriceBook,
}

impl PromotionEntity {
    /// Who committed `order_id`'s use of `code`, if it is committed.
    fn user_of(&self, code: &str, order_id: &str) -> Result<Option<String>, StorageError> {
        let key = promotion_use_key(code, order_id);
        Ok(self
            .store
            .tables()
            .promotion_orders
            .get(&key)?
            .map(|u| u.customer))
    }

    /// Whether `order_id`'s use of `code` is committed.
    fn committed(&self, code: &str, order_id: &str) -> Result<bool, StorageError> {
        Ok(self.user_of(code, order_id)?.is_some())
    }

    fn customer_uses(&self, code: &str, customer: &str) -> Result<u32, StorageError> {
        let key = promotion_use_key(code, customer);
        Ok(self
            .store
            .tables()
            .promotion_uses
            .get(&key)?
            .map_or(0, |u| u.count))
    }

    /// Applies `cmd`: the new state (`None`: deleted), what else to write, its events.
    fn apply(
        &self,
        code: &str,
        state: &Option<Promotion>,
        cmd: PromotionCmd,
        now: Millis,
    ) -> Result<(Option<Promotion>, WriteBatch, Vec<DomainEvent>), PromotionFailure> {
        let tables = self.store.tables();
        let mut batch = WriteBatch::default();
        let mut events = Vec::new();
        let next = match (cmd, state) {
            (PromotionCmd::Create(_), Some(_)) => return Err(PromotionFailure::AlreadyExists),
            (PromotionCmd::Create(d) | PromotionCmd::Put(d), None) => {
                Some(Promotion::new(code.to_owned(), d, now))
            }
            (PromotionCmd::Put(d), Some(p)) => Some(p.with_draft(d, now)),
            (_, None) => return Err(PromotionFailure::NotFound),
            (PromotionCmd::Get, Some(_)) => unreachable!("reads are answered before apply"),
            (PromotionCmd::Delete, Some(_)) => None,
            (
                PromotionCmd::Reserve {
                    order_id,
                    customer,
                    expires_at,
                },
                Some(p),
            ) => {
                let used = self.customer_uses(code, &customer)?;
                let committed = self.committed(code, &order_id)?;
                let next = p.reserve(&order_id, &customer, used, committed, expires_at, now)?;
                if &next == p {
                    return Ok((state.clone(), WriteBatch::default(), events));
                }
                Some(next)
            }
            (PromotionCmd::Commit(order_id), Some(p)) => {
                if self.committed(code, &order_id)? {
                    return Ok((state.clone(), WriteBatch::default(), events));
                }
                let (next, who) = p.commit(&order_id, now)?;
                let key = promotion_use_key(code, &who);
                let count = self.customer_uses(code, &who)? + 1;
                batch.put(&tables.promotion_uses, &key, &CustomerUses { count })?;
                let mark = promotion_use_key(code, &order_id);
                batch.put(
                    &tables.promotion_orders,
                    &mark,
                    &CommittedUse { customer: who },
                )?;
                events.push(DomainEvent::PromotionRedeemed {
                    code: code.to_owned(),
                    order_id,
                });
                Some(next)
            }
            (PromotionCmd::Release(order_id), Some(p)) => {
                if !p.holds.iter().any(|h| h.order_id == order_id) {
                    return Ok((state.clone(), WriteBatch::default(), events));
                }
                Some(p.release(&order_id))
            }
            (PromotionCmd::Return(order_id), Some(p)) => {
                let Some(who) = self.user_of(code, &order_id)? else {
                    return Ok((state.clone(), WriteBatch::default(), events));
                };
                batch.remove(
                    &tables.promotion_orders,
                    &promotion_use_key(code, &order_id),
                );
                // The customer's count goes down with the total.
                let key = promotion_use_key(code, &who);
                let count = self.customer_uses(code, &who)?.saturating_sub(1);
                batch.put(&tables.promotion_uses, &key, &CustomerUses { count })?;
                Some(p.returned(now))
            }
        };
        match &next {
            Some(p) => batch.put(&tables.promotions, code, p)?,
            None => batch.remove(&tables.promotions, code),
        }
        Ok((next, batch, events))
    }
}

impl Entity for PromotionEntity {
    const KIND: &'static str = "promotion";
    type State = Option<Promotion>;
    type Cmd = PromotionCmd;
    type Reply = Result<Promotion, PromotionFailure>;

    fn load(&self, code: &str) -> Result<Option<Promotion>, StorageError> {
        self.store.tables().promotions.get(code)
    }

    async fn handle(
        &self,
        code: &str,
        state: &mut Option<Promotion>,
        cmd: PromotionCmd,
    ) -> Effect<Self::Reply> {
        if matches!(cmd, PromotionCmd::Get) {
            return Effect::read(state.clone().ok_or(PromotionFailure::NotFound));
        }
        let now = self.store.clock().now();
        let before = state.clone();
        let mut wrote = true;
        let written = self
            .apply(code, state, cmd, now)
            .and_then(|(next, batch, events)| {
                // A repeated step (a reserve held, a commit made, a release or give-back
                // with nothing to undo) changes nothing and writes nothing.
                if batch.is_empty() && events.is_empty() && next == *state {
                    wrote = false;
                } else {
                    self.store.write_with_events(batch, &events)?;
                }
                Ok(next)
            });
        match written {
            Ok(next) => {
                self.book.set_promotion(code, next.as_ref());
                *state = next.clone();
                let answer = next.or(before).ok_or(PromotionFailure::NotFound);
                Effect::new(answer, wrote)
            }
            Err(e) => Effect::read(Err(e)),
        }
    }

    fn timer_due(&self, state: &Option<Promotion>) -> Option<Millis> {
        state.as_ref()?.holds.iter().map(|h| h.expires_at).min()
    }

    fn on_timer(&self, code: &str, state: &mut Option<Promotion>) -> bool {
        let Some(p) = state.as_mut() else {
            return false;
        };
        let mut next = p.clone();
        if !next.expire(self.store.clock().now()) {
            return false;
        }
        match self.store.tables().promotions.put(code, &next) {
            Ok(()) => {
                *p = next;
                true
            }
            Err(e) => {
                tracing::warn!(code, error = %e, "could not release lapsed promotion holds; will retry");
                false
            }
        }
    }

    fn may_passivate(&self, state: &Option<Promotion>) -> bool {
        state.as_ref().is_none_or(|p| p.holds.is_empty())
    }

    fn evict_now(&self, state: &Option<Promotion>) -> bool {
        state.is_none()
    }
}
