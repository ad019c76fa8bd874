//! How cost grows as work grows: catalog size (1k → 100k products) and stored carts
//! (10k → 1M), each size in a fresh engine on a fresh data directory.
//!
//! - catalog: products are the Icecat catalog's (19,406), repeated with a SKU suffix past
//!   its size; per size: import rate, search latency (one client running the judged
//!   development queries five times after a warm-up pass, 20 results), 16-client search
//!   throughput, product reads, recommendations without order history (names, then the
//!   category), time to open the engine again, disk.
//! - carts: carts written straight into the store; per size: time to open the engine,
//!   reading random carts (each activates an actor from the store), adding an item to
//!   random carts from 16 callers in strict durability, disk.
//!
//! Run: `cargo run --release --example scaling [-- catalog|carts]`

/// mimalloc, as the binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use emporium::domain::Sku;
use emporium::domain::import::{ImportItem, Numbered};
use emporium::domain::product::ProductDraft;
use emporium::{Config, Durability, Engine, SearchRequest};

mod common;
use common::{clients, xorshift};

fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

#[tokio::main]
async fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    if what.is_empty() || what == "catalog" {
        catalog().await;
    }
    if what.is_empty() || what == "carts" {
        carts().await;
    }
}

async fn catalog() {
    let base: Vec<ImportItem> = common::icecat_products()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .collect();
    let queries = common::icecat_dev_queries();
    println!(
        "| products | import | search p50 / p99 (1 client) | searches/s (16 clients) | product get p50 / p99 | recommendations p50 / p99 (no history) | open | disk |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for n in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.durability = Durability::Relaxed;
        let engine = Engine::open(config).await.unwrap();
        let items: Vec<_> = (0..n)
            .map(|i| {
                let mut item = base[i % base.len()].clone();
                let copy = i / base.len();
                if copy > 0 {
                    item.sku = Sku::parse(&format!("{}-{copy}", item.sku)).unwrap();
                }
                (i, Ok(item))
            })
            .collect();
        let skus: Vec<String> = items
            .iter()
            .map(|(_, r): &Numbered<ImportItem>| r.as_ref().unwrap().sku.to_string())
            .collect();
        let t = Instant::now();
        let report = engine.import_products(items, |_| {}).await.unwrap();
        engine.search_flush().await.unwrap();
        let import = t.elapsed();
        assert_eq!(report.imported, n);
        // Background merges after a bulk import settle within seconds.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let search = |q: &str| SearchRequest {
            q: Some(q.to_owned()),
            limit: Some(20),
            ..Default::default()
        };
        let mut one = histogram();
        for q in &queries {
            engine.search(search(q)).await.unwrap(); // warm-up, not recorded
        }
        for _ in 0..5 {
            for q in &queries {
                let t = Instant::now();
                engine.search(search(q)).await.unwrap();
                one.record(t.elapsed().as_micros() as u64).unwrap();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let searches: u64 = clients(16, |c| {
            let (engine, queries) = (engine.clone(), queries.clone());
            async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let q = &queries[(c as usize + done as usize) % queries.len()];
                    engine
                        .search(SearchRequest {
                            q: Some(q.clone()),
                            limit: Some(20),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    done += 1;
                }
                done
            }
        })
        .await
        .into_iter()
        .sum();
        let mut get = histogram();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..5_000 {
            let sku = &skus[(xorshift(&mut x) % n as u64) as usize];
            let t = Instant::now();
            engine.product(sku).await.unwrap();
            get.record(t.elapsed().as_micros() as u64).unwrap();
        }
        // Recommendations with no order history: products named like it (the name
        // index walks the postings of the product's words), then the category. Every
        // product gets stock first (after the timings above), or none could be shown.
        for chunk in skus.chunks(256) {
            futures_util::future::try_join_all(chunk.iter().map(|s| engine.set_on_hand(s, 10)))
                .await
                .unwrap();
        }
        // Stock flips re-index every product; let that and its merges settle.
        engine.search_flush().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut recs = histogram();
        for _ in 0..2_000 {
            let sku = &skus[(xorshift(&mut x) % n as u64) as usize];
            let t = Instant::now();
            engine.recommendations(sku, 10).await.unwrap();
            recs.record(t.elapsed().as_micros() as u64).unwrap();
        }
        let (s50, s99) = common::p50_p99(&one);
        let (g50, g99) = common::p50_p99(&get);
        let (r50, r99) = common::p50_p99(&recs);
        engine.shutdown().await.unwrap();
        drop(engine);
        // Opening again reads every product's name for the recommender.
        let t = Instant::now();
        let engine = Engine::open(Config::new(dir.path())).await.unwrap();
        let reopen = t.elapsed();
        engine.shutdown().await.unwrap();
        println!(
            "| {n} | {:.0}/s | {s50:.2} / {s99:.2} ms | {:.0} | {g50:.3} / {g99:.3} ms | {r50:.3} / {r99:.3} ms | {reopen:.0?} | {} MiB |",
            n as f64 / import.as_secs_f64(),
            searches as f64 / 3.0,
            dir_size(dir.path()) / 1048576
        );
    }
}

async fn carts() {
    println!(
        "| stored carts | store them | open | read a random cart p50 / p99 (activation) | add item, 16 callers, strict | disk |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for n in [10_000usize, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let ids = common::store_carts(dir.path(), n, 1);
        let stored = t.elapsed();
        let t = Instant::now();
        let engine = Engine::open(Config::new(dir.path())).await.unwrap();
        let open = t.elapsed();
        engine
            .create_product(
                "SCALE-1",
                ProductDraft {
                    name: "Scale".into(),
                    price: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        engine.set_on_hand("SCALE-1", 1_000_000_000).await.unwrap();
        let mut read = histogram();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5_000 {
            let id = &ids[(xorshift(&mut x) % n as u64) as usize];
            let t = Instant::now();
            engine.cart(id).await.unwrap();
            read.record(t.elapsed().as_micros() as u64).unwrap();
        }
        let ids = std::sync::Arc::new(ids);
        let deadline = Instant::now() + Duration::from_secs(3);
        let adds: u64 = clients(16, |k| {
            let (engine, ids) = (engine.clone(), ids.clone());
            async move {
                let mut x = (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let id = &ids[(xorshift(&mut x) % ids.len() as u64) as usize];
                    engine.cart_add_item(id, "SCALE-1", 1).await.unwrap();
                    done += 1;
                }
                done
            }
        })
        .await
        .into_iter()
        .sum();
        let (r50, r99) = common::p50_p99(&read);
        engine.shutdown().await.unwrap();
        println!(
            "| {n} | {stored:.1?} | {open:.0?} | {r50:.3} / {r99:.3} ms | {:.0}/s | {} MiB |",
            adds as f64 / 3.0,
            dir_size(dir.path()) / 1048576
        );
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}
