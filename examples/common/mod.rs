//! Set-up shared by the examples that need many stored entities.

#![allow(dead_code)]

use std::time::Instant;

use emporium::Config;
use emporium::domain::import::{ImportItem, Numbered, parse_items};

/// Writes `n` empty carts straight into the store at `dir` (what the engine writes for a
/// new cart, without an actor per cart: 10M through actors took ~26 min here) and
/// returns the ids of every `keep_every`-th one. Progress goes to stderr per million.
pub fn store_carts(dir: &std::path::Path, n: usize, keep_every: usize) -> Vec<String> {
    let t = Instant::now();
    let mut ids = Vec::new();
    let store = emporium::storage::Store::open(
        dir,
        &emporium::storage::StoreOptions {
            durability: emporium::Durability::Relaxed,
            ..Default::default()
        },
    )
    .unwrap();
    let now = emporium::Clock::system().now();
    let ttl = Config::new(dir).cart_ttl.as_millis() as i64;
    let mut batch = emporium::storage::WriteBatch::default();
    for i in 0..n {
        let id = format!(
            "{:032x}",
            (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
        );
        let cart = emporium::domain::cart::Cart::new(id.clone(), now, ttl);
        batch
            .put(&store.tables().carts, id.as_str(), &cart)
            .unwrap();
        if i % keep_every == 0 {
            ids.push(id);
        }
        if (i + 1) % 10_000 == 0 || i + 1 == n {
            store.write(std::mem::take(&mut batch)).unwrap();
        }
        if (i + 1) % 1_000_000 == 0 {
            eprintln!("{} carts stored ({:.1?})", i + 1, t.elapsed());
        }
    }
    store.close().unwrap();
    ids
}

/// A xorshift step: cheap, deterministic pseudo-random indexes.
pub fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Runs `n` client tasks at once (each given its index) and returns their results, in
/// order.
pub async fn clients<T, Fut>(n: u64, client: impl Fn(u64) -> Fut) -> Vec<T>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|k| tokio::spawn(client(k))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("client task"));
    }
    out
}

/// This process's resident set size.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// p50 and p99 of a histogram of microseconds, in milliseconds.
pub fn p50_p99(h: &hdrhistogram::Histogram<u64>) -> (f64, f64) {
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    )
}

/// A file of the Chorus Icecat data set in `../shared/data/chorus-icecat/`.
pub fn icecat(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/chorus-icecat")
        .join(rel)
}

/// The Icecat catalog (19,406 products), parsed for `Engine::import_products`.
pub fn icecat_products() -> Vec<Numbered<ImportItem>> {
    let mut items = Vec::new();
    for n in 1..=4 {
        let body = std::fs::read_to_string(icecat(&format!("products-{n}.json"))).unwrap();
        let base = items.len();
        items.extend(parse_items(&body, base).unwrap());
    }
    items
}

/// The distinct queries of the judged development set, in file order.
pub fn icecat_dev_queries() -> Vec<String> {
    let mut queries: Vec<String> = std::fs::read_to_string(icecat("Broad_Query_Set_rated.dev.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.rsplitn(3, ',')
                .nth(2)
                .map(|q| q.trim_matches('"').to_owned())
        })
        .collect();
    queries.dedup();
    queries
}

/// A webhook receiver on loopback that answers `204` to every `POST /{name}` and counts
/// them: its base URL and the count.
pub async fn counting_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let hits = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::post({
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

/// Subscribes `n` webhook endpoints taking `types` (`["*"]`: every type) to `base/{i}`;
/// their ids.
pub async fn subscribe_endpoints(
    engine: &emporium::Engine,
    base: &str,
    n: usize,
    types: &[String],
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (e, _) = engine
            .create_webhook(emporium::engine::WebhookDraft {
                url: format!("{base}/{i}"),
                event_types: types.to_vec(),
                description: None,
            })
            .await
            .unwrap();
        ids.push(e.id);
    }
    ids
}

/// A checkout request from `email`, paying with the test gateway's accepting token.
pub fn checkout_request(email: &str) -> emporium::domain::order::CheckoutRequest {
    emporium::domain::order::CheckoutRequest {
        email: email.into(),
        payment_token: "tok_visa".into(),
        shipping_address: emporium::domain::order::Address {
            name: "Load".into(),
            line1: "1 Orbit Way".into(),
            line2: None,
            city: "Base".into(),
            postal_code: "1".into(),
            country: "US".into(),
            region: None,
        },
        shipping_method: None,
    }
}
