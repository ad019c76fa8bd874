//! Carts: lines of (SKU, quantity), an optional email, a sliding expiry.
//!
//! A stored cart holds no prices: [`price`] prices it from the catalog each time it is
//! shown, so a cart always reflects the catalog and never a client-sent price.

use serde::{Deserialize, Serialize};

use super::{Invalid, Millis, Sku};

/// Most units of one SKU in a cart.
pub const MAX_LINE_QUANTITY: u32 = 999;
/// Most distinct lines in a cart.
pub const MAX_LINES: usize = 100;

/// Whether a cart can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartStatus {
    /// Open for changes.
    Open,
    /// Turned into an order; refuses changes.
    CheckedOut,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// What.
    pub sku: Sku,
    /// How many, 1..=[`MAX_LINE_QUANTITY`].
    pub quantity: u32,
}

/// A cart as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Opaque random id (at least 96 random bits).
    pub id: String,
    /// Lines in the order they were first added.
    pub lines: Vec<Line>,
    /// The shopper's email, if given early.
    pub email: Option<String>,
    /// Open or checked out.
    pub status: CartStatus,
    /// The order of a checkout in progress: the cart refuses changes until it ends.
    pub checkout: Option<String>,
    /// When the shopper was last reminded of this cart.
    pub reminded_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// When the cart is gone unless it changes before then.
    pub expires_at: Millis,
    /// When its recent checkouts failed, oldest first (only those inside the window of
    /// [`FailurePolicy`], at most its limit): a cart that fails too often is refused for a
    /// while, so an anonymous client cannot loop declined payments.
    pub failed_checkouts: Vec<Millis>,
    /// The order whose payment failure was last mailed, and when: at most one such mail
    /// per cart per window.
    pub failure_mailed: Option<(String, Millis)>,
    /// The promotion code entered (canonical), if any: one per cart.
    pub promotion_code: Option<String>,
    /// Where it will go, if the shopper said (shipping methods and tax depend on it).
    pub shipping_address: Option<super::order::Address>,
    /// The shipping method chosen, if any.
    pub shipping_method: Option<String>,
}

/// What a shopper may set on a cart besides its lines (each `None` is left as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CartDetails {
    /// The shopper's email.
    pub email: Option<String>,
    /// Where it will go.
    pub shipping_address: Option<super::order::Address>,
    /// The shipping method's id (`Some("")` clears it).
    pub shipping_method: Option<String>,
}

/// How a cart bounds failed checkouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Failed checkouts allowed per window; the next is refused until the oldest leaves it.
    pub limit: usize,
    /// The window, which also spaces payment-failure mails.
    pub window_ms: Millis,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            limit: 5,
            window_ms: 3600 * 1000,
        }
    }
}

/// Why a cart change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// The cart was checked out and refuses changes.
    #[error("the cart is checked out")]
    CheckedOut,
    /// A checkout of the cart is in progress.
    #[error("a checkout of this cart is in progress")]
    CheckoutInProgress,
    /// A quantity or other field is out of range.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The cart already has [`MAX_LINES`] lines.
    #[error("a cart holds at most {MAX_LINES} lines")]
    TooManyLines,
}

impl Cart {
    /// A new empty cart.
    pub fn new(id: String, now: Millis, ttl_ms: Millis) -> Cart {
        Cart {
            id,
            lines: Vec::new(),
            email: None,
            status: CartStatus::Open,
            checkout: None,
            reminded_at: None,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl_ms,
            failed_checkouts: Vec::new(),
            failure_mailed: None,
            promotion_code: None,
            shipping_address: None,
            shipping_method: None,
        }
    }

    /// `Err(ms until the next checkout may start)` if the cart has used up its failed
    /// checkouts for the window.
    pub fn may_check_out(&self, policy: FailurePolicy, now: Millis) -> Result<(), Millis> {
        let recent: Vec<Millis> = self
            .failed_checkouts
            .iter()
            .copied()
            .filter(|at| *at > now - policy.window_ms)
            .collect();
        if recent.len() < policy.limit {
            return Ok(());
        }
        Err(recent[recent.len() - policy.limit] + policy.window_ms - now)
    }

    /// Records that the checkout of `order_id` failed at `now`; a payment failure also
    /// gets the cart's mail for the window if it is free. Recording the same order again
    /// changes nothing (a retried compensation).
    pub fn checkout_failed(
        &self,
        order_id: &str,
        payment: bool,
        policy: FailurePolicy,
        now: Millis,
    ) -> Cart {
        let mut next = self.clone();
        next.failed_checkouts
            .retain(|at| *at > now - policy.window_ms);
        next.failed_checkouts.push(now);
        let excess = next
            .failed_checkouts
            .len()
            .saturating_sub(policy.limit.max(1));
        next.failed_checkouts.drain(..excess);
        let mail_free = self
            .failure_mailed
            .as_ref()
            .is_none_or(|(_, at)| *at <= now - policy.window_ms);
        if payment && mail_free {
            next.failure_mailed = Some((order_id.to_owned(), now));
        }
        next
    }

    /// Whether the payment failure of `order_id` is the one mailed for this cart.
    pub fn mails_failure_of(&self, order_id: &str) -> bool {
        self.failure_mailed
            .as_ref()
            .is_some_and(|(id, _)| id == order_id)
    }

    /// Whether the cart has expired at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.expires_at
    }

    /// Whether the cart deserves a reminder: open, not being checked out, with items and
    /// an email, unchanged since `idle_before`, and not reminded since it last changed.
    pub fn is_abandoned(&self, idle_before: Millis) -> bool {
        self.status == CartStatus::Open
            && self.checkout.is_none()
            && !self.lines.is_empty()
            && self.email.is_some()
            && self.updated_at <= idle_before
            && self.reminded_at.is_none_or(|r| r < self.updated_at)
    }

    /// Quantity of `sku` in the cart (0 if absent).
    pub fn quantity_of(&self, sku: &Sku) -> u32 {
        self.lines
            .iter()
            .find(|l| &l.sku == sku)
            .map_or(0, |l| l.quantity)
    }

    /// Refuses changes to a cart that is checked out or being checked out.
    pub fn open(&self) -> Result<(), CartError> {
        if self.checkout.is_some() {
            return Err(CartError::CheckoutInProgress);
        }
        match self.status {
            CartStatus::Open => Ok(()),
            CartStatus::CheckedOut => Err(CartError::CheckedOut),
        }
    }

    fn touched(mut self, now: Millis, ttl_ms: Millis) -> Cart {
        self.updated_at = now;
        self.expires_at = now + ttl_ms;
        self
    }

    /// Adds `quantity` of `sku` to whatever is already there.
    pub fn add_item(
        &self,
        sku: Sku,
        quantity: i64,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<Cart, CartError> {
        self.open()?;
        if quantity < 1 {
            return Err(Invalid::new("quantity", "must be at least 1").into());
        }
        let current = self.quantity_of(&sku) as i64;
        self.set_quantity(sku, current.saturating_add(quantity), now, ttl_ms)
    }

    /// Sets the quantity of `sku`; 0 removes the line.
    pub fn set_quantity(
        &self,
        sku: Sku,
        quantity: i64,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<Cart, CartError> {
        self.open()?;
        if quantity < 0 {
            return Err(Invalid::new("quantity", "must not be negative").into());
        }
        if quantity > MAX_LINE_QUANTITY as i64 {
            return Err(Invalid::new(
                "quantity",
                format!("a line holds at most {MAX_LINE_QUANTITY} units"),
            )
            .into());
        }
        let mut next = self.clone();
        match next.lines.iter().position(|l| l.sku == sku) {
            Some(i) if quantity == 0 => {
                next.lines.remove(i);
            }
            Some(i) => next.lines[i].quantity = quantity as u32,
            None if quantity == 0 => {}
            None => {
                if next.lines.len() >= MAX_LINES {
                    return Err(CartError::TooManyLines);
                }
                next.lines.push(Line {
                    sku,
                    quantity: quantity as u32,
                });
            }
        }
        Ok(next.touched(now, ttl_ms))
    }

    /// Removes the line for `sku` (a no-op if it is not there).
    pub fn remove_item(&self, sku: &Sku, now: Millis, ttl_ms: Millis) -> Result<Cart, CartError> {
        self.set_quantity(sku.clone(), 0, now, ttl_ms)
    }

    /// Records the shopper's email.
    pub fn set_email(&self, email: &str, now: Millis, ttl_ms: Millis) -> Result<Cart, CartError> {
        let details = CartDetails {
            email: Some(email.to_owned()),
            ..CartDetails::default()
        };
        self.set_details(&details, now, ttl_ms)
    }

    /// Records what the shopper said besides the lines: email, address, shipping method.
    pub fn set_details(
        &self,
        d: &CartDetails,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<Cart, CartError> {
        self.open()?;
        let mut next = self.clone();
        if let Some(email) = &d.email {
            next.email = Some(super::parse_email(email)?);
        }
        if let Some(a) = &d.shipping_address {
            next.shipping_address = Some(a.validated()?);
        }
        match d.shipping_method.as_deref().map(str::trim) {
            None => {}
            Some("") => next.shipping_method = None,
            Some(m) if m.len() <= 64 && m.bytes().all(|b| b.is_ascii_graphic()) => {
                next.shipping_method = Some(m.to_owned());
            }
            Some(_) => {
                return Err(Invalid::new(
                    "shipping_method",
                    "a shipping method's id (at most 64 characters)",
                )
                .into());
            }
        }
        Ok(next.touched(now, ttl_ms))
    }

    /// Enters a promotion code (canonical), replacing any other: a cart takes one code.
    pub fn set_promotion(
        &self,
        code: Option<String>,
        now: Millis,
        ttl_ms: Millis,
    ) -> Result<Cart, CartError> {
        self.open()?;
        let mut next = self.clone();
        next.promotion_code = code;
        Ok(next.touched(now, ttl_ms))
    }
}

/// What the catalog says about a SKU when a cart is priced.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// Display name.
    pub name: String,
    /// Unit price in minor units.
    pub unit_price: u64,
    /// Category path.
    pub category: String,
    /// Tax class.
    pub tax_class: String,
    /// Weight of one unit, if known.
    pub weight_grams: Option<u32>,
}

/// A priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// What.
    pub sku: Sku,
    /// Name from the catalog.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price per unit from the catalog.
    pub unit_price: u64,
    /// `unit_price × quantity`.
    pub line_total: u64,
    /// Category path.
    pub category: String,
    /// Tax class.
    pub tax_class: String,
    /// Weight of one unit, if known.
    pub weight_grams: Option<u32>,
}

impl PricedLine {
    /// The line as [`super::pricing::price`] takes it.
    pub fn price_line(&self) -> super::pricing::PriceLine {
        super::pricing::PriceLine {
            sku: self.sku.clone(),
            category: self.category.clone(),
            quantity: self.quantity,
            unit_price: self.unit_price,
            tax_class: self.tax_class.clone(),
            weight_grams: self.weight_grams,
        }
    }
}

/// A cart priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedCart {
    /// Lines whose product still exists.
    pub lines: Vec<PricedLine>,
    /// Sum of line totals.
    pub subtotal: u64,
    /// Units in the cart.
    pub item_count: u64,
}

/// Prices `cart` with `lookup`. Lines whose product no longer exists are left out (they
/// cannot be bought); the stored cart keeps them until it next changes.
pub fn price(cart: &Cart, mut lookup: impl FnMut(&Sku) -> Option<CatalogEntry>) -> PricedCart {
    let lines: Vec<PricedLine> = cart
        .lines
        .iter()
        .filter_map(|l| {
            let entry = lookup(&l.sku)?;
            Some(PricedLine {
                sku: l.sku.clone(),
                name: entry.name,
                quantity: l.quantity,
                unit_price: entry.unit_price,
                line_total: entry.unit_price * u64::from(l.quantity),
                category: entry.category,
                tax_class: entry.tax_class,
                weight_grams: entry.weight_grams,
            })
        })
        .collect();
    let subtotal = lines.iter().map(|l| l.line_total).sum();
    let item_count = lines.iter().map(|l| u64::from(l.quantity)).sum();
    PricedCart {
        lines,
        subtotal,
        item_count,
    }
}

/// Cart ids the server can recognise as its own without a record: `POST /carts` writes
/// nothing — a cart that has never had a line is its id.
///
/// An issued id is 52 lowercase hex digits: 12 random bytes (96 bits, what makes it
/// unguessable), the issue time (6 bytes, ms since the epoch, big-endian), and the first
/// 8 bytes of HMAC-SHA256 over those 18 bytes under the engine's key. An id that verifies
/// and has not outlived the cart lifetime is an empty cart until its first change is
/// stored; one that does not verify was never issued (404). Carts stored under the older
/// 32-digit ids keep working: they have records.
#[derive(Clone)]
pub struct CartIds {
    key: [u8; 32],
}

/// Hex digits of an issued cart id.
pub const ISSUED_ID_LEN: usize = 52;

impl CartIds {
    /// Keys for cart ids derived from the engine's secret (so one stored secret serves).
    pub fn new(secret: &[u8]) -> CartIds {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"emporium cart ids v1");
        CartIds {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(body);
        mac
    }

    /// An id issued at `now` with the caller's `random` bytes.
    pub fn issue(&self, random: [u8; 12], now: Millis) -> String {
        use hmac::Mac as _;
        let mut bytes = [0u8; 26];
        bytes[..12].copy_from_slice(&random);
        bytes[12..18].copy_from_slice(&now.max(0).to_be_bytes()[2..]);
        let tag = self.mac(&bytes[..18]).finalize().into_bytes();
        bytes[18..].copy_from_slice(&tag[..8]);
        super::customer::hex(&bytes)
    }

    /// When `id` was issued, if it is one of ours.
    pub fn issued_at(&self, id: &str) -> Option<Millis> {
        if id.len() != ISSUED_ID_LEN {
            return None;
        }
        let mut bytes = [0u8; 26];
        for (i, b) in bytes.iter_mut().enumerate() {
            let digits = id.get(2 * i..2 * i + 2)?;
            if !digits
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            {
                return None;
            }
            *b = u8::from_str_radix(digits, 16).ok()?;
        }
        // Constant time: how much of a forged tag was right must not show in the timing.
        use hmac::Mac as _;
        self.mac(&bytes[..18])
            .verify_truncated_left(&bytes[18..])
            .ok()?;
        let mut at = [0u8; 8];
        at[2..].copy_from_slice(&bytes[12..18]);
        Some(Millis::from_be_bytes(at))
    }

    /// The empty cart `id` is, if it is an issued id whose lifetime (`ttl_ms` from its
    /// issue) has not run out at `now`.
    pub fn unstored(&self, id: &str, now: Millis, ttl_ms: Millis) -> Option<Cart> {
        let at = self.issued_at(id)?;
        let cart = Cart::new(id.to_owned(), at, ttl_ms);
        (!cart.is_expired(now)).then_some(cart)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_issued_cart_id_verifies_and_nothing_else_does() {
        let ids = CartIds::new(b"secret");
        let id = ids.issue([7; 12], 1_700_000_000_123);
        assert_eq!(id.len(), ISSUED_ID_LEN);
        assert_eq!(ids.issued_at(&id), Some(1_700_000_000_123));
        // Another key, one digit changed, another length, upper case: not ours.
        assert_eq!(CartIds::new(b"other").issued_at(&id), None);
        for i in [0, 20, 30, 51] {
            let mut forged = id.clone().into_bytes();
            forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
            assert_eq!(ids.issued_at(&String::from_utf8(forged).unwrap()), None);
        }
        assert_eq!(ids.issued_at(&id[..50]), None);
        assert_eq!(ids.issued_at(&id.to_uppercase()), None);
        assert_eq!(ids.issued_at(&"é".repeat(26)), None);
        // The empty cart it stands for, until its lifetime is over.
        let cart = ids.unstored(&id, 1_700_000_000_123 + 10, 1_000).unwrap();
        assert_eq!(
            (cart.created_at, cart.expires_at),
            (1_700_000_000_123, 1_700_000_001_123)
        );
        assert!(cart.lines.is_empty());
        assert!(ids.unstored(&id, 1_700_000_001_123, 1_000).is_none());
    }

    use super::*;

    const TTL: Millis = 1000;
    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    #[test]
    fn adding_twice_adds_to_the_line() {
        let c = Cart::new("c".into(), 0, TTL)
            .add_item(sku("A"), 2, 1, TTL)
            .unwrap()
            .add_item(sku("A"), 3, 2, TTL)
            .unwrap();
        assert_eq!(
            c.lines,
            vec![Line {
                sku: sku("A"),
                quantity: 5
            }]
        );
        assert_eq!((c.updated_at, c.expires_at), (2, 2 + TTL));
    }

    #[test]
    fn quantities_are_bounded() {
        let c = Cart::new("c".into(), 0, TTL);
        assert!(c.add_item(sku("A"), 0, 1, TTL).is_err());
        assert!(c.add_item(sku("A"), -5, 1, TTL).is_err());
        assert!(c.add_item(sku("A"), 1000, 1, TTL).is_err());
        let full = c.add_item(sku("A"), 999, 1, TTL).unwrap();
        assert!(full.add_item(sku("A"), 1, 1, TTL).is_err());
        assert!(full.add_item(sku("A"), i64::MAX, 1, TTL).is_err());
    }

    #[test]
    fn setting_zero_removes_and_a_cart_holds_at_most_100_lines() {
        let mut c = Cart::new("c".into(), 0, TTL);
        for i in 0..MAX_LINES {
            c = c.add_item(sku(&format!("S{i}")), 1, 1, TTL).unwrap();
        }
        assert_eq!(
            c.add_item(sku("ONE-MORE"), 1, 1, TTL),
            Err(CartError::TooManyLines)
        );
        let c = c.set_quantity(sku("S0"), 0, 2, TTL).unwrap();
        assert_eq!(c.lines.len(), MAX_LINES - 1);
        assert_eq!(c.quantity_of(&sku("S0")), 0);
        assert!(c.add_item(sku("ONE-MORE"), 1, 1, TTL).is_ok());
    }

    #[test]
    fn a_checked_out_cart_refuses_changes() {
        let mut c = Cart::new("c".into(), 0, TTL);
        c.status = CartStatus::CheckedOut;
        assert_eq!(c.add_item(sku("A"), 1, 1, TTL), Err(CartError::CheckedOut));
        assert_eq!(c.set_email("a@b.co", 1, TTL), Err(CartError::CheckedOut));
    }

    #[test]
    fn pricing_uses_the_catalog_and_skips_vanished_products() {
        let c = Cart::new("c".into(), 0, TTL)
            .add_item(sku("A"), 2, 1, TTL)
            .unwrap()
            .add_item(sku("GONE"), 1, 1, TTL)
            .unwrap();
        let priced = price(&c, |s| {
            (s.as_str() == "A").then(|| CatalogEntry {
                name: "Alpha".into(),
                unit_price: 250,
                category: String::new(),
                tax_class: "standard".into(),
                weight_grams: None,
            })
        });
        assert_eq!(priced.lines.len(), 1);
        assert_eq!((priced.subtotal, priced.item_count), (500, 2));
    }

    #[test]
    fn failed_checkouts_are_capped_per_window_and_one_payment_mail_goes_per_window() {
        let policy = FailurePolicy {
            limit: 3,
            window_ms: 100,
        };
        let mut c = Cart::new("c".into(), 0, 1000);
        for (i, at) in [10, 20, 30].into_iter().enumerate() {
            assert_eq!(c.may_check_out(policy, at), Ok(()));
            c = c.checkout_failed(&format!("o{i}"), true, policy, at);
        }
        assert!(c.mails_failure_of("o0"), "the first failure is mailed");
        assert!(!c.mails_failure_of("o1") && !c.mails_failure_of("o2"));
        // Three failures inside the window: refused until the oldest leaves it.
        assert_eq!(c.may_check_out(policy, 40), Err(70));
        assert_eq!(c.may_check_out(policy, 110), Ok(()));
        c = c.checkout_failed("o3", true, policy, 111);
        assert!(c.mails_failure_of("o3"), "a new window, a new mail");
        assert!(c.failed_checkouts.len() <= 3, "the record stays bounded");
        assert_eq!(c.may_check_out(policy, 112), Err(8));
        // A failure that is not a payment's takes no mail.
        let d = Cart::new("d".into(), 0, 1000).checkout_failed("x", false, policy, 5);
        assert!(!d.mails_failure_of("x"));
    }

    #[test]
    fn expiry_slides_with_each_change() {
        let c = Cart::new("c".into(), 0, TTL);
        assert!(!c.is_expired(TTL - 1) && c.is_expired(TTL));
        let c = c.add_item(sku("A"), 1, 500, TTL).unwrap();
        assert!(!c.is_expired(TTL + 1));
    }
}
