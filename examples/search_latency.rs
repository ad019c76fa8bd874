//! Search latency under concurrency on the Icecat catalog: N clients (default 16) each
//! run the judged development queries (1–3 words, with facets) in a loop for a fixed
//! time; prints throughput and p50/p90/p99/p99.9/max from an HDR histogram.
//!
//! Run: `cargo run --release --example search_latency -- [clients] [seconds]`

/// mimalloc: sled copies a leaf node on every write, and glibc's allocator made that the
/// largest cost of a checkout (measured in-process: 1.0k → 1.9k checkouts/s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use emporium::search::{Ranking, Weights};
use emporium::{Config, Durability, Engine, SearchRequest};

mod common;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    // `nofuzzy` / `noprefix` as a third argument switch parts of the ranking off, to see
    // what each costs.
    let ranking = match args.get(3).map(String::as_str) {
        Some("nofuzzy") => Ranking::Custom(Weights {
            fuzzy: 0.0,
            ..Weights::default()
        }),
        Some("noprefix") => Ranking::Custom(Weights {
            prefix: 0.0,
            ..Weights::default()
        }),
        _ => Ranking::Tuned,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.durability = Durability::Relaxed;
    let engine = Engine::open(config).await.unwrap();
    let items = common::icecat_products();
    let t = Instant::now();
    let report = engine.import_products(items, |_| {}).await.unwrap();
    engine.search_flush().await.unwrap();
    let took = t.elapsed();
    // Background segment merges after a bulk import finish within a second or two; a
    // serving catalog is measured in that steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "imported {} products in {took:.2?} ({:.0}/s, relaxed durability)",
        report.imported,
        report.imported as f64 / took.as_secs_f64()
    );

    let queries = common::icecat_dev_queries();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_client = common::clients(clients as u64, |c| {
        let (engine, queries) = (engine.clone(), queries.clone());
        async move {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
            let mut i = c as usize;
            while Instant::now() < deadline {
                let q = &queries[i % queries.len()];
                i += 1;
                let start = Instant::now();
                engine
                    .search(SearchRequest {
                        q: Some(q.clone()),
                        limit: Some(20),
                        ranking,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                h.record(start.elapsed().as_micros() as u64).unwrap();
            }
            h
        }
    })
    .await;
    let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for h in per_client {
        all.add(h).unwrap();
    }
    println!(
        "{clients} clients, {seconds} s: {} searches ({:.0}/s)",
        all.len(),
        all.len() as f64 / seconds as f64
    );
    for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        println!(
            "  {label:>5}: {:>7.2} ms",
            all.value_at_quantile(q) as f64 / 1000.0
        );
    }
    println!("    max: {:>7.2} ms", all.max() as f64 / 1000.0);
    engine.shutdown().await.unwrap();
}
