//! Orders: the checkout saga's record and the order lifecycle, as pure functions.
//!
//! An order is created `pending` by the cart it comes from (priced from the catalog, in
//! the same atomic write that locks the cart), then driven by its actor through the saga
//! [`Step`]s. After payment the lifecycle is a small state machine ([`Order::transition`]);
//! a transition that owes work elsewhere (a refund, stock to return) records it in
//! [`Order::owed`] in the same write, and the actor pays it off idempotently.

use serde::{Deserialize, Serialize};

use super::{Invalid, Millis, Sku};

/// Where an order is in its life. `Failed` is internal: a checkout that did not go through
/// (the shopper got an error, never an order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Checkout in progress.
    Pending,
    /// Paid; stock sold.
    Paid,
    /// Handed to a carrier.
    Shipped,
    /// Arrived.
    Delivered,
    /// Cancelled before shipping: refunded, stock returned.
    Cancelled,
    /// Money returned by an admin.
    Refunded,
    /// The checkout failed and was compensated.
    Failed,
}

impl OrderStatus {
    /// Every status, in index order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
        OrderStatus::Failed,
    ];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Failed => "failed",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A small number for index keys (stable: part of the stored format).
    pub fn tag(self) -> u8 {
        OrderStatus::ALL
            .iter()
            .position(|s| *s == self)
            .expect("listed") as u8
            + 1
    }
}

/// A shipping address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street.
    pub line1: String,
    /// More street.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Country (ISO 3166 code or name; shipping zones and tax rates match the
    /// two-letter code).
    pub country: String,
    /// State, province or other region (tax rates may depend on it).
    pub region: Option<String>,
}

const MAX_FIELD: usize = 200;

fn text(field: &'static str, v: &str, min: usize) -> Result<String, Invalid> {
    // The length counts what was sent, as the API document declares it.
    if v.chars().count() > MAX_FIELD {
        return Err(Invalid::new(
            field,
            format!("at most {MAX_FIELD} characters"),
        ));
    }
    let v = v.trim();
    if v.chars().count() < min {
        return Err(Invalid::new(field, "is required"));
    }
    if v.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

impl Address {
    /// Checks and trims every field.
    pub fn validated(&self) -> Result<Address, Invalid> {
        let line2 = match self.line2.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l) => Some(text("shipping_address.line2", l, 1)?),
        };
        let region = match self.region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(text("shipping_address.region", r, 1)?),
        };
        Ok(Address {
            name: text("shipping_address.name", &self.name, 1)?,
            line1: text("shipping_address.line1", &self.line1, 1)?,
            line2,
            city: text("shipping_address.city", &self.city, 1)?,
            postal_code: text("shipping_address.postal_code", &self.postal_code, 1)?,
            country: text("shipping_address.country", &self.country, 2)?,
            region,
        })
    }

    /// Where it is, for shipping zones and tax rates (country and region upper case).
    pub fn destination(&self) -> super::pricing::Destination {
        super::pricing::Destination {
            country: self.country.trim().to_ascii_uppercase(),
            region: self.region.as_ref().map(|r| r.trim().to_ascii_uppercase()),
        }
    }
}

/// What a shopper sends to check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// Where the receipt goes.
    pub email: String,
    /// The payment method, as the gateway's token.
    pub payment_token: String,
    /// Where the goods go.
    pub shipping_address: Address,
    /// The shipping method's id; `None` takes the one chosen on the cart.
    pub shipping_method: Option<String>,
}

/// Longest payment token accepted.
pub const MAX_TOKEN: usize = 200;

impl CheckoutRequest {
    /// Checks every field; the result is normalised (trimmed).
    pub fn validated(&self) -> Result<CheckoutRequest, Invalid> {
        let token = self.payment_token.as_str();
        if token.is_empty()
            || token.len() > MAX_TOKEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Invalid::new(
                "payment_token",
                format!("1 to {MAX_TOKEN} visible ASCII characters"),
            ));
        }
        Ok(CheckoutRequest {
            email: super::parse_email(&self.email)?,
            payment_token: token.to_owned(),
            shipping_address: self.shipping_address.validated()?,
            shipping_method: match self.shipping_method.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(m) if m.len() <= 64 && m.bytes().all(|b| b.is_ascii_graphic()) => {
                    Some(m.to_owned())
                }
                Some(_) => {
                    return Err(Invalid::new(
                        "shipping_method",
                        "a shipping method's id (at most 64 characters)",
                    ));
                }
            },
        })
    }

    /// A digest of the request, to recognise a retry with a different body. The token is
    /// part of it, so the digest (never the token) is what the idempotency record keeps.
    pub fn fingerprint(&self) -> Vec<u8> {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a request serialises");
        sha2::Sha256::digest(&json).to_vec()
    }
}

/// A line of an order, priced when the order was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// What.
    pub sku: Sku,
    /// Name at the time of purchase.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price per unit at the time of purchase (minor units).
    pub unit_price: u64,
    /// `unit_price × quantity`.
    pub line_total: u64,
}

impl From<super::cart::PricedLine> for OrderLine {
    fn from(l: super::cart::PricedLine) -> Self {
        OrderLine {
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
            line_total: l.line_total,
        }
    }
}

/// Why a checkout failed. Stored with the order, so a retried request gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutFailure {
    /// These SKUs lacked stock.
    OutOfStock(Vec<String>),
    /// The payment was declined.
    Declined(String),
    /// The gateway failed (retries spent) or its outcome stayed unknown.
    Gateway(String),
    /// Part of the engine did not answer.
    Unavailable(String),
    /// The order's promotion code could not be used. (Variants are stored by position:
    /// new ones go last.)
    Promotion(PromotionRefusal),
}

/// Why an order's promotion code could not be used at checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionRefusal {
    /// Every use is taken.
    Exhausted,
    /// The customer has used it as often as it allows.
    CustomerLimit,
    /// Too many checkouts hold a use at once.
    Busy,
    /// The code was deleted while the checkout ran.
    Withdrawn,
}

/// The promotion code an order uses, and who uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeUse {
    /// The code.
    pub code: String,
    /// Who counts the use: `customer:{id}` or, for a guest, `email:{address}`.
    pub customer: String,
}

/// A refund of part of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRefund {
    /// Minor units given back.
    pub amount: u64,
    /// The units it was for (empty for a refund of an amount).
    pub lines: Vec<RefundedUnits>,
    /// When.
    pub at: Millis,
}

/// Units of a line that were refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundedUnits {
    /// The line's SKU.
    pub sku: Sku,
    /// How many units.
    pub quantity: u32,
}

/// How the order is priced beyond its lines: what [`super::pricing::price`] said at
/// checkout, the shipping method, the code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderPricing {
    /// The bill, frozen at checkout.
    pub breakdown: super::pricing::Breakdown,
    /// The shipping method's id and name, if shipping was charged.
    pub shipping_method: Option<(String, String)>,
    /// The promotion code used, if any.
    pub promotion: Option<CodeUse>,
}

/// The saga's position. Only `Reserve`, `Complete`, `Compensate`, `Done` and `Failed` are
/// ever stored: charging is idempotent on the order id, so a crash between reserving and
/// recording the charge simply reserves (a no-op) and charges (the gateway answers with
/// the charge it already made) again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Reserve every line (then charge).
    Reserve,
    /// Paid: commit the reservations, close the cart, emit `OrderPlaced`.
    Complete,
    /// Undo: release reservations, refund any charge, reopen the cart.
    Compensate(CheckoutFailure),
    /// The checkout went through.
    Done,
    /// The checkout failed and everything was undone.
    Failed,
}

/// Work a transition owes to other parts of the system, paid off idempotently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owed {
    /// Refund the payment in full.
    Refund,
    /// Put the sold units back in stock.
    ReturnStock,
    /// Refund until the payment's refunded amount reaches this (a partial refund).
    RefundUpTo(u64),
    /// Give the promotion code's use back (the order was cancelled).
    ReturnPromotion,
}

/// The payment of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef {
    /// The gateway's id.
    pub id: String,
    /// `captured` or `refunded`.
    pub status: PaymentState,
}

/// State of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentState {
    /// Money taken.
    Captured,
    /// Money returned in full.
    Refunded,
    /// Part of the money returned.
    PartiallyRefunded,
}

impl PaymentState {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Captured => "captured",
            PaymentState::Refunded => "refunded",
            PaymentState::PartiallyRefunded => "partially_refunded",
        }
    }
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The status entered.
    pub status: OrderStatus,
    /// When.
    pub at: Millis,
}

/// Carrier details given when an order ships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Carrier name.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking: Option<String>,
}

/// How a checkout ended, as answered to every retry of its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Paid: the answer is the order as it was then ([`Order::as_placed`]).
    Placed,
    /// Why it failed.
    Failed(CheckoutFailure),
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Opaque random id (122 random bits).
    pub id: String,
    /// The cart it came from.
    pub cart_id: String,
    /// The shopper's email.
    pub email: String,
    /// Priced lines.
    pub lines: Vec<OrderLine>,
    /// Sum of line totals.
    pub subtotal: u64,
    /// What the shopper pays.
    pub total: u64,
    /// ISO 4217.
    pub currency: String,
    /// The bill (discounts, shipping, tax), the shipping method and the code.
    pub pricing: OrderPricing,
    /// Partial refunds, oldest first.
    pub refunds: Vec<PartialRefund>,
    /// Where it goes.
    pub shipping_address: Address,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Where its saga is.
    pub step: Step,
    /// The payment token, kept only until the charge is settled.
    pub payment_token: Option<String>,
    /// The payment, once captured.
    pub payment: Option<PaymentRef>,
    /// Work owed by the last transition.
    pub owed: Vec<Owed>,
    /// Carrier details.
    pub shipment: Option<Shipment>,
    /// Every status entered, with its time.
    pub history: Vec<Transition>,
    /// The answer to the checkout request, once known.
    pub outcome: Option<Outcome>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// A lifecycle change asked of a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// `paid → cancelled`: refund and return stock.
    Cancel,
    /// `paid → shipped`.
    Ship(Shipment),
    /// `shipped → delivered`.
    Deliver,
    /// `paid|shipped|delivered → refunded`: refund (and return stock if not shipped).
    Refund,
    /// Refund part of a paid, shipped or delivered order ([`Order::refund_part`]).
    PartialRefund(RefundPart),
}

/// What part of an order to refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundPart {
    /// Units of lines, each at what it cost the customer.
    Lines(Vec<RefundedUnits>),
    /// An amount (minor units).
    Amount(u64),
}

/// Why a partial refund was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    /// The order's status does not allow it.
    #[error(transparent)]
    Transition(InvalidTransition),
    /// The request is wrong (nothing named, more than is left).
    #[error(transparent)]
    Invalid(Invalid),
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot be {to}")]
pub struct InvalidTransition {
    /// Current status.
    pub from: &'static str,
    /// Requested status.
    pub to: &'static str,
}

/// What an erased personal field reads.
pub const ERASED: &str = "(erased)";
/// What an erased order's email reads.
pub const ERASED_EMAIL: &str = "erased@erased.invalid";

impl Order {
    /// A new pending order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        cart_id: String,
        request: CheckoutRequest,
        lines: Vec<OrderLine>,
        pricing: OrderPricing,
        currency: String,
        now: Millis,
    ) -> Order {
        Order {
            id,
            cart_id,
            email: request.email,
            lines,
            subtotal: pricing.breakdown.subtotal,
            total: pricing.breakdown.total,
            currency,
            pricing,
            refunds: Vec::new(),
            shipping_address: request.shipping_address,
            status: OrderStatus::Pending,
            step: Step::Reserve,
            payment_token: Some(request.payment_token),
            payment: None,
            owed: Vec::new(),
            shipment: None,
            history: vec![Transition {
                status: OrderStatus::Pending,
                at: now,
            }],
            outcome: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A past order from another system, kept as history: delivered, nothing owed, no
    /// address or payment.
    pub fn imported(
        id: String,
        email: String,
        lines: Vec<OrderLine>,
        currency: String,
        created_at: Millis,
    ) -> Order {
        let totals: Vec<u64> = lines.iter().map(|l| l.line_total).collect();
        let pricing = OrderPricing {
            breakdown: super::pricing::Breakdown::plain(&totals),
            ..OrderPricing::default()
        };
        Order {
            id,
            cart_id: String::new(),
            email,
            lines,
            subtotal: pricing.breakdown.subtotal,
            total: pricing.breakdown.total,
            currency,
            pricing,
            refunds: Vec::new(),
            shipping_address: Address {
                name: String::new(),
                line1: String::new(),
                line2: None,
                city: String::new(),
                postal_code: String::new(),
                country: String::new(),
                region: None,
            },
            status: OrderStatus::Delivered,
            step: Step::Done,
            payment_token: None,
            payment: None,
            owed: Vec::new(),
            shipment: None,
            history: vec![Transition {
                status: OrderStatus::Delivered,
                at: created_at,
            }],
            outcome: None,
            created_at,
            updated_at: created_at,
        }
    }

    /// The order with its personal fields erased (the customer asked to be forgotten):
    /// the email, the shipping address and any payment token go; lines, totals, status,
    /// payment and history stay, as the books need them.
    pub fn anonymised(&self, now: Millis) -> Order {
        let erased = || ERASED.to_owned();
        let mut next = self.clone();
        next.email = ERASED_EMAIL.to_owned();
        next.shipping_address = Address {
            name: erased(),
            line1: erased(),
            line2: None,
            city: erased(),
            postal_code: erased(),
            country: erased(),
            region: None,
        };
        next.payment_token = None;
        next.updated_at = now;
        next
    }

    /// Whether [`Order::anonymised`] was applied.
    pub fn is_anonymised(&self) -> bool {
        self.email == ERASED_EMAIL
    }

    /// Whether the saga or owed work is still to be driven.
    pub fn is_active(&self) -> bool {
        !matches!(self.step, Step::Done | Step::Failed) || !self.owed.is_empty()
    }

    fn enter(&mut self, status: OrderStatus, now: Millis) {
        self.status = status;
        self.updated_at = now;
        self.history.push(Transition { status, at: now });
    }

    /// The charge succeeded: the order is paid and must now complete.
    pub fn paid(&self, payment_id: String, now: Millis) -> Order {
        let mut next = self.clone();
        next.enter(OrderStatus::Paid, now);
        next.step = Step::Complete;
        next.payment_token = None;
        next.payment = Some(PaymentRef {
            id: payment_id,
            status: PaymentState::Captured,
        });
        next.outcome = Some(Outcome::Placed);
        next
    }

    /// The order as it was when it was paid: the checkout's answer, the same bytes for
    /// every retry however the order moved on since. Everything after payment only
    /// appends to the history and changes status, payment status and shipment, so the
    /// paid state is recovered from the current one rather than stored twice.
    pub fn as_placed(&self) -> Order {
        let mut o = self.clone();
        if let Some(i) = o.history.iter().position(|t| t.status == OrderStatus::Paid) {
            o.updated_at = o.history[i].at;
            o.history.truncate(i + 1);
        }
        o.status = OrderStatus::Paid;
        o.step = Step::Complete;
        o.owed.clear();
        o.shipment = None;
        if let Some(p) = o.payment.as_mut() {
            p.status = PaymentState::Captured;
        }
        o
    }

    /// Stock committed and cart closed.
    pub fn completed(&self, now: Millis) -> Order {
        let mut next = self.clone();
        next.step = Step::Done;
        next.updated_at = now;
        next
    }

    /// The checkout cannot go through: compensation starts.
    pub fn compensating(&self, failure: CheckoutFailure, now: Millis) -> Order {
        let mut next = self.clone();
        next.step = Step::Compensate(failure);
        next.updated_at = now;
        next
    }

    /// Compensation done: the order failed.
    pub fn failed(&self, failure: CheckoutFailure, now: Millis) -> Order {
        let mut next = self.clone();
        next.enter(OrderStatus::Failed, now);
        next.step = Step::Failed;
        next.payment_token = None;
        next.outcome = Some(Outcome::Failed(failure));
        next
    }

    /// Applies a lifecycle change, recording what it owes.
    pub fn transition(&self, change: &Lifecycle, now: Millis) -> Result<Order, InvalidTransition> {
        use OrderStatus::*;
        if let Lifecycle::PartialRefund(part) = change {
            return match self.refund_part(part, now) {
                Ok(next) => Ok(next),
                Err(RefundRefused::Transition(t)) => Err(t),
                // Checked before: see `refund_part`'s callers.
                Err(RefundRefused::Invalid(_)) => Err(InvalidTransition {
                    from: self.status.as_str(),
                    to: "partially refunded",
                }),
            };
        }
        let (to, owed): (OrderStatus, &[Owed]) = match (change, self.status) {
            (Lifecycle::Cancel, Paid) if self.pricing.promotion.is_some() => (
                Cancelled,
                &[Owed::Refund, Owed::ReturnStock, Owed::ReturnPromotion],
            ),
            (Lifecycle::Cancel, Paid) => (Cancelled, &[Owed::Refund, Owed::ReturnStock]),
            (Lifecycle::Ship(_), Paid) => (Shipped, &[]),
            (Lifecycle::Deliver, Shipped) => (Delivered, &[]),
            (Lifecycle::Refund, Paid) => (Refunded, &[Owed::Refund, Owed::ReturnStock]),
            (Lifecycle::Refund, Shipped | Delivered) => (Refunded, &[Owed::Refund]),
            (change, from) => {
                return Err(InvalidTransition {
                    from: from.as_str(),
                    to: match change {
                        Lifecycle::Cancel => Cancelled.as_str(),
                        Lifecycle::Ship(_) => Shipped.as_str(),
                        Lifecycle::Deliver => Delivered.as_str(),
                        Lifecycle::Refund => Refunded.as_str(),
                        Lifecycle::PartialRefund(_) => "partially refunded",
                    },
                });
            }
        };
        // A paid order still completing its saga is not ready for its lifecycle yet.
        if self.step != Step::Done {
            return Err(InvalidTransition {
                from: "completing its checkout",
                to: to.as_str(),
            });
        }
        let mut next = self.clone();
        next.enter(to, now);
        next.owed.extend_from_slice(owed);
        if let Lifecycle::Ship(s) = change {
            next.shipment = Some(s.clone());
        }
        Ok(next)
    }

    /// Marks one owed item as paid off.
    pub fn settled(&self, owed: Owed, now: Millis) -> Order {
        let mut next = self.clone();
        next.owed.retain(|o| *o != owed);
        if let Some(p) = next.payment.as_mut() {
            match owed {
                Owed::Refund => p.status = PaymentState::Refunded,
                Owed::RefundUpTo(_) if p.status == PaymentState::Captured => {
                    p.status = PaymentState::PartiallyRefunded;
                }
                _ => {}
            }
        }
        next.updated_at = now;
        next
    }

    /// Minor units refunded by partial refunds so far.
    pub fn refunded_so_far(&self) -> u64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    /// Units of `sku` refunded by partial refunds so far.
    fn units_refunded(&self, sku: &Sku) -> u32 {
        self.refunds
            .iter()
            .flat_map(|r| &r.lines)
            .filter(|u| &u.sku == sku)
            .map(|u| u.quantity)
            .sum()
    }

    /// What the first `units` units of line `i` cost the customer: its share of what
    /// the line cost (discounts taken, tax included), rounded down, so that the units
    /// of a line refunded one at a time sum to the whole line.
    fn paid_for_units(&self, i: usize, units: u32) -> u64 {
        let line = &self.lines[i];
        let paid = self
            .pricing
            .breakdown
            .lines_paid
            .get(i)
            .copied()
            .unwrap_or(line.line_total);
        let wide = u128::from(paid) * u128::from(units) / u128::from(line.quantity.max(1));
        u64::try_from(wide).unwrap_or(u64::MAX)
    }

    /// Refunds part of a paid order: chosen units of its lines (each at what it cost the
    /// customer) or an amount. Never more than was captured and not yet refunded; a
    /// part that refunds the rest is the full refund ([`Lifecycle::Refund`]).
    pub fn refund_part(&self, part: &RefundPart, now: Millis) -> Result<Order, RefundRefused> {
        use OrderStatus::*;
        if !matches!(self.status, Paid | Shipped | Delivered) || self.step != Step::Done {
            return Err(RefundRefused::Transition(InvalidTransition {
                from: if self.step == Step::Done {
                    self.status.as_str()
                } else {
                    "completing its checkout"
                },
                to: "partially refunded",
            }));
        }
        let left = self.total - self.refunded_so_far().min(self.total);
        let (amount, lines) = match part {
            RefundPart::Amount(a) => {
                if *a == 0 || *a > left {
                    return Err(RefundRefused::Invalid(Invalid::new(
                        "amount",
                        format!("1 to {left} (what is captured and not yet refunded)"),
                    )));
                }
                (*a, Vec::new())
            }
            RefundPart::Lines(units) => {
                if units.is_empty() {
                    return Err(RefundRefused::Invalid(Invalid::new(
                        "lines",
                        "name at least one line",
                    )));
                }
                let mut amount = 0u64;
                let mut taken: Vec<RefundedUnits> = Vec::new();
                for u in units {
                    let Some(i) = self.lines.iter().position(|l| l.sku == u.sku) else {
                        return Err(RefundRefused::Invalid(Invalid::new(
                            "lines.sku",
                            format!("{} is not in the order", u.sku),
                        )));
                    };
                    let before = self.units_refunded(&u.sku)
                        + taken
                            .iter()
                            .filter(|t| t.sku == u.sku)
                            .map(|t| t.quantity)
                            .sum::<u32>();
                    let bought = self.lines[i].quantity;
                    if u.quantity == 0 || before + u.quantity > bought {
                        return Err(RefundRefused::Invalid(Invalid::new(
                            "lines.quantity",
                            format!(
                                "{}: 1 to {} (bought {bought}, refunded {before})",
                                u.sku,
                                bought - before
                            ),
                        )));
                    }
                    amount += self.paid_for_units(i, before + u.quantity)
                        - self.paid_for_units(i, before);
                    taken.push(u.clone());
                }
                (amount.min(left), taken)
            }
        };
        let mut next = self.clone();
        next.refunds.push(PartialRefund {
            amount,
            lines,
            at: now,
        });
        if amount == left {
            // Nothing would be left: this is the full refund.
            return next
                .transition(&Lifecycle::Refund, now)
                .map_err(RefundRefused::Transition);
        }
        next.owed.push(Owed::RefundUpTo(next.refunded_so_far()));
        next.updated_at = now;
        Ok(next)
    }
}

/// What a checkout's `Idempotency-Key` maps to, kept at least 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// [`CheckoutRequest::fingerprint`] of the first request.
    pub fingerprint: Vec<u8>,
    /// The order that request created.
    pub order_id: String,
    /// When the key was first used.
    pub created_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CheckoutRequest {
        CheckoutRequest {
            email: " Ada@Example.com ".into(),
            payment_token: "tok_visa".into(),
            shipping_address: Address {
                name: "Ada".into(),
                line1: "1 Orbit Way".into(),
                line2: Some("  ".into()),
                city: "Tranquility Base".into(),
                postal_code: "00001".into(),
                country: "US".into(),
                region: None,
            },
            shipping_method: None,
        }
    }

    fn order() -> Order {
        let line = OrderLine {
            sku: Sku::parse("A").unwrap(),
            name: "Alpha".into(),
            quantity: 2,
            unit_price: 250,
            line_total: 500,
        };
        Order::new(
            "o".into(),
            "c".into(),
            request().validated().unwrap(),
            vec![line],
            OrderPricing {
                breakdown: crate::domain::pricing::Breakdown::plain(&[500]),
                ..OrderPricing::default()
            },
            "USD".into(),
            1,
        )
    }

    #[test]
    fn requests_are_validated_and_normalised() {
        let r = request().validated().unwrap();
        assert_eq!(r.email, "Ada@Example.com");
        assert_eq!(r.shipping_address.line2, None);
        let mut bad = request();
        bad.shipping_address.city = " ".into();
        assert_eq!(bad.validated().unwrap_err().field, "shipping_address.city");
        let mut bad = request();
        bad.payment_token = "tok visa".into();
        assert_eq!(bad.validated().unwrap_err().field, "payment_token");
        assert_eq!(
            r.fingerprint(),
            request().validated().unwrap().fingerprint()
        );
        let mut other = r.clone();
        other.payment_token = "tok_other".into();
        assert_ne!(r.fingerprint(), other.fingerprint());
    }

    #[test]
    fn paying_snapshots_the_answer_and_forgets_the_token() {
        let o = order().paid("pay_1".into(), 2);
        assert_eq!((o.status, &o.step), (OrderStatus::Paid, &Step::Complete));
        assert_eq!(o.payment_token, None);
        assert_eq!(o.outcome, Some(Outcome::Placed));
        assert_eq!(o.as_placed(), o);
        // However the order moves on, the checkout's answer stays what it was.
        let later = o
            .completed(3)
            .transition(&Lifecycle::Ship(Shipment::default()), 4)
            .unwrap()
            .transition(&Lifecycle::Refund, 5)
            .unwrap()
            .settled(Owed::Refund, 6);
        assert_eq!(later.as_placed(), o);
        assert_eq!(o.total, 500);
    }

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        let paid = order().paid("p".into(), 2).completed(3);
        assert!(order().transition(&Lifecycle::Cancel, 4).is_err());
        // Paid but not completed yet: no lifecycle.
        assert!(
            order()
                .paid("p".into(), 2)
                .transition(&Lifecycle::Cancel, 4)
                .is_err()
        );
        let shipped = paid
            .transition(&Lifecycle::Ship(Shipment::default()), 4)
            .unwrap();
        assert!(shipped.transition(&Lifecycle::Cancel, 5).is_err());
        assert!(
            shipped
                .transition(&Lifecycle::Ship(Shipment::default()), 5)
                .is_err()
        );
        let delivered = shipped.transition(&Lifecycle::Deliver, 5).unwrap();
        let refunded = delivered.transition(&Lifecycle::Refund, 6).unwrap();
        assert_eq!(refunded.owed, vec![Owed::Refund]);
        assert!(refunded.transition(&Lifecycle::Refund, 7).is_err());
        let cancelled = paid.transition(&Lifecycle::Cancel, 4).unwrap();
        assert_eq!(cancelled.owed, vec![Owed::Refund, Owed::ReturnStock]);
        let statuses: Vec<_> = refunded.history.iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            [
                OrderStatus::Pending,
                OrderStatus::Paid,
                OrderStatus::Shipped,
                OrderStatus::Delivered,
                OrderStatus::Refunded
            ]
        );
        let settled = cancelled.settled(Owed::Refund, 5);
        assert_eq!(settled.owed, vec![Owed::ReturnStock]);
        assert_eq!(settled.payment.unwrap().status, PaymentState::Refunded);
    }

    #[test]
    fn status_tags_are_stable() {
        assert_eq!(OrderStatus::Pending.tag(), 1);
        assert_eq!(OrderStatus::Failed.tag(), 7);
        assert_eq!(OrderStatus::parse("shipped"), Some(OrderStatus::Shipped));
    }

    fn two_line_order() -> Order {
        let lines = vec![
            OrderLine {
                sku: Sku::parse("A").unwrap(),
                name: "Alpha".into(),
                quantity: 3,
                unit_price: 1_000,
                line_total: 3_000,
            },
            OrderLine {
                sku: Sku::parse("B").unwrap(),
                name: "Beta".into(),
                quantity: 1,
                unit_price: 2_000,
                line_total: 2_000,
            },
        ];
        // 10 % off (500 allotted 300/200), 19 % VAT added, 490 shipping.
        let breakdown = crate::domain::pricing::Breakdown {
            subtotal: 5_000,
            total: 3_213 + 2_142 + 490,
            lines_paid: vec![3_213, 2_142],
            shipping_paid: 490,
            shipping: 490,
            ..Default::default()
        };
        let mut o = Order::new(
            "o".into(),
            "c".into(),
            request().validated().unwrap(),
            lines,
            OrderPricing {
                breakdown,
                ..OrderPricing::default()
            },
            "USD".into(),
            1,
        );
        o = o.paid("ch".into(), 2).completed(3);
        o
    }

    #[test]
    fn a_partial_refund_of_units_gives_back_what_they_cost_and_never_more_than_is_left() {
        let o = two_line_order();
        let units = |sku: &str, quantity| RefundedUnits {
            sku: Sku::parse(sku).unwrap(),
            quantity,
        };
        // One unit of three: a third of what the line cost, rounded down.
        let one = o
            .refund_part(&RefundPart::Lines(vec![units("A", 1)]), 4)
            .unwrap();
        assert_eq!(one.refunds[0].amount, 1_071);
        assert_eq!(one.owed, [Owed::RefundUpTo(1_071)]);
        assert_eq!(one.status, OrderStatus::Paid);
        // The other two: the rest of the line exactly.
        let settled = one.settled(Owed::RefundUpTo(1_071), 5);
        assert_eq!(
            settled.payment.as_ref().unwrap().status,
            PaymentState::PartiallyRefunded
        );
        let three = settled
            .refund_part(&RefundPart::Lines(vec![units("A", 2)]), 6)
            .unwrap();
        assert_eq!(three.refunded_so_far(), 3_213);
        // No more units of A than were bought; no unknown line; no more than is left.
        assert!(matches!(
            three.refund_part(&RefundPart::Lines(vec![units("A", 1)]), 7),
            Err(RefundRefused::Invalid(_))
        ));
        assert!(matches!(
            three.refund_part(&RefundPart::Lines(vec![units("Z", 1)]), 7),
            Err(RefundRefused::Invalid(_))
        ));
        assert!(matches!(
            three.refund_part(&RefundPart::Amount(2_142 + 490 + 1), 7),
            Err(RefundRefused::Invalid(_))
        ));
        // What is left, as an amount: that is the full refund.
        let all = three
            .refund_part(&RefundPart::Amount(2_142 + 490), 8)
            .unwrap();
        assert_eq!(all.status, OrderStatus::Refunded);
        assert!(all.owed.contains(&Owed::Refund));
        // A pending order refunds nothing.
        let pending = Order {
            step: Step::Reserve,
            status: OrderStatus::Pending,
            ..o.clone()
        };
        assert!(matches!(
            pending.refund_part(&RefundPart::Amount(1), 9),
            Err(RefundRefused::Transition(_))
        ));
    }
}
