//! Admission control: a token bucket per client IP on shopper routes (`429` with
//! `Retry-After`), and a bound on requests in flight that sheds with `503` instead of
//! queueing without bound (mailboxes are unbounded, so the bound lives here). `/health`,
//! `/ready` and `/metrics` are outside both.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};

/// Most clients tracked; beyond it the least recently seen are forgotten (a forgotten
/// client starts again with a full bucket). Bounded without a scan: an attacker spraying
/// addresses costs one cache insert per request, not a sweep of every bucket.
const MAX_CLIENTS: usize = 100_000;

/// Whom a bucket belongs to: an IPv4 address, or an IPv6 /64 (one host usually owns a
/// whole /64, so per-address buckets would give it 2^64 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// An IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Token buckets by client (see [`Client`]).
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: quick_cache::sync::Cache<Client, Arc<std::sync::Mutex<(f64, Instant)>>>,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, bursts of up to `burst`.
    pub fn new(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter::with_capacity(per_sec, burst, MAX_CLIENTS)
    }

    fn with_capacity(per_sec: f64, burst: f64, clients: usize) -> RateLimiter {
        RateLimiter {
            per_sec: per_sec.max(0.001),
            burst: burst.max(1.0),
            buckets: quick_cache::sync::Cache::new(clients),
        }
    }

    /// Clients tracked now (at most 100,000).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Takes a token for `ip`, or says how long until one is there.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let bucket = match self.buckets.get_or_insert_with(&Client::from(ip), || {
            Ok::<_, std::convert::Infallible>(Arc::new(std::sync::Mutex::new((self.burst, now))))
        }) {
            Ok(b) => b,
            Err(never) => match never {},
        };
        let mut b = bucket.lock().expect("bucket lock");
        let (tokens, at) = *b;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            Ok(())
        } else {
            *b = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

/// Middleware: the per-IP token bucket.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    match limiter.check(addr.ip()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut res = ApiError::new(
                Code::TooManyRequests,
                format!("too many requests from this address; retry in {secs} s"),
            )
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
    }
}

/// Middleware: sheds a request with `503` when the in-flight bound is reached.
pub async fn shed(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match slots.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            metrics::counter!("emporium_http_shed_total").increment(1);
            let mut res = ApiError::new(
                Code::Unavailable,
                "the server is at its limit of requests in flight; retry shortly",
            )
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::new(10.0, 3.0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip).is_ok());
        }
        let wait = l.check(ip).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(l.check(other).is_ok(), "each address has its own bucket");
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check(ip).is_ok());
    }

    #[test]
    fn an_ipv6_host_gets_one_bucket_for_its_whole_slash_64() {
        let l = RateLimiter::new(0.001, 2.0);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(b).is_ok());
        assert!(l.check(a).is_err(), "a and b share one /64 bucket");
        assert!(l.check(other).is_ok(), "the next /64 has its own");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(Client::from(mapped), Client::from(v4));
    }

    #[test]
    fn a_spray_of_addresses_keeps_the_bucket_table_bounded() {
        let l = RateLimiter::with_capacity(1.0, 1.0, 1_000);
        for i in 0..50_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            let _ = l.check(ip);
        }
        assert!(l.tracked() <= 1_000, "{} buckets", l.tracked());
        // A client seen often stays tracked: its bucket is not reset by the spray.
        let steady: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(l.check(steady).is_ok());
        assert!(l.check(steady).is_err());
    }
}
