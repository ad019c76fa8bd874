//! Pure domain types and rules: no I/O, no actors, no async.
//!
//! Each aggregate is a plain value and every change is a function `old state + command ->
//! new state or a typed error`. Actors call these functions and persist what they return;
//! tests call them directly.
//!
//! Architecture invariant: nothing in `domain` depends on another module of this crate.

pub mod cart;
pub mod customer;
pub mod event;
pub mod history;
pub mod import;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod pricing;
pub mod product;
pub mod promotion;
pub mod webhook;

/// Milliseconds since the Unix epoch, UTC. All stored times use it; domain functions take
/// the current time as an argument (the engine reads it from its clock).
pub type Millis = i64;

/// Renders stored milliseconds as RFC 3339 UTC (the wire's, the mails' and the webhooks'
/// way of writing a time).
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A validated SKU: 1–64 characters of `A-Z a-z 0-9 . _ -`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Sku(String);

/// Why a value was refused by validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl Invalid {
    /// Builds an error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl Sku {
    /// Longest SKU accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses a SKU.
    pub fn parse(s: &str) -> Result<Sku, Invalid> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(Invalid::new("sku", "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Invalid::new("sku", "may contain only A-Z a-z 0-9 . _ -"));
        }
        Ok(Sku(s.to_owned()))
    }

    /// The SKU as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a shopper's email address: a practical check (one `@`, a dotted domain, no
/// spaces or control characters, at most 254 characters), not the full RFC 5322 grammar.
pub fn parse_email(s: &str) -> Result<String, Invalid> {
    let bad = || Invalid::new("email", "is not a valid email address");
    let s = s.trim();
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return Err(bad());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_accept_the_documented_alphabet_only() {
        assert!(Sku::parse("HELM-01.a_b").is_ok());
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        for bad in [
            "",
            "has space",
            "slash/x",
            "ümlaut",
            "semi;colon",
            &"A".repeat(65),
        ] {
            assert!(Sku::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert_eq!(parse_email(" ada@example.com ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
            "ada@ex..com",
            "a@b@c.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
