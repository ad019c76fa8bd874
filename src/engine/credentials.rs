//! Secrets of customer accounts: password hashing (Argon2id), session tokens and their
//! digests, and the throttle on failed sign-ins.
//!
//! - Passwords are hashed with Argon2id at OWASP's minimum cost or more
//!   ([`PasswordCost::default`]: 19 MiB, 2 passes, 1 lane), on the blocking pool. A sign-in
//!   for an email that has no account verifies against a hash made at start with the same
//!   cost, so both answers take the same work.
//! - A session token is 256 random bits (64 hex digits), shown to the client once; the
//!   store keeps only its SHA-256 digest.
//! - Failed sign-ins are counted per account email and per client address (IPv6 by /64);
//!   past the limit within the window, sign-ins from there are refused with a retry time,
//!   whether or not the account exists.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Millis;
use crate::domain::customer::{hex, token_digest};

use super::EngineError;

/// The cost of a password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordCost {
    /// OWASP's Password Storage Cheat Sheet minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Limits on failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed sign-ins to one account email within the window before it is throttled.
    pub per_account: usize,
    /// Failed sign-ins from one client address within the window before it is throttled.
    pub per_client: usize,
    /// The window, ms.
    pub window_ms: Millis,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_account: 5,
            per_client: 50,
            window_ms: 15 * 60 * 1000,
        }
    }
}

/// Hashing, tokens and the sign-in throttle of one engine.
pub(super) struct Credentials {
    argon: Argon2<'static>,
    /// A hash of a random secret at the configured cost: what a sign-in for an unknown
    /// email is verified against.
    decoy: String,
    limits: LoginLimits,
    failures: quick_cache::sync::Cache<String, Arc<Mutex<Vec<Millis>>>>,
    /// Argon2 verifications run, against real hashes and the decoy alike.
    verifications: AtomicU64,
}

/// `n` random bytes from the operating system.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], EngineError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| EngineError::unavailable_because("the system's random numbers", e))?;
    Ok(b)
}

/// The key in `meta` of the secret mailed tokens are derived with.
const TOKEN_SECRET: &str = "token_secret";

/// The engine's secret for mailed tokens: read from `meta`, or made (256 random bits)
/// and stored on the first start. Only the engine writes it, once.
pub(super) fn token_secret(store: &crate::storage::Store) -> Result<Arc<[u8]>, EngineError> {
    use crate::storage::MetaValue;
    let meta = &store.tables().meta;
    if let Some(MetaValue::Text(hex_secret)) = meta.get(TOKEN_SECRET)? {
        return Ok(Arc::from(hex_secret.into_bytes()));
    }
    let secret = hex(&random_bytes::<32>()?);
    meta.put(TOKEN_SECRET, &MetaValue::Text(secret.clone()))?;
    store.sync_now()?;
    Ok(Arc::from(secret.into_bytes()))
}

/// A fresh random nonce (128 bits, hex).
pub(super) fn nonce() -> Result<String, EngineError> {
    Ok(hex(&random_bytes::<16>()?))
}

/// A fresh session token and its digest.
pub(super) fn new_token() -> Result<(String, String), EngineError> {
    let token = hex(&random_bytes::<32>()?);
    let d = token_digest(&token);
    Ok((token, d))
}

/// Whether `token` has the shape of the tokens we issue (so that nothing else is looked up).
pub(super) fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The throttle key of a client address: the address, or its /64 for IPv6 (one host
/// usually holds a whole /64).
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Credentials {
    pub(super) fn new(cost: PasswordCost, limits: LoginLimits) -> Result<Credentials, EngineError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| crate::domain::Invalid::new("password_cost", e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut c = Credentials {
            argon,
            decoy: String::new(),
            limits,
            failures: quick_cache::sync::Cache::new(100_000),
            verifications: AtomicU64::new(0),
        };
        c.decoy = c.hash(&hex(&random_bytes::<16>()?))?;
        Ok(c)
    }

    /// The Argon2id hash (PHC string) of `password`. CPU-heavy: call on the blocking pool.
    pub(super) fn hash(&self, password: &str) -> Result<String, EngineError> {
        let salt = SaltString::encode_b64(&random_bytes::<16>()?)
            .map_err(|e| EngineError::unavailable_because("a password salt", e))?;
        Ok(self
            .argon
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| EngineError::unavailable_because("the password hasher", e))?
            .to_string())
    }

    /// Whether `password` matches `hash`; with no hash (no such account) the same work is
    /// done against the decoy and the answer is no. CPU-heavy: call on the blocking pool.
    pub(super) fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let matches = |h: &str| {
            PasswordHash::new(h).is_ok_and(|h| {
                self.verifications.fetch_add(1, Ordering::Relaxed);
                self.argon.verify_password(password.as_bytes(), &h).is_ok()
            })
        };
        match hash {
            Some(h) => matches(h),
            None => {
                let _ = matches(&self.decoy);
                false
            }
        }
    }

    fn keys(email: &str, client: Option<IpAddr>) -> Vec<(String, usize)> {
        let mut keys = vec![(format!("email:{email}"), 0)];
        if let Some(ip) = client {
            keys.push((client_key(ip), 1));
        }
        keys
    }

    fn limit(&self, kind: usize) -> usize {
        if kind == 0 {
            self.limits.per_account
        } else {
            self.limits.per_client
        }
    }

    fn entry(&self, key: &str) -> Arc<Mutex<Vec<Millis>>> {
        match self.failures.get_or_insert_with(key, || {
            Ok::<_, std::convert::Infallible>(Default::default())
        }) {
            Ok(e) => e,
            Err(never) => match never {},
        }
    }

    /// `Err(ms until a sign-in may be tried)` if the email or the client is throttled.
    pub(super) fn check(
        &self,
        email: &str,
        client: Option<IpAddr>,
        now: Millis,
    ) -> Result<(), Millis> {
        let since = now - self.limits.window_ms;
        for (key, kind) in Self::keys(email, client) {
            let Some(entry) = self.failures.get(&key) else {
                continue;
            };
            let mut times = entry.lock().expect("throttle lock");
            times.retain(|&t| t > since);
            if times.len() >= self.limit(kind) {
                return Err(times[0] + self.limits.window_ms - now);
            }
        }
        Ok(())
    }

    /// Counts a failed sign-in against the email and the client.
    pub(super) fn failed(&self, email: &str, client: Option<IpAddr>, now: Millis) {
        for (key, kind) in Self::keys(email, client) {
            let entry = self.entry(&key);
            let mut times = entry.lock().expect("throttle lock");
            times.push(now);
            // Only the newest `limit` failures matter.
            let keep = self.limit(kind);
            if times.len() > keep {
                let drop = times.len() - keep;
                times.drain(..drop);
            }
        }
    }

    /// Forgets the email's failures (after a successful sign-in).
    pub(super) fn succeeded(&self, email: &str) {
        self.failures.remove(&format!("email:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Credentials {
        let cost = PasswordCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        Credentials::new(cost, LoginLimits::default()).unwrap()
    }

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let c = cheap();
        let h = c.hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert_ne!(h, c.hash("correct horse").unwrap(), "salted");
        assert!(c.verify("correct horse", Some(&h)));
        assert!(!c.verify("wrong horse", Some(&h)));
        assert!(!c.verify("correct horse", None));
        assert!(!c.verify("correct horse", Some("not a hash")));
    }

    /// What keeps an unknown email from answering faster than a wrong password, checked
    /// by the work done rather than by a stopwatch: one Argon2id verification either way,
    /// against hashes of the same algorithm, version, cost and output length.
    #[test]
    fn an_unknown_email_costs_the_same_verification_as_a_wrong_password() {
        let c = cheap();
        let real = c.hash("correct horse").unwrap();
        let (real, decoy) = (
            PasswordHash::new(&real).unwrap(),
            PasswordHash::new(&c.decoy).unwrap(),
        );
        assert_eq!(real.algorithm, decoy.algorithm);
        assert_eq!(real.version, decoy.version);
        assert_eq!(real.params, decoy.params);
        assert_eq!(
            real.hash.map(|h| h.len()),
            decoy.hash.map(|h| h.len()),
            "the same output length"
        );
        let verified = || c.verifications.load(Ordering::Relaxed);
        let before = verified();
        assert!(!c.verify("wrong horse", Some(&real.to_string())));
        assert_eq!(
            verified(),
            before + 1,
            "a wrong password runs one verification"
        );
        assert!(!c.verify("wrong horse", None));
        assert_eq!(verified(), before + 2, "an unknown email runs one too");
    }

    #[test]
    fn the_default_cost_is_owasps_minimum() {
        let d = PasswordCost::default();
        assert!(d.memory_kib >= 19 * 1024 && d.iterations >= 2 && d.parallelism >= 1);
    }

    #[test]
    fn tokens_are_256_random_bits_and_stored_as_digests() {
        let (t1, d1) = new_token().unwrap();
        let (t2, _) = new_token().unwrap();
        assert!(is_token(&t1) && t1 != t2);
        assert_eq!(d1, token_digest(&t1));
        assert_ne!(d1, t1);
        assert!(!is_token("short") && !is_token(&"z".repeat(64)));
    }

    #[test]
    fn failed_sign_ins_throttle_the_account_and_the_client_for_the_window() {
        let c = cheap();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        for i in 0..5 {
            assert!(c.check("a@x.io", Some(ip), i).is_ok());
            c.failed("a@x.io", Some(ip), i);
        }
        let wait = c.check("a@x.io", None, 10).unwrap_err();
        assert_eq!(wait, 15 * 60 * 1000 - 10);
        // Another account from the same /64 is not throttled by the account limit …
        assert!(c.check("b@x.io", Some(neighbour), 10).is_ok());
        // … but the client is, after its own limit.
        for i in 0..50 {
            c.failed(&format!("u{i}@x.io"), Some(neighbour), 20);
        }
        assert!(c.check("fresh@x.io", Some(ip), 30).is_err());
        // The window passes.
        assert!(c.check("a@x.io", None, 15 * 60 * 1000 + 21).is_ok());
        c.succeeded("a@x.io");
        assert!(c.check("a@x.io", None, 40).is_ok());
    }
}
