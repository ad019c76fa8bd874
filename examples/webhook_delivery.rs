//! Webhook delivery throughput: events per second to endpoints on loopback.
//!
//! Imports `events` products (one `ProductChanged` event each), then subscribes
//! `endpoints` endpoints (every type) to a receiver on loopback and replays the whole log
//! to them, timing until every endpoint has delivered every event. Strict durability (the
//! offsets are made durable after every batch of 64).
//!
//! Run: `cargo run --release --example webhook_delivery -- [events] [endpoints]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use emporium::domain::import::parse_items;
use emporium::{Config, Engine};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let endpoints: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.webhooks.allow_loopback = true;
    let engine = Engine::open(config).await.unwrap();
    let ndjson: String = (0..events)
        .map(|i| format!("{{\"sku\":\"WH-{i}\",\"name\":\"Thing {i}\",\"price\":1000}}\n"))
        .collect();
    let items = parse_items(&ndjson, 0).unwrap();
    engine.import_products(items, |_| {}).await.unwrap();
    let end = engine.event_log_end().unwrap();
    let (base, received) = common::counting_receiver().await;
    let ids = common::subscribe_endpoints(&engine, &base, endpoints, &["*".into()]).await;
    let start = Instant::now();
    for id in &ids {
        engine.replay_webhook(id, 0).await.unwrap();
    }
    while engine.webhook_lags().iter().any(|(_, l)| *l > 0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = received.load(Ordering::Relaxed);
    println!(
        "{endpoints} endpoint(s), {end} events each: {n} deliveries in {elapsed:.2} s = {:.0} events/s in all, {:.0} per endpoint",
        n as f64 / elapsed,
        n as f64 / elapsed / endpoints as f64
    );
    engine.shutdown().await.unwrap();
}
