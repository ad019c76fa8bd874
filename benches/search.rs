//! Criterion bench of catalog search on the Icecat catalog (19,406 products): 1–3 word
//! queries with facets, through the engine facade. Run: `cargo bench --bench search`.
//! With `CI` set, only the first Icecat file is loaded.

/// mimalloc: sled copies a leaf node on every write, and glibc's allocator made that the
/// largest cost of a checkout (measured in-process: 1.0k → 1.9k checkouts/s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use emporium::domain::import::parse_items;
use emporium::{Config, Durability, Engine, SearchRequest};

fn load(engine: &Engine, rt: &tokio::runtime::Runtime) {
    let files = if std::env::var_os("CI").is_some() {
        1
    } else {
        4
    };
    let mut items = Vec::new();
    for n in 1..=files {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../shared/data/chorus-icecat/products-{n}.json"));
        let body = std::fs::read_to_string(path).expect("the Icecat catalog in ../shared/data");
        let base = items.len();
        items.extend(parse_items(&body, base).unwrap());
    }
    rt.block_on(async {
        engine.import_products(items, |_| {}).await.unwrap();
        engine.search_flush().await.unwrap();
        // Background segment merges after the bulk import finish within a second or
        // two; a serving catalog is measured in that steady state.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    });
}

fn search(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.durability = Durability::Relaxed;
    let engine = rt.block_on(Engine::open(config)).unwrap();
    load(&engine, &rt);
    let mut g = c.benchmark_group("search_icecat");
    for q in [
        "laptop",
        "usb cable",
        "hp toner cartridge",
        "wireless mouse black",
        "hedphones",
    ] {
        g.bench_function(q, |b| {
            b.to_async(&rt).iter(|| async {
                let r = SearchRequest {
                    q: Some(q.to_owned()),
                    limit: Some(20),
                    ..Default::default()
                };
                engine.search(r).await.unwrap()
            })
        });
    }
    g.bench_function("category browse, price sort", |b| {
        b.to_async(&rt).iter(|| async {
            let r = SearchRequest {
                min_price: Some(1_000),
                max_price: Some(50_000),
                sort: Some("price_asc".into()),
                ..Default::default()
            };
            engine.search(r).await.unwrap()
        })
    });
    g.finish();
    rt.block_on(engine.shutdown()).unwrap();
}

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("CI").is_some() {
        c.sample_size(10)
            .measurement_time(std::time::Duration::from_secs(1))
    } else {
        c
    }
}

criterion_group! { name = benches; config = config(); targets = search }
criterion_main!(benches);
