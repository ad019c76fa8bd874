//! Payments: the [`PaymentGateway`] trait, the policy every gateway call goes through
//! (timeouts, bounded retries with backoff, unknown outcomes resolved by lookup), our own
//! payment records, and the built-in [`simulated::SimulatedGateway`].
//!
//! A gateway charge is idempotent on its key (the order id): asking again returns the
//! charge already made. A timed-out charge is an *unknown* outcome: it is resolved by
//! looking the charge up by key, never by charging again.

pub mod simulated;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::domain::payment::{Charge, Payment, RefundRecord};

/// What to charge.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Idempotency key (the order id): one charge per key, ever.
    pub key: String,
    /// Amount in minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// The payment method's token.
    pub token: String,
}

/// Why a gateway call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The payment method was declined (final), with the gateway's reason.
    #[error("declined: {0}")]
    Declined(String),
    /// The gateway reported a failure; trying again may work.
    #[error("gateway error: {0}")]
    Unavailable(String),
    /// Our side of the call failed (the simulated gateway's books, a connection); trying
    /// again may work.
    #[error("gateway error: {0}")]
    Local(#[source] crate::storage::Cause),
    /// The gateway did not answer within the policy's timeout.
    #[error("the gateway did not answer in {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// Why a charge ended without money taken or a decline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChargeFailure {
    /// Every attempt failed; this is the last error.
    #[error("{0}")]
    RetriesSpent(#[source] GatewayError),
    /// A charge timed out and looking it up by key failed too: its outcome is unknown.
    #[error("the gateway did not answer in time, and the lookup failed: {0}")]
    Unresolved(#[source] GatewayError),
    /// A charge timed out and the lookup found none: nothing was charged.
    #[error("the gateway did not answer in time")]
    TimedOut,
    /// The order was not durable, so nothing was charged.
    #[error("not charged: {0}")]
    NotCharged(#[source] crate::storage::StorageError),
}

/// A boxed future of a gateway call.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A payment gateway. Implementations must make `charge` idempotent on the key and
/// `refund` idempotent (refunding a refunded charge is a no-op).
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges, or returns the charge already made with this key.
    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayFuture<'a, Charge>;
    /// Refunds the charge made with `key` until its refunded amount is `up_to` (`None`:
    /// in full); `None` if there is no charge. Idempotent: a charge already refunded that
    /// far is answered as it is.
    fn refund<'a>(&'a self, key: &'a str, up_to: Option<u64>) -> GatewayFuture<'a, Option<Charge>>;
    /// The charge made with `key`, if any.
    fn lookup<'a>(&'a self, key: &'a str) -> GatewayFuture<'a, Option<Charge>>;
}

/// Timeouts and retries for gateway calls.
#[derive(Debug, Clone, Copy)]
pub struct GatewayPolicy {
    /// Attempts per operation (at least 1).
    pub attempts: u32,
    /// Longest wait for one attempt.
    pub timeout: Duration,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for GatewayPolicy {
    fn default() -> Self {
        GatewayPolicy {
            attempts: 3,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(50),
        }
    }
}

/// How a charge ended after the policy ran.
#[derive(Debug, Clone)]
pub enum ChargeOutcome {
    /// Money taken.
    Captured(Charge),
    /// The payment method was declined.
    Declined(String),
    /// Retries spent, or the outcome stayed unknown.
    Failed(ChargeFailure),
}

impl GatewayPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.backoff.saturating_mul(1 << attempt.min(10))
    }

    /// Charges with retries on retryable errors. A timeout is an unknown outcome: the
    /// charge is looked up by key instead of being tried again.
    pub async fn charge(
        &self,
        gateway: &dyn PaymentGateway,
        request: &ChargeRequest,
    ) -> ChargeOutcome {
        let mut last = GatewayError::TimedOut(Duration::ZERO);
        for attempt in 0..self.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            match tokio::time::timeout(self.timeout, gateway.charge(request)).await {
                Ok(Ok(charge)) => return ChargeOutcome::Captured(charge),
                Ok(Err(GatewayError::Declined(reason))) => return ChargeOutcome::Declined(reason),
                Ok(Err(e)) => last = e,
                Err(_) => {
                    tracing::warn!(order = %request.key, "charge timed out; resolving by lookup");
                    return match self.lookup(gateway, &request.key).await {
                        Ok(Some(charge)) => ChargeOutcome::Captured(charge),
                        Ok(None) => ChargeOutcome::Failed(ChargeFailure::TimedOut),
                        Err(e) => ChargeOutcome::Failed(ChargeFailure::Unresolved(e)),
                    };
                }
            }
        }
        ChargeOutcome::Failed(ChargeFailure::RetriesSpent(last))
    }

    /// Looks a charge up, with retries (a lookup changes nothing, so retrying is safe).
    pub async fn lookup(
        &self,
        gateway: &dyn PaymentGateway,
        key: &str,
    ) -> Result<Option<Charge>, GatewayError> {
        self.retrying(|| gateway.lookup(key)).await
    }

    /// Refunds until `up_to` is refunded (`None`: in full), with retries (refunds are
    /// idempotent, so retrying is safe).
    pub async fn refund(
        &self,
        gateway: &dyn PaymentGateway,
        key: &str,
        up_to: Option<u64>,
    ) -> Result<Option<Charge>, GatewayError> {
        self.retrying(|| gateway.refund(key, up_to)).await
    }

    async fn retrying<'a, T>(
        &self,
        call: impl Fn() -> GatewayFuture<'a, T>,
    ) -> Result<T, GatewayError> {
        let mut last = GatewayError::TimedOut(Duration::ZERO);
        for attempt in 0..self.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            match tokio::time::timeout(self.timeout, call()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = e,
                Err(_) => last = GatewayError::TimedOut(self.timeout),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A gateway scripted per call: fails `failures` times, then succeeds; can hang.
    struct Scripted {
        failures: u32,
        hang: bool,
        calls: AtomicU32,
        charged: Mutex<Option<Charge>>,
    }

    impl Scripted {
        fn new(failures: u32, hang: bool) -> Scripted {
            Scripted {
                failures,
                hang,
                calls: AtomicU32::new(0),
                charged: Mutex::new(None),
            }
        }
    }

    fn charge(key: &str) -> Charge {
        Charge {
            id: "ch_1".into(),
            key: key.into(),
            amount: 100,
            currency: "USD".into(),
            refunded: 0,
            created_at: 0,
        }
    }

    impl PaymentGateway for Scripted {
        fn charge<'a>(&'a self, r: &'a ChargeRequest) -> GatewayFuture<'a, Charge> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                if self.hang {
                    // The charge lands, but the answer never arrives in time.
                    *self.charged.lock().unwrap() = Some(charge(&r.key));
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                if n < self.failures {
                    return Err(GatewayError::Unavailable("boom".into()));
                }
                Ok(charge(&r.key))
            })
        }
        fn refund<'a>(&'a self, _: &'a str, _: Option<u64>) -> GatewayFuture<'a, Option<Charge>> {
            Box::pin(async { Ok(None) })
        }
        fn lookup<'a>(&'a self, _: &'a str) -> GatewayFuture<'a, Option<Charge>> {
            Box::pin(async move { Ok(self.charged.lock().unwrap().clone()) })
        }
    }

    fn request() -> ChargeRequest {
        ChargeRequest {
            key: "o1".into(),
            amount: 100,
            currency: "USD".into(),
            token: "tok".into(),
        }
    }

    fn policy() -> GatewayPolicy {
        GatewayPolicy {
            attempts: 3,
            timeout: Duration::from_millis(100),
            backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_a_bounded_number_of_times() {
        let g = Scripted::new(2, false);
        assert!(matches!(
            policy().charge(&g, &request()).await,
            ChargeOutcome::Captured(_)
        ));
        assert_eq!(g.calls.load(Ordering::SeqCst), 3);
        let g = Scripted::new(5, false);
        assert!(matches!(
            policy().charge(&g, &request()).await,
            ChargeOutcome::Failed(_)
        ));
        assert_eq!(g.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_timeout_is_resolved_by_lookup_never_by_charging_again() {
        let g = Scripted::new(0, true);
        let out = policy().charge(&g, &request()).await;
        assert!(matches!(out, ChargeOutcome::Captured(c) if c == charge("o1")));
        assert_eq!(g.calls.load(Ordering::SeqCst), 1, "charged once");
    }
}
