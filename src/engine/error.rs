//! The engine's error type: every outcome a caller can act on, each mapped to a status by
//! the HTTP layer's one table.

use super::{CallError, CartError, CartFailure, CatalogFailure, InventoryError, SkuFailure};
use crate::catalog::{CodeProblem, ShippingProblem};
use crate::domain::Invalid;
use crate::search::SearchError;
use crate::storage::{Cause, StorageError};
use std::sync::Arc;

/// Errors of the engine API. Each variant is an outcome a caller can act on; the HTTP
/// layer maps every one of them through a single table.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A cart line names a SKU that is not in the catalog.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A cart already has the maximum number of lines.
    #[error("a cart holds at most {} lines", crate::domain::cart::MAX_LINES)]
    TooManyLines,
    /// The cart was checked out and refuses changes.
    #[error("the cart is checked out")]
    CartCheckedOut,
    /// A product with this SKU exists.
    #[error("product {0} already exists")]
    AlreadyExists(String),
    /// Not enough stock.
    #[error("out of stock: only {available} available")]
    OutOfStock {
        /// What could have been reserved.
        available: u64,
    },
    /// A stock change conflicts with the current state (reservation id reuse, setting
    /// stock below what is reserved).
    #[error("{0}")]
    StockConflict(String),
    /// The SKU holds as many open reservations as its record can store.
    #[error("the item holds {max} open reservations, the most it can; try again shortly")]
    TooManyReservations {
        /// The bound ([`crate::domain::inventory::MAX_RESERVATIONS`]).
        max: usize,
    },
    /// The cart's checkouts failed too often lately; it may check out again later.
    #[error("too many failed checkouts of this cart; try again in {retry_after_secs} s")]
    TooManyCheckoutAttempts {
        /// Seconds until the oldest counted failure leaves the window.
        retry_after_secs: u64,
    },
    /// No such reservation.
    #[error("no reservation {0}")]
    UnknownReservation(String),
    /// A record would be larger than the store accepts; nothing was written.
    #[error("the record would be {bytes} bytes, over the store's limit")]
    TooLarge {
        /// Its encoded size.
        bytes: usize,
    },
    /// The disk is full: the store accepts no writes until it has space and restarts;
    /// reads still work. Nothing was acknowledged.
    #[error("{0}")]
    DiskFull(#[source] StorageError),
    /// The store cannot acknowledge writes (a flush or fsync failed, or it is closing);
    /// nothing was acknowledged.
    #[error("writes cannot be acknowledged: {0}")]
    NotAcknowledged(#[source] StorageError),
    /// The store failed otherwise (an I/O error, corrupt data); nothing was acknowledged.
    #[error(transparent)]
    Storage(StorageError),
    /// Something the engine relies on did not answer or failed (an actor, a worker task,
    /// the payment gateway); try again.
    #[error("temporarily unavailable: {what}")]
    Unavailable {
        /// What was unavailable.
        what: &'static str,
        /// The error behind it, if there was one.
        #[source]
        source: Option<Cause>,
    },
    /// A query parameter is malformed (`400`, not a rule violation).
    #[error("{0}")]
    BadQuery(String),
    /// The search index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// Nothing in the cart can be bought.
    #[error("the cart is empty")]
    EmptyCart,
    /// A checkout of the cart is in progress (under another idempotency key).
    #[error("a checkout of this cart is in progress")]
    CheckoutInProgress,
    /// The request has no idempotency key.
    #[error("Idempotency-Key: is required")]
    IdempotencyKeyMissing,
    /// The idempotency key is malformed.
    #[error("Idempotency-Key: 1 to 255 visible ASCII characters")]
    IdempotencyKeyMalformed,
    /// The idempotency key was used with a different request.
    #[error("the Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// Lines of a checkout lacked stock.
    #[error("not enough stock for {}", .0.join(", "))]
    ItemsOutOfStock(Vec<String>),
    /// The payment was declined.
    #[error("the payment was declined: {0}")]
    PaymentDeclined(String),
    /// The payment gateway failed.
    #[error("the payment gateway failed: {0}")]
    PaymentGateway(String),
    /// Another account holds this email.
    #[error("an account with this email exists")]
    EmailTaken,
    /// The email and password do not match an account (which of the two is wrong is not
    /// said).
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// No valid session: none given, or unknown, ended or lapsed.
    #[error("sign in first: the session is missing, ended or expired")]
    Unauthenticated,
    /// Too many failed sign-ins for this email or from this client lately.
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    TooManyLoginAttempts {
        /// Seconds until a sign-in may be tried.
        retry_after_secs: u64,
    },
    /// Every use of the promotion code is taken.
    #[error("the promotion code has been used up")]
    PromotionExhausted,
    /// The customer has used the promotion code as often as it allows.
    #[error("you have used this promotion code as often as it allows")]
    PromotionCustomerLimit,
    /// No such promotion code.
    #[error("no such promotion code")]
    PromotionUnknown,
    /// An image was refused, or its file could not be written or read.
    #[error(transparent)]
    Image(#[from] crate::media::ImageError),
    /// The promotion code is past its end, before its start, or switched off.
    #[error("{0}")]
    PromotionExpired(crate::domain::pricing::NotApplicable),
    /// The promotion code does not apply to this cart (below its minimum, nothing
    /// covered).
    #[error("{0}")]
    PromotionNotApplicable(crate::domain::pricing::NotApplicable),
    /// The store charges shipping and no method was chosen.
    #[error("choose a shipping method (GET /api/v1/carts/{{id}}/shipping-methods lists them)")]
    ShippingMethodRequired,
    /// The shipping method does not ship this cart to this address.
    #[error("shipping method {0} does not ship this cart to this address")]
    ShippingMethodNotApplicable(String),
    /// The order cannot make this transition.
    #[error(transparent)]
    InvalidTransition(#[from] crate::domain::order::InvalidTransition),
}

/// A failure as the store recorded it: the text an order keeps of its outcome (replayed to
/// every retry of its idempotency key), the cause of a later error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Recorded(pub String);

impl EngineError {
    /// [`EngineError::Unavailable`] with no error behind it.
    pub fn unavailable(what: &'static str) -> EngineError {
        EngineError::Unavailable { what, source: None }
    }

    /// [`EngineError::Unavailable`] because of `source`.
    pub fn unavailable_because(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> EngineError {
        EngineError::Unavailable {
            what,
            source: Some(Arc::new(source)),
        }
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooLarge(bytes) => EngineError::TooLarge { bytes },
            e @ StorageError::DiskFull { .. } => EngineError::DiskFull(e),
            e @ (StorageError::Durability { .. } | StorageError::Closed) => {
                EngineError::NotAcknowledged(e)
            }
            other => EngineError::Storage(other),
        }
    }
}

impl From<CallError> for EngineError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Storage(s) => s.into(),
            other => EngineError::Unavailable {
                what: "an actor",
                source: Some(Arc::new(other)),
            },
        }
    }
}

impl From<CartFailure> for EngineError {
    fn from(e: CartFailure) -> Self {
        match e {
            CartFailure::NotFound => EngineError::NotFound("cart"),
            CartFailure::UnknownSku(s) => EngineError::UnknownSku(s.to_string()),
            CartFailure::Rule(CartError::CheckedOut) => EngineError::CartCheckedOut,
            CartFailure::Rule(CartError::CheckoutInProgress) => EngineError::CheckoutInProgress,
            CartFailure::Empty => EngineError::EmptyCart,
            CartFailure::KeyReused => EngineError::IdempotencyKeyReused,
            CartFailure::TooManyFailures(ms) => EngineError::TooManyCheckoutAttempts {
                retry_after_secs: (ms.max(0) as u64).div_ceil(1000).max(1),
            },
            CartFailure::Rule(CartError::TooManyLines) => EngineError::TooManyLines,
            CartFailure::Rule(CartError::Invalid(i)) => EngineError::Invalid(i),
            CartFailure::Promotion(p) => p.into(),
            CartFailure::Shipping(ShippingProblem::Required) => EngineError::ShippingMethodRequired,
            CartFailure::Shipping(ShippingProblem::NotApplicable(m)) => {
                EngineError::ShippingMethodNotApplicable(m)
            }
            CartFailure::Shipping(ShippingProblem::NoAddress) => EngineError::Invalid(
                crate::domain::Invalid::new("shipping_address", "is required"),
            ),
            CartFailure::Storage(s) => s.into(),
        }
    }
}

impl From<CodeProblem> for EngineError {
    fn from(p: CodeProblem) -> Self {
        use crate::domain::pricing::NotApplicable as N;
        match p {
            CodeProblem::Unknown => EngineError::PromotionUnknown,
            CodeProblem::Exhausted => EngineError::PromotionExhausted,
            CodeProblem::NotApplicable(n @ (N::Inactive | N::NotStarted | N::Expired)) => {
                EngineError::PromotionExpired(n)
            }
            CodeProblem::NotApplicable(n @ (N::BelowMinimum | N::NothingCovered)) => {
                EngineError::PromotionNotApplicable(n)
            }
        }
    }
}

impl From<crate::domain::order::PromotionRefusal> for EngineError {
    fn from(r: crate::domain::order::PromotionRefusal) -> Self {
        use crate::domain::order::PromotionRefusal as R;
        match r {
            R::Exhausted => EngineError::PromotionExhausted,
            R::CustomerLimit => EngineError::PromotionCustomerLimit,
            R::Withdrawn => EngineError::PromotionUnknown,
            R::Busy => EngineError::unavailable_because(
                "a promotion use",
                crate::domain::promotion::UseError::Busy,
            ),
        }
    }
}

impl From<SkuFailure> for EngineError {
    fn from(e: SkuFailure) -> Self {
        match e {
            SkuFailure::Rule(InventoryError::OutOfStock { available }) => {
                EngineError::OutOfStock { available }
            }
            SkuFailure::Rule(InventoryError::Invalid(i)) => EngineError::Invalid(i),
            SkuFailure::Rule(InventoryError::UnknownReservation(id)) => {
                EngineError::UnknownReservation(id)
            }
            SkuFailure::Rule(InventoryError::TooManyReservations { max }) => {
                EngineError::TooManyReservations { max }
            }
            SkuFailure::Rule(other) => EngineError::StockConflict(other.to_string()),
            SkuFailure::Storage(s) => s.into(),
        }
    }
}

impl From<CatalogFailure> for EngineError {
    fn from(e: CatalogFailure) -> Self {
        match e {
            CatalogFailure::AlreadyExists(s) => EngineError::AlreadyExists(s.to_string()),
            CatalogFailure::NotFound(_) => EngineError::NotFound("product"),
            CatalogFailure::Invalid(i) => EngineError::Invalid(i),
            CatalogFailure::Storage(s) => s.into(),
        }
    }
}
