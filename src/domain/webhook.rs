//! Webhooks, the pure parts (issue 20 builds the delivery on them): which URLs an endpoint
//! may have, which addresses a delivery may never reach, how a delivery is signed
//! (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), and when a
//! failed delivery is tried again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Invalid;

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

/// How long to wait before attempt `attempt` (1 for the first retry) of a delivery:
/// exponential from 5 s, capped at an hour, with up to a quarter of it added as jitter
/// (`jitter` in 0..=1, from the caller's randomness), so that endpoints that failed
/// together do not retry together.
pub fn backoff_ms(attempt: u32, jitter: f64) -> i64 {
    let base: i64 = 5_000i64.saturating_mul(1i64 << attempt.saturating_sub(1).min(20));
    let capped = base.min(3_600_000);
    capped + (capped as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64
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
        assert_eq!(backoff_ms(1, 0.0), 5_000);
        assert_eq!(backoff_ms(2, 0.0), 10_000);
        assert_eq!(backoff_ms(3, 0.0), 20_000);
        assert_eq!(backoff_ms(30, 0.0), 3_600_000);
        assert_eq!(backoff_ms(1, 1.0), 6_250);
        for attempt in 1..40 {
            let b = backoff_ms(attempt, 0.5);
            assert!((5_000..=4_500_000).contains(&b));
            assert!(backoff_ms(attempt + 1, 0.0) >= backoff_ms(attempt, 0.0));
        }
    }
}
