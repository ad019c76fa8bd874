//! Load generator ("synthetics"): virtual shoppers against a running Emporium on loopback.
//!
//! Each shopper loops: (full mix) browse a category → search → view a product → add 1–3
//! items → checkout with an Idempotency-Key; (flow mix) create a cart, add 2 items, check
//! out. A checkout that times out is retried with the same key. The run is bounded by
//! `--duration` and `--max-requests`. At the end: per-step throughput and latency
//! percentiles, errors by status, and an audit read back from the server (stock sold =
//! units in placed orders, nothing left reserved, nothing negative).
//!
//! ```text
//! cargo run --release -- serve --data-dir /tmp/emp --admin-token t &
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --admin-token t \
//!     --shoppers 64 --duration 20 --mix flow --restock 1000000
//! # the same mix against routes that do no work: the HTTP ceiling of this machine
//! cargo run --release --example loadgen -- --noop-server 127.0.0.1:9090 &
//! cargo run --release --example loadgen -- --url http://127.0.0.1:9090 --no-audit --shoppers 64
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::http::{HeaderValue, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mix {
    /// Create a cart, add 2 items, check out.
    Flow,
    /// Browse, search, view, add 1–3 items, check out.
    Full,
}

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent virtual shoppers.
    #[arg(long, default_value_t = 16)]
    shoppers: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many requests in total.
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// Which journey each shopper repeats.
    #[arg(long, value_enum, default_value = "flow")]
    mix: Mix,
    /// Pause between a shopper's requests, in milliseconds.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Every shopper buys this one SKU (hot-SKU mode).
    #[arg(long)]
    hot_sku: Option<String>,
    /// How many SKUs of the catalog to shop from.
    #[arg(long, default_value_t = 50)]
    skus: usize,
    /// Admin token: needed for --restock and for the audit.
    #[arg(long)]
    admin_token: Option<String>,
    /// Set the stock of every SKU used to this before the run.
    #[arg(long)]
    restock: Option<i64>,
    /// Payment token for checkouts.
    #[arg(long, default_value = "tok_visa")]
    payment_token: String,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Skip the audit (e.g. against the no-op server).
    #[arg(long)]
    no_audit: bool,
    /// Instead of generating load, serve the same routes with fixed answers and no work
    /// on this loopback address: the HTTP ceiling of the machine, for comparison.
    #[arg(long)]
    noop_server: Option<std::net::SocketAddr>,
}

/// Latency and outcomes of one step.
struct Step {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
}

impl Step {
    fn new() -> Step {
        Step {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
            statuses: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
struct Stats {
    /// Requests sent and flows completed so far (for the progress bar and `--max-requests`).
    requests: AtomicU64,
    flows: AtomicU64,
    /// Each shopper's own tally, merged in when it stops.
    merged: Mutex<Tally>,
}

/// What one shopper saw. Kept per shopper and merged at the end, so recording a request
/// takes no lock shared with the other shoppers.
#[derive(Default)]
struct Tally {
    steps: BTreeMap<&'static str, Step>,
    /// Units bought per SKU by `201` checkouts.
    sold: BTreeMap<String, u64>,
    transport_errors: u64,
}

impl Tally {
    fn record(&mut self, step: &'static str, took: Duration, status: u16) {
        let s = self.steps.entry(step).or_insert_with(Step::new);
        let _ = s.hist.record((took.as_micros() as u64).max(1));
        *s.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (name, step) in other.steps {
            let mine = self.steps.entry(name).or_insert_with(Step::new);
            let _ = mine.hist.add(&step.hist);
            for (status, n) in step.statuses {
                *mine.statuses.entry(status).or_default() += n;
            }
        }
        for (sku, q) in other.sold {
            *self.sold.entry(sku).or_default() += q;
        }
        self.transport_errors += other.transport_errors;
    }
}

type Body = Full<Bytes>;

/// A shopper's one keep-alive HTTP/1.1 connection, on hyper's low-level client: no pool, no
/// URL parsing and no JSON tree per request. The client shares the machine's two cores
/// with the server, so every microsecond it spends is one the server does not get; with
/// reqwest and a parsed `Value` per answer it used more CPU per request than the no-op
/// server it was measuring (see BENCHMARKS.md, "The HTTP ceiling").
struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    timeout: Duration,
    sender: Option<SendRequest<Body>>,
}

impl Conn {
    /// Sends one request and reads the whole answer; `None` on a transport error or a
    /// timeout (the connection is dropped then: a late answer must not be read as the next
    /// request's).
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        key: Option<&str>,
    ) -> Option<(u16, Bytes)> {
        let attempt = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
                stream.set_nodelay(true).ok()?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .ok()?;
                tokio::spawn(conn);
                self.sender = Some(sender);
            }
            let sender = self.sender.as_mut()?;
            sender.ready().await.ok()?;
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, self.host.clone());
            if body.is_some() {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            let req = req.body(Full::new(body.unwrap_or_default())).ok()?;
            let res = sender.send_request(req).await.ok()?;
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.ok()?.to_bytes();
            Some((status, bytes))
        };
        let answer = tokio::time::timeout(self.timeout, attempt)
            .await
            .ok()
            .flatten();
        if answer.is_none() {
            self.sender = None;
        }
        answer
    }
}

struct Shopper {
    conn: Conn,
    tally: Tally,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    max_requests: u64,
    think: Duration,
    checkout_body: Bytes,
}

#[derive(serde::Deserialize)]
struct Created {
    id: String,
}

impl Shopper {
    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.stats.requests.load(Ordering::Relaxed) >= self.max_requests
    }

    /// Sends one request and records it; `None` on a transport error (counted).
    async fn send(
        &mut self,
        step: &'static str,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        key: Option<&str>,
    ) -> Option<(u16, Bytes)> {
        if !self.think.is_zero() {
            tokio::time::sleep(self.think).await;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let Some((status, body)) = self.conn.send(method, path, body, key).await else {
            self.tally.transport_errors += 1;
            return None;
        };
        self.tally.record(step, start.elapsed(), status);
        Some((status, body))
    }

    async fn get(&mut self, step: &'static str, path: &str) -> Option<u16> {
        let (status, _) = self.send(step, Method::GET, path, None, None).await?;
        Some(status)
    }

    /// Checks out, retrying with the same key while the answer does not arrive.
    async fn checkout(&mut self, cart: &str) -> Option<u16> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let path = format!("/api/v1/carts/{cart}/checkout");
        for _ in 0..5 {
            let body = Some(self.checkout_body.clone());
            if let Some((status, _)) = self
                .send("checkout", Method::POST, &path, body, Some(&key))
                .await
            {
                return Some(status);
            }
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
        }
        None
    }

    async fn run(mut self, skus: Arc<Vec<String>>, mix: Mix, seed: u64) {
        let mut n = seed;
        let empty = Bytes::from_static(b"{}");
        while !self.done() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pick = |k: u64| skus[((n >> 33) + k * 7) as usize % skus.len()].clone();
            if let Mix::Full = mix {
                let _ = self.get("browse", "/api/v1/products?limit=20").await;
                let _ = self
                    .get("search", "/api/v1/products?q=helmet&limit=20")
                    .await;
                let _ = self
                    .get("view", &format!("/api/v1/products/{}", pick(0)))
                    .await;
            }
            let created = self
                .send(
                    "create_cart",
                    Method::POST,
                    "/api/v1/carts",
                    Some(empty.clone()),
                    None,
                )
                .await;
            let Some((201, cart)) = created else {
                continue;
            };
            let Ok(Created { id: cart }) = serde_json::from_slice(&cart) else {
                continue;
            };
            let lines = match mix {
                Mix::Flow => 2,
                Mix::Full => 1 + (n >> 40) % 3,
            };
            let mut wanted = BTreeMap::new();
            let path = format!("/api/v1/carts/{cart}/items");
            for k in 0..lines {
                let sku = pick(k);
                let body = Bytes::from(format!(r#"{{"sku":"{sku}","quantity":1}}"#));
                if let Some((200, _)) = self
                    .send("add_item", Method::POST, &path, Some(body), None)
                    .await
                {
                    *wanted.entry(sku).or_insert(0u64) += 1;
                }
            }
            if wanted.is_empty() {
                continue;
            }
            if let Some(201) = self.checkout(&cart).await {
                for (sku, q) in wanted {
                    *self.tally.sold.entry(sku).or_default() += q;
                }
                self.stats.flows.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.merged.lock().expect("tally").merge(self.tally);
    }
}

/// The server's address and `Host` header; refuses anything but a loopback address.
fn loopback_addr(url: &str) -> Result<(SocketAddr, String), Box<dyn std::error::Error>> {
    let parsed = reqwest::Url::parse(url)?;
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if bare == "localhost" {
        Some(std::net::IpAddr::from([127, 0, 0, 1]))
    } else {
        bare.parse::<std::net::IpAddr>().ok()
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    match ip {
        Some(ip) if ip.is_loopback() => Ok((SocketAddr::new(ip, port), format!("{host}:{port}"))),
        _ => Err(
            format!("refusing {url}: the load generator only talks to loopback addresses").into(),
        ),
    }
}

async fn stock(client: &reqwest::Client, base: &str, sku: &str) -> Option<Value> {
    client
        .get(format!("{base}/api/v1/inventory/{sku}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The no-op server: the shopper routes with fixed JSON answers (same shapes as the real
/// ones where the load generator reads them) and no work behind them.
async fn noop_server(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::{get, post, put};
    if !addr.ip().is_loopback() {
        return Err("the no-op server only listens on loopback".into());
    }
    let id = || uuid::Uuid::new_v4().simple().to_string();
    let product =
        |sku: String| json!({"sku": sku, "name": "No-op product", "price": 100, "available": 1000});
    let app = axum::Router::new()
        .route(
            "/api/v1/products",
            get(move || async move { Json(json!({"items": (0..20).map(|i| product(format!("NOOP-{i}"))).collect::<Vec<_>>(), "next_cursor": null})) }),
        )
        .route(
            "/api/v1/products/{sku}",
            get(move |axum::extract::Path(sku): axum::extract::Path<String>| async move { Json(product(sku)) }),
        )
        .route(
            "/api/v1/carts",
            post(move || async move { (StatusCode::CREATED, Json(json!({"id": id(), "items": []}))) }),
        )
        .route(
            "/api/v1/carts/{id}/items",
            post(|Json(b): Json<Value>| async move { Json(json!({"items": [b]})) }),
        )
        .route(
            "/api/v1/carts/{id}/checkout",
            post(move |Json(_): Json<Value>| async move { (StatusCode::CREATED, Json(json!({"id": id(), "status": "paid"}))) }),
        )
        .route(
            "/api/v1/inventory/{sku}",
            get(|| async { Json(json!({"on_hand": 0, "reserved": 0, "available": 0})) }),
        )
        .route(
            "/api/v1/admin/inventory/{sku}",
            put(|Json(b): Json<Value>| async move { Json(b) }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("no-op server on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(addr) = args.noop_server {
        return noop_server(addr).await;
    }
    let (addr, host) = loopback_addr(&args.url)?;
    let host = HeaderValue::from_str(&host)?;
    let base = args.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .pool_max_idle_per_host(args.shoppers.max(1))
        .build()?;

    // The SKUs to shop from: the hot one, or the first in-stock products of the catalog.
    let skus: Vec<String> = match &args.hot_sku {
        Some(s) => vec![s.clone()],
        None => {
            let page: Value = client
                .get(format!("{base}/api/v1/products?limit=100&sort=price_asc"))
                .send()
                .await?
                .json()
                .await?;
            page["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["sku"].as_str().map(str::to_owned))
                        .take(args.skus)
                        .collect()
                })
                .unwrap_or_default()
        }
    };
    if skus.is_empty() {
        return Err("the catalog is empty: start the server with its demo catalog".into());
    }
    if let Some(level) = args.restock {
        let token = args
            .admin_token
            .as_deref()
            .ok_or("--restock needs --admin-token")?;
        for sku in &skus {
            let r = client
                .put(format!("{base}/api/v1/admin/inventory/{sku}"))
                .bearer_auth(token)
                .json(&json!({"on_hand": level}))
                .send()
                .await?;
            if !r.status().is_success() {
                return Err(format!("restocking {sku}: {}", r.status()).into());
            }
        }
    }
    let mut before = BTreeMap::new();
    for sku in &skus {
        if let Some(s) = stock(&client, &base, sku).await {
            before.insert(sku.clone(), s["on_hand"].as_u64().unwrap_or(0));
        }
    }

    let checkout_body = Bytes::from(serde_json::to_vec(&json!({
        "email": "shopper@example.com",
        "payment_token": args.payment_token,
        "shipping_address": {"name": "Load Gen", "line1": "1 Orbit Way", "city": "Base",
                             "postal_code": "00001", "country": "US"}
    }))?);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let skus = Arc::new(skus);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.shoppers)
        .map(|i| {
            let shopper = Shopper {
                conn: Conn {
                    addr,
                    host: host.clone(),
                    timeout: Duration::from_secs(args.timeout),
                    sender: None,
                },
                tally: Tally::default(),
                stats: stats.clone(),
                stop: stop.clone(),
                max_requests: args.max_requests,
                think: Duration::from_millis(args.think_ms),
                checkout_body: checkout_body.clone(),
            };
            tokio::spawn(shopper.run(skus.clone(), args.mix, i as u64 * 7919 + 1))
        })
        .collect();
    let bar = indicatif::ProgressBar::new(args.duration);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .expect("template"),
    );
    let deadline = start + Duration::from_secs(args.duration);
    while Instant::now() < deadline && stats.requests.load(Ordering::Relaxed) < args.max_requests {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let secs = start.elapsed().as_secs_f64();
        bar.set_position(secs as u64);
        bar.set_message(format!(
            "{} requests, {} checkouts ({:.0} flows/s)",
            stats.requests.load(Ordering::Relaxed),
            stats.flows.load(Ordering::Relaxed),
            stats.flows.load(Ordering::Relaxed) as f64 / secs
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // Audit: what the server says was sold against what the shoppers were told.
    let tally = std::mem::take(&mut *stats.merged.lock().expect("tally"));
    let sold = &tally.sold;
    let mut audit = Vec::new();
    let mut audit_ok = true;
    for sku in skus.iter().filter(|_| !args.no_audit) {
        let Some(now) = stock(&client, &base, sku).await else {
            continue;
        };
        let on_hand = now["on_hand"].as_u64().unwrap_or(0);
        let reserved = now["reserved"].as_u64().unwrap_or(0);
        let was = before.get(sku).copied().unwrap_or(0);
        let told = sold.get(sku).copied().unwrap_or(0);
        let server_sold = was.saturating_sub(on_hand);
        let ok = server_sold == told && reserved == 0 && on_hand <= was;
        audit_ok &= ok;
        if told > 0 || !ok {
            audit.push(
                json!({"sku": sku, "before": was, "on_hand": on_hand, "reserved": reserved,
                              "sold_by_server": server_sold, "sold_to_shoppers": told, "ok": ok}),
            );
        }
    }

    let step_report: Vec<Value> = tally
        .steps
        .iter()
        .map(|(name, s)| {
            let q = |p: f64| s.hist.value_at_quantile(p) as f64 / 1000.0;
            json!({
                "step": name, "count": s.hist.len(), "per_sec": s.hist.len() as f64 / elapsed,
                "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999),
                "max_ms": s.hist.max() as f64 / 1000.0,
                "statuses": s.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let flows = stats.flows.load(Ordering::Relaxed);
    let report = json!({
        "url": base, "mix": format!("{:?}", args.mix).to_lowercase(), "shoppers": args.shoppers,
        "seconds": elapsed, "requests": stats.requests.load(Ordering::Relaxed),
        "flows": flows, "flows_per_sec": flows as f64 / elapsed,
        "transport_errors": tally.transport_errors,
        "steps": step_report, "audit_ok": audit_ok, "audit": audit,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} shoppers, {:?} mix, {:.1} s: {} requests, {} checkouts = {:.0} flows/s, {} transport errors",
            args.shoppers,
            args.mix,
            elapsed,
            report["requests"],
            flows,
            flows as f64 / elapsed,
            report["transport_errors"]
        );
        println!(
            "{:<12} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  statuses",
            "step", "count", "per sec", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max"
        );
        for s in &step_report {
            println!(
                "{:<12} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
                s["step"].as_str().unwrap_or(""),
                s["count"],
                s["per_sec"].as_f64().unwrap_or(0.0),
                s["p50_ms"].as_f64().unwrap_or(0.0),
                s["p90_ms"].as_f64().unwrap_or(0.0),
                s["p99_ms"].as_f64().unwrap_or(0.0),
                s["p999_ms"].as_f64().unwrap_or(0.0),
                s["max_ms"].as_f64().unwrap_or(0.0),
                s["statuses"]
            );
        }
        println!(
            "audit: {}",
            if args.no_audit {
                "skipped"
            } else if audit_ok {
                "ok (stock sold = units in placed orders, nothing reserved, nothing negative)"
            } else {
                "FAILED"
            }
        );
        for a in &audit {
            if a["ok"] == false {
                println!("  {a}");
            }
        }
    }
    if !audit_ok {
        std::process::exit(2);
    }
    Ok(())
}
