//! The built-in simulated gateway: test tokens, real bookkeeping.
//!
//! `tok_decline` is declined; `tok_error` fails with a retryable gateway error;
//! `tok_slow` succeeds after a delay; `tok_visa` and any other `tok_…` succeed; anything
//! else is declined as an invalid token. Charges live in the gateway's own ledger in the
//! store (it stands in for an external system, so it keeps its books across restarts) and
//! are durable before a charge or refund is answered.

use std::sync::Mutex;
use std::time::Duration;

use super::{Charge, ChargeRequest, GatewayError, GatewayFuture, PaymentGateway};
use crate::storage::{StorageError, Store};

/// The simulated gateway.
pub struct SimulatedGateway {
    store: Store,
    slow: Duration,
    /// Serialises read-check-write on the ledger (one charge per key, one refund).
    books: Mutex<()>,
}

impl SimulatedGateway {
    /// A gateway keeping its ledger in `store`; `tok_slow` takes `slow`.
    pub fn new(store: Store, slow: Duration) -> SimulatedGateway {
        SimulatedGateway {
            store,
            slow,
            books: Mutex::new(()),
        }
    }

    fn unavailable(e: StorageError) -> GatewayError {
        GatewayError::Local(std::sync::Arc::new(e))
    }

    /// Records the charge (or finds the one made with this key); returns it with the
    /// barrier ticket that makes it durable.
    fn book(&self, r: &ChargeRequest) -> Result<(Charge, u64), GatewayError> {
        let ledger = &self.store.tables().gateway_ledger;
        let _books = self.books.lock().expect("ledger lock");
        if let Some(c) = ledger.get(&r.key).map_err(Self::unavailable)? {
            if c.amount != r.amount || c.currency != r.currency {
                return Err(GatewayError::Declined(
                    "idempotency key reused for a different amount".into(),
                ));
            }
            return Ok((c, self.store.barrier().current()));
        }
        let charge = Charge {
            id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
            key: r.key.clone(),
            amount: r.amount,
            currency: r.currency.clone(),
            refunded: 0,
            created_at: self.store.clock().now(),
        };
        ledger.put(&r.key, &charge).map_err(Self::unavailable)?;
        Ok((charge, self.store.barrier().ticket()))
    }

    fn refund_now(
        &self,
        key: &str,
        up_to: Option<u64>,
    ) -> Result<(Option<Charge>, u64), GatewayError> {
        let ledger = &self.store.tables().gateway_ledger;
        let _books = self.books.lock().expect("ledger lock");
        let Some(mut c) = ledger.get(key).map_err(Self::unavailable)? else {
            return Ok((None, 0));
        };
        let target = up_to.unwrap_or(c.amount).min(c.amount);
        if c.refunded >= target {
            return Ok((Some(c), self.store.barrier().current()));
        }
        c.refunded = target;
        ledger.put(key, &c).map_err(Self::unavailable)?;
        Ok((Some(c), self.store.barrier().ticket()))
    }

    async fn durable<T>(&self, (value, ticket): (T, u64)) -> Result<T, GatewayError> {
        self.store
            .barrier()
            .wait(ticket)
            .await
            .map_err(Self::unavailable)?;
        Ok(value)
    }
}

impl PaymentGateway for SimulatedGateway {
    fn charge<'a>(&'a self, r: &'a ChargeRequest) -> GatewayFuture<'a, Charge> {
        Box::pin(async move {
            match r.token.as_str() {
                "tok_decline" => return Err(GatewayError::Declined("card declined".into())),
                "tok_error" => {
                    return Err(GatewayError::Unavailable("simulated gateway error".into()));
                }
                "tok_slow" => tokio::time::sleep(self.slow).await,
                t if !t.starts_with("tok_") => {
                    return Err(GatewayError::Declined("invalid payment token".into()));
                }
                _ => {}
            }
            let booked = self.book(r)?;
            self.durable(booked).await
        })
    }

    fn refund<'a>(&'a self, key: &'a str, up_to: Option<u64>) -> GatewayFuture<'a, Option<Charge>> {
        Box::pin(async move {
            let done = self.refund_now(key, up_to)?;
            self.durable(done).await
        })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> GatewayFuture<'a, Option<Charge>> {
        Box::pin(async move {
            let found = self
                .store
                .tables()
                .gateway_ledger
                .get(key)
                .map_err(Self::unavailable)?;
            self.durable((found, self.store.barrier().current())).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    fn req(key: &str, token: &str) -> ChargeRequest {
        ChargeRequest {
            key: key.into(),
            amount: 500,
            currency: "USD".into(),
            token: token.into(),
        }
    }

    #[tokio::test]
    async fn tokens_behave_as_documented_and_charges_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let g = SimulatedGateway::new(store.clone(), Duration::from_millis(10));
        let a = g.charge(&req("o1", "tok_visa")).await.unwrap();
        let again = g.charge(&req("o1", "tok_visa")).await.unwrap();
        assert_eq!(a, again, "one charge per key");
        assert!(matches!(
            g.charge(&req("o2", "tok_decline")).await,
            Err(GatewayError::Declined(_))
        ));
        assert!(matches!(
            g.charge(&req("o3", "tok_error")).await,
            Err(GatewayError::Unavailable(_))
        ));
        assert!(matches!(
            g.charge(&req("o4", "visa")).await,
            Err(GatewayError::Declined(_))
        ));
        assert!(g.charge(&req("o5", "tok_slow")).await.is_ok());
        assert_eq!(g.lookup("o2").await.unwrap(), None);
        let part = g.refund("o1", Some(100)).await.unwrap().unwrap();
        assert_eq!(part.refunded, 100);
        assert_eq!(g.refund("o1", Some(50)).await.unwrap().unwrap(), part);
        let refunded = g.refund("o1", None).await.unwrap().unwrap();
        assert_eq!(refunded.refunded, 500);
        assert_eq!(g.refund("o1", None).await.unwrap().unwrap(), refunded);
        assert_eq!(g.refund("o1", Some(100)).await.unwrap().unwrap(), refunded);
        assert_eq!(g.refund("nothing", None).await.unwrap(), None);
        assert_eq!(store.tables().gateway_ledger.len(), 2);
        store.close().unwrap();
    }
}
