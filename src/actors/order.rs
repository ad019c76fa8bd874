//! The order entity: one actor per order runs its checkout saga and its lifecycle.
//!
//! ```text
//!  Reserve ──all reserved──► charge ──captured──► Complete ──committed, cart closed──► Done
//!     │                        │ declined / failed
//!     └──── short / error ─────┴──► Compensate ──released, refunded, cart reopened──► Failed
//! ```
//!
//! Every step is idempotent (reservation id = order id, charge key = order id, commit and
//! release are no-ops the second time), so driving an order again, after a crash or a
//! transient failure, is always safe. The usual checkout stores `Complete` only in
//! passing: once captured, its lines are sold, its promotion used and its cart closed
//! at once, and the payment and the placed order are one write; `Complete` is stored
//! only when that must wait. An order found in `Reserve` that this process did not just
//! create asks the gateway for a charge before reserving (see `FreshOrders`), since
//! its lines may already be sold. That is also why the saga's calls to SKUs and the
//! cart do not wait for the disk one by one: the order's reply waits for a barrier ticket
//! taken after its last write, which covers every write before it, and the charge waits
//! for everything written before it. A checkout pays four flush waits, not eight. The state after each stored step is written together
//! with its events and the order's index entries in one atomic batch. Work a lifecycle
//! transition owes (a refund, returning stock) is recorded in the same write as the
//! transition and paid off the same way.

use std::sync::Arc;

use futures_util::future::join_all;

use crate::domain::event::{DomainEvent, EventItem};
use crate::domain::inventory::{InventoryError, StockLevel};
use crate::domain::order::{
    CheckoutFailure, InvalidTransition, Lifecycle, Order, OrderLine, OrderStatus, Owed,
    PaymentState, PromotionRefusal, RefundRefused, Step,
};
use crate::domain::promotion::UseError;
use crate::payments::{
    Charge, ChargeFailure, ChargeOutcome, ChargeRequest, GatewayPolicy, Payment, PaymentGateway,
    RefundRecord,
};
use crate::storage::{StorageError, Store, WriteBatch, order_index_key};

use super::cart::{CartCmd, CartEntity, CartFailure, CartReply};
use super::entity::{Answer, Directory, Effect, Entity};
use super::promotion::{PromotionCmd, PromotionEntity, PromotionFailure};
use super::sku::{SkuCmd, SkuEntity, SkuFailure};

/// The typed face of the order actors.
#[derive(Clone)]
pub(crate) struct OrderHandle(
    pub(crate) Arc<Directory<OrderEntity>>,
    pub(crate) Arc<FreshOrders>,
);

/// Orders this process created whose saga no drive has started yet. Only such an order
/// is known never to have been charged, so only its first drive reserves and charges
/// straight away; any other order in the `Reserve` step (a drive that a crash, a panic
/// or a refused write interrupted) asks the gateway first, because a charge it finds
/// means the lines may already be sold and must not be reserved again. Forgetting an id
/// is always safe (it costs one lookup), so the set is bounded by clearing it.
#[derive(Debug, Default)]
pub(crate) struct FreshOrders(std::sync::Mutex<std::collections::HashSet<String>>);

/// Most ids [`FreshOrders`] holds before it forgets them all.
const MAX_FRESH: usize = 100_000;

impl FreshOrders {
    /// Notes that this process just created order `id`.
    pub fn created(&self, id: &str) {
        let mut ids = self.0.lock().expect("fresh orders lock");
        if ids.len() >= MAX_FRESH {
            ids.clear();
        }
        ids.insert(id.to_owned());
    }

    /// Whether `id` was fresh (it no longer is).
    fn take(&self, id: &str) -> bool {
        self.0.lock().expect("fresh orders lock").remove(id)
    }
}

impl OrderHandle {
    /// Notes that this process just created order `id` (see [`FreshOrders`]).
    pub fn created(&self, id: &str) {
        self.1.created(id);
    }

    /// Runs the checkout saga of order `id` to its end (or answers how it ended), waiting
    /// at most `timeout` (the saga goes on regardless).
    pub async fn checkout(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> Answer<Order, OrderFailure> {
        self.0.call_within(id, || OrderCmd::Checkout, timeout).await
    }

    /// The order.
    pub async fn get(&self, id: &str) -> Answer<Order, OrderFailure> {
        self.0.call(id, || OrderCmd::Get).await
    }

    /// A lifecycle change, with the work it owes.
    pub async fn change(
        &self,
        id: &str,
        change: &Lifecycle,
        timeout: std::time::Duration,
    ) -> Answer<Order, OrderFailure> {
        self.0
            .call_within(id, || OrderCmd::Change(change.clone()), timeout)
            .await
    }

    /// Drives whatever the order has outstanding (recovery).
    pub async fn drive(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> Answer<Order, OrderFailure> {
        self.0.call_within(id, || OrderCmd::Drive, timeout).await
    }

    /// Deletes the order if it is a failed checkout that charged nothing made before
    /// `before`; `NotFound` then.
    pub async fn prune(&self, id: &str, before: i64) -> Answer<Order, OrderFailure> {
        self.0.call(id, || OrderCmd::Prune(before)).await
    }

    /// Erases the order's personal fields (idempotent).
    pub async fn anonymise(&self, id: &str) -> Answer<Order, OrderFailure> {
        self.0.call(id, || OrderCmd::Anonymise).await
    }
}

/// Commands an order accepts.
#[derive(Debug, Clone)]
pub(crate) enum OrderCmd {
    /// Run the checkout saga to its end (or return how it ended).
    Checkout,
    /// Read.
    Get,
    /// A lifecycle change.
    Change(Lifecycle),
    /// Drive whatever is outstanding (recovery).
    Drive,
    /// Delete the order if it is a failed checkout that charged nothing, made before
    /// this time (the retention sweep).
    Prune(i64),
    /// Erase the order's personal fields (its customer's erasure).
    Anonymise,
}

/// Why an order command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderFailure {
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// The lifecycle does not allow the change.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The change asked for is wrong (a partial refund of more than is left).
    #[error(transparent)]
    Invalid(crate::domain::Invalid),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct OrderEntity {
    pub store: Store,
    pub skus: Arc<Directory<SkuEntity>>,
    pub carts: Arc<Directory<CartEntity>>,
    pub promotions: Arc<Directory<PromotionEntity>>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub policy: GatewayPolicy,
    /// How long a promotion use is held for a checkout (as a SKU's reservation).
    pub reservation_ttl_ms: i64,
    /// Orders never driven yet (shared with [`OrderHandle`]).
    pub fresh: Arc<FreshOrders>,
}

/// Whether a call to another entity went through; a `false` leaves the step to be driven
/// again later (by the retrying client or the recovery sweep).
type Done = bool;

/// The replies of a command sent to every line: the SKUs that lacked stock, and the last
/// other failure (described), with `done` deciding which replies are fine.
fn tally(
    results: Vec<(String, Answer<StockLevel, SkuFailure>)>,
    what: &str,
    done: impl Fn(&Result<StockLevel, SkuFailure>) -> bool,
) -> (Vec<String>, Option<String>) {
    let mut short = Vec::new();
    let mut failed = None;
    for (sku, r) in results {
        match r {
            Ok(reply) if done(&reply) => {}
            Ok(Err(SkuFailure::Rule(InventoryError::OutOfStock { .. }))) => short.push(sku),
            Ok(Err(e)) => failed = Some(format!("{what} {sku}: {e}")),
            Ok(Ok(_)) => {}
            Err(e) => failed = Some(format!("{what} {sku}: {e}")),
        }
    }
    (short, failed)
}

/// How placing a paid order went (its lines sold, its promotion used, its cart closed).
enum Placing {
    /// All done: the order can be completed.
    Placed,
    /// It cannot be: compensate (refund included).
    Failed(CheckoutFailure),
    /// Some call did not go through: drive the step again later.
    Retry,
}

/// How committing a paid order's lines went.
enum Committed {
    /// Every line is sold.
    All,
    /// These lines' reservations lapsed and their stock is gone; every other line is
    /// sold.
    Short(Vec<String>),
    /// Some line did not answer: drive the step again later.
    Retry,
}

impl OrderEntity {
    /// Writes `next` (with extra puts and its events) and makes it the state.
    fn save(
        &self,
        state: &mut Option<Order>,
        next: Order,
        extra: impl FnOnce(&mut WriteBatch) -> Result<(), StorageError>,
        events: &[DomainEvent],
    ) -> Result<(), StorageError> {
        let tables = self.store.tables();
        let mut batch = WriteBatch::default();
        tables.stage_order(&mut batch, state.as_ref(), &next)?;
        extra(&mut batch)?;
        self.store.write_with_events(batch, events)?;
        *state = Some(next);
        Ok(())
    }

    /// Calls the SKU of every line that `only` keeps, at once, with the command `cmd`
    /// builds.
    async fn each_line(
        &self,
        order: &Order,
        only: impl Fn(&OrderLine) -> bool,
        cmd: impl Fn(&str, u32) -> SkuCmd,
    ) -> Vec<(String, Answer<StockLevel, SkuFailure>)> {
        let calls = order.lines.iter().filter(|l| only(l)).map(|l| {
            let c = cmd(&order.id, l.quantity);
            async move {
                let sku = l.sku.to_string();
                let r = self.skus.call_applied(&sku, || c.clone()).await;
                (sku, r)
            }
        });
        join_all(calls).await
    }

    /// Reserves every line: `Ok` if all are held, else the failure to compensate.
    #[tracing::instrument(name = "saga.reserve", skip_all, fields(lines = order.lines.len()))]
    async fn reserve_all(&self, order: &Order) -> Result<(), CheckoutFailure> {
        let results = self
            .each_line(
                order,
                |_| true,
                |id, quantity| SkuCmd::Reserve {
                    id: id.to_owned(),
                    quantity,
                },
            )
            .await;
        let (short, broken) = tally(results, "reserving", |r| r.is_ok());
        if !short.is_empty() {
            return Err(CheckoutFailure::OutOfStock(short));
        }
        match broken {
            Some(e) => Err(CheckoutFailure::Unavailable(e)),
            None => Ok(()),
        }
    }

    /// Runs the SKU command of every line `only` keeps; whether all went through (`ok`
    /// decides per reply).
    async fn all_lines(
        &self,
        order: &Order,
        what: &str,
        only: impl Fn(&OrderLine) -> bool,
        cmd: impl Fn(&str, u32) -> SkuCmd,
        ok: impl Fn(&Result<StockLevel, SkuFailure>) -> bool,
    ) -> Done {
        let mut done = true;
        for (sku, r) in self.each_line(order, only, cmd).await {
            match r {
                Ok(reply) if ok(&reply) => {}
                Ok(reply) => {
                    tracing::warn!(order = %order.id, sku, what, error = ?reply.err(), "step refused; will retry");
                    done = false;
                }
                Err(e) => {
                    tracing::warn!(order = %order.id, sku, what, error = %e, "step failed; will retry");
                    done = false;
                }
            }
        }
        done
    }

    /// Commits every line. A line whose reservation lapsed (the charge outlasted it)
    /// takes its units again if they are there; if they are not, it is `Short`, and the
    /// paid order must be compensated, refund included.
    #[tracing::instrument(name = "saga.commit", skip_all, fields(lines = order.lines.len()))]
    async fn commit_all(&self, order: &Order) -> Committed {
        let results = self
            .each_line(
                order,
                |_| true,
                |id, quantity| SkuCmd::Commit {
                    id: id.to_owned(),
                    quantity,
                },
            )
            .await;
        // Committed before and forgotten since (the SKU remembers the last few commits,
        // and lapses apart) counts as done: reservations do not lapse while startup
        // recovery runs, and a lapsed one is answered as such, not as unknown.
        let done = |r: &Result<StockLevel, SkuFailure>| {
            matches!(
                r,
                Ok(_) | Err(SkuFailure::Rule(InventoryError::UnknownReservation(_)))
            )
        };
        match tally(results, "committing", done) {
            (_, Some(e)) => {
                tracing::warn!(order = %order.id, error = %e, "commit failed; will retry");
                Committed::Retry
            }
            (short, None) if short.is_empty() => Committed::All,
            (short, None) => Committed::Short(short),
        }
    }

    #[tracing::instrument(name = "saga.release", skip_all, fields(lines = order.lines.len()))]
    async fn release_all(&self, order: &Order) -> Done {
        self.all_lines(
            order,
            "release",
            |_| true,
            |id, _| SkuCmd::Release { id: id.to_owned() },
            Result::is_ok,
        )
        .await
    }

    /// Puts the units of every line `only` keeps back in stock (once per order and SKU).
    #[tracing::instrument(name = "saga.return_stock", skip_all, fields(lines = order.lines.len()))]
    async fn return_lines(&self, order: &Order, only: impl Fn(&OrderLine) -> bool) -> Done {
        self.all_lines(
            order,
            "return",
            only,
            |id, quantity| SkuCmd::Return {
                id: id.to_owned(),
                quantity,
            },
            Result::is_ok,
        )
        .await
    }

    /// Sends `cmd` to the order's promotion code, if it has one. `Ok(())` when done (or
    /// nothing to do: no code, or the code was deleted); `Err(Some(refusal))` when the
    /// use is refused; `Err(None)` when the code did not answer (drive again later).
    async fn promotion_step(
        &self,
        order: &Order,
        what: &str,
        cmd: impl Fn(&str, String) -> PromotionCmd,
    ) -> Result<(), Option<PromotionRefusal>> {
        let Some(used) = &order.pricing.promotion else {
            return Ok(());
        };
        let c = cmd(&order.id, used.customer.clone());
        match self.promotions.call_applied(&used.code, || c.clone()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(PromotionFailure::Use(UseError::Exhausted))) => {
                Err(Some(PromotionRefusal::Exhausted))
            }
            Ok(Err(PromotionFailure::Use(UseError::CustomerLimit))) => {
                Err(Some(PromotionRefusal::CustomerLimit))
            }
            Ok(Err(PromotionFailure::Use(UseError::Busy))) => Err(Some(PromotionRefusal::Busy)),
            Ok(Err(PromotionFailure::NotFound)) if what == "reserving" => {
                Err(Some(PromotionRefusal::Withdrawn))
            }
            Ok(Err(PromotionFailure::NotFound)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(order = %order.id, code = %used.code, what, error = %e, "promotion step failed; will retry");
                Err(None)
            }
            Err(e) => {
                tracing::warn!(order = %order.id, code = %used.code, what, error = %e, "promotion step failed; will retry");
                Err(None)
            }
        }
    }

    /// Holds the order's promotion use (idempotent on the order).
    #[tracing::instrument(name = "saga.reserve_promotion", skip_all)]
    async fn reserve_promotion(&self, order: &Order) -> Result<(), Option<PromotionRefusal>> {
        let expires_at = self.store.clock().now() + self.reservation_ttl_ms;
        self.promotion_step(order, "reserving", |id, customer| PromotionCmd::Reserve {
            order_id: id.to_owned(),
            customer,
            expires_at,
        })
        .await
    }

    /// Commits the order's promotion use. A hold that lapsed while the charge ran is
    /// taken again if a use is left; if none is, the refusal (the paid order is then
    /// compensated, as a line whose stock went).
    #[tracing::instrument(name = "saga.commit_promotion", skip_all)]
    async fn commit_promotion(&self, order: &Order) -> Result<(), Option<PromotionRefusal>> {
        let commit = |id: &str, _| PromotionCmd::Commit(id.to_owned());
        let Some(used) = &order.pricing.promotion else {
            return Ok(());
        };
        let c = commit(&order.id, String::new());
        match self.promotions.call_applied(&used.code, || c.clone()).await {
            Ok(Err(PromotionFailure::Use(UseError::NotHeld(_)))) => {
                self.reserve_promotion(order).await?;
                self.promotion_step(order, "committing", commit).await
            }
            _ => self.promotion_step(order, "committing", commit).await,
        }
    }

    /// Drops the order's promotion hold and gives back a committed use (both idempotent).
    async fn undo_promotion(&self, order: &Order) -> Done {
        let release = self
            .promotion_step(order, "releasing", |id, _| {
                PromotionCmd::Release(id.to_owned())
            })
            .await;
        let give_back = self
            .promotion_step(order, "giving back", |id, _| {
                PromotionCmd::Return(id.to_owned())
            })
            .await;
        release.is_ok() && give_back.is_ok()
    }

    /// Closes (placed) or reopens (failed) the cart the order came from. `None` if the
    /// cart did not answer; else whether the cart chose this order's payment failure as
    /// the one it mails this window (see [`crate::domain::cart::Cart::checkout_failed`]).
    #[tracing::instrument(name = "saga.finish_cart", skip_all, fields(placed))]
    async fn finish_cart(&self, order: &Order, placed: bool, payment_failed: bool) -> Option<bool> {
        let cmd = || CartCmd::FinishCheckout {
            order_id: order.id.clone(),
            placed,
            payment_failed,
        };
        match self.carts.call_applied(&order.cart_id, cmd).await {
            Ok(Ok(CartReply::Cart(cart))) => Some(cart.mails_failure_of(&order.id)),
            Ok(Ok(CartReply::Checkout(_) | CartReply::Forgot(_)))
            | Ok(Err(CartFailure::NotFound)) => Some(false),
            Ok(Err(e)) => {
                tracing::warn!(order = %order.id, error = %e, "closing the cart failed; will retry");
                None
            }
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "closing the cart failed; will retry");
                None
            }
        }
    }

    /// Drives the saga and any owed work as far as it goes now. Returns whether it wrote.
    async fn drive(&self, state: &mut Option<Order>) -> Result<bool, StorageError> {
        let mut wrote = false;
        loop {
            let Some(order) = state.clone() else {
                return Ok(wrote);
            };
            let now = self.store.clock().now();
            match order.step.clone() {
                Step::Reserve => {
                    let charged = match self.charge_made_before(&order).await {
                        Err(e) => {
                            tracing::warn!(order = %order.id, error = %e,
                                "looking up an earlier charge failed; will retry");
                            return Ok(wrote);
                        }
                        Ok(Some(charge)) => Ok(charge),
                        Ok(None) => self.reserve_and_charge(&order).await,
                    };
                    match charged {
                        Ok(charge) => self.paid_and_placed(state, &order, charge, now).await?,
                        Err(f) => self.save(state, order.compensating(f, now), |_| Ok(()), &[])?,
                    }
                    wrote = true;
                }
                Step::Complete => {
                    let placing = self.place(&order).await;
                    let Some((next, events)) = Self::after_placing(&order, placing, now) else {
                        return Ok(wrote);
                    };
                    self.save(state, next, |_| Ok(()), &events)?;
                    wrote = true;
                }
                Step::Compensate(failure) => {
                    // Compensating a paid order (its commit found lapsed reservations and
                    // no stock): every line but the short ones was sold and goes back.
                    let captured = order.payment.is_some();
                    let undone = if captured {
                        let short = match &failure {
                            CheckoutFailure::OutOfStock(s) => s.clone(),
                            _ => Vec::new(),
                        };
                        self.return_lines(&order, |l| !short.iter().any(|s| s == l.sku.as_str()))
                            .await
                    } else {
                        self.release_all(&order).await
                    };
                    if !undone || !self.undo_promotion(&order).await {
                        return Ok(wrote);
                    }
                    // Unless the gateway declined it, a charge may have landed: before a
                    // crash, with an outcome that stayed unknown, or captured before the
                    // commit failed. Refund by key (a no-op if there is no charge).
                    let mut refunded = None;
                    if !matches!(failure, CheckoutFailure::Declined(_)) {
                        match self.policy.refund(&*self.gateway, &order.id, None).await {
                            Ok(charge) => refunded = charge.map(|c| c.refunded),
                            Err(e) => {
                                tracing::warn!(order = %order.id, error = %e, "refund failed; will retry");
                                return Ok(wrote);
                            }
                        }
                    }
                    let payment_failed = matches!(
                        failure,
                        CheckoutFailure::Declined(_) | CheckoutFailure::Gateway(_)
                    );
                    let Some(mailed) = self.finish_cart(&order, false, payment_failed).await else {
                        return Ok(wrote);
                    };
                    let mut events = match &failure {
                        CheckoutFailure::Declined(r) | CheckoutFailure::Gateway(r) => {
                            vec![DomainEvent::PaymentFailed {
                                order_id: order.id.clone(),
                                reason: r.clone(),
                                notify: mailed,
                            }]
                        }
                        _ => Vec::new(),
                    };
                    let mut next = order.failed(failure, now);
                    let payment = match refunded.filter(|_| captured) {
                        Some(amount) => {
                            next = next.settled(Owed::Refund, now);
                            events.push(DomainEvent::OrderRefunded {
                                order_id: order.id.clone(),
                                amount,
                            });
                            self.refunded_payment(&order.id, amount, true, now)?
                        }
                        None => None,
                    };
                    let payments = &self.store.tables().payments;
                    self.save(
                        state,
                        next,
                        |b| match &payment {
                            Some(p) => b.put(payments, order.id.as_str(), p),
                            None => Ok(()),
                        },
                        &events,
                    )?;
                    wrote = true;
                }
                Step::Done | Step::Failed => {
                    let Some(owed) = order.owed.first().copied() else {
                        return Ok(wrote);
                    };
                    if !self.settle(state, &order, owed).await? {
                        return Ok(wrote);
                    }
                    wrote = true;
                }
            }
        }
    }

    /// The charge an earlier drive of this order made, if any. A drive may have been cut
    /// short after its charge (see [`FreshOrders`]); it then goes on from that charge and
    /// never reserves lines that may be sold already. A fresh order made none: no lookup.
    async fn charge_made_before(
        &self,
        order: &Order,
    ) -> Result<Option<Charge>, crate::payments::GatewayError> {
        if self.fresh.take(&order.id) {
            return Ok(None);
        }
        self.policy.lookup(&*self.gateway, &order.id).await
    }

    /// Reserves every line and the promotion, then charges: the charge, or why the
    /// checkout cannot go through.
    async fn reserve_and_charge(&self, order: &Order) -> Result<Charge, CheckoutFailure> {
        self.reserve_all(order).await?;
        match self.reserve_promotion(order).await {
            Ok(()) => {}
            Err(Some(refusal)) => return Err(CheckoutFailure::Promotion(refusal)),
            Err(None) => {
                return Err(CheckoutFailure::Unavailable(
                    "the promotion code did not answer".into(),
                ));
            }
        }
        match self.charge(order).await {
            ChargeOutcome::Captured(charge) => Ok(charge),
            ChargeOutcome::Declined(reason) => Err(CheckoutFailure::Declined(reason)),
            // The order records the failure's text (its outcome is replayed to every
            // retry of the key).
            ChargeOutcome::Failed(e) => Err(CheckoutFailure::Gateway(e.to_string())),
        }
    }

    /// Records a captured charge and, when the order can be placed at once (the usual
    /// case), its completion in the same write: one write and one journal entry where
    /// there were two. Nothing of it needs the paid state stored first: a drive cut
    /// short before this write finds the charge by lookup (see [`FreshOrders`]) and
    /// places the order again, every step of which is idempotent. When placing fails or
    /// must wait, the paid state is written as before (compensating, or to be driven
    /// again).
    async fn paid_and_placed(
        &self,
        state: &mut Option<Order>,
        order: &Order,
        charge: Charge,
        now: i64,
    ) -> Result<(), StorageError> {
        let paid = order.paid(charge.id.clone(), now);
        let payment = Payment {
            id: charge.id.clone(),
            order_id: order.id.clone(),
            amount: charge.amount,
            currency: charge.currency.clone(),
            status: PaymentState::Captured,
            refunds: Vec::new(),
            created_at: now,
        };
        let paid_event = DomainEvent::OrderPaid {
            order_id: order.id.clone(),
            payment_id: charge.id,
            amount: charge.amount,
        };
        let placing = self.place(&paid).await;
        let (next, placed) =
            Self::after_placing(&paid, placing, now).unwrap_or_else(|| (paid, Vec::new()));
        let events: Vec<DomainEvent> = std::iter::once(paid_event).chain(placed).collect();
        let payments = &self.store.tables().payments;
        self.save(
            state,
            next,
            |b| b.put(payments, order.id.as_str(), &payment),
            &events,
        )
    }

    /// Sells a paid order's lines, uses its promotion and closes its cart.
    async fn place(&self, order: &Order) -> Placing {
        match self.commit_all(order).await {
            Committed::All => {}
            Committed::Retry => return Placing::Retry,
            Committed::Short(short) => {
                tracing::warn!(order = %order.id, skus = ?short,
                    "reservations lapsed during the charge and the stock is gone: refunding");
                return Placing::Failed(CheckoutFailure::OutOfStock(short));
            }
        }
        match self.commit_promotion(order).await {
            Ok(()) => {}
            Err(None) => return Placing::Retry,
            Err(Some(refusal)) => {
                tracing::warn!(order = %order.id, ?refusal,
                    "the promotion hold lapsed during the charge and no use is left: refunding");
                return Placing::Failed(CheckoutFailure::Promotion(refusal));
            }
        }
        match self.finish_cart(order, true, false).await {
            Some(_) => Placing::Placed,
            None => Placing::Retry,
        }
    }

    /// What a paid order becomes after `placing`, with its events: completed (and
    /// `OrderPlaced`), or compensating; `None` when placing must be tried again.
    fn after_placing(
        order: &Order,
        placing: Placing,
        now: i64,
    ) -> Option<(Order, Vec<DomainEvent>)> {
        match placing {
            Placing::Retry => None,
            Placing::Failed(failure) => Some((order.compensating(failure, now), Vec::new())),
            Placing::Placed => Some((
                order.completed(now),
                vec![DomainEvent::OrderPlaced {
                    order_id: order.id.clone(),
                    items: EventItem::of(&order.lines),
                    total: order.total,
                    currency: order.currency.clone(),
                    breakdown: order.pricing.breakdown.clone(),
                    promotion_code: order.pricing.promotion.as_ref().map(|p| p.code.clone()),
                }],
            )),
        }
    }

    #[tracing::instrument(name = "saga.charge", skip_all, fields(amount = order.total))]
    async fn charge(&self, order: &Order) -> ChargeOutcome {
        // Nothing is charged before the order and its reservations are durable: a crash
        // after the charge must find them (the saga's own steps do not wait for the disk).
        let barrier = self.store.barrier();
        if let Err(e) = barrier.wait(barrier.ticket()).await {
            return ChargeOutcome::Failed(ChargeFailure::NotCharged(e));
        }
        let request = ChargeRequest {
            key: order.id.clone(),
            amount: order.total,
            currency: order.currency.clone(),
            token: order.payment_token.clone().unwrap_or_default(),
        };
        self.policy.charge(&*self.gateway, &request).await
    }

    /// The order's payment record once the gateway says `refunded` in all (`full`: the
    /// whole charge), with the new part recorded once, if there is a record.
    fn refunded_payment(
        &self,
        order_id: &str,
        refunded: u64,
        full: bool,
        now: i64,
    ) -> Result<Option<Payment>, StorageError> {
        let payment = self.store.tables().payments.get(order_id)?;
        Ok(payment.map(|mut p| {
            let before: u64 = p.refunds.iter().map(|r| r.amount).sum();
            if refunded > before {
                p.refunds.push(RefundRecord {
                    amount: refunded - before,
                    at: now,
                });
            }
            p.status = if full || refunded >= p.amount {
                PaymentState::Refunded
            } else if refunded > 0 {
                PaymentState::PartiallyRefunded
            } else {
                p.status
            };
            p
        }))
    }

    /// Pays off one owed item; whether it went through.
    #[tracing::instrument(name = "saga.settle", skip_all, fields(owed = ?owed))]
    async fn settle(
        &self,
        state: &mut Option<Order>,
        order: &Order,
        owed: Owed,
    ) -> Result<Done, StorageError> {
        let now = self.store.clock().now();
        match owed {
            Owed::Refund | Owed::RefundUpTo(_) => {
                let up_to = match owed {
                    Owed::RefundUpTo(amount) => Some(amount),
                    _ => None,
                };
                let refunded = match self.policy.refund(&*self.gateway, &order.id, up_to).await {
                    Ok(c) => c.map_or(0, |c| c.refunded),
                    Err(e) => {
                        tracing::warn!(order = %order.id, error = %e, "refund failed; will retry");
                        return Ok(false);
                    }
                };
                let payments = &self.store.tables().payments;
                let payment = self.refunded_payment(&order.id, refunded, up_to.is_none(), now)?;
                self.save(
                    state,
                    order.settled(owed, now),
                    |b| match &payment {
                        Some(p) => b.put(payments, order.id.as_str(), p),
                        None => Ok(()),
                    },
                    &[],
                )?;
            }
            Owed::ReturnStock => {
                if !self.return_lines(order, |_| true).await {
                    return Ok(false);
                }
                self.save(state, order.settled(owed, now), |_| Ok(()), &[])?;
            }
            Owed::ReturnPromotion => {
                let given = self
                    .promotion_step(order, "giving back", |id, _| {
                        PromotionCmd::Return(id.to_owned())
                    })
                    .await;
                if given.is_err() {
                    return Ok(false);
                }
                self.save(state, order.settled(owed, now), |_| Ok(()), &[])?;
            }
        }
        Ok(true)
    }

    /// Deletes a failed checkout that charged nothing and was made before `before`, with
    /// its index entry; whether it did.
    fn prune(&self, state: &mut Option<Order>, before: i64) -> Result<bool, StorageError> {
        let Some(order) = state.as_ref() else {
            return Ok(false);
        };
        if order.status != OrderStatus::Failed
            || order.payment.is_some()
            || order.is_active()
            || order.created_at >= before
        {
            return Ok(false);
        }
        let tables = self.store.tables();
        let mut batch = WriteBatch::default();
        batch.remove(&tables.orders, order.id.as_str());
        let key = order_index_key(OrderStatus::Failed.tag(), order.created_at, &order.id);
        batch.remove(&tables.order_index, &key);
        tables.unstage_order_indexes(&mut batch, order)?;
        self.store.write(batch)?;
        *state = None;
        Ok(true)
    }

    fn transition_event(order: &Order, change: &Lifecycle) -> DomainEvent {
        let order_id = order.id.clone();
        match change {
            Lifecycle::Cancel => DomainEvent::OrderCancelled { order_id },
            Lifecycle::Ship(s) => DomainEvent::OrderShipped {
                order_id,
                carrier: s.carrier.clone(),
                tracking: s.tracking.clone(),
            },
            Lifecycle::Deliver => DomainEvent::OrderDelivered { order_id },
            Lifecycle::Refund => DomainEvent::OrderRefunded {
                order_id,
                amount: order.total - order.refunded_so_far().min(order.total),
            },
            Lifecycle::PartialRefund(_) => DomainEvent::OrderRefunded {
                order_id,
                amount: 0,
            },
        }
    }

    async fn change(
        &self,
        state: &mut Option<Order>,
        change: Lifecycle,
    ) -> (Result<Order, OrderFailure>, bool) {
        // Finish anything outstanding first (a checkout that is completing).
        let mut wrote = match self.drive(state).await {
            Ok(w) => w,
            Err(e) => return (Err(e.into()), true),
        };
        let Some(order) = state.clone() else {
            return (Err(OrderFailure::NotFound), wrote);
        };
        let now = self.store.clock().now();
        let next = match &change {
            Lifecycle::PartialRefund(part) => match order.refund_part(part, now) {
                Ok(n) => Ok(n),
                Err(RefundRefused::Transition(t)) => Err(OrderFailure::Transition(t)),
                Err(RefundRefused::Invalid(i)) => Err(OrderFailure::Invalid(i)),
            },
            change => order.transition(change, now).map_err(OrderFailure::from),
        };
        let next = match next {
            Ok(n) => n,
            Err(e) => return (Err(e), wrote),
        };
        let event = match &change {
            // The part refunded now (a part that refunds the rest is the full refund).
            Lifecycle::PartialRefund(_) => DomainEvent::OrderRefunded {
                order_id: order.id.clone(),
                amount: next.refunds.last().map_or(0, |r| r.amount),
            },
            change => Self::transition_event(&order, change),
        };
        if let Err(e) = self.save(state, next, |_| Ok(()), &[event]) {
            return (Err(e.into()), wrote);
        }
        wrote = true;
        // The transition is durable with what it owes; paying it off may finish now or be
        // left to the recovery sweep.
        if let Err(e) = self.drive(state).await {
            return (Err(e.into()), wrote);
        }
        (state.clone().ok_or(OrderFailure::NotFound), wrote)
    }
}

impl Entity for OrderEntity {
    const KIND: &'static str = "order";
    type State = Option<Order>;
    type Cmd = OrderCmd;
    type Reply = Result<Order, OrderFailure>;

    fn load(&self, id: &str) -> Result<Option<Order>, StorageError> {
        self.store.tables().orders.get(id)
    }

    async fn handle(
        &self,
        _: &str,
        state: &mut Option<Order>,
        cmd: OrderCmd,
    ) -> Effect<Self::Reply> {
        // A failed checkout never became an order: shoppers and admins do not see it; only
        // its checkout (the idempotent answer) and recovery address it.
        let visible = state
            .as_ref()
            .is_some_and(|o| o.status != OrderStatus::Failed);
        match cmd {
            _ if state.is_none() => Effect::read(Err(OrderFailure::NotFound)),
            OrderCmd::Get | OrderCmd::Change(_) if !visible => {
                Effect::read(Err(OrderFailure::NotFound))
            }
            OrderCmd::Get => Effect::read(state.clone().ok_or(OrderFailure::NotFound)),
            OrderCmd::Checkout | OrderCmd::Drive => match self.drive(state).await {
                Ok(wrote) => Effect::new(state.clone().ok_or(OrderFailure::NotFound), wrote),
                Err(e) => Effect::wrote(Err(e.into())),
            },
            OrderCmd::Change(change) => {
                let (reply, wrote) = self.change(state, change).await;
                Effect::new(reply, wrote)
            }
            OrderCmd::Anonymise => match state.clone() {
                None => Effect::read(Err(OrderFailure::NotFound)),
                Some(o) if o.is_anonymised() => Effect::read(Ok(o)),
                Some(o) => {
                    let next = o.anonymised(self.store.clock().now());
                    match self.save(state, next.clone(), |_| Ok(()), &[]) {
                        Ok(()) => Effect::wrote(Ok(next)),
                        Err(e) => Effect::read(Err(e.into())),
                    }
                }
            },
            OrderCmd::Prune(before) => match self.prune(state, before) {
                Ok(true) => Effect::wrote(Err(OrderFailure::NotFound)),
                Ok(false) => Effect::read(state.clone().ok_or(OrderFailure::NotFound)),
                Err(e) => Effect::read(Err(e.into())),
            },
        }
    }

    fn evict_now(&self, state: &Option<Order>) -> bool {
        state.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_order_is_fresh_once_and_the_set_stays_bounded() {
        let fresh = FreshOrders::default();
        fresh.created("a");
        assert!(fresh.take("a"), "the first drive of a created order");
        assert!(!fresh.take("a"), "any later drive looks the charge up");
        assert!(!fresh.take("never-created"));
        for i in 0..MAX_FRESH {
            fresh.created(&i.to_string());
        }
        // Full: the next one clears the rest (forgetting costs a lookup, never safety).
        fresh.created("b");
        assert!(fresh.take("b"));
        assert!(!fresh.take("0"));
        assert!(fresh.0.lock().unwrap().is_empty());
    }
}
