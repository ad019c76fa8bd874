//! The HTTP side of a delivery: one client for every endpoint, with a connect and a
//! response timeout, no redirects, no proxies, and a DNS resolver that checks every
//! address a name resolves to against the SSRF rules ([`forbidden_address`]) at send
//! time — so a name that pointed somewhere public when the endpoint was created and points
//! at this machine now is refused, not reached. An address written in the URL is checked
//! here too (the resolver never sees it). A response body is read up to
//! [`MAX_RESPONSE_KEPT`] bytes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::webhook::{MAX_RESPONSE_KEPT, clip, forbidden_address, parse_url};

/// A destination the SSRF rules refuse.
#[derive(Debug, thiserror::Error)]
#[error("{host} is {why}: deliveries may not go there")]
pub struct Forbidden {
    /// The host as written.
    pub host: String,
    /// What kind of address it is.
    pub why: &'static str,
}

/// Resolves names like the system does, then keeps only the addresses a delivery may
/// reach; none left is a [`Forbidden`] error.
struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|a| forbidden_address(a.ip(), allow_loopback).is_none());
            if ok.is_empty() {
                let why = refused
                    .first()
                    .and_then(|a| forbidden_address(a.ip(), allow_loopback))
                    .unwrap_or("a name without addresses");
                return Err(
                    Box::new(Forbidden { host, why }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// From the start to the response's head (or the failure).
    pub latency_ms: u32,
    /// Why it was not delivered (`None`: a 2xx).
    pub error: Option<String>,
    /// The start of the response body.
    pub response: String,
}

impl Sent {
    /// Whether the receiver took it.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// One delivery request: where, and the signed message.
pub struct Message<'a> {
    /// The endpoint's URL.
    pub url: &'a str,
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp` (seconds).
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: &'a str,
    /// The JSON body.
    pub body: String,
}

/// The client every endpoint's deliveries go through (connections are pooled per host).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_loopback: bool,
    timeout: Duration,
}

impl Sender {
    /// A client with these timeouts; loopback destinations only if `allow_loopback`.
    pub fn new(
        allow_loopback: bool,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(response_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("Emporium-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            client,
            allow_loopback,
            timeout: response_timeout,
        })
    }

    /// Posts one message; never fails, the outcome says what happened.
    pub async fn post(&self, m: Message<'_>) -> Sent {
        let started = Instant::now();
        let elapsed = |s: Instant| u32::try_from(s.elapsed().as_millis()).unwrap_or(u32::MAX);
        let failed = |error: String| Sent {
            status: None,
            latency_ms: elapsed(started),
            error: Some(error),
            response: String::new(),
        };
        // An address in the URL never reaches the resolver: check it here.
        match parse_url(m.url) {
            Err(e) => return failed(e.reason),
            Ok(u) => {
                if let Ok(ip) = u.host.parse::<IpAddr>()
                    && let Some(why) = forbidden_address(ip, self.allow_loopback)
                {
                    return failed(
                        Forbidden {
                            host: u.host.clone(),
                            why,
                        }
                        .to_string(),
                    );
                }
            }
        }
        let sent = self
            .client
            .post(m.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", m.id)
            .header("webhook-timestamp", m.timestamp.to_string())
            .header("webhook-signature", m.signature)
            .body(m.body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failed(self.describe(&e)),
        };
        let latency_ms = elapsed(started);
        let status = response.status();
        let mut kept = Vec::new();
        while kept.len() < MAX_RESPONSE_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_KEPT - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let error = (!status.is_success()).then(|| {
            if status.is_redirection() {
                format!("HTTP {} (redirects are not followed)", status.as_u16())
            } else {
                format!("HTTP {}", status.as_u16())
            }
        });
        Sent {
            status: Some(status.as_u16()),
            latency_ms,
            error,
            response: clip(&String::from_utf8_lossy(&kept), MAX_RESPONSE_KEPT),
        }
    }

    /// A failure in words for the admin: a forbidden destination, a timeout, or the
    /// connection's error chain. (Recorded, never decided upon.)
    fn describe(&self, e: &reqwest::Error) -> String {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(f) = s.downcast_ref::<Forbidden>() {
                return f.to_string();
            }
            source = s.source();
        }
        if e.is_timeout() {
            return format!("timed out (limit {} s)", self.timeout.as_secs_f32());
        }
        let mut text = if e.is_connect() {
            "could not connect".to_owned()
        } else {
            "request failed".to_owned()
        };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        clip(&text, 300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver on loopback that counts what reaches it.
    async fn receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/in",
            axum::routing::post({
                let hits = hits.clone();
                move || async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    "thanks"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("localhost:{port}"), hits)
    }

    fn message(url: &str) -> Message<'_> {
        Message {
            url,
            id: "evt_1",
            timestamp: 1,
            signature: "v1,x",
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_send_time_unless_allowed() {
        let (host, hits) = receiver().await;
        let url = format!("http://{host}/in");
        let t = Duration::from_secs(5);
        let strict = Sender::new(false, t, t).unwrap();
        let sent = strict.post(message(&url)).await;
        assert!(!sent.delivered());
        assert!(
            sent.error.as_deref().unwrap().contains("loopback"),
            "{sent:?}"
        );
        // The address written in the URL is checked too.
        let port = host.rsplit_once(':').unwrap().1;
        let sent = strict
            .post(message(&format!("http://127.0.0.1:{port}/in")))
            .await;
        assert!(sent.error.as_deref().unwrap().contains("loopback"));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        let lenient = Sender::new(true, t, t).unwrap();
        let sent = lenient.post(message(&url)).await;
        assert_eq!(
            (sent.status, sent.error.clone()),
            (Some(200), None),
            "{sent:?}"
        );
        assert_eq!(sent.response, "thanks");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_does_not_answer_in_time_is_a_timeout_and_bodies_are_bounded() {
        let app = axum::Router::new()
            .route(
                "/slow",
                axum::routing::post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/big",
                axum::routing::post(|| async {
                    (axum::http::StatusCode::BAD_REQUEST, "x".repeat(100_000))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let s = Sender::new(true, Duration::from_secs(2), Duration::from_millis(300)).unwrap();
        let sent = s
            .post(message(&format!("http://127.0.0.1:{port}/slow")))
            .await;
        assert!(
            sent.error.as_deref().unwrap().contains("timed out"),
            "{sent:?}"
        );
        let sent = s
            .post(message(&format!("http://127.0.0.1:{port}/big")))
            .await;
        assert_eq!(sent.status, Some(400));
        assert!(sent.response.len() <= MAX_RESPONSE_KEPT + '…'.len_utf8());
        // Nothing listens on port 9 of loopback: refused, not a hang.
        let sent = s.post(message("http://127.0.0.1:9/")).await;
        assert!(sent.error.is_some() && sent.status.is_none());
    }
}
