//! Domain events: what happened, as the durable event log records it.
//!
//! Events are written in the same atomic batch as the state change that caused them (a
//! transactional outbox), so the log has every change exactly once and nothing else.

use serde::{Deserialize, Serialize};

use super::Millis;

/// How a product changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductChange {
    /// It did not exist before.
    Created,
    /// It was replaced.
    Updated,
    /// It was removed.
    Deleted,
}

/// Something that happened. The variant name is the event's `type` in the API; the fields
/// are its `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DomainEvent {
    /// A product was created, replaced or deleted.
    ProductChanged {
        /// Which product.
        sku: String,
        /// How.
        change: ProductChange,
    },
    /// A SKU's stock on hand changed (set, restock, or a committed sale).
    StockChanged {
        /// Which SKU.
        sku: String,
        /// Units on hand after the change.
        on_hand: u64,
        /// Units a shopper can buy after the change.
        available: u64,
    },
    /// A checkout went through: paid, stock committed, cart closed.
    OrderPlaced {
        /// Which order.
        order_id: String,
        /// What was bought.
        items: Vec<EventItem>,
        /// What was paid (minor units).
        total: u64,
        /// ISO 4217.
        currency: String,
        /// The bill: subtotal, discounts, shipping, tax, total (absent in events logged
        /// before pricing existed).
        #[serde(default)]
        breakdown: super::pricing::Breakdown,
        /// The promotion code used, if any.
        #[serde(default)]
        promotion_code: Option<String>,
    },
    /// The payment of an order was captured.
    OrderPaid {
        /// Which order.
        order_id: String,
        /// The gateway's payment id.
        payment_id: String,
        /// Amount captured.
        amount: u64,
    },
    /// A checkout's payment failed (declined or gateway error); the checkout was undone.
    PaymentFailed {
        /// Which order.
        order_id: String,
        /// Why.
        reason: String,
        /// Whether the shopper is mailed about it: at most one payment-failure mail goes
        /// per cart per hour, so a client looping declined payments cannot mail-bomb an
        /// address. (Events logged before this field existed were all mailed.)
        #[serde(default = "yes")]
        notify: bool,
    },
    /// A paid order was cancelled (refunded, stock returned).
    OrderCancelled {
        /// Which order.
        order_id: String,
    },
    /// An order was refunded by an admin.
    OrderRefunded {
        /// Which order.
        order_id: String,
        /// Amount refunded.
        amount: u64,
    },
    /// An order was handed to a carrier.
    OrderShipped {
        /// Which order.
        order_id: String,
        /// Carrier name.
        carrier: Option<String>,
        /// Tracking number.
        tracking: Option<String>,
    },
    /// An order arrived.
    OrderDelivered {
        /// Which order.
        order_id: String,
    },
    /// A past order from another system was imported (history: no stock change, no mail).
    OrderImported {
        /// Its id.
        order_id: String,
        /// When it was placed (ms since the epoch).
        created_at: i64,
        /// What was bought.
        items: Vec<EventItem>,
    },
    /// A cart with items and an email on file has not changed for a while.
    CartAbandoned {
        /// Which cart.
        cart_id: String,
    },
    /// A customer account was created. (Events name accounts by id only: no email or
    /// name enters the log, so erasing an account leaves nothing personal behind in it.)
    CustomerRegistered {
        /// The account.
        customer_id: String,
    },
    /// A customer account changed.
    CustomerChanged {
        /// The account.
        customer_id: String,
        /// What changed.
        change: CustomerChange,
    },
    /// A customer signed in (a session was opened).
    CustomerSignedIn {
        /// The account.
        customer_id: String,
    },
    /// A customer signed out (a session was ended).
    CustomerSignedOut {
        /// The account.
        customer_id: String,
    },
    /// A customer asked to reset their password: a token goes out by mail. The event
    /// carries a nonce, not the token (see `customer::mailed_token`).
    PasswordResetRequested {
        /// The account.
        customer_id: String,
        /// What the mailed token is derived from.
        nonce: String,
    },
    /// A customer asked to verify their email: a token goes out by mail.
    EmailVerificationRequested {
        /// The account.
        customer_id: String,
        /// What the mailed token is derived from.
        nonce: String,
    },
    /// A customer account was erased (personal data deleted or anonymised).
    CustomerErased {
        /// The account that was.
        customer_id: String,
    },
    /// A promotion code's use was committed with an order.
    PromotionRedeemed {
        /// The code.
        code: String,
        /// The order.
        order_id: String,
    },
    /// A cart was attached to a customer's account.
    CartAttached {
        /// The account.
        customer_id: String,
        /// The cart.
        cart_id: String,
    },
}

/// What part of a customer account changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerChange {
    /// Name or default addresses.
    Profile,
    /// Saved addresses.
    Addresses,
    /// The password (by a reset; every session ended).
    Password,
    /// The email was verified.
    EmailVerified,
}

fn yes() -> bool {
    true
}

/// A line of an order in an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventItem {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price per unit (minor units).
    pub unit_price: u64,
}

impl DomainEvent {
    /// Every event type name, as [`DomainEvent::kind`] gives them (what a webhook endpoint
    /// may subscribe to).
    pub const KINDS: &'static [&'static str] = &[
        "ProductChanged",
        "StockChanged",
        "OrderPlaced",
        "OrderPaid",
        "PaymentFailed",
        "OrderCancelled",
        "OrderRefunded",
        "OrderShipped",
        "OrderDelivered",
        "CartAbandoned",
        "OrderImported",
        "CustomerRegistered",
        "CustomerChanged",
        "CustomerSignedIn",
        "CustomerSignedOut",
        "CartAttached",
        "PasswordResetRequested",
        "EmailVerificationRequested",
        "CustomerErased",
        "PromotionRedeemed",
    ];

    /// The event's type name.
    pub fn kind(&self) -> &'static str {
        match self {
            DomainEvent::ProductChanged { .. } => "ProductChanged",
            DomainEvent::StockChanged { .. } => "StockChanged",
            DomainEvent::OrderPlaced { .. } => "OrderPlaced",
            DomainEvent::OrderPaid { .. } => "OrderPaid",
            DomainEvent::PaymentFailed { .. } => "PaymentFailed",
            DomainEvent::OrderCancelled { .. } => "OrderCancelled",
            DomainEvent::OrderRefunded { .. } => "OrderRefunded",
            DomainEvent::OrderShipped { .. } => "OrderShipped",
            DomainEvent::OrderDelivered { .. } => "OrderDelivered",
            DomainEvent::CartAbandoned { .. } => "CartAbandoned",
            DomainEvent::OrderImported { .. } => "OrderImported",
            DomainEvent::CustomerRegistered { .. } => "CustomerRegistered",
            DomainEvent::CustomerChanged { .. } => "CustomerChanged",
            DomainEvent::CustomerSignedIn { .. } => "CustomerSignedIn",
            DomainEvent::CustomerSignedOut { .. } => "CustomerSignedOut",
            DomainEvent::CartAttached { .. } => "CartAttached",
            DomainEvent::PasswordResetRequested { .. } => "PasswordResetRequested",
            DomainEvent::EmailVerificationRequested { .. } => "EmailVerificationRequested",
            DomainEvent::CustomerErased { .. } => "CustomerErased",
            DomainEvent::PromotionRedeemed { .. } => "PromotionRedeemed",
        }
    }
}

impl EventItem {
    /// The lines of an order as an event carries them.
    pub fn of(lines: &[super::order::OrderLine]) -> Vec<EventItem> {
        lines
            .iter()
            .map(|l| EventItem {
                sku: l.sku.to_string(),
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect()
    }
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Position in the log: strictly increasing, without gaps.
    pub seq: u64,
    /// When it was appended.
    pub at: Millis,
    /// What happened.
    pub event: DomainEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_type_kind_names_once() {
        // Each arm of `kind` names one type; KINDS must have them all, once each.
        let source = include_str!("event.rs");
        let body = &source[source.find("pub fn kind(&self)").unwrap()..];
        let body = &body[..body.find("\n    }\n").unwrap()];
        let arms: Vec<&str> = body
            .lines()
            .filter_map(|l| l.split("=> \"").nth(1))
            .map(|rest| rest.trim_end_matches("\","))
            .collect();
        assert_eq!(arms.len(), DomainEvent::KINDS.len());
        for a in &arms {
            assert!(DomainEvent::KINDS.contains(a), "{a} missing from KINDS");
        }
        let mut unique = DomainEvent::KINDS.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), DomainEvent::KINDS.len());
    }

    #[test]
    fn events_serialise_with_their_type_and_data() {
        let e = DomainEvent::StockChanged {
            sku: "A".into(),
            on_hand: 3,
            available: 2,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "StockChanged", "data": {"sku": "A", "on_hand": 3, "available": 2}})
        );
        assert_eq!(serde_json::from_value::<DomainEvent>(v).unwrap(), e);
        assert_eq!(e.kind(), "StockChanged");
    }
}
