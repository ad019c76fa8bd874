//! The cart entity: one actor per cart, state = the stored [`Cart`], the empty cart an
//! issued id stands for until its first change is stored ([`CartIds`]), or nothing.

use crate::catalog::{CodeProblem, QuoteInput, ShippingProblem};
use crate::domain::cart::{Cart, CartDetails, CartError, CartIds, CartStatus, FailurePolicy};
use crate::domain::event::DomainEvent;
use crate::domain::order::{
    CheckoutRequest, CodeUse, IdempotencyRecord, Order, OrderLine, OrderPricing,
};
use crate::domain::{Millis, Sku};
use crate::pricebook::PriceBook;
use crate::storage::{StorageError, Store, WriteBatch};

use super::entity::{Answer, CallError, Directory, Effect, Entity};

/// The typed face of the cart actors: one method per command, so no message enum or
/// reply variant leaves this module.
#[derive(Clone)]
pub(crate) struct CartHandle(pub(crate) std::sync::Arc<Directory<CartEntity>>);

impl CartHandle {
    async fn cart(&self, id: &str, cmd: impl Fn() -> CartCmd) -> Answer<Cart, CartFailure> {
        Ok(match self.0.call(id, cmd).await? {
            Ok(CartReply::Cart(cart)) => Ok(*cart),
            // Only `BeginCheckout` answers `Checkout` and `ForgetKeys` `Forgot`; any other
            // command a cart.
            Ok(CartReply::Checkout(_) | CartReply::Forgot(_)) => {
                return Err(CallError::Failed(CartEntity::KIND));
            }
            Err(e) => Err(e),
        })
    }

    /// The cart.
    pub async fn get(&self, id: &str) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::Get).await
    }

    /// Adds `quantity` of `sku`.
    pub async fn add_item(&self, id: &str, sku: &Sku, quantity: i64) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::Add(sku.clone(), quantity)).await
    }

    /// Sets the quantity of `sku` (0 removes the line).
    pub async fn set_quantity(
        &self,
        id: &str,
        sku: &Sku,
        quantity: i64,
    ) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::Set(sku.clone(), quantity)).await
    }

    /// Removes the line of `sku`.
    pub async fn remove_item(&self, id: &str, sku: &Sku) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::Remove(sku.clone())).await
    }

    /// Records the shopper's email, address or shipping method.
    pub async fn set_details(&self, id: &str, details: &CartDetails) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::SetDetails(details.clone())).await
    }

    /// Enters a promotion code (canonical) or removes it.
    pub async fn set_promotion(&self, id: &str, code: Option<String>) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::SetPromotion(code.clone())).await
    }

    /// Deletes the cart if it has expired (`NotFound` then).
    pub async fn expire_if_due(&self, id: &str) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::ExpireIfDue).await
    }

    /// Records a reminder if the cart is still abandoned.
    pub async fn mark_abandoned(&self, id: &str, idle_before: Millis) -> Answer<Cart, CartFailure> {
        self.cart(id, || CartCmd::MarkAbandoned { idle_before })
            .await
    }

    /// Deletes the cart's idempotency records among `keys` made before `before`; how many.
    pub async fn forget_keys(
        &self,
        id: &str,
        keys: Vec<String>,
        before: Millis,
    ) -> Answer<usize, CartFailure> {
        let cmd = || CartCmd::ForgetKeys {
            keys: keys.clone(),
            before,
        };
        Ok(match self.0.call(id, cmd).await? {
            Ok(CartReply::Forgot(n)) => Ok(n),
            Ok(_) => return Err(CallError::Failed(CartEntity::KIND)),
            Err(e) => Err(e),
        })
    }

    /// Admits a checkout (or finds the one its key started).
    pub async fn begin_checkout(
        &self,
        id: &str,
        ask: CheckoutAsk,
    ) -> Answer<CheckoutStart, CartFailure> {
        let ask = Box::new(ask);
        Ok(
            match self
                .0
                .call(id, || CartCmd::BeginCheckout(ask.clone()))
                .await?
            {
                Ok(CartReply::Checkout(start)) => Ok(start),
                Ok(CartReply::Cart(_) | CartReply::Forgot(_)) => {
                    return Err(CallError::Failed(CartEntity::KIND));
                }
                Err(e) => Err(e),
            },
        )
    }
}

/// Commands a cart accepts.
#[derive(Debug, Clone)]
pub(crate) enum CartCmd {
    Get,
    Add(Sku, i64),
    Set(Sku, i64),
    Remove(Sku),
    SetDetails(CartDetails),
    SetPromotion(Option<String>),
    /// Deletes the cart if it has expired (the store sweep).
    ExpireIfDue,
    /// Starts a checkout (or finds the one this idempotency key started). `rerun` names
    /// that order when its outcome was transient: the key then starts a new one.
    BeginCheckout(Box<CheckoutAsk>),
    /// Ends the checkout of `order_id`: closes the cart if placed, reopens it otherwise
    /// and counts the failure (`payment_failed`: a decline or gateway failure, which may
    /// be mailed).
    FinishCheckout {
        order_id: String,
        placed: bool,
        payment_failed: bool,
    },
    /// Records a reminder (and emits `CartAbandoned`) if the cart is still abandoned.
    MarkAbandoned {
        idle_before: Millis,
    },
    /// Deletes those of the cart's idempotency records `keys` made before `before` (the
    /// retention sweep; the cart owns its records, so only it removes them).
    ForgetKeys {
        keys: Vec<String>,
        before: Millis,
    },
}

/// A checkout request as the cart admits it.
#[derive(Debug, Clone)]
pub(crate) struct CheckoutAsk {
    /// The client's idempotency key.
    pub key: String,
    /// The validated request.
    pub request: CheckoutRequest,
    /// [`CheckoutRequest::fingerprint`].
    pub fingerprint: Vec<u8>,
    /// The order whose transient failure this request reruns, if any.
    pub rerun: Option<String>,
    /// The signed-in customer the order will belong to, if any.
    pub customer: Option<String>,
}

/// How a checkout request was admitted.
#[derive(Debug, Clone)]
pub(crate) enum CheckoutStart {
    /// A new order was created (pending) and the cart locked.
    Started(String),
    /// This key already started this order.
    Existing(String),
}

/// What a cart command answers.
#[derive(Debug, Clone)]
pub(crate) enum CartReply {
    Cart(Box<Cart>),
    Checkout(CheckoutStart),
    /// How many idempotency records were deleted.
    Forgot(usize),
}

/// Why a cart command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CartFailure {
    /// No such cart (or it expired).
    #[error("cart not found")]
    NotFound,
    /// The SKU is not in the catalog.
    #[error("unknown sku {0}")]
    UnknownSku(Sku),
    /// A cart rule refused the change.
    #[error(transparent)]
    Rule(#[from] CartError),
    /// Nothing in the cart can be bought.
    #[error("the cart is empty")]
    Empty,
    /// The idempotency key was used with a different request.
    #[error("the Idempotency-Key was used with a different request")]
    KeyReused,
    /// The cart's checkouts failed too often lately.
    #[error("too many failed checkouts; retry in {0} ms")]
    TooManyFailures(Millis),
    /// The cart's promotion code cannot be used.
    #[error(transparent)]
    Promotion(CodeProblem),
    /// Shipping cannot be charged as asked.
    #[error(transparent)]
    Shipping(ShippingProblem),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct CartEntity {
    pub store: Store,
    pub ttl_ms: Millis,
    pub currency: String,
    /// How many failed checkouts a cart may have per window.
    pub failures: FailurePolicy,
    /// Shipping, tax and automatic promotions.
    pub book: PriceBook,
    /// Recognises the ids of carts not stored yet.
    pub ids: CartIds,
}

/// The key of an idempotency record.
pub(crate) fn idempotency_key(cart_id: &str, key: &str) -> String {
    format!("{cart_id}:{key}")
}

impl CartEntity {
    fn save(&self, state: &mut Option<Cart>, next: Cart) -> Effect<Result<CartReply, CartFailure>> {
        match self.store.tables().carts.put(&next.id, &next) {
            Ok(()) => {
                *state = Some(next.clone());
                Effect::wrote(Ok(CartReply::Cart(Box::new(next))))
            }
            Err(e) => Effect::read(Err(e.into())),
        }
    }

    /// Admits a checkout: the same key again finds its order; otherwise the cart is priced
    /// from the catalog and, in one atomic write, locked, the order created `pending` and
    /// the key recorded.
    fn begin_checkout(
        &self,
        id: &str,
        state: &mut Option<Cart>,
        ask: &CheckoutAsk,
        now: Millis,
    ) -> Result<(CheckoutStart, bool), CartFailure> {
        let tables = self.store.tables();
        let record_key = idempotency_key(id, &ask.key);
        if let Some(r) = tables.idempotency.get(&record_key)? {
            if r.fingerprint != ask.fingerprint {
                return Err(CartFailure::KeyReused);
            }
            // A key whose order ended in a transient failure runs again, once per retry:
            // only the retry that names the order it found starts a new one.
            if ask.rerun.as_deref() != Some(r.order_id.as_str()) {
                return Ok((CheckoutStart::Existing(r.order_id), false));
            }
        }
        let cart = state.as_ref().ok_or(CartFailure::NotFound)?;
        cart.open()?;
        cart.may_check_out(self.failures, now)
            .map_err(CartFailure::TooManyFailures)?;
        // Priced as the cart shows it: a product deleted since it was added cannot be
        // bought; the rest can. The code, shipping and tax are priced for the request's
        // address and method (or the cart's method).
        let request = &ask.request;
        let method = request
            .shipping_method
            .as_deref()
            .or(cart.shipping_method.as_deref());
        let book = self.book.current();
        let quote = crate::catalog::quote(
            tables,
            &book,
            QuoteInput {
                cart,
                address: Some(&request.shipping_address),
                method,
                now,
            },
        )?;
        if quote.priced.lines.is_empty() {
            return Err(CartFailure::Empty);
        }
        if let Some(problem) = quote.code_problem {
            return Err(CartFailure::Promotion(problem));
        }
        if let Some(problem) = quote.shipping_problem {
            return Err(CartFailure::Shipping(problem));
        }
        let lines: Vec<OrderLine> = quote
            .priced
            .lines
            .into_iter()
            .map(OrderLine::from)
            .collect();
        let promotion = cart.promotion_code.clone().map(|code| CodeUse {
            code,
            customer: match &ask.customer {
                Some(c) => format!("customer:{c}"),
                None => format!("email:{}", request.email.to_lowercase()),
            },
        });
        let pricing = OrderPricing {
            breakdown: quote.breakdown,
            shipping_method: quote.shipping.map(|m| (m.id, m.name)),
            promotion,
        };
        let order_id = uuid::Uuid::new_v4().simple().to_string();
        let order = Order::new(
            order_id.clone(),
            id.to_owned(),
            request.clone(),
            lines,
            pricing,
            self.currency.clone(),
            now,
        );
        let mut locked = cart.clone();
        locked.checkout = Some(order_id.clone());
        let record = IdempotencyRecord {
            fingerprint: ask.fingerprint.clone(),
            order_id: order_id.clone(),
            created_at: now,
        };
        let mut batch = WriteBatch::default();
        batch.put(&tables.carts, id, &locked)?;
        batch.put(&tables.idempotency, record_key.as_str(), &record)?;
        tables.stage_order(&mut batch, None, &order)?;
        if let Some(customer) = &ask.customer {
            tables.stage_order_owner(&mut batch, &order, customer)?;
        }
        self.store.write(batch)?;
        *state = Some(locked);
        Ok((CheckoutStart::Started(order_id), true))
    }

    fn finish_checkout(
        &self,
        state: &mut Option<Cart>,
        order_id: &str,
        placed: bool,
        payment_failed: bool,
        now: Millis,
    ) -> Effect<Result<CartReply, CartFailure>> {
        let Some(cart) = state.as_ref() else {
            return Effect::read(Err(CartFailure::NotFound));
        };
        if cart.checkout.as_deref() != Some(order_id) {
            // Already finished (a retried step) or not this order's: nothing to do.
            return Effect::read(Ok(CartReply::Cart(Box::new(cart.clone()))));
        }
        let mut next = if placed {
            cart.clone()
        } else {
            cart.checkout_failed(order_id, payment_failed, self.failures, now)
        };
        next.checkout = None;
        next.updated_at = now;
        if placed {
            next.status = CartStatus::CheckedOut;
        }
        self.save(state, next)
    }

    /// Deletes the records among `keys` that belong to this cart and were made before
    /// `before`; how many.
    fn forget_keys(
        &self,
        id: &str,
        keys: &[String],
        before: Millis,
    ) -> Result<usize, StorageError> {
        let table = &self.store.tables().idempotency;
        let prefix = idempotency_key(id, "");
        let mut removed = 0;
        for key in keys.iter().filter(|k| k.starts_with(&prefix)) {
            if table.get(key)?.is_some_and(|r| r.created_at < before) {
                table.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn known_sku(&self, sku: &Sku) -> Result<(), CartFailure> {
        match self.store.tables().products.contains(sku.as_str()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CartFailure::UnknownSku(sku.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

impl Entity for CartEntity {
    const KIND: &'static str = "cart";
    type State = Option<Cart>;
    type Cmd = CartCmd;
    type Reply = Result<CartReply, CartFailure>;

    fn load(&self, id: &str) -> Result<Option<Cart>, StorageError> {
        let cart = self.store.tables().carts.get(id)?;
        let now = self.store.clock().now();
        match cart {
            Some(c) if c.is_expired(now) && c.checkout.is_none() => {
                self.store.tables().carts.remove(id)?;
                Ok(None)
            }
            // Never stored: the empty cart its id stands for, if we issued it (a stored
            // cart outlives its id's own lifetime, so an expired record never comes back
            // as an empty cart).
            None => Ok(self.ids.unstored(id, now, self.ttl_ms)),
            other => Ok(other),
        }
    }

    async fn handle(
        &self,
        id: &str,
        state: &mut Option<Cart>,
        cmd: CartCmd,
    ) -> Effect<Self::Reply> {
        let now = self.store.clock().now();
        // A cart in checkout does not lapse under its saga.
        if state
            .as_ref()
            .is_some_and(|c| c.is_expired(now) && c.checkout.is_none())
        {
            if let Err(e) = self.store.tables().carts.remove(id) {
                return Effect::read(Err(e.into()));
            }
            *state = None;
        }
        let ttl = self.ttl_ms;
        let next = match (&cmd, state.as_ref()) {
            (CartCmd::ForgetKeys { keys, before }, _) => {
                return match self.forget_keys(id, keys, *before) {
                    Ok(n) => Effect::new(Ok(CartReply::Forgot(n)), n > 0),
                    Err(e) => Effect::read(Err(e.into())),
                };
            }
            (CartCmd::ExpireIfDue, _) => {
                return Effect::read(
                    state
                        .clone()
                        .map(|c| CartReply::Cart(Box::new(c)))
                        .ok_or(CartFailure::NotFound),
                );
            }
            (CartCmd::BeginCheckout(ask), _) => {
                return match self.begin_checkout(id, state, ask, now) {
                    Ok((start, wrote)) => Effect::new(Ok(CartReply::Checkout(start)), wrote),
                    Err(e) => Effect::read(Err(e)),
                };
            }
            (
                CartCmd::FinishCheckout {
                    order_id,
                    placed,
                    payment_failed,
                },
                _,
            ) => {
                return self.finish_checkout(state, order_id, *placed, *payment_failed, now);
            }
            (CartCmd::MarkAbandoned { idle_before }, Some(c)) => {
                if !c.is_abandoned(*idle_before) {
                    return Effect::read(Ok(CartReply::Cart(Box::new(c.clone()))));
                }
                // A reminder does not count as a change: expiry and `updated_at` stay.
                let mut next = c.clone();
                next.reminded_at = Some(now.max(c.updated_at + 1));
                let mut batch = WriteBatch::default();
                let event = DomainEvent::CartAbandoned {
                    cart_id: id.to_owned(),
                };
                let written = batch
                    .put(&self.store.tables().carts, id, &next)
                    .and_then(|()| self.store.write_with_events(batch, &[event]));
                return match written {
                    Ok(_) => {
                        *state = Some(next.clone());
                        Effect::wrote(Ok(CartReply::Cart(Box::new(next))))
                    }
                    Err(e) => Effect::read(Err(e.into())),
                };
            }
            (_, None) => return Effect::read(Err(CartFailure::NotFound)),
            (CartCmd::Get, Some(c)) => {
                return Effect::read(Ok(CartReply::Cart(Box::new(c.clone()))));
            }
            (CartCmd::Add(sku, q), Some(c)) => self.known_sku(sku).and_then(|()| {
                c.add_item(sku.clone(), *q, now, ttl)
                    .map_err(CartFailure::from)
            }),
            (CartCmd::Set(sku, q), Some(c)) => {
                // Lowering or removing a line never needs the catalog; adding one does.
                let known = if *q <= 0 || c.quantity_of(sku) > 0 {
                    Ok(())
                } else {
                    self.known_sku(sku)
                };
                known.and_then(|()| {
                    c.set_quantity(sku.clone(), *q, now, ttl)
                        .map_err(CartFailure::from)
                })
            }
            (CartCmd::Remove(sku), Some(c)) => {
                c.remove_item(sku, now, ttl).map_err(CartFailure::from)
            }
            (CartCmd::SetDetails(d), Some(c)) => {
                c.set_details(d, now, ttl).map_err(CartFailure::from)
            }
            (CartCmd::SetPromotion(code), Some(c)) => c
                .set_promotion(code.clone(), now, ttl)
                .map_err(CartFailure::from),
        };
        match next {
            Ok(cart) => self.save(state, cart),
            Err(e) => Effect::read(Err(e)),
        }
    }

    fn evict_now(&self, state: &Option<Cart>) -> bool {
        state.is_none()
    }
}
