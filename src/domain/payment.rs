//! Payment records: what the engine keeps of an order's payment, and a charge as a
//! gateway knows it. Plain types (the store keeps them; `payments` makes them).

use serde::{Deserialize, Serialize};

use super::Millis;
use super::order::PaymentState;

/// A charge as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The gateway's id.
    pub id: String,
    /// The idempotency key it was made with.
    pub key: String,
    /// Amount captured.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// Amount refunded so far.
    pub refunded: u64,
    /// When it was made.
    pub created_at: Millis,
}

/// Our record of an order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The gateway's charge id.
    pub id: String,
    /// The order paid.
    pub order_id: String,
    /// Amount captured.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// Captured or refunded.
    pub status: PaymentState,
    /// Refunds made, with their times.
    pub refunds: Vec<RefundRecord>,
    /// When it was captured.
    pub created_at: Millis,
}

/// One refund of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    /// Amount returned.
    pub amount: u64,
    /// When.
    pub at: Millis,
}
