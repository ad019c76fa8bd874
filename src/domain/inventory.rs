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
/// Recently lapsed reservation ids remembered per SKU, so that a commit arriving after
/// its reservation lapsed (a checkout whose charge outlasted the reservation) is told
/// apart from one that was committed and forgotten: it takes the stock again if there is
/// some, and is refused otherwise, so the saga refunds.
pub const LAPSED_MEMORY: usize = 32;
/// Longest reservation id (order ids are 32 characters).
pub const MAX_RESERVATION_ID: usize = 64;
/// Most open reservations per SKU. The stock is one stored record, and a record must stay
/// under the store's limit (48 KiB, below sled's blob threshold): with ids of
/// [`MAX_RESERVATION_ID`] bytes a reservation encodes to at most 80 bytes, the memories of
/// commits, returns and lapses to at most 10.4 KiB, so 480 reservations fit with room to
/// spare (`storage` tests encode a stock at this bound). A reservation beyond it is
/// refused with [`InventoryError::TooManyReservations`].
pub const MAX_RESERVATIONS: usize = 480;

/// How a stock record stores the ids it holds (reservations, and the memories of commits,
/// returns and lapses, up to 160 ids rewritten with every change of the SKU): an order
/// id — 32 lowercase hex digits — as its 16 bytes, any other id as its text. Exact both
/// ways (no hashing), and half the bytes: an order id took 33 bytes, it takes 17, and a
/// busy SKU's record went from about 2.1 KiB to 1.1 KiB per write (issue 21).
mod compact_ids {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    enum Out<'a> {
        Hex(u128),
        Text(&'a str),
    }

    #[derive(Deserialize)]
    enum In {
        Hex(u128),
        Text(String),
    }

    fn out(id: &str) -> Out<'_> {
        let hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match hex.then(|| u128::from_str_radix(id, 16).ok()).flatten() {
            Some(n) => Out::Hex(n),
            None => Out::Text(id),
        }
    }

    fn text(id: In) -> String {
        match id {
            In::Hex(n) => format!("{n:032x}"),
            In::Text(t) => t,
        }
    }

    /// One id.
    pub mod one {
        use super::*;

        pub fn serialize<S: Serializer>(id: &str, s: S) -> Result<S::Ok, S::Error> {
            out(id).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
            In::deserialize(d).map(text)
        }
    }

    pub fn serialize<S: Serializer>(ids: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|i| out(i)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Vec::<In>::deserialize(d)?.into_iter().map(text).collect())
    }
}

/// A hold on stock for a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Chosen by the caller (derived from the order id), so retries are idempotent.
    #[serde(with = "compact_ids::one")]
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
    #[serde(with = "compact_ids")]
    pub committed: Vec<String>,
    /// Ids of the most recent returns (newest last), so a retried return adds nothing.
    #[serde(with = "compact_ids")]
    pub returned: Vec<String>,
    /// Ids of the most recently lapsed reservations (newest last): see [`LAPSED_MEMORY`].
    #[serde(with = "compact_ids")]
    pub lapsed: Vec<String>,
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
    /// Adding the units would take the stock over [`MAX_ON_HAND`].
    #[error("{on_hand} on hand: the stock may not exceed {max}")]
    AboveMaximum {
        /// Units on hand now.
        on_hand: u64,
        /// [`MAX_ON_HAND`].
        max: u64,
    },
    /// The SKU holds as many open reservations as its record can store.
    #[error("this item has {max} open reservations, the most it can hold; try again shortly")]
    TooManyReservations {
        /// [`MAX_RESERVATIONS`].
        max: usize,
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
        self.level().available()
    }

    /// Earliest expiry among open reservations.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.reservations.iter().map(|r| r.expires_at).min()
    }

    /// On hand and reserved, without the reservation list.
    pub fn level(&self) -> StockLevel {
        StockLevel {
            on_hand: self.on_hand,
            reserved: self.reserved(),
        }
    }

    fn check_invariant(&self) {
        assert!(
            self.reserved() <= self.on_hand,
            "inventory invariant broken: reserved > on_hand"
        );
    }

    // Every operation below checks everything before it changes anything: an `Err`
    // leaves the stock exactly as it was. `Ok(true)` means the stock changed.

    /// Sets the stock level.
    pub fn set_on_hand(&mut self, on_hand: i64) -> Result<bool, InventoryError> {
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
        let changed = self.on_hand != on_hand;
        self.on_hand = on_hand;
        Ok(changed)
    }

    /// Adds received stock.
    pub fn restock(&mut self, quantity: i64) -> Result<bool, InventoryError> {
        if quantity < 1 {
            return Err(Invalid::new("quantity", "must be at least 1").into());
        }
        if quantity as u64 > MAX_ON_HAND {
            return Err(Invalid::new("quantity", format!("must be at most {MAX_ON_HAND}")).into());
        }
        let on_hand = self.on_hand.saturating_add(quantity as u64);
        if on_hand > MAX_ON_HAND {
            // A valid quantity that the present stock level cannot take: a conflict with
            // the state, like setting stock below what is reserved.
            return Err(InventoryError::AboveMaximum {
                on_hand: self.on_hand,
                max: MAX_ON_HAND,
            });
        }
        self.on_hand = on_hand;
        Ok(true)
    }

    /// Holds `quantity` units under `id` until `now + ttl_ms`: all or nothing. Reserving
    /// again with the same id and quantity is a no-op that succeeds (`Ok(false)`).
    pub fn reserve(
        &mut self,
        id: &str,
        quantity: u32,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<bool, InventoryError> {
        if quantity == 0 {
            return Err(Invalid::new("quantity", "must be at least 1").into());
        }
        if id.is_empty() || id.len() > MAX_RESERVATION_ID {
            return Err(
                Invalid::new("reservation", format!("1 to {MAX_RESERVATION_ID} bytes")).into(),
            );
        }
        if let Some(r) = self.reservations.iter().find(|r| r.id == id) {
            return if r.quantity == quantity {
                Ok(false)
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
            return Err(InventoryError::TooManyReservations {
                max: MAX_RESERVATIONS,
            });
        }
        self.reservations.push(Reservation {
            id: id.to_owned(),
            quantity,
            expires_at: now + ttl_ms,
        });
        self.lapsed.retain(|l| l != id);
        self.check_invariant();
        Ok(true)
    }

    /// Turns a reservation into a sale: its units leave `on_hand`. Committing an id that
    /// was recently committed is a no-op that succeeds (`Ok(false)`).
    ///
    /// A reservation that lapsed before its commit (remembered in [`Stock::lapsed`]) is
    /// not a silent success: its `quantity` is taken from what is available now, or the
    /// commit is refused with [`InventoryError::OutOfStock`], so that the saga refunds.
    pub fn commit(&mut self, id: &str, quantity: u32) -> Result<bool, InventoryError> {
        let Some(i) = self.reservations.iter().position(|r| r.id == id) else {
            if self.committed.iter().any(|c| c == id) {
                return Ok(false);
            }
            let lapsed = self.lapsed.iter().position(|l| l == id);
            let (Some(l), 1..) = (lapsed, quantity) else {
                return Err(InventoryError::UnknownReservation(id.to_owned()));
            };
            let available = self.available();
            if u64::from(quantity) > available {
                return Err(InventoryError::OutOfStock { available });
            }
            self.lapsed.remove(l);
            self.on_hand -= u64::from(quantity);
            self.remember_commit(id.to_owned());
            self.check_invariant();
            return Ok(true);
        };
        let r = self.reservations.remove(i);
        self.on_hand -= u64::from(r.quantity);
        self.remember_commit(r.id);
        self.check_invariant();
        Ok(true)
    }

    fn remember_commit(&mut self, id: String) {
        self.committed.push(id);
        if self.committed.len() > COMMITTED_MEMORY {
            self.committed.remove(0);
        }
    }

    /// Puts `quantity` sold units back on hand (a cancelled order), once per `id`: a
    /// return with an id seen recently is a no-op (`Ok(false)`).
    pub fn return_units(&mut self, id: &str, quantity: u32) -> Result<bool, InventoryError> {
        if self.returned.iter().any(|r| r == id) {
            return Ok(false);
        }
        self.restock(i64::from(quantity))?;
        self.returned.push(id.to_owned());
        if self.returned.len() > COMMITTED_MEMORY {
            self.returned.remove(0);
        }
        Ok(true)
    }

    /// Releases a reservation; releasing an unknown id is a no-op (`false`).
    pub fn release(&mut self, id: &str) -> bool {
        let Some(i) = self.reservations.iter().position(|r| r.id == id) else {
            return false;
        };
        self.reservations.remove(i);
        true
    }

    /// Whether a reservation has expired at `now`.
    pub fn has_expired(&self, now: Millis) -> bool {
        self.reservations.iter().any(|r| r.expires_at <= now)
    }

    /// Releases every reservation that has expired at `now`, remembering their ids (see
    /// [`Stock::commit`]).
    pub fn expire(&mut self, now: Millis) -> bool {
        let before = self.reservations.len();
        let lapsed = &mut self.lapsed;
        self.reservations.retain(|r| {
            let keep = r.expires_at > now;
            if !keep {
                lapsed.push(r.id.clone());
            }
            keep
        });
        if lapsed.len() > LAPSED_MEMORY {
            lapsed.drain(..lapsed.len() - LAPSED_MEMORY);
        }
        self.reservations.len() != before
    }
}

/// Stock on hand and reserved: what a stock operation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockLevel {
    /// Units physically in stock, reserved ones included.
    pub on_hand: u64,
    /// Units held by open reservations.
    pub reserved: u64,
}

impl StockLevel {
    /// Units a shopper can still buy.
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stocked(n: i64) -> Stock {
        let mut s = Stock::default();
        s.set_on_hand(n).unwrap();
        s
    }

    #[test]
    fn a_return_adds_stock_once_per_id() {
        let mut s = stocked(2);
        assert_eq!(s.return_units("o1", 3), Ok(true));
        assert_eq!(s.on_hand, 5);
        assert_eq!(s.return_units("o1", 3), Ok(false));
        assert_eq!(s.on_hand, 5);
        assert_eq!(s.return_units("o2", 1), Ok(true));
        assert_eq!(s.on_hand, 6);
    }

    #[test]
    fn reservations_are_all_or_nothing_and_idempotent() {
        let mut s = stocked(5);
        assert_eq!(
            s.reserve("r1", 6, 0, 10),
            Err(InventoryError::OutOfStock { available: 5 })
        );
        assert_eq!(s.reserve("r1", 3, 0, 10), Ok(true));
        assert_eq!((s.available(), s.reserved()), (2, 3));
        assert_eq!(s.reserve("r1", 3, 0, 10), Ok(false));
        assert!(matches!(
            s.reserve("r1", 2, 0, 10),
            Err(InventoryError::ReservationConflict(_))
        ));
        assert_eq!(
            s.level(),
            StockLevel {
                on_hand: 5,
                reserved: 3
            }
        );
        assert_eq!(s.level().available(), 2);
    }

    #[test]
    fn commit_takes_stock_and_is_idempotent() {
        let mut s = stocked(5);
        s.reserve("r1", 3, 0, 10).unwrap();
        assert_eq!(s.commit("r1", 3), Ok(true));
        assert_eq!((s.on_hand, s.available()), (2, 2));
        assert_eq!(s.commit("r1", 3), Ok(false));
        assert!(matches!(
            s.commit("nope", 1),
            Err(InventoryError::UnknownReservation(_))
        ));
        assert!(matches!(
            s.reserve("r1", 3, 0, 10),
            Err(InventoryError::ReservationConflict(_))
        ));
    }

    #[test]
    fn on_hand_cannot_go_below_what_is_reserved() {
        let mut s = stocked(5);
        s.reserve("r1", 4, 0, 10).unwrap();
        assert_eq!(
            s.set_on_hand(3),
            Err(InventoryError::BelowReserved {
                requested: 3,
                reserved: 4
            })
        );
        assert!(s.set_on_hand(-1).is_err());
        assert!(s.restock(0).is_err());
        assert_eq!(s.on_hand, 5);
        assert_eq!(
            s.set_on_hand(5),
            Ok(false),
            "the same level changes nothing"
        );
    }

    #[test]
    fn expired_reservations_are_released() {
        let mut s = stocked(5);
        s.reserve("a", 1, 0, 10).unwrap();
        s.reserve("b", 1, 5, 10).unwrap();
        assert_eq!(s.next_expiry(), Some(10));
        assert!(s.expire(12));
        assert_eq!(s.reservations.len(), 1);
        assert!(!s.expire(12));
        assert!(s.release("b"));
        assert!(!s.release("b"));
    }

    #[test]
    fn a_commit_after_its_reservation_lapsed_takes_the_stock_again_or_is_refused() {
        let mut s = stocked(3);
        s.reserve("late", 2, 0, 10).unwrap();
        assert!(s.expire(10));
        // Lapsed, and the stock is still there: the commit takes it, once.
        assert_eq!(s.commit("late", 2), Ok(true));
        assert_eq!((s.on_hand, s.available()), (1, 1));
        assert_eq!(s.commit("late", 2), Ok(false));
        // Lapsed while another shopper bought the stock: refused, nothing changes.
        s.reserve("gone", 1, 20, 10).unwrap();
        s.expire(30);
        s.reserve("other", 1, 31, 10).unwrap();
        let before = s.clone();
        assert_eq!(
            s.commit("gone", 1),
            Err(InventoryError::OutOfStock { available: 0 })
        );
        assert_eq!(s, before);
        // Reserving a lapsed id again makes it an ordinary reservation.
        s.release("other");
        s.reserve("gone", 1, 40, 10).unwrap();
        assert!(s.lapsed.is_empty());
        assert_eq!(s.commit("gone", 1), Ok(true));
        assert_eq!(s.on_hand, 0);
    }

    #[test]
    fn a_sku_refuses_reservations_beyond_what_its_record_holds() {
        let mut s = stocked(MAX_ON_HAND as i64);
        for i in 0..MAX_RESERVATIONS {
            s.reserve(&format!("{i:064}"), 1, 0, 10).unwrap();
        }
        assert_eq!(
            s.reserve("one-more", 1, 0, 10),
            Err(InventoryError::TooManyReservations {
                max: MAX_RESERVATIONS
            })
        );
        assert!(
            s.reserve(&"x".repeat(MAX_RESERVATION_ID + 1), 1, 0, 10)
                .is_err()
        );
        s.release(&format!("{:064}", 0));
        assert_eq!(s.reserve("one-more", 1, 0, 10), Ok(true));
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
            (-5i64..50).prop_map(Op::Set),
            (-2i64..20).prop_map(Op::Restock),
            (0u8..6, 0u32..15).prop_map(|(i, q)| Op::Reserve(i, q)),
            (0u8..6).prop_map(Op::Commit),
            (0u8..6).prop_map(Op::Release),
            (0i64..100).prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn available_never_goes_negative_and_refusals_change_nothing(
            ops in prop::collection::vec(op(), 0..60)
        ) {
            let mut s = Stock::default();
            for (t, op) in ops.into_iter().enumerate() {
                let now = t as i64;
                let before = s.clone();
                let result = match op {
                    Op::Set(n) => s.set_on_hand(n),
                    Op::Restock(n) => s.restock(n),
                    Op::Reserve(i, q) => s.reserve(&format!("r{i}"), q, now, 30),
                    Op::Commit(i) => s.commit(&format!("r{i}"), 2),
                    Op::Release(i) => Ok(s.release(&format!("r{i}"))),
                    Op::Expire(at) => Ok(s.expire(at)),
                };
                match result {
                    Err(_) | Ok(false) => prop_assert_eq!(&s, &before),
                    Ok(true) => prop_assert_ne!(&s, &before),
                }
                prop_assert!(s.reserved() <= s.on_hand);
            }
        }
    }
}
