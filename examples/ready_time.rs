//! Time to ready with many stored orders: fills a data directory with N orders (past
//! orders through the history import: each is a stored order with its index entries and
//! an event, as a shop that has been running a while has), then measures how long
//! `Engine::open` takes on it — what stands between a restart and `/ready` — and how long
//! `emporium serve` takes to answer `/ready` 200.
//!
//! Run: `cargo run --release --example ready_time -- [orders] [data dir]`
//! (default 1,000,000 orders in a fresh temporary directory; pass a directory to reuse it).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use emporium::domain::Sku;
use emporium::domain::history::{PastItem, PastOrder};
use emporium::{Config, Durability, Engine};

const BATCH: usize = 20_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let orders: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());

    let mut config = Config::new(&dir);
    config.durability = Durability::Relaxed;
    let engine = Engine::open(config.clone()).await.unwrap();
    let have = engine.all_orders().map_or(0, |v| v.len());
    if have < orders {
        let started = Instant::now();
        let mut made = have;
        while made < orders {
            let n = BATCH.min(orders - made);
            let batch: Vec<_> = (made..made + n)
                .map(|i| {
                    // Baskets of 1–4 items over 2,000 SKUs, a minute apart, a year back.
                    let items = (0..1 + i % 4)
                        .map(|k| PastItem {
                            sku: Sku::parse(&format!("SKU-{}", (i * 7 + k * 131) % 2_000)).unwrap(),
                            quantity: 1 + (k as u32 % 3),
                            unit_price: Some(1_000 + (i % 500) as u64),
                        })
                        .collect();
                    let order = PastOrder {
                        id: format!("ready-{i}"),
                        created_at: 1_700_000_000_000 + i as i64 * 60_000,
                        email: Some(format!("shopper{}@example.com", i % 50_000)),
                        items,
                    };
                    (i + 1, Ok(order))
                })
                .collect();
            let report = engine.import_orders(batch, |_| {}).await.unwrap();
            assert!(report.failed.is_empty(), "{:?}", &report.failed[..1]);
            made += n;
            if made % 100_000 < BATCH {
                eprintln!(
                    "{made} orders stored ({:.0}/s)",
                    (made - have) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let stored = engine.all_orders().unwrap().len();
    engine.shutdown().await.unwrap();
    drop(engine);
    let size: u64 = walk(&dir.join("store"));
    println!(
        "{stored} stored orders; store on disk {:.0} MiB",
        size as f64 / 1_048_576.0
    );

    // Engine::open in strict mode, as `serve` does: storage, journal replay, search
    // index check, recovery of unfinished orders.
    for run in 1..=3 {
        let mut strict = config.clone();
        strict.durability = Durability::Strict;
        let t = Instant::now();
        let engine = Engine::open(strict).await.unwrap();
        let open = t.elapsed();
        engine.shutdown().await.unwrap();
        drop(engine);
        println!(
            "run {run}: Engine::open {:.0} ms",
            open.as_secs_f64() * 1000.0
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The binary: spawn to `/ready` 200.
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/emporium");
    if bin.exists() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Instant::now();
        let mut child = std::process::Command::new(&bin)
            .args(["serve", "--no-demo", "--admin-token", "t"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let ready = loop {
            let ok = client
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(120), "never ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        println!(
            "emporium serve: /ready 200 after {:.0} ms",
            ready.as_secs_f64() * 1000.0
        );
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

fn walk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() { walk(&e.path()) } else { m.len() }
                })
                .sum()
        })
        .unwrap_or(0)
}
