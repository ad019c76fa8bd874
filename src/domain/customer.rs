//! Customer accounts: the profile, saved addresses and the sessions an account holds.
//!
//! Every change is a pure function `customer + command + now -> new customer or an error`;
//! the customer actor persists what these return. Passwords arrive here already hashed
//! (Argon2id, in the engine): the domain never sees a password, only its PHC string.
//! Session tokens likewise arrive as their SHA-256 digests.

use serde::{Deserialize, Serialize};

use super::order::Address;
use super::{Invalid, Millis, parse_email};

/// Most saved addresses per account.
pub const MAX_ADDRESSES: usize = 20;
/// Most open sessions per account; signing in once more ends the oldest.
pub const MAX_SESSIONS: usize = 20;
/// Shortest password, in characters (NIST SP 800-63B's minimum for a chosen secret).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in characters: bounds the hashing work a request can ask for.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Opaque random id (32 hex digits).
    pub id: String,
    /// Sign-in email, normalised ([`normalize_email`]).
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// The password's Argon2id hash (PHC string).
    pub password_hash: String,
    /// Whether the customer proved they read mail at `email`.
    pub email_verified: bool,
    /// Saved addresses, oldest first.
    pub addresses: Vec<SavedAddress>,
    /// Id of the default shipping address.
    pub default_shipping: Option<String>,
    /// Id of the default billing address.
    pub default_billing: Option<String>,
    /// Open sessions (token digests), oldest first.
    pub sessions: Vec<SessionRef>,
    /// The account's open cart, if any.
    pub cart_id: Option<String>,
    /// The outstanding password-reset token, if any (one at a time).
    pub pending_reset: Option<PendingToken>,
    /// The outstanding email-verification token, if any (one at a time).
    pub pending_verification: Option<PendingToken>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// Setting a new password.
    Reset,
    /// Proving the email address.
    Verify,
}

impl TokenPurpose {
    /// Its name, mixed into the token (so a token of one purpose never works for the
    /// other).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Reset => "reset",
            TokenPurpose::Verify => "verify",
        }
    }
}

/// A single-use token mailed to the customer, as stored: its digest only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingToken {
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// When it was asked for.
    pub requested_at: Millis,
    /// When it stops working.
    pub expires_at: Millis,
}

/// A saved address with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAddress {
    /// Id, unique within the account.
    pub id: String,
    /// The address.
    pub address: Address,
}

/// An account's record of one of its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRef {
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// When it lapses unless used.
    pub expires_at: Millis,
}

/// A session as stored under its token's digest: what a request's token resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The account.
    pub customer_id: String,
    /// When it was opened.
    pub created_at: Millis,
    /// When it lapses unless used (each use slides it).
    pub expires_at: Millis,
}

/// A pointer to an account (what an email claim, an order's or a cart's owner holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRef {
    /// The account's id.
    pub customer_id: String,
}

/// Why a change to an account was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No saved address has this id.
    #[error("no saved address {0}")]
    UnknownAddress(String),
    /// The account holds [`MAX_ADDRESSES`] already.
    #[error("an account holds at most {MAX_ADDRESSES} addresses")]
    TooManyAddresses,
    /// A mailed token that is unknown, used or expired.
    #[error("the token is invalid, used or expired")]
    InvalidToken,
}

/// SHA-256 of a token, hex: all the store keeps of a token.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A mailed token: `{customer id}.{HMAC-SHA256(secret, purpose, customer id, nonce)}`.
/// The event that asks for the mail carries only the nonce; whoever renders the mail
/// derives the token again with the engine's secret, so the event log never holds a
/// usable token.
pub fn mailed_token(
    secret: &[u8],
    purpose: TokenPurpose,
    customer_id: &str,
    nonce: &str,
) -> String {
    use hmac::Mac as _;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for part in [purpose.as_str(), customer_id, nonce] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    format!("{customer_id}.{}", hex(&mac.finalize().into_bytes()))
}

/// The account a mailed token names (its part before the dot).
pub fn token_customer(token: &str) -> Option<&str> {
    let (id, mac) = token.split_once('.')?;
    (id.len() == 32 && mac.len() == 64).then_some(id)
}

/// The canonical form of a sign-in email: validated, trimmed, lower-cased (so that
/// `Ada@Example.com` and `ada@example.com` are one account).
pub fn normalize_email(s: &str) -> Result<String, Invalid> {
    Ok(parse_email(s)?.to_lowercase())
}

/// Checks a new password's length (what is hashed is checked, never stored).
pub fn check_password(password: &str) -> Result<(), Invalid> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Invalid::new(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(Invalid::new(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Validates a display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters; blank means none.
pub fn check_name(name: Option<&str>) -> Result<Option<String>, Invalid> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Invalid::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new("name", "must not contain control characters"));
    }
    Ok(Some(name.to_owned()))
}

/// A change to the profile: each field is left alone when `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New default shipping address id (`Some(None)` clears it).
    pub default_shipping: Option<Option<String>>,
    /// New default billing address id (`Some(None)` clears it).
    pub default_billing: Option<Option<String>>,
}

impl Customer {
    /// A new account.
    pub fn new(
        id: String,
        email: String,
        name: Option<String>,
        password_hash: String,
        now: Millis,
    ) -> Customer {
        Customer {
            id,
            email,
            name,
            password_hash,
            email_verified: false,
            addresses: Vec::new(),
            default_shipping: None,
            default_billing: None,
            sessions: Vec::new(),
            cart_id: None,
            pending_reset: None,
            pending_verification: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn address_known(&self, id: &Option<String>) -> Result<(), CustomerError> {
        match id {
            Some(id) if !self.addresses.iter().any(|a| &a.id == id) => {
                Err(CustomerError::UnknownAddress(id.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The profile changed as asked.
    pub fn with_profile(
        &self,
        change: &ProfileChange,
        now: Millis,
    ) -> Result<Customer, CustomerError> {
        let mut next = self.clone();
        if let Some(name) = &change.name {
            next.name = check_name(name.as_deref())?;
        }
        if let Some(id) = &change.default_shipping {
            self.address_known(id)?;
            next.default_shipping = id.clone();
        }
        if let Some(id) = &change.default_billing {
            self.address_known(id)?;
            next.default_billing = id.clone();
        }
        next.updated_at = now;
        Ok(next)
    }

    /// An address saved under `id` (fresh, chosen by the caller).
    pub fn with_address(
        &self,
        id: String,
        address: &Address,
        now: Millis,
    ) -> Result<Customer, CustomerError> {
        if self.addresses.len() >= MAX_ADDRESSES {
            return Err(CustomerError::TooManyAddresses);
        }
        let mut next = self.clone();
        next.addresses.push(SavedAddress {
            id,
            address: address.validated()?,
        });
        next.updated_at = now;
        Ok(next)
    }

    /// The address `id` replaced.
    pub fn with_address_replaced(
        &self,
        id: &str,
        address: &Address,
        now: Millis,
    ) -> Result<Customer, CustomerError> {
        let mut next = self.clone();
        let saved = next
            .addresses
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| CustomerError::UnknownAddress(id.to_owned()))?;
        saved.address = address.validated()?;
        next.updated_at = now;
        Ok(next)
    }

    /// The address `id` removed (and no longer a default).
    pub fn without_address(&self, id: &str, now: Millis) -> Result<Customer, CustomerError> {
        if !self.addresses.iter().any(|a| a.id == id) {
            return Err(CustomerError::UnknownAddress(id.to_owned()));
        }
        let mut next = self.clone();
        next.addresses.retain(|a| a.id != id);
        for default in [&mut next.default_shipping, &mut next.default_billing] {
            if default.as_deref() == Some(id) {
                *default = None;
            }
        }
        next.updated_at = now;
        Ok(next)
    }

    /// A session opened: lapsed ones are dropped, and past [`MAX_SESSIONS`] the oldest
    /// ends. Returns the digests of the sessions that ended, whose records go too.
    pub fn with_session(
        &self,
        digest: String,
        expires_at: Millis,
        now: Millis,
    ) -> (Customer, Vec<String>) {
        let mut next = self.clone();
        let mut ended: Vec<String> = Vec::new();
        next.sessions.retain(|s| {
            let live = s.expires_at > now;
            if !live {
                ended.push(s.digest.clone());
            }
            live
        });
        while next.sessions.len() >= MAX_SESSIONS {
            ended.push(next.sessions.remove(0).digest);
        }
        next.sessions.push(SessionRef { digest, expires_at });
        (next, ended)
    }

    /// A session's expiry slid to `expires_at`.
    pub fn with_session_extended(&self, digest: &str, expires_at: Millis) -> Customer {
        let mut next = self.clone();
        if let Some(s) = next.sessions.iter_mut().find(|s| s.digest == digest) {
            s.expires_at = expires_at;
        }
        next
    }

    /// The outstanding token for `purpose`.
    pub fn pending(&self, purpose: TokenPurpose) -> Option<&PendingToken> {
        match purpose {
            TokenPurpose::Reset => self.pending_reset.as_ref(),
            TokenPurpose::Verify => self.pending_verification.as_ref(),
        }
    }

    fn pending_mut(&mut self, purpose: TokenPurpose) -> &mut Option<PendingToken> {
        match purpose {
            TokenPurpose::Reset => &mut self.pending_reset,
            TokenPurpose::Verify => &mut self.pending_verification,
        }
    }

    /// A mailed token asked for: its digest replaces any earlier one of its purpose.
    pub fn with_token_requested(
        &self,
        purpose: TokenPurpose,
        digest: String,
        expires_at: Millis,
        now: Millis,
    ) -> Customer {
        let mut next = self.clone();
        *next.pending_mut(purpose) = Some(PendingToken {
            digest,
            requested_at: now,
            expires_at,
        });
        next
    }

    /// The account with its token for `purpose` used up, if `digest` is that token's and
    /// it has not expired.
    fn with_token_used(
        &self,
        purpose: TokenPurpose,
        digest: &str,
        now: Millis,
    ) -> Result<Customer, CustomerError> {
        if !self
            .pending(purpose)
            .is_some_and(|p| p.digest == digest && p.expires_at > now)
        {
            return Err(CustomerError::InvalidToken);
        }
        let mut next = self.clone();
        *next.pending_mut(purpose) = None;
        next.updated_at = now;
        Ok(next)
    }

    /// The password replaced through the reset token with this digest, which is used up;
    /// every session ends. Returns the digests of the ended sessions.
    pub fn with_password_reset(
        &self,
        digest: &str,
        password_hash: String,
        now: Millis,
    ) -> Result<(Customer, Vec<String>), CustomerError> {
        let mut next = self.with_token_used(TokenPurpose::Reset, digest, now)?;
        next.password_hash = password_hash;
        let ended = std::mem::take(&mut next.sessions)
            .into_iter()
            .map(|s| s.digest)
            .collect();
        Ok((next, ended))
    }

    /// The email verified through the token with this digest, which is used up.
    pub fn with_email_verified(
        &self,
        digest: &str,
        now: Millis,
    ) -> Result<Customer, CustomerError> {
        let mut next = self.with_token_used(TokenPurpose::Verify, digest, now)?;
        next.email_verified = true;
        Ok(next)
    }

    /// A session ended; whether the account held it.
    pub fn without_session(&self, digest: &str) -> Option<Customer> {
        let mut next = self.clone();
        let before = next.sessions.len();
        next.sessions.retain(|s| s.digest != digest);
        (next.sessions.len() < before).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(city: &str) -> Address {
        Address {
            name: "Ada".into(),
            line1: "1 Orbit Way".into(),
            line2: None,
            city: city.into(),
            postal_code: "00001".into(),
            country: "US".into(),
            region: None,
        }
    }

    fn customer() -> Customer {
        Customer::new(
            "c1".into(),
            "ada@example.com".into(),
            None,
            "$argon2id$…".into(),
            0,
        )
    }

    #[test]
    fn emails_are_one_account_whatever_their_case() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(normalize_email("not an email").is_err());
    }

    #[test]
    fn passwords_are_bounded_both_ways() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        // Characters, not bytes, at the lower bound.
        assert!(check_password("ééééééé").is_err());
        assert!(check_password("éééééééé").is_ok());
    }

    #[test]
    fn addresses_are_capped_validated_and_defaults_follow_removal() {
        let mut c = customer();
        for i in 0..MAX_ADDRESSES {
            c = c
                .with_address(format!("a{i}"), &address("Base"), 1)
                .unwrap();
        }
        assert_eq!(
            c.with_address("x".into(), &address("Base"), 1),
            Err(CustomerError::TooManyAddresses)
        );
        let change = ProfileChange {
            default_shipping: Some(Some("a3".into())),
            ..Default::default()
        };
        let c = c.with_profile(&change, 2).unwrap();
        assert_eq!(c.default_shipping.as_deref(), Some("a3"));
        let unknown = ProfileChange {
            default_billing: Some(Some("nope".into())),
            ..Default::default()
        };
        assert!(matches!(
            c.with_profile(&unknown, 2),
            Err(CustomerError::UnknownAddress(_))
        ));
        let c = c.without_address("a3", 3).unwrap();
        assert_eq!(c.default_shipping, None);
        assert!(c.with_address_replaced("a3", &address("X"), 4).is_err());
        let mut bad = address("Base");
        bad.line1 = String::new();
        assert!(matches!(
            customer().with_address("a".into(), &bad, 1),
            Err(CustomerError::Invalid(_))
        ));
    }

    #[test]
    fn a_reset_token_works_once_before_it_expires_and_ends_every_session() {
        let (c, _) = customer().with_session("s1".into(), 10_000, 0);
        let token = mailed_token(b"secret", TokenPurpose::Reset, &"c".repeat(32), "n1");
        assert_eq!(token_customer(&token), Some("c".repeat(32).as_str()));
        assert_ne!(
            token,
            mailed_token(b"other", TokenPurpose::Reset, &"c".repeat(32), "n1")
        );
        assert_ne!(
            token,
            mailed_token(b"secret", TokenPurpose::Verify, &"c".repeat(32), "n1")
        );
        let digest = token_digest(&token);
        let c = c.with_token_requested(TokenPurpose::Reset, digest.clone(), 1_000, 0);
        assert_eq!(
            c.with_password_reset(&digest, "new".into(), 1_000),
            Err(CustomerError::InvalidToken),
            "expired"
        );
        assert_eq!(
            c.with_password_reset("other", "new".into(), 10),
            Err(CustomerError::InvalidToken)
        );
        let (c, ended) = c.with_password_reset(&digest, "new".into(), 10).unwrap();
        assert_eq!(
            (c.password_hash.as_str(), ended),
            ("new", vec!["s1".to_owned()])
        );
        assert!(c.sessions.is_empty());
        assert_eq!(
            c.with_password_reset(&digest, "again".into(), 11),
            Err(CustomerError::InvalidToken),
            "used"
        );
    }

    #[test]
    fn an_email_is_verified_by_its_token_once() {
        let c = customer().with_token_requested(TokenPurpose::Verify, "d".into(), 100, 0);
        assert!(c.with_email_verified("x", 1).is_err());
        let c = c.with_email_verified("d", 1).unwrap();
        assert!(c.email_verified);
        assert!(c.with_email_verified("d", 2).is_err());
    }

    #[test]
    fn sessions_are_capped_and_lapsed_ones_dropped() {
        let mut c = customer();
        let mut ended_total = Vec::new();
        for i in 0..MAX_SESSIONS + 3 {
            let (next, ended) = c.with_session(format!("d{i}"), 1_000, 10);
            ended_total.extend(ended);
            c = next;
        }
        assert_eq!(c.sessions.len(), MAX_SESSIONS);
        assert_eq!(ended_total, ["d0", "d1", "d2"]);
        // Later, every one of them has lapsed: opening one more drops them all.
        let (c, ended) = c.with_session("new".into(), 5_000, 2_000);
        assert_eq!(ended.len(), MAX_SESSIONS);
        assert_eq!(c.sessions.len(), 1);
        assert!(
            c.without_session("new")
                .is_some_and(|c| c.sessions.is_empty())
        );
        assert!(c.without_session("other").is_none());
    }
}
