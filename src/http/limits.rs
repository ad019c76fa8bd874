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
use dashmap::DashMap;

use super::error::{ApiError, Code};

/// Most client addresses tracked before idle ones are forgotten.
const MAX_CLIENTS: usize = 100_000;

/// Token buckets by client IP.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: DashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, bursts of up to `burst`.
    pub fn new(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_sec: per_sec.max(0.001),
            burst: burst.max(1.0),
            buckets: DashMap::new(),
        }
    }

    /// Takes a token for `ip`, or says how long until one is there.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        if self.buckets.len() > MAX_CLIENTS {
            let horizon = Duration::from_secs_f64(self.burst / self.per_sec);
            self.buckets
                .retain(|_, (_, at)| now.duration_since(*at) < horizon);
        }
        let mut b = self.buckets.entry(ip).or_insert((self.burst, now));
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
}
