//! Checkout and orders: the engine's face of the order saga (see `actors/order.rs`).

use std::sync::atomic::Ordering;

use futures_util::StreamExt;

use super::{Engine, EngineError, check_id};
use crate::actors::cart::{CheckoutAsk, CheckoutStart};
use crate::actors::order::OrderFailure;
use crate::domain::order::{
    CheckoutFailure, CheckoutRequest, Lifecycle, Order, OrderStatus, Outcome, RefundPart, Shipment,
    Step,
};
use crate::payments::{Charge, Payment};
use crate::storage::{ORDERS_ACTIVE, ORDERS_ALL};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Orders driven at once by recovery.
const RECOVERY_CONCURRENCY: usize = 32;

/// One page of the admin order list.
#[derive(Debug, Clone)]
pub struct OrderPage {
    /// Orders, oldest first.
    pub items: Vec<Order>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

impl From<OrderFailure> for EngineError {
    fn from(e: OrderFailure) -> Self {
        match e {
            OrderFailure::NotFound => EngineError::NotFound("order"),
            OrderFailure::Transition(t) => EngineError::InvalidTransition(t),
            OrderFailure::Invalid(i) => EngineError::Invalid(i),
            OrderFailure::Storage(s) => s.into(),
        }
    }
}

impl From<CheckoutFailure> for EngineError {
    fn from(f: CheckoutFailure) -> Self {
        match f {
            CheckoutFailure::OutOfStock(skus) => EngineError::ItemsOutOfStock(skus),
            CheckoutFailure::Declined(r) => EngineError::PaymentDeclined(r),
            CheckoutFailure::Gateway(e) => EngineError::PaymentGateway(e),
            CheckoutFailure::Unavailable(e) => {
                EngineError::unavailable_because("the payment gateway", super::Recorded(e))
            }
            CheckoutFailure::Promotion(r) => r.into(),
        }
    }
}

fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() {
        return Err(EngineError::IdempotencyKeyMissing);
    }
    if key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EngineError::IdempotencyKeyMalformed);
    }
    Ok(())
}

fn shipment_field(v: Option<String>, field: &'static str) -> Result<Option<String>, EngineError> {
    // The length counts what was sent, as the API document declares it.
    if v.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(crate::domain::Invalid::new(field, "at most 200 characters").into());
    }
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().any(char::is_control) => Err(crate::domain::Invalid::new(
            field,
            "at most 200 characters, no control characters",
        )
        .into()),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// The cursor of the page after `order`: its index key without the tag.
fn cursor_of(order: &Order) -> String {
    format!("{:016x}{}", order.created_at.max(0) as u64, order.id)
}

/// Parses [`cursor_of`]: 16 hex digits of time, then the order id — one we issue (32 hex
/// digits) or an imported one (`imported-…`: any printable ASCII).
fn parse_cursor(c: &str) -> Option<(i64, &str)> {
    if !(17..=16 + MAX_ORDER_ID).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (at, id) = c.split_at(16);
    let at = u64::from_str_radix(at, 16).ok()?;
    (at <= i64::MAX as u64).then_some((at as i64, id))
}

/// Longest order id in a cursor (imported ids are `imported-` and at most 128 more).
const MAX_ORDER_ID: usize = 160;

impl Engine {
    /// Checks out a cart: the saga runs to its end and the paid order is returned, or the
    /// failure is, with everything undone and the cart open. The same `key` with the same
    /// request returns the first outcome again (without running anything twice); with a
    /// different request it is [`EngineError::IdempotencyKeyReused`].
    pub async fn checkout(
        &self,
        cart_id: &str,
        key: &str,
        request: &CheckoutRequest,
    ) -> Result<Order, EngineError> {
        self.checkout_as(cart_id, key, request, None).await
    }

    /// [`Engine::checkout`] by a signed-in customer (or a guest, with `None`): the order
    /// belongs to the customer and is in their history. A cart held by another account is
    /// not found.
    pub async fn checkout_as(
        &self,
        cart_id: &str,
        key: &str,
        request: &CheckoutRequest,
        customer: Option<&super::Authenticated>,
    ) -> Result<Order, EngineError> {
        check_key(key)?;
        self.check_cart_access(cart_id, customer).await?;
        let customer = customer.map(|a| a.customer_id.clone());
        check_id(cart_id, "cart")?;
        let request = request.validated()?;
        let fingerprint = request.fingerprint();
        // Prices are read from the catalog: only what is durable.
        self.catalog_durable().await?;
        let (mut replay, mut order_id) = self
            .begin_checkout(cart_id, key, &request, &fingerprint, None, customer.clone())
            .await?;
        let mut order = self.run_checkout(&order_id).await;
        // A transient outcome is not the key's final answer: a retry with the key runs the
        // checkout once more, as a new order (the old one stays failed, compensated).
        let transient = matches!(&order, Ok(Ok(o))
            if matches!(o.outcome, Some(Outcome::Failed(CheckoutFailure::Unavailable(_)))));
        if replay && transient {
            let rerun = Some(order_id.clone());
            (replay, order_id) = self
                .begin_checkout(cart_id, key, &request, &fingerprint, rerun, customer)
                .await?;
            order = self.run_checkout(&order_id).await;
        }
        let outcome = match &order {
            _ if replay => "replayed",
            Ok(Ok(o)) => match &o.outcome {
                Some(Outcome::Placed) => "paid",
                Some(Outcome::Failed(CheckoutFailure::OutOfStock(_))) => "out_of_stock",
                Some(Outcome::Failed(CheckoutFailure::Declined(_))) => "declined",
                Some(Outcome::Failed(CheckoutFailure::Gateway(_))) => "gateway_error",
                Some(Outcome::Failed(CheckoutFailure::Unavailable(_))) => "compensated",
                Some(Outcome::Failed(CheckoutFailure::Promotion(_))) => "promotion_refused",
                None => "unknown",
            },
            _ => "unknown",
        };
        metrics::counter!("emporium_checkouts_total", "outcome" => outcome).increment(1);
        let order = order??;
        match order.outcome {
            Some(Outcome::Placed) => Ok(order.as_placed()),
            Some(Outcome::Failed(f)) => Err(f.into()),
            None => Err(EngineError::unavailable(
                "the checkout's outcome (still in progress; retry with the same Idempotency-Key)",
            )),
        }
    }

    /// Admits a checkout at the cart: whether it is a replay of the key, and its order.
    async fn begin_checkout(
        &self,
        cart_id: &str,
        key: &str,
        request: &CheckoutRequest,
        fingerprint: &[u8],
        rerun: Option<String>,
        customer: Option<String>,
    ) -> Result<(bool, String), EngineError> {
        let ask = CheckoutAsk {
            key: key.to_owned(),
            request: request.clone(),
            fingerprint: fingerprint.to_vec(),
            rerun,
            customer,
        };
        match self.inner.carts.begin_checkout(cart_id, ask).await?? {
            CheckoutStart::Started(id) => {
                self.inner.orders.created(&id);
                Ok((false, id))
            }
            CheckoutStart::Existing(id) => Ok((true, id)),
        }
    }

    /// Drives the checkout saga of `order_id`, waiting at most the checkout timeout.
    async fn run_checkout(
        &self,
        order_id: &str,
    ) -> Result<Result<Order, OrderFailure>, crate::actors::CallError> {
        let timeout = self.inner.config.checkout_timeout;
        self.inner.orders.checkout(order_id, timeout).await
    }

    /// An order (a checkout that failed never became one: not found).
    pub async fn order(&self, id: &str) -> Result<Order, EngineError> {
        check_id(id, "order")?;
        Ok(self.inner.orders.get(id).await??)
    }

    async fn change_order(&self, id: &str, change: Lifecycle) -> Result<Order, EngineError> {
        check_id(id, "order")?;
        let timeout = self.inner.config.checkout_timeout;
        Ok(self.inner.orders.change(id, &change, timeout).await??)
    }

    /// `paid → cancelled`: the payment is refunded and the stock returned.
    pub async fn cancel_order(&self, id: &str) -> Result<Order, EngineError> {
        self.change_order(id, Lifecycle::Cancel).await
    }

    /// `paid → shipped`, with optional carrier details.
    pub async fn ship_order(
        &self,
        id: &str,
        carrier: Option<String>,
        tracking: Option<String>,
    ) -> Result<Order, EngineError> {
        let shipment = Shipment {
            carrier: shipment_field(carrier, "carrier")?,
            tracking: shipment_field(tracking, "tracking")?,
        };
        self.change_order(id, Lifecycle::Ship(shipment)).await
    }

    /// `shipped → delivered`.
    pub async fn deliver_order(&self, id: &str) -> Result<Order, EngineError> {
        self.change_order(id, Lifecycle::Deliver).await
    }

    /// `paid|shipped|delivered → refunded` (a paid order not yet shipped also gets its
    /// stock back).
    pub async fn refund_order(&self, id: &str) -> Result<Order, EngineError> {
        self.change_order(id, Lifecycle::Refund).await
    }

    /// Refunds part of a paid, shipped or delivered order: units of its lines (each at
    /// what it cost the customer, discounts taken and tax included) or an amount; never
    /// more than is captured and not yet refunded. A part that refunds the rest is the
    /// full refund (`refunded`); otherwise the status stays and the payment is
    /// `partially_refunded`. Stock is not returned by a partial refund.
    pub async fn refund_order_part(
        &self,
        id: &str,
        part: RefundPart,
    ) -> Result<Order, EngineError> {
        self.change_order(id, Lifecycle::PartialRefund(part)).await
    }

    /// Orders, oldest first, optionally only those with `status`.
    pub async fn orders(
        &self,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OrderPage, EngineError> {
        let bad = |m: &str| EngineError::BadQuery(m.to_owned());
        let tag = match status {
            None | Some("") => ORDERS_ALL,
            Some(s) => OrderStatus::parse(s)
                .filter(|s| *s != OrderStatus::Failed)
                .ok_or_else(|| {
                    bad("status: one of pending, paid, shipped, delivered, cancelled, refunded")
                })?
                .tag(),
        };
        if !(1..=100).contains(&limit) {
            return Err(bad("limit: must be between 1 and 100"));
        }
        let after = match cursor {
            None | Some("") => None,
            Some(c) => {
                let (at, id) = parse_cursor(c).ok_or_else(|| bad("cursor: malformed"))?;
                Some(crate::storage::order_index_key(tag, at, id))
            }
        };
        let tables = self.inner.store.tables();
        let keys = tables
            .order_index
            .scan_prefix(&[tag], after.as_deref(), limit + 1)?;
        let more = keys.len() > limit;
        let mut items = Vec::with_capacity(limit);
        for (key, _) in keys.into_iter().take(limit) {
            let id = std::str::from_utf8(&key[9..]).unwrap_or_default();
            if let Some(o) = tables.orders.get(id)? {
                items.push(o);
            }
        }
        // Show only what is durable.
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.current()).await?;
        let next_cursor = more.then(|| items.last().map(cursor_of)).flatten();
        Ok(OrderPage { items, next_cursor })
    }

    /// Ids of the orders with outstanding work (an interrupted saga, an owed refund or
    /// stock return), oldest first.
    fn active_orders(&self) -> Result<Vec<String>, EngineError> {
        self.indexed_orders(ORDERS_ACTIVE, None)
    }

    /// Ids of the orders under index `tag`, oldest first, up to the index key `end`
    /// (excluded) if given; read a page at a time.
    fn indexed_orders(&self, tag: u8, end: Option<&[u8]>) -> Result<Vec<String>, EngineError> {
        let index = &self.inner.store.tables().order_index;
        let mut ids = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = index.scan_prefix(&[tag], after.as_deref(), 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, _) in page {
                if end.is_some_and(|end| key.as_slice() >= end) {
                    return Ok(ids);
                }
                if let Ok(id) = String::from_utf8(key[9..].to_vec()) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    /// Drives every order with outstanding work as far as it goes. Returns how many were
    /// driven.
    pub async fn recover_orders(&self) -> Result<usize, EngineError> {
        let ids = self.active_orders()?;
        let n = ids.len();
        let timeout = self.inner.config.checkout_timeout;
        futures_util::stream::iter(ids)
            .for_each_concurrent(RECOVERY_CONCURRENCY, |id| async move {
                if let Err(e) = self.inner.orders.drive(&id, timeout).await {
                    tracing::warn!(order = %id, error = %e, "recovery could not drive the order; will retry");
                }
            })
            .await;
        Ok(n)
    }

    /// How many orders are still before or in their charge (the saga's `Reserve` step).
    fn orders_mid_charge(&self) -> Result<usize, EngineError> {
        let orders = &self.inner.store.tables().orders;
        let mut n = 0;
        for id in self.active_orders()? {
            if orders.get(&id)?.is_some_and(|o| o.step == Step::Reserve) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Startup: interrupted checkouts are driven forward or back while reservations
    /// cannot lapse (a paid order's are committed, not expired, however long the
    /// downtime), then lapsing resumes and every SKU holding reservations is activated so
    /// that its expiry timer runs again. Lapsing resumes only once no order is left before
    /// or in its charge: a drive that timed out (a slow gateway) is driven again first, so
    /// no reservation lapses under an order that is being charged.
    pub(super) async fn recover_at_start(&self) -> Result<(), EngineError> {
        let mut driven = self.recover_orders().await?;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let mid_charge = self.orders_mid_charge()?;
            if mid_charge == 0 {
                break;
            }
            tracing::warn!(
                orders = mid_charge,
                "recovery: orders are still being charged; reservations stay held until they finish"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
            driven += self.recover_orders().await?;
        }
        self.inner.sku_expiry.store(true, Ordering::Release);
        let mut held = 0;
        for page in self.inner.store.tables().stock.pages(1000) {
            for (key, stock) in page? {
                if stock.reservations.is_empty() {
                    continue;
                }
                held += 1;
                let sku = String::from_utf8_lossy(&key).into_owned();
                self.inner.skus.get(&sku).await??;
            }
        }
        if driven > 0 || held > 0 {
            tracing::info!(orders = driven, skus_with_holds = held, "recovery done");
        }
        Ok(())
    }

    pub(super) fn start_recovery_sweeper(&self) {
        self.every(self.inner.config.recovery_interval, |engine| async move {
            if let Err(e) = engine.recover_orders().await {
                tracing::warn!(error = %e, "order recovery sweep failed");
            }
        });
    }

    /// Deletes failed checkouts that charged nothing, once they are older than the
    /// configured retention (each through its order's actor). Returns how many.
    pub async fn prune_failed_orders(&self) -> Result<usize, EngineError> {
        // Never before its idempotency key is forgotten: a retry must find its order.
        let config = &self.inner.config;
        let keep = config.failed_order_retention.max(config.idempotency_ttl);
        let horizon = self.inner.store.clock().now() - super::millis(keep);
        let tag = OrderStatus::Failed.tag();
        let end = crate::storage::order_index_key(tag, horizon.max(0), "");
        let mut pruned = 0;
        for id in self.indexed_orders(tag, Some(&end))? {
            let r = self.inner.orders.prune(&id, horizon).await?;
            if let Err(OrderFailure::NotFound) = r {
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Forgets idempotency keys older than the configured retention, each through the
    /// actor of the cart that recorded it (the one writer of its records). Returns how
    /// many.
    pub async fn prune_idempotency_keys(&self) -> Result<usize, EngineError> {
        let horizon =
            self.inner.store.clock().now() - super::millis(self.inner.config.idempotency_ttl);
        let table = &self.inner.store.tables().idempotency;
        let mut by_cart: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for page in table.pages(1000) {
            for (key, record) in page? {
                let key = String::from_utf8_lossy(&key).into_owned();
                if let (true, Some((cart, _))) = (record.created_at < horizon, key.split_once(':'))
                {
                    by_cart.entry(cart.to_owned()).or_default().push(key);
                }
            }
        }
        let mut removed = 0;
        for (cart, keys) in by_cart {
            removed += self.inner.carts.forget_keys(&cart, keys, horizon).await??;
        }
        Ok(removed)
    }

    /// Every payment the engine recorded (audits, tests).
    pub fn payments(&self) -> Result<Vec<Payment>, EngineError> {
        Ok(self
            .inner
            .store
            .tables()
            .payments
            .values()
            .collect::<Result<_, _>>()?)
    }

    /// Every charge in the simulated gateway's own ledger (audits, tests).
    pub fn gateway_charges(&self) -> Result<Vec<Charge>, EngineError> {
        Ok(self
            .inner
            .store
            .tables()
            .gateway_ledger
            .values()
            .collect::<Result<_, _>>()?)
    }

    /// Every stored order, failed checkouts included (audits, tests).
    pub fn all_orders(&self) -> Result<Vec<Order>, EngineError> {
        Ok(self
            .inner
            .store
            .tables()
            .orders
            .values()
            .collect::<Result<_, _>>()?)
    }
}
