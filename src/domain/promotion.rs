//! Promotion codes: what a code offers ([`pricing::Offer`](super::pricing::Offer)) and
//! its uses, kept exact under concurrency the way a SKU keeps its stock.
//!
//! A checkout **reserves** a use for its order (idempotent on the order id), **commits**
//! it with the order, or **releases** it when the order fails or its hold lapses.
//! Reserved and committed uses together never exceed the total limit, nor a customer's
//! uses the per-customer limit: the promotion's actor applies one change at a time, and
//! these functions refuse a use that would break either.

use serde::{Deserialize, Serialize};

use super::pricing::{Offer, Reduction, Target};
use super::{Invalid, Millis};

/// Most uses held (reserved, not yet committed) at once: bounds the record.
pub const MAX_HOLDS: usize = 400;
/// Longest code.
pub const MAX_CODE: usize = 32;

/// A code's canonical form: upper case, 1–32 of `A-Z 0-9 _ -` (case does not matter).
pub fn normalize_code(code: &str) -> Result<String, Invalid> {
    let code = code.to_ascii_uppercase();
    if code.is_empty()
        || code.len() > MAX_CODE
        || !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(Invalid::new(
            "code",
            format!("1 to {MAX_CODE} of A-Z 0-9 _ - (case does not matter)"),
        ));
    }
    Ok(code)
}

/// What an admin sets on a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionDraft {
    /// How much.
    pub reduction: Reduction,
    /// On what.
    pub target: Target,
    /// Least subtotal it needs.
    pub min_subtotal: u64,
    /// Valid from (inclusive).
    pub starts_at: Option<Millis>,
    /// Valid until (exclusive).
    pub ends_at: Option<Millis>,
    /// Most uses in all; `None` for no limit.
    pub usage_limit: Option<u32>,
    /// Most uses per customer (per account, or per email for guests); `None` for no limit.
    pub per_customer_limit: Option<u32>,
    /// Switched on.
    pub active: bool,
    /// Applied to every cart it matches, without being entered (then it has no usage
    /// limits: they are for codes).
    pub automatic: bool,
}

impl PromotionDraft {
    /// Checks the draft's rules.
    pub fn validated(self) -> Result<PromotionDraft, Invalid> {
        match self.reduction {
            Reduction::Percent(bp) if !(1..=10_000).contains(&bp) => {
                return Err(Invalid::new(
                    "reduction",
                    "a percentage is 1 to 10000 basis points",
                ));
            }
            Reduction::Fixed(0) => {
                return Err(Invalid::new("reduction", "a fixed amount is at least 1"));
            }
            _ => {}
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at)
            && e <= s
        {
            return Err(Invalid::new("ends_at", "must be after starts_at"));
        }
        if self.automatic && (self.usage_limit.is_some() || self.per_customer_limit.is_some()) {
            return Err(Invalid::new(
                "usage_limit",
                "an automatic promotion has no usage limits (they are for codes)",
            ));
        }
        if let Target::Items { skus, categories } = &self.target
            && skus.is_empty()
            && categories.is_empty()
        {
            return Err(Invalid::new("target", "name at least one SKU or category"));
        }
        Ok(self)
    }
}

/// How often one customer has used a code (committed uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerUses {
    /// Committed uses.
    pub count: u32,
}

/// An order's committed use of a code: who used it (kept by the code's actor beside its
/// record, so a repeated commit is recognised and a given-back use counts down the right
/// customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedUse {
    /// `customer:{id}` or `email:{address}`.
    pub customer: String,
}

/// A use held for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The order.
    pub order_id: String,
    /// Who uses it (`customer:{id}` or `email:{address}`).
    pub customer: String,
    /// When the hold lapses unless committed.
    pub expires_at: Millis,
}

/// A promotion code as stored: the offer and its uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The code, canonical.
    pub code: String,
    /// The admin's settings.
    pub draft: PromotionDraft,
    /// Committed uses.
    pub used: u32,
    /// Uses held for orders being checked out.
    pub holds: Vec<Hold>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// Why a use was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseError {
    /// Every use is taken (committed or held).
    #[error("the promotion has been used up")]
    Exhausted,
    /// This customer has used it as often as allowed.
    #[error("you have used this promotion as often as it allows")]
    CustomerLimit,
    /// Too many checkouts hold a use right now.
    #[error("too many checkouts are using this promotion at once; try again shortly")]
    Busy,
    /// No hold for this order.
    #[error("no use is held for order {0}")]
    NotHeld(String),
}

impl Promotion {
    /// A new promotion.
    pub fn new(code: String, draft: PromotionDraft, now: Millis) -> Promotion {
        Promotion {
            code,
            draft,
            used: 0,
            holds: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The offer pricing applies.
    pub fn offer(&self) -> Offer {
        Offer {
            code: Some(self.code.clone()),
            automatic: self.draft.automatic,
            reduction: self.draft.reduction,
            target: self.draft.target.clone(),
            min_subtotal: self.draft.min_subtotal,
            starts_at: self.draft.starts_at,
            ends_at: self.draft.ends_at,
            active: self.draft.active,
        }
    }

    /// Uses left (`None`: no limit), holds counted as taken.
    pub fn remaining(&self) -> Option<u32> {
        self.draft
            .usage_limit
            .map(|l| l.saturating_sub(self.used + self.holds.len() as u32))
    }

    /// The settings replaced (uses kept).
    pub fn with_draft(&self, draft: PromotionDraft, now: Millis) -> Promotion {
        let mut next = self.clone();
        next.draft = draft;
        next.updated_at = now;
        next
    }

    /// Drops holds that lapsed by `now`; whether any did.
    pub fn expire(&mut self, now: Millis) -> bool {
        let before = self.holds.len();
        self.holds.retain(|h| h.expires_at > now);
        self.holds.len() < before
    }

    /// Holds a use for `order_id` by `customer`, who has used it `customer_used` times
    /// (committed) so far. Idempotent: the order's hold, or its committed use (`committed`:
    /// the store has the order's commit, kept beside the record by the code's actor),
    /// answers again without taking another.
    pub fn reserve(
        &self,
        order_id: &str,
        customer: &str,
        customer_used: u32,
        committed: bool,
        expires_at: Millis,
        now: Millis,
    ) -> Result<Promotion, UseError> {
        let mut next = self.clone();
        next.expire(now);
        if committed || next.holds.iter().any(|h| h.order_id == order_id) {
            return Ok(next);
        }
        if next.remaining() == Some(0) {
            return Err(UseError::Exhausted);
        }
        let held_by_customer = next.holds.iter().filter(|h| h.customer == customer).count();
        if let Some(limit) = next.draft.per_customer_limit
            && customer_used as usize + held_by_customer >= limit as usize
        {
            return Err(UseError::CustomerLimit);
        }
        if next.holds.len() >= MAX_HOLDS {
            return Err(UseError::Busy);
        }
        next.holds.push(Hold {
            order_id: order_id.to_owned(),
            customer: customer.to_owned(),
            expires_at,
        });
        Ok(next)
    }

    /// Commits the order's held use; returns the promotion and who used it. (A commit
    /// made before is recognised by the code's actor, which keeps a mark per committed
    /// order beside the record: the record stays small however many orders used it.)
    pub fn commit(&self, order_id: &str, now: Millis) -> Result<(Promotion, String), UseError> {
        let mut next = self.clone();
        let i = next
            .holds
            .iter()
            .position(|h| h.order_id == order_id)
            .ok_or_else(|| UseError::NotHeld(order_id.to_owned()))?;
        let hold = next.holds.remove(i);
        next.used += 1;
        next.updated_at = now;
        Ok((next, hold.customer))
    }

    /// Releases the order's hold (a no-op if there is none).
    pub fn release(&self, order_id: &str) -> Promotion {
        let mut next = self.clone();
        next.holds.retain(|h| h.order_id != order_id);
        next
    }

    /// Gives a committed use back (its order was cancelled in full).
    pub fn returned(&self, now: Millis) -> Promotion {
        let mut next = self.clone();
        next.used = next.used.saturating_sub(1);
        next.updated_at = now;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn draft(limit: Option<u32>, per_customer: Option<u32>) -> PromotionDraft {
        PromotionDraft {
            reduction: Reduction::Percent(1_000),
            target: Target::Order,
            min_subtotal: 0,
            starts_at: None,
            ends_at: None,
            usage_limit: limit,
            per_customer_limit: per_customer,
            active: true,
            automatic: false,
        }
    }

    #[test]
    fn codes_are_canonical_and_bounded() {
        assert_eq!(normalize_code("spring-10").unwrap(), "SPRING-10");
        assert!(normalize_code(" SPRING").is_err());
        assert!(normalize_code("").is_err());
        assert!(normalize_code("no spaces").is_err());
        assert!(normalize_code(&"A".repeat(33)).is_err());
    }

    #[test]
    fn drafts_are_checked() {
        let mut d = draft(None, None);
        d.reduction = Reduction::Percent(0);
        assert!(d.clone().validated().is_err());
        d.reduction = Reduction::Percent(10_001);
        assert!(d.clone().validated().is_err());
        d.reduction = Reduction::Fixed(0);
        assert!(d.clone().validated().is_err());
        d.reduction = Reduction::Fixed(500);
        d.starts_at = Some(10);
        d.ends_at = Some(10);
        assert!(d.clone().validated().is_err());
        d.ends_at = None;
        d.target = Target::Items {
            skus: vec![],
            categories: vec![],
        };
        assert!(d.validated().is_err());
    }

    #[test]
    fn a_use_is_held_committed_once_and_repeats_answer_the_same() {
        let p = Promotion::new("X".into(), draft(Some(1), None), 0);
        let p = p.reserve("o1", "email:a", 0, false, 100, 0).unwrap();
        assert_eq!(
            p.reserve("o1", "email:a", 0, false, 100, 1).unwrap(),
            p,
            "idempotent"
        );
        assert_eq!(
            p.reserve("o2", "email:b", 0, false, 100, 1),
            Err(UseError::Exhausted)
        );
        let (p, who) = p.commit("o1", 2).unwrap();
        assert_eq!((p.used, who.as_str()), (1, "email:a"));
        assert_eq!(p.commit("o1", 3), Err(UseError::NotHeld("o1".into())));
        // Reserving a committed order's use again takes nothing.
        assert_eq!(p.reserve("o1", "email:a", 1, true, 100, 4).unwrap().used, 1);
        let p = p.returned(5);
        assert_eq!(p.remaining(), Some(1));
    }

    #[test]
    fn a_lapsed_hold_frees_its_use_and_the_customer_limit_counts_holds() {
        let p = Promotion::new("X".into(), draft(Some(1), Some(1)), 0);
        let p = p.reserve("o1", "email:a", 0, false, 100, 0).unwrap();
        assert_eq!(
            p.reserve("o2", "email:a", 0, false, 100, 50),
            Err(UseError::Exhausted)
        );
        let p = p.reserve("o2", "email:a", 0, false, 300, 100).unwrap();
        assert_eq!(p.holds.len(), 1, "o1 lapsed");
        let unlimited = Promotion::new("Y".into(), draft(None, Some(2)), 0);
        let u = unlimited.reserve("o1", "c", 1, false, 100, 0).unwrap();
        assert_eq!(
            u.reserve("o2", "c", 1, false, 100, 0),
            Err(UseError::CustomerLimit)
        );
        assert!(u.reserve("o2", "d", 0, false, 100, 0).is_ok());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(u8, u8),
        Commit(u8),
        Release(u8),
        Tick,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..40, 0u8..5).prop_map(|(o, c)| Op::Reserve(o, c)),
            (0u8..40).prop_map(Op::Commit),
            (0u8..40).prop_map(Op::Release),
            Just(Op::Tick),
        ]
    }

    proptest! {
        #[test]
        fn uses_never_exceed_either_limit(
            ops in prop::collection::vec(op(), 1..200),
            limit in 1u32..10,
            per_customer in 1u32..4,
        ) {
            let mut p = Promotion::new("X".into(), draft(Some(limit), Some(per_customer)), 0);
            let mut now = 0;
            let mut used_by: std::collections::HashMap<String, u32> = Default::default();
            let mut done = std::collections::HashSet::new();
            for op in ops {
                match op {
                    Op::Reserve(o, c) => {
                        let customer = format!("c{c}");
                        let used = used_by.get(&customer).copied().unwrap_or(0);
                        let committed = done.contains(&o);
                        if let Ok(next) = p.reserve(&format!("o{o}"), &customer, used, committed, now + 50, now) {
                            p = next;
                        }
                    }
                    Op::Commit(o) => {
                        // The actor answers a repeated commit from its mark.
                        if !done.contains(&o)
                            && let Ok((next, who)) = p.commit(&format!("o{o}"), now)
                        {
                            *used_by.entry(who).or_default() += 1;
                            done.insert(o);
                            p = next;
                        }
                    }
                    Op::Release(o) => p = p.release(&format!("o{o}")),
                    Op::Tick => now += 20,
                }
                prop_assert!(p.used + p.holds.len() as u32 <= limit);
                prop_assert_eq!(used_by.values().sum::<u32>(), p.used);
                for (c, n) in &used_by {
                    prop_assert!(*n <= per_customer, "{} used {}", c, n);
                }
            }
        }
    }
}
