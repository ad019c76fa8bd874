//! Recommendation latency and learning throughput on the UCI Online Retail history.
//!
//! Starts the application (as `emporium serve` does) on a temporary directory, creates a product for every UCI stock code
//! (name and price from the file, stock 1,000), imports the cleaned orders (they teach the
//! recommender through the event log) and then measures `recommendations` for the 1,000
//! best-selling products: in-process (as a guest, and as a signed-in shopper with 100 orders),
//! for guests' carts of 1, 5 and 20 products, and over HTTP from 1 and 16 clients against a server on loopback.
//! Each phase prints wall-clock percentiles and the process's CPU time per request.
//!
//! Run: `cargo run --release --example reco_latency`

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use emporium::app::{Application, Settings};
use emporium::domain::history::read_uci;
use emporium::domain::import::parse_items;
use emporium::http::HttpOptions;
use emporium::{Config, Durability};
use hdrhistogram::Histogram;

const FILE: &str = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv";

/// The CPU time this process has used (user + system, every thread), from
/// `/proc/self/stat` in clock ticks of 10 ms (Linux's `USER_HZ`).
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// Wall time and process CPU since a phase started. The wall-clock percentiles move with
/// whatever else the host runs; the CPU per request (every thread of the process: the
/// engine's background work too, and the client over HTTP) is the steadier figure of cost.
struct Meter {
    started: Instant,
    cpu: f64,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            started: Instant::now(),
            cpu: process_cpu(),
        }
    }

    fn report(&self, what: &str, h: &Histogram<u64>) {
        let secs = self.started.elapsed().as_secs_f64();
        let cpu = process_cpu() - self.cpu;
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "{what}: {} requests, {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, process CPU {:.3} ms per request",
            h.len(),
            h.len() as f64 / secs,
            q(0.5),
            q(0.99),
            q(0.999),
            h.max() as f64 / 1000.0,
            cpu * 1000.0 / h.len() as f64
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.durability = Durability::Relaxed;
    // The server the binary runs, on a free loopback port (measured over HTTP below).
    let app = Application::build(Settings {
        engine: config,
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: "bench".into(),
        http: HttpOptions {
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        },
        serve: Default::default(),
        demo: false,
    })
    .await
    .unwrap();
    let (engine, addr) = (app.engine().clone(), app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let history = read_uci(std::fs::File::open(FILE).expect("UCI file")).unwrap();
    let products: String = history
        .names
        .iter()
        .map(|(code, name)| {
            serde_json::json!({"sku": code, "name": name, "price": 100, "category": "Gifts", "stock": 1000})
                .to_string()
                + "\n"
        })
        .collect();
    let report_products = engine
        .import_products(parse_items(&products, 0).unwrap(), |_| {})
        .await
        .unwrap();
    let started = Instant::now();
    let orders = history.orders.len();
    let imported = engine
        .import_orders(
            history
                .orders
                .into_iter()
                .enumerate()
                .map(|(i, o)| (i + 1, Ok(o)))
                .collect(),
            |_| {},
        )
        .await
        .unwrap();
    // The import answers once the recommender has learned it.
    let end = engine.event_log_end().unwrap();
    assert!(engine.recommender().learned_through() >= end);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} products; {} of {orders} orders imported and learned in {secs:.2} s ({:.0} orders/s)",
        report_products.imported,
        imported.imported,
        imported.imported as f64 / secs
    );
    engine.search_flush().await.unwrap();
    let skus: Vec<String> = engine.recommender().bestsellers(1000);

    // In-process.
    let mut h = Histogram::<u64>::new(3).unwrap();
    let meter = Meter::start();
    for _ in 0..3 {
        for s in &skus {
            let t = Instant::now();
            engine.recommendations(s, 10).await.unwrap();
            h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
        }
    }
    meter.report("in-process, 1 caller", &h);

    // In-process for a guest's cart of 1, 5 and 20 best sellers (the latest
    // `BASKET_CONTEXT` of them are looked at).
    for size in [1usize, 5, 20] {
        let mut carts = Vec::new();
        for i in 0..100 {
            let cart = engine.create_cart().await.unwrap().cart.id;
            for s in skus.iter().skip(i * 9 % 900).take(size) {
                engine.cart_add_item(&cart, s, 1).await.unwrap();
            }
            carts.push(cart);
        }
        let mut h = Histogram::<u64>::new(3).unwrap();
        let meter = Meter::start();
        for _ in 0..5 {
            for cart in &carts {
                let t = Instant::now();
                engine.cart_recommendations(cart, 10, None).await.unwrap();
                h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
            }
        }
        meter.report(&format!("in-process, a cart of {size}"), &h);
    }

    // In-process for a signed-in shopper with a full page of history (100 orders of ten
    // best sellers each), which each request reads back.
    engine
        .register("bench@example.com", "correct horse battery", None)
        .await
        .unwrap();
    let token = engine
        .sign_in("bench@example.com", "correct horse battery", None, None)
        .await
        .unwrap()
        .token;
    let me = engine.authenticate(&token).await.unwrap();
    let checkout = common::checkout_request("bench@example.com");
    for i in 0..100 {
        let cart = engine.create_cart().await.unwrap().cart.id;
        for s in skus.iter().skip(i * 7 % 900).take(10) {
            engine.cart_add_item(&cart, s, 1).await.unwrap();
        }
        engine
            .checkout_as(&cart, &format!("bench-{i}"), &checkout, Some(&me))
            .await
            .unwrap();
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    let meter = Meter::start();
    for s in &skus {
        let t = Instant::now();
        engine.recommendations_for(s, 10, Some(&me)).await.unwrap();
        h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
    }
    meter.report("in-process, signed in with 100 orders", &h);

    // Over HTTP.
    let client = reqwest::Client::new();
    for clients in [1usize, 16] {
        let meter = Meter::start();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, skus) = (client.clone(), skus.clone());
                tokio::spawn(async move {
                    let mut h = Histogram::<u64>::new(3).unwrap();
                    for s in skus
                        .iter()
                        .skip(c)
                        .step_by(clients)
                        .cycle()
                        .take(2000 / clients)
                    {
                        let t = Instant::now();
                        let r = client
                            .get(format!(
                                "http://{addr}/api/v1/products/{s}/recommendations?limit=10"
                            ))
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success());
                        let _ = r.bytes().await.unwrap();
                        h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                    }
                    h
                })
            })
            .collect();
        let mut all = Histogram::<u64>::new(3).unwrap();
        for t in tasks {
            all.add(t.await.unwrap()).unwrap();
        }
        meter.report(&format!("HTTP, {clients} clients"), &all);
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
