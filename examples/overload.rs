//! Overload: N closed-loop clients (no think time) against a running Emporium on loopback,
//! each creating a cart and adding an item, while a prober asks `/health` every 50 ms and
//! a sampler reads the server's resident memory from `/proc/<pid>/status`. Run it at the
//! sustainable concurrency and at 10× to see what overload does: admitted requests'
//! latency, shed requests (503), `/health` latency, peak RSS.
//!
//! ```text
//! cargo run --release -- serve --data-dir /tmp/ovl --admin-token t &
//! cargo run --release --example overload -- --url http://127.0.0.1:8080 --pid $! \
//!     --clients 640 --duration 20
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process id, for its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Most requests in all.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

fn line(name: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<22} n={:<8} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        h.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let host = reqwest::Url::parse(&args.url).expect("a URL");
    assert!(
        matches!(host.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        "load goes to loopback only"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients + 8)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let page: Value = client
        .get(format!("{}/api/v1/products?limit=1", args.url))
        .send()
        .await
        .expect("server up")
        .json()
        .await
        .unwrap();
    let sku = page["items"][0]["sku"]
        .as_str()
        .expect("a product (serve with the demo catalog)")
        .to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(args.max_requests));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);

    let prober = tokio::spawn({
        let (client, url, stop) = (client.clone(), args.url.clone(), stop.clone());
        async move {
            let mut h = hist();
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.get(format!("{url}/health")).send().await {
                    Ok(r) if r.status() == 200 => {
                        h.record(t.elapsed().as_micros() as u64).unwrap();
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (h, failed)
        }
    });
    let sampler = tokio::spawn({
        let (stop, pid) = (stop.clone(), args.pid);
        async move {
            let mut peak = 0u64;
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = pid.and_then(rss_kib) {
                    peak = peak.max(kib);
                    samples.push(kib);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (peak, samples)
        }
    });

    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (client, url, sku, budget) = (
            client.clone(),
            args.url.clone(),
            sku.clone(),
            budget.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut admitted, mut statuses) = (hist(), std::collections::BTreeMap::new());
            let mut send = async |req: reqwest::RequestBuilder| -> Option<Value> {
                if budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_err()
                {
                    return None;
                }
                let t = Instant::now();
                let res = req.send().await;
                let status = res.as_ref().map_or(0, |r| r.status().as_u16());
                *statuses.entry(status).or_insert(0u64) += 1;
                let body = match res {
                    Ok(r) => r.json::<Value>().await.ok(),
                    Err(_) => None,
                };
                if (200..300).contains(&status) {
                    admitted.record(t.elapsed().as_micros() as u64).unwrap();
                }
                body.filter(|_| (200..300).contains(&status))
            };
            while Instant::now() < deadline {
                let Some(cart) = send(client.post(format!("{url}/api/v1/carts"))).await else {
                    if budget.load(Ordering::Relaxed) == 0 {
                        break;
                    }
                    continue;
                };
                let id = cart["id"].as_str().unwrap_or_default().to_owned();
                send(
                    client
                        .post(format!("{url}/api/v1/carts/{id}/items"))
                        .json(&json!({"sku": sku, "quantity": 1})),
                )
                .await;
            }
            (admitted, statuses)
        }));
    }
    let mut admitted = hist();
    let mut statuses = std::collections::BTreeMap::new();
    for w in workers {
        let (h, s) = w.await.unwrap();
        admitted.add(h).unwrap();
        for (k, v) in s {
            *statuses.entry(k).or_insert(0u64) += v;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (health, health_failed) = prober.await.unwrap();
    let (peak, samples) = sampler.await.unwrap();
    println!(
        "{} clients, {secs:.1} s: {} requests ({:.0}/s), admitted {:.0}/s; statuses {statuses:?}",
        args.clients,
        statuses.values().sum::<u64>(),
        statuses.values().sum::<u64>() as f64 / secs,
        admitted.len() as f64 / secs,
    );
    line("admitted (2xx)", &admitted);
    line("/health", &health);
    println!("/health failures: {health_failed}");
    if args.pid.is_some() {
        let last = samples.last().copied().unwrap_or(0);
        println!(
            "server RSS: peak {:.1} MiB, at the end {:.1} MiB",
            peak as f64 / 1024.0,
            last as f64 / 1024.0
        );
    }
}
