//! Inventory of one SKU: stock on hand and open reservations.
//!
//! Invariant: `reserved() <= on_hand`, so `available() = on_hand − reserved ≥ 0` always.
//! Every operation checks it before returning a new state, and the property test below
//! drives random operations against it.

use serde::{Deserialize, Serialize};

use super::{Invalid, Millis};

/// Highest stock level accepted for one SKU.
pub const MAX_ON_HAND: u64 = 1_000_000_000;
/// Recently committed reservation ids remembered per SKU, so that a retried commit is
/// recognised as done rather than refused.
pub const COMMITTED_MEMORY: usize = 64;
/// Most open reservations per SKU (a bound on the actor's state).
pub const MAX_RESERVATIONS: usize = 100_000;

/// A hold on stock for a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Chosen by the caller (derived from the order id), so retries are idempotent.
    pub id: String,
    /// Units held.
    pub quantity: u32,
    /// When the hold lapses on its own.
    pub expires_at: Millis,
}

/// Stock of one SKU as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stock {
    /// Units physically in stock, reserved ones included.
    pub on_hand: u64,
    /// Open reservations.
    pub reservations: Vec<Reservation>,
    /// Ids of the most recently committed reservations (newest last).
    pub committed: Vec<String>,
    /// Ids of the most recent returns (newest last), so a retried return adds nothing.
    pub returned: Vec<String>,
}

/// Why an inventory operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Not enough available stock for the reservation.
    #[error("only {available} available")]
    OutOfStock {
        /// What could be reserved.
        available: u64,
    },
    /// The reservation id is in use for a different quantity.
    #[error("reservation {0} exists with a different quantity")]
    ReservationConflict(String),
    /// No open or recently committed reservation has this id.
    #[error("no reservation {0}")]
    UnknownReservation(String),
    /// Setting `on_hand` below what is reserved would oversell.
    #[error("on_hand {requested} is below the {reserved} units reserved")]
    BelowReserved {
        /// Requested level.
        requested: u64,
        /// Units held by open reservations.
        reserved: u64,
    },
    /// A value is out of range.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Stock {
    /// Units held by open reservations.
    pub fn reserved(&self) -> u64 {
        self.reservations
            .iter()
            .map(|r| u64::from(r.quantity))
            .sum()
    }

    /// Units a shopper can still buy.
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved())
    }

    /// Earliest expiry among open reservations.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.reservations.iter().map(|r| r.expires_at).min()
    }

    fn checked(self) -> Stock {
        assert!(
            self.reserved() <= self.on_hand,
            "inventory invariant broken: reserved > on_hand"
        );
        self
    }

    /// Sets the stock level.
    pub fn set_on_hand(&self, on_hand: i64) -> Result<Stock, InventoryError> {
        if !(0..=MAX_ON_HAND as i64).contains(&on_hand) {
            return Err(
                Invalid::new("on_hand", format!("must be between 0 and {MAX_ON_HAND}")).into(),
            );
        }
        let on_hand = on_hand as u64;
        let reserved = self.reserved();
        if on_hand < reserved {
            return Err(InventoryError::BelowReserved {
                requested: on_hand,
                reserved,
            });
        }
        Ok(Stock {
            on_hand,
            ..self.clone()
        }
        .checked())
    }

    /// Adds received stock.
    pub fn restock(&self, quantity: i64) -> Result<Stock, InventoryError> {
        if quantity < 1 {
            return Err(Invalid::new("quantity", "must be at least 1").into());
        }
        let on_hand = self.on_hand.saturating_add(quantity as u64);
        if on_hand > MAX_ON_HAND {
            return Err(
                Invalid::new("quantity", format!("stock may not exceed {MAX_ON_HAND}")).into(),
            );
        }
        Ok(Stock {
            on_hand,
            ..self.clone()
        }
        .checked())
    }

    /// Holds `quantity` units under `id` until `now + ttl_ms`: all or nothing. Reserving
    /// again with the same id and quantity is a no-op that succeeds (`Ok(None)`).
    pub fn reserve(
        &self,
        id: &str,
        quantity: u32,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<Option<Stock>, InventoryError> {
        if quantity == 0 {
            return Err(Invalid::new("quantity", "must be at least 1").into());
        }
        if let Some(r) = self.reservations.iter().find(|r| r.id == id) {
            return if r.quantity == quantity {
                Ok(None)
            } else {
                Err(InventoryError::ReservationConflict(id.to_owned()))
            };
        }
        if self.committed.iter().any(|c| c == id) {
            return Err(InventoryError::ReservationConflict(id.to_owned()));
        }
        let available = self.available();
        if u64::from(quantity) > available {
            return Err(InventoryError::OutOfStock { available });
        }
        if self.reservations.len() >= MAX_RESERVATIONS {
            return Err(InventoryError::OutOfStock { available: 0 });
        }
        let mut next = self.clone();
        next.reservations.push(Reservation {
            id: id.to_owned(),
            quantity,
            expires_at: now + ttl_ms,
        });
        Ok(Some(next.checked()))
    }

    /// Turns a reservation into a sale: its units leave `on_hand`. Committing an id that
    /// was recently committed is a no-op that succeeds (`Ok(None)`).
    pub fn commit(&self, id: &str) -> Result<Option<Stock>, InventoryError> {
        let Some(i) = self.reservations.iter().position(|r| r.id == id) else {
            return if self.committed.iter().any(|c| c == id) {
                Ok(None)
            } else {
                Err(InventoryError::UnknownReservation(id.to_owned()))
            };
        };
        let mut next = self.clone();
        let r = next.reservations.remove(i);
        next.on_hand -= u64::from(r.quantity);
        next.committed.push(r.id);
        if next.committed.len() > COMMITTED_MEMORY {
            next.committed.remove(0);
        }
        Ok(Some(next.checked()))
    }

    /// Puts `quantity` sold units back on hand (a cancelled order), once per `id`: a
    /// return with an id seen recently is a no-op (`Ok(None)`).
    pub fn return_units(&self, id: &str, quantity: u32) -> Result<Option<Stock>, InventoryError> {
        if self.returned.iter().any(|r| r == id) {
            return Ok(None);
        }
        let mut next = self.restock(i64::from(quantity))?;
        next.returned.push(id.to_owned());
        if next.returned.len() > COMMITTED_MEMORY {
            next.returned.remove(0);
        }
        Ok(Some(next))
    }

    /// Releases a reservation; releasing an unknown id is a no-op (`Ok(None)`).
    pub fn release(&self, id: &str) -> Option<Stock> {
        let i = self.reservations.iter().position(|r| r.id == id)?;
        let mut next = self.clone();
        next.reservations.remove(i);
        Some(next.checked())
    }

    /// Releases every reservation that has expired at `now`.
    pub fn expire(&self, now: Millis) -> Option<Stock> {
        if !self.reservations.iter().any(|r| r.expires_at <= now) {
            return None;
        }
        let mut next = self.clone();
        next.reservations.retain(|r| r.expires_at > now);
        Some(next.checked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_return_adds_stock_once_per_id() {
        let s = Stock::default().set_on_hand(2).unwrap();
        let s = s.return_units("o1", 3).unwrap().unwrap();
        assert_eq!(s.on_hand, 5);
        assert_eq!(s.return_units("o1", 3), Ok(None));
        assert_eq!(s.return_units("o2", 1).unwrap().unwrap().on_hand, 6);
    }

    #[test]
    fn reservations_are_all_or_nothing_and_idempotent() {
        let s = Stock::default().set_on_hand(5).unwrap();
        assert_eq!(
            s.reserve("r1", 6, 0, 10),
            Err(InventoryError::OutOfStock { available: 5 })
        );
        let s = s.reserve("r1", 3, 0, 10).unwrap().unwrap();
        assert_eq!((s.available(), s.reserved()), (2, 3));
        assert_eq!(s.reserve("r1", 3, 0, 10), Ok(None));
        assert!(matches!(
            s.reserve("r1", 2, 0, 10),
            Err(InventoryError::ReservationConflict(_))
        ));
    }

    #[test]
    fn commit_takes_stock_and_is_idempotent() {
        let s = Stock::default()
            .set_on_hand(5)
            .unwrap()
            .reserve("r1", 3, 0, 10)
            .unwrap()
            .unwrap();
        let s = s.commit("r1").unwrap().unwrap();
        assert_eq!((s.on_hand, s.available()), (2, 2));
        assert_eq!(s.commit("r1"), Ok(None));
        assert!(matches!(
            s.commit("nope"),
            Err(InventoryError::UnknownReservation(_))
        ));
        assert!(matches!(
            s.reserve("r1", 3, 0, 10),
            Err(InventoryError::ReservationConflict(_))
        ));
    }

    #[test]
    fn on_hand_cannot_go_below_what_is_reserved() {
        let s = Stock::default()
            .set_on_hand(5)
            .unwrap()
            .reserve("r1", 4, 0, 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.set_on_hand(3),
            Err(InventoryError::BelowReserved {
                requested: 3,
                reserved: 4
            })
        );
        assert!(s.set_on_hand(-1).is_err());
        assert!(s.restock(0).is_err());
    }

    #[test]
    fn expired_reservations_are_released() {
        let s = Stock::default()
            .set_on_hand(5)
            .unwrap()
            .reserve("a", 1, 0, 10)
            .unwrap()
            .unwrap()
            .reserve("b", 1, 5, 10)
            .unwrap()
            .unwrap();
        assert_eq!(s.next_expiry(), Some(10));
        let s = s.expire(12).unwrap();
        assert_eq!(s.reservations.len(), 1);
        assert_eq!(s.expire(12), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(i64),
        Restock(i64),
        Reserve(u8, u32),
        Commit(u8),
        Release(u8),
        Expire(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..50).prop_map(Op::Set),
            (1i64..20).prop_map(Op::Restock),
            (0u8..6, 1u32..15).prop_map(|(i, q)| Op::Reserve(i, q)),
            (0u8..6).prop_map(Op::Commit),
            (0u8..6).prop_map(Op::Release),
            (0i64..100).prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn available_never_goes_negative(ops in prop::collection::vec(op(), 0..60)) {
            let mut s = Stock::default();
            for (t, op) in ops.into_iter().enumerate() {
                let now = t as i64;
                let next = match op {
                    Op::Set(n) => s.set_on_hand(n).ok(),
                    Op::Restock(n) => s.restock(n).ok(),
                    Op::Reserve(i, q) => s.reserve(&format!("r{i}"), q, now, 30).ok().flatten(),
                    Op::Commit(i) => s.commit(&format!("r{i}")).ok().flatten(),
                    Op::Release(i) => s.release(&format!("r{i}")),
                    Op::Expire(at) => s.expire(at),
                };
                if let Some(n) = next { s = n; }
                prop_assert!(s.reserved() <= s.on_hand);
            }
        }
    }
}
