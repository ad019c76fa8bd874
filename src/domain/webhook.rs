//! Webhooks, the pure parts: an endpoint (its URL, the event types it takes, its signing
//! secrets, how far it has been delivered, its retry state), which URLs an endpoint may
//! have, which addresses a delivery may never reach, the payload and how it is signed
//! (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), and when a
//! failed delivery is tried again — and when the endpoint is given up as failing.
//!
//! Delivery is in log order per endpoint: an event that fails is retried, with exponential
//! backoff and jitter, before anything after it is sent; when it has failed for longer
//! than the retry period the endpoint is *failing* and delivers nothing until an admin
//! resumes it. Nothing is skipped: the endpoint's offset moves only past events it
//! delivered or does not take.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::event::{DomainEvent, LoggedEvent};
use super::{Invalid, Millis};

/// Longest endpoint URL.
pub const MAX_URL: usize = 2_048;

/// An endpoint URL as accepted: `http` or `https`, a host, no credentials in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// The URL as given (trimmed).
    pub url: String,
    /// `https` or `http`.
    pub scheme: String,
    /// The host: a name, or an address (IPv6 without brackets).
    pub host: String,
    /// The port (the scheme's default if none is given).
    pub port: u16,
}

/// Checks an endpoint URL's shape (where it resolves to is checked at send time, with
/// [`forbidden_address`]).
pub fn parse_url(url: &str) -> Result<EndpointUrl, Invalid> {
    let bad = |why: &str| Err(Invalid::new("url", why.to_owned()));
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL || url.chars().any(|c| c.is_control() || c == ' ') {
        return bad("an http(s) URL of at most 2048 characters, without spaces");
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r),
        Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r),
        _ => return bad("the URL must be http or https"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("the URL must not carry credentials");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return bad("an IPv6 host is written in brackets");
        };
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return bad("the URL has no host");
    }
    let port = match port {
        None => {
            if scheme == "https" {
                443
            } else {
                80
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return bad("the port must be 1 to 65535"),
        },
    };
    Ok(EndpointUrl {
        url: url.to_owned(),
        scheme: scheme.to_owned(),
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Why a delivery may not go to an address (server-side request forgery): the address is
/// this machine, a private or shared network, link-local (cloud metadata lives there),
/// multicast, broadcast, unspecified or reserved. `None` for a public address. Loopback
/// is allowed only when configured (the tests deliver to a receiver on loopback).
pub fn forbidden_address(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4, allow_loopback);
            }
            forbidden_v6(v6, allow_loopback)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_private() {
        return Some("a private network");
    }
    if a == 100 && (64..128).contains(&b) {
        return Some("a shared (carrier-grade NAT) network");
    }
    if ip.is_link_local() {
        return Some("link-local");
    }
    if ip.is_unspecified() || a == 0 {
        return Some("unspecified");
    }
    if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        return Some("multicast, broadcast or reserved");
    }
    None
}

fn forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if first & 0xfe00 == 0xfc00 {
        return Some("a private network (unique local)");
    }
    if first & 0xffc0 == 0xfe80 {
        return Some("link-local");
    }
    None
}

/// The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{payload}` with `secret` (the Standard Webhooks scheme, by its
/// maintained crate). The payload is JSON, so UTF-8.
pub fn signature(secret: &[u8], id: &str, timestamp_secs: i64, payload: &str) -> String {
    standardwebhooks::Webhook::from_bytes(secret.to_vec())
        .and_then(|w| w.sign(id, timestamp_secs, payload.as_bytes()))
        .expect("a UTF-8 payload is always signed")
}

/// How long to wait before retry `attempt` (1 for the first retry) of a delivery:
/// exponential from `base_ms`, capped at an hour (or `base_ms` if that is longer), with up
/// to a quarter of it added as jitter (`jitter` in 0..=1, from the caller's randomness), so
/// that endpoints that failed together do not retry together.
pub fn backoff_ms(attempt: u32, base_ms: i64, jitter: f64) -> i64 {
    let base_ms = base_ms.max(1);
    let base: i64 = base_ms.saturating_mul(1i64 << attempt.saturating_sub(1).min(20));
    let capped = base.min(3_600_000.max(base_ms));
    capped + (capped as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64
}

/// Longest description of an endpoint.
pub const MAX_DESCRIPTION: usize = 500;

/// Most event types an endpoint may list.
pub const MAX_EVENT_TYPES: usize = 64;

/// Random bytes in a signing secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// Bytes of a receiver's response kept with an attempt.
pub const MAX_RESPONSE_KEPT: usize = 512;

/// Characters of an error kept with an attempt.
const MAX_ERROR_KEPT: usize = 500;

/// Checks the event types an endpoint subscribes to: `*` (every type, alone) or types the
/// log has ([`DomainEvent::KINDS`]); duplicates are dropped, the order kept.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>, Invalid> {
    if types.is_empty() {
        return Err(Invalid::new(
            "event_types",
            "name at least one event type, or \"*\" for all",
        ));
    }
    if types.len() > MAX_EVENT_TYPES {
        return Err(Invalid::new("event_types", "at most 64 event types"));
    }
    if types.iter().any(|t| t == "*") {
        return if types.len() == 1 {
            Ok(vec!["*".to_owned()])
        } else {
            Err(Invalid::new("event_types", "\"*\" stands alone"))
        };
    }
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        if !DomainEvent::KINDS.contains(&t.as_str()) {
            return Err(Invalid::new(
                "event_types",
                format!(
                    "unknown event type {:?} (one of: {})",
                    t.chars().take(64).collect::<String>(),
                    DomainEvent::KINDS.join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// Checks an endpoint's description (free text for people, at most [`MAX_DESCRIPTION`]).
pub fn check_description(d: &str) -> Result<String, Invalid> {
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Invalid::new(
            "description",
            "at most 500 characters, without control characters",
        ));
    }
    Ok(d.to_owned())
}

/// A signing secret as shown once to the admin: `whsec_` and the key in base64 (the form
/// the Standard Webhooks libraries take).
pub fn secret_text(key: &[u8]) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The stable id of the delivery of the event at `seq`: the same on every attempt, after a
/// restart and in a replay, so a receiver dedupes by it.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq}")
}

/// The JSON body delivered for `event`: `{id, seq, type, timestamp, data}`, `data` being
/// the event's fields as the admin event log shows them.
pub fn payload(event: &LoggedEvent) -> String {
    let v = serde_json::to_value(&event.event).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": event_id(event.seq),
        "seq": event.seq,
        "type": event.event.kind(),
        "timestamp": super::rfc3339(event.at),
        "data": v.get("data").cloned().unwrap_or(serde_json::Value::Null),
    })
    .to_string()
}

/// The `webhook-signature` header with every key in `keys`: one `v1,…` per key, separated
/// by spaces (the spec's form, so a receiver that knows either the old or the new secret
/// verifies during a rotation).
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp_secs: i64, payload: &str) -> String {
    keys.iter()
        .map(|k| signature(k, id, timestamp_secs, payload))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One of an endpoint's signing keys; a rotated-out key signs on until `expires_at`.
/// Its `Debug` does not show the key, so no log line can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The raw key.
    pub key: Vec<u8>,
    /// When it stops signing (`None`: the current key).
    pub expires_at: Option<Millis>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Whether an endpoint is delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointStatus {
    /// Delivering (or retrying an event).
    Active,
    /// An event failed for longer than the retry period: nothing is delivered until an
    /// admin resumes the endpoint. Its offset stays where it was, so nothing is skipped.
    Failing {
        /// Since when.
        since: Millis,
    },
}

/// An event that failed and is being retried (the endpoint delivers nothing after it
/// meanwhile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// The event's sequence number.
    pub seq: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it first failed (the retry period counts from here).
    pub first_failed_at: Millis,
    /// When it is tried next.
    pub next_at: Millis,
    /// Why the last attempt failed.
    pub last_error: String,
}

/// A webhook endpoint: where events go, which ones, how they are signed, how far they
/// have been delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Its id (32 hex digits).
    pub id: String,
    /// Where deliveries are posted (checked by [`parse_url`]).
    pub url: String,
    /// The event types it takes, or `["*"]`.
    pub event_types: Vec<String>,
    /// Free text for people.
    pub description: String,
    /// Its signing keys, the current one first.
    pub keys: Vec<SigningKey>,
    /// When it was created.
    pub created_at: Millis,
    /// When its settings last changed.
    pub updated_at: Millis,
    /// The sequence number of the last event delivered or passed over (not taken); the
    /// next delivery is of the first wanted event after it.
    pub offset: u64,
    /// Delivering, or failing.
    pub status: EndpointStatus,
    /// The event being retried, if one failed.
    pub retry: Option<Retry>,
    /// Attempts made since it was created (numbers its attempt records).
    pub attempts_made: u64,
    /// Bumped by every change an admin makes to what is delivered (a replay, a resume, new
    /// event types): a delivery that was under way for the old state moves no offset.
    pub generation: u64,
}

impl Endpoint {
    /// A new endpoint with one key, delivering events after `offset` (the log's end now);
    /// `url` as [`parse_url`] returned it.
    pub fn new(
        id: String,
        url: String,
        event_types: Vec<String>,
        description: String,
        key: Vec<u8>,
        offset: u64,
        now: Millis,
    ) -> Endpoint {
        Endpoint {
            id,
            url,
            event_types,
            description,
            keys: vec![SigningKey {
                key,
                expires_at: None,
            }],
            created_at: now,
            updated_at: now,
            offset,
            status: EndpointStatus::Active,
            retry: None,
            attempts_made: 0,
            generation: 0,
        }
    }

    /// Whether it takes events of type `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == kind)
    }

    /// The keys that sign now: the current one and rotated-out ones not yet expired.
    pub fn signing_keys(&self, now: Millis) -> Vec<Vec<u8>> {
        self.keys
            .iter()
            .filter(|k| k.expires_at.is_none_or(|at| at > now))
            .map(|k| k.key.clone())
            .collect()
    }

    /// Makes `key` the current key; the previous ones sign on for `overlap_ms` (so
    /// receivers can switch without losing a delivery), expired ones are dropped.
    pub fn rotate(&mut self, key: Vec<u8>, now: Millis, overlap_ms: i64) {
        self.keys.retain(|k| k.expires_at.is_none_or(|at| at > now));
        for k in &mut self.keys {
            let until = now.saturating_add(overlap_ms);
            k.expires_at = Some(k.expires_at.map_or(until, |at| at.min(until)));
        }
        self.keys.insert(
            0,
            SigningKey {
                key,
                expires_at: None,
            },
        );
        self.updated_at = now;
    }

    /// The event at `seq` was delivered: the offset moves to it, a retry of it ends.
    pub fn delivered(&mut self, seq: u64) {
        self.offset = self.offset.max(seq);
        self.retry = None;
    }

    /// Events through `seq` were not wanted: the offset moves past them.
    pub fn passed(&mut self, seq: u64) {
        if self.retry.is_none() {
            self.offset = self.offset.max(seq);
        }
    }

    /// The event at `seq` failed (`error` says why): it is retried after a backoff, or,
    /// once it has failed for `retry_period_ms`, the endpoint is failing. Returns whether
    /// the endpoint just became failing.
    pub fn failed(
        &mut self,
        seq: u64,
        error: &str,
        now: Millis,
        base_ms: i64,
        retry_period_ms: i64,
        jitter: f64,
    ) -> bool {
        let mut retry = match self.retry.take() {
            Some(r) if r.seq == seq => r,
            _ => Retry {
                seq,
                attempts: 0,
                first_failed_at: now,
                next_at: now,
                last_error: String::new(),
            },
        };
        retry.attempts = retry.attempts.saturating_add(1);
        retry.last_error = clip(error, MAX_ERROR_KEPT);
        retry.next_at = now.saturating_add(backoff_ms(retry.attempts, base_ms, jitter));
        let gave_up = now.saturating_sub(retry.first_failed_at) >= retry_period_ms
            && self.status == EndpointStatus::Active;
        if gave_up {
            self.status = EndpointStatus::Failing { since: now };
        }
        self.retry = Some(retry);
        gave_up
    }

    /// An admin resumes a failing endpoint (or hurries a retry): the event it was
    /// retrying is tried at once, with a new retry period.
    pub fn resume(&mut self, now: Millis) {
        self.status = EndpointStatus::Active;
        if let Some(r) = &mut self.retry {
            r.attempts = 0;
            r.first_failed_at = now;
            r.next_at = now;
        }
        self.generation += 1;
        self.updated_at = now;
    }

    /// Delivers again every wanted event after `after_seq` (earlier or later than the
    /// offset: a replay may also skip ahead), starting now and active.
    pub fn replay(&mut self, after_seq: u64, now: Millis) {
        self.offset = after_seq;
        self.retry = None;
        self.status = EndpointStatus::Active;
        self.generation += 1;
        self.updated_at = now;
    }

    /// When its next delivery may start: `None` while failing, else now or the retry's
    /// time.
    pub fn next_delivery_at(&self, now: Millis) -> Option<Millis> {
        match self.status {
            EndpointStatus::Failing { .. } => None,
            EndpointStatus::Active => Some(self.retry.as_ref().map_or(now, |r| r.next_at)),
        }
    }
}

/// One attempt to deliver an event, as kept for the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its number among the endpoint's attempts (1 = the first ever).
    pub number: u64,
    /// The event's sequence number.
    pub seq: u64,
    /// The event's type.
    pub event_type: String,
    /// When it was made.
    pub at: Millis,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// From the request's start to the response's head (or the failure).
    pub latency_ms: u32,
    /// Whether the receiver took it (a 2xx).
    pub delivered: bool,
    /// Why it failed: a status that is not 2xx, a timeout, a refused connection, a
    /// forbidden destination.
    pub error: Option<String>,
    /// The start of the receiver's response body (at most [`MAX_RESPONSE_KEPT`] bytes).
    pub response: String,
}

/// At most `max` characters of `s`, with `…` if cut.
pub fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_http_or_https_with_a_host_and_no_credentials() {
        let u = parse_url(" https://Hooks.Example.com/emporium?x=1 ").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("https", "hooks.example.com", 443)
        );
        let u = parse_url("http://127.0.0.1:8099/hook").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8099));
        let u = parse_url("http://[::1]:9000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://x",
            "https://user:pw@example.com/",
            "https:///nohost",
            "https://example.com:0/",
            "https://example.com:99999/",
            "javascript:alert(1)",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for (ip, allowed) in [
            ("8.8.8.8", true),
            ("2606:4700::1111", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("100.64.0.1", false),
            ("169.254.169.254", false),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("127.0.0.1", false),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden_address(ip, false).is_none(), allowed, "{ip}");
        }
        assert_eq!(forbidden_address("127.0.0.1".parse().unwrap(), true), None);
        assert!(forbidden_address("10.0.0.1".parse().unwrap(), true).is_some());
    }

    #[test]
    fn a_signature_is_the_specs_hmac_and_stable_across_retries() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let payload = r#"{"type":"OrderPlaced","data":{"order_id":"o1"}}"#;
        let now = 1_700_000_000;
        let sig = signature(secret, "msg_1", now, payload);
        // Computed independently (Python's hmac and base64) from the spec's recipe.
        assert_eq!(sig, "v1,I7WsAapKSaNf7QmuNSZfIBocZaZx1wzvV71dbiOBiOQ=");
        // The same bytes again: a retry is signed the same (same id, same timestamp).
        assert_eq!(sig, signature(secret, "msg_1", now, payload));
        assert_ne!(sig, signature(secret, "msg_2", now, payload));
        assert_ne!(sig, signature(b"another secret", "msg_1", now, payload));
    }

    #[test]
    fn retries_back_off_exponentially_with_bounded_jitter() {
        assert_eq!(backoff_ms(1, 5_000, 0.0), 5_000);
        assert_eq!(backoff_ms(2, 5_000, 0.0), 10_000);
        assert_eq!(backoff_ms(3, 5_000, 0.0), 20_000);
        assert_eq!(backoff_ms(30, 5_000, 0.0), 3_600_000);
        assert_eq!(backoff_ms(1, 5_000, 1.0), 6_250);
        assert_eq!(backoff_ms(3, 50, 0.0), 200);
        for attempt in 1..40 {
            let b = backoff_ms(attempt, 5_000, 0.5);
            assert!((5_000..=4_500_000).contains(&b));
            assert!(backoff_ms(attempt + 1, 5_000, 0.0) >= backoff_ms(attempt, 5_000, 0.0));
        }
    }

    fn endpoint(types: &[&str]) -> Endpoint {
        let url = parse_url("https://hooks.example.com/in").unwrap().url;
        let types =
            check_event_types(&types.iter().map(|t| t.to_string()).collect::<Vec<_>>()).unwrap();
        Endpoint::new("e1".into(), url, types, String::new(), vec![1; 32], 10, 0)
    }

    #[test]
    fn event_types_are_known_ones_or_a_lone_star() {
        let ok =
            |v: &[&str]| check_event_types(&v.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert_eq!(ok(&["*"]).unwrap(), ["*"]);
        assert_eq!(
            ok(&["OrderPlaced", "OrderPaid", "OrderPlaced"]).unwrap(),
            ["OrderPlaced", "OrderPaid"]
        );
        assert!(ok(&[]).is_err());
        assert!(ok(&["*", "OrderPaid"]).is_err());
        assert!(ok(&["orderplaced"]).is_err());
        let e = endpoint(&["OrderPaid"]);
        assert!(e.wants("OrderPaid") && !e.wants("OrderPlaced"));
        assert!(endpoint(&["*"]).wants("StockChanged"));
    }

    #[test]
    fn a_failed_event_is_retried_then_the_endpoint_fails_after_the_period_and_resumes() {
        let mut e = endpoint(&["*"]);
        let day = 86_400_000;
        assert!(!e.failed(11, "503", 1_000, 5_000, 3 * day, 0.0));
        let r = e.retry.clone().unwrap();
        assert_eq!((r.seq, r.attempts, r.next_at), (11, 1, 6_000));
        assert_eq!(e.next_delivery_at(2_000), Some(6_000));
        assert!(!e.failed(11, "503", 6_000, 5_000, 3 * day, 0.0));
        assert_eq!(e.retry.as_ref().unwrap().next_at, 16_000);
        // Past the period: failing, and the offset has not moved.
        assert!(e.failed(11, "timeout", 1_000 + 3 * day, 5_000, 3 * day, 0.0));
        assert_eq!(
            e.status,
            EndpointStatus::Failing {
                since: 1_000 + 3 * day
            }
        );
        assert_eq!(e.next_delivery_at(4 * day), None);
        assert_eq!(e.offset, 10);
        // Passing over unwanted events does not jump the failed one.
        e.passed(20);
        assert_eq!(e.offset, 10);
        let generation = e.generation;
        e.resume(5 * day);
        assert_eq!(e.next_delivery_at(5 * day), Some(5 * day));
        assert!(e.generation > generation);
        e.delivered(11);
        assert_eq!((e.offset, e.retry.is_none()), (11, true));
        e.replay(3, 6 * day);
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn a_rotated_key_signs_beside_the_new_one_until_it_expires() {
        let mut e = endpoint(&["*"]);
        e.rotate(vec![2; 32], 1_000, 10_000);
        assert_eq!(e.signing_keys(5_000), [vec![2; 32], vec![1; 32]]);
        assert_eq!(e.signing_keys(11_000), [vec![2; 32]]);
        let header = signature_header(&e.signing_keys(5_000), "evt_1", 5, "{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
        assert!(
            !format!("{e:?}").contains("[2, 2"),
            "keys stay out of Debug"
        );
        // A second rotation drops the expired key.
        e.rotate(vec![3; 32], 20_000, 10_000);
        assert_eq!(e.keys.len(), 2);
        assert!(secret_text(&[0; 32]).starts_with("whsec_"));
    }

    #[test]
    fn the_payload_carries_the_stable_id_the_type_and_the_events_data() {
        let event = LoggedEvent {
            seq: 42,
            at: 0,
            event: DomainEvent::OrderDelivered {
                order_id: "o1".into(),
            },
        };
        let v: serde_json::Value = serde_json::from_str(&payload(&event)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "evt_42", "seq": 42, "type": "OrderDelivered",
                "timestamp": "1970-01-01T00:00:00Z", "data": {"order_id": "o1"}})
        );
    }
}
