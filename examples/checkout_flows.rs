//! In-process checkout throughput: N concurrent shoppers each create a cart, add items and
//! check out, through the engine facade, for a fixed time.
//!
//! With `webhooks` > 0, that many webhook endpoints are subscribed to a receiver on
//! loopback while the flows run, taking `types` (comma-separated; default `*`, every event
//! type): the overhead of delivering the events.
//!
//! With `COUNT_OPS=1` in the environment, the store's operations per flow are listed by
//! table.
//!
//! Run: `cargo run --release --example checkout_flows -- [shoppers] [seconds] [strict|relaxed] [lines] [webhooks] [types]`

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use emporium::domain::product::ProductDraft;
use emporium::{Config, Durability, Engine};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shoppers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let durability = match args.get(3).map(String::as_str) {
        Some("relaxed") => Durability::Relaxed,
        _ => Durability::Strict,
    };
    let lines: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(2);
    let webhooks: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.durability = durability;
    config.webhooks.allow_loopback = true;
    let engine = Engine::open(config).await.unwrap();
    let (base, received) = common::counting_receiver().await;
    let types: Vec<String> = args
        .get(6)
        .map_or("*", String::as_str)
        .split(',')
        .map(str::to_owned)
        .collect();
    common::subscribe_endpoints(&engine, &base, webhooks, &types).await;
    let skus: Vec<String> = (0..20).map(|i| format!("FLOW-{i}")).collect();
    for sku in &skus {
        let draft = ProductDraft {
            name: sku.clone(),
            price: 1000,
            ..Default::default()
        };
        engine.create_product(sku, draft).await.unwrap();
        engine.set_on_hand(sku, 1_000_000_000).await.unwrap();
    }
    let request = common::checkout_request("load@example.com");
    // `COUNT_OPS=1`: count the store's operations by table (costs a lock per operation).
    let count_ops = std::env::var("COUNT_OPS").is_ok_and(|v| v == "1");
    engine.count_store_ops(count_ops);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..shoppers)
        .map(|t| {
            let (engine, stop, done, request, skus) = (
                engine.clone(),
                stop.clone(),
                done.clone(),
                request.clone(),
                skus.clone(),
            );
            tokio::spawn(async move {
                let mut n = t;
                while !stop.load(Ordering::Relaxed) {
                    let cart = engine.create_cart().await.unwrap().cart.id;
                    for l in 0..lines {
                        let sku = &skus[(n + l * 7) % skus.len()];
                        engine.cart_add_item(&cart, sku, 1).await.unwrap();
                    }
                    engine.checkout(&cart, "k", &request).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let stats = engine.stats();
    println!(
        "{shoppers} shoppers, {lines} lines, {durability:?}, {webhooks} webhook endpoints ({types:?}): {n} flows in {elapsed:.1} s = {:.0} flows/s; barrier flushes {}",
        n as f64 / elapsed,
        stats.barrier.flushes
    );
    if count_ops {
        let counts = engine.store_op_counts();
        engine.count_store_ops(false);
        let per = |c: u64| c as f64 / n.max(1) as f64;
        let total: u64 = counts.iter().map(|(_, c)| c.puts + c.removes).sum();
        println!("store operations per flow: {:.1}", per(total));
        let bytes: u64 = counts.iter().map(|(_, c)| c.bytes).sum();
        println!("store bytes put per flow: {:.0}", per(bytes));
        for (table, c) in &counts {
            println!(
                "  {table:<18} {:>5.2} puts {:>5.2} removes {:>7.0} bytes",
                per(c.puts),
                per(c.removes),
                per(c.bytes)
            );
        }
    }
    if webhooks > 0 {
        let lag: u64 = engine.webhook_lags().iter().map(|(_, l)| l).sum();
        let sent = received.load(Ordering::Relaxed);
        let caught_up = Instant::now();
        while engine.webhook_lags().iter().any(|(_, l)| *l > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "webhooks: {sent} deliveries during the run ({:.0}/s), {lag} events behind at its end (all endpoints), caught up {:.1} s later; {} in all",
            sent as f64 / elapsed,
            caught_up.elapsed().as_secs_f64(),
            received.load(Ordering::Relaxed)
        );
    }
    engine.shutdown().await.unwrap();
}
