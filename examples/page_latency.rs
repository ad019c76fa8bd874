//! Storefront page latency under concurrency: the demo catalog served by the real
//! application on loopback; N clients (default 16) each fetch product pages and category
//! pages in turn for a fixed time over keep-alive connections. Prints throughput and
//! p50/p90/p99/max per page kind (an HDR histogram of the time from sending the request to
//! having the whole page: the server's time plus loopback and the client's own), and the
//! page weight (HTML, CSS, JavaScript, the product image at 480 px).
//!
//! Run: `cargo run --release --example page_latency -- [clients] [seconds]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use emporium::app::{Application, Settings};
use emporium::http::{HttpOptions, ServeOptions};
use emporium::{Config, Durability};

mod common;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Config::new(dir.path());
    engine.durability = Durability::Relaxed;
    let app = Application::build(Settings {
        engine,
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: "page-latency".into(),
        http: HttpOptions {
            secure_cookies: false,
            ..HttpOptions::default()
        },
        serve: ServeOptions::default(),
        demo: true,
    })
    .await
    .unwrap();
    let base = format!("http://{}", app.addr());
    let engine = app.engine().clone();
    tokio::spawn(async move { app.run_until(std::future::pending::<()>()).await });
    // The demo's pictures are drawn in the background: wait for them, so that pages are
    // measured as a visitor gets them.
    let skus: Vec<String> = emporium::demo::items()
        .into_iter()
        .filter_map(|(_, i)| i.ok().map(|i| i.sku.to_string()))
        .collect();
    let last = skus.last().unwrap().clone();
    while engine
        .product(&last)
        .await
        .unwrap()
        .product
        .images
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let categories: Vec<String> = engine
        .categories()
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.children.iter().map(|c| c.path.clone()))
        .collect();
    let client = reqwest::Client::new();
    // Page weight.
    let size = |path: String| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let r = client.get(url).send().await.unwrap();
            r.bytes().await.unwrap().len()
        }
    };
    let image_url = engine.product(&skus[0]).await.unwrap().product.images[0].clone();
    let page = size(format!("/p/{}", skus[0])).await;
    let css = size("/assets/shop.css".into()).await;
    let js = size("/assets/shop.js".into()).await;
    let image = size(image_url).await;
    println!(
        "page weight (product page): HTML {} B, CSS {} B, JS {} B, image {} B — {} B in all",
        page,
        css,
        js,
        image,
        page + css + js + image
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_client = common::clients(clients, |c| {
        let (client, base, skus, categories) = (
            client.clone(),
            base.clone(),
            skus.clone(),
            categories.clone(),
        );
        async move {
            let mut product =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
            let mut category = product.clone();
            let mut i = c as usize * 7;
            while Instant::now() < deadline {
                i += 1;
                let (path, h) = if i.is_multiple_of(2) {
                    (format!("/p/{}", skus[i % skus.len()]), &mut product)
                } else {
                    let c = &categories[i % categories.len()];
                    (
                        format!("/c/{}", c.replace(' ', "%20").replace('&', "%26")),
                        &mut category,
                    )
                };
                let t = Instant::now();
                let r = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.bytes().await.unwrap();
                h.record(t.elapsed().as_micros() as u64).unwrap();
            }
            (product, category)
        }
    })
    .await;
    let mut product = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut category = product.clone();
    for (p, c) in per_client {
        product.add(p).unwrap();
        category.add(c).unwrap();
    }
    for (name, h) in [("product", &product), ("category", &category)] {
        println!(
            "{name} pages, {clients} clients, {seconds} s: {:.0}/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            h.len() as f64 / seconds as f64,
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.9) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
        );
    }
}
