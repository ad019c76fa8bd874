//! Catalog search: matching, typos, filters, sorts, pagination, facets, freshness,
//! hostile input, and import of the real catalogs.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use emporium::domain::product::{AttrValue, ProductDraft};
use emporium::{Engine, SearchRequest};
use serde_json::json;

use crate::helpers::*;

fn product(name: &str, brand: &str, category: &str, price: i64, description: &str) -> ProductDraft {
    let mut attributes = BTreeMap::new();
    attributes.insert("brand".to_owned(), AttrValue::One(brand.to_owned()));
    ProductDraft {
        name: name.into(),
        description: description.into(),
        category: category.into(),
        price,
        attributes,
        ..Default::default()
    }
}

/// A small catalog with known answers, plus 45 fillers under "Misc".
async fn fixture(engine: &Engine) {
    let items = [
        (
            "ALPHA-1",
            product(
                "Aurora Noise-Cancelling Headphones",
                "Helios",
                "Audio/Headphones",
                19_900,
                "Over-ear cans with deep bass",
            ),
            5,
        ),
        (
            "ALPHA-2",
            product(
                "Relay Headset",
                "Kepler",
                "Audio/Headsets",
                8_900,
                "Lightweight boom microphone",
            ),
            0,
        ),
        (
            "BETA-1",
            product(
                "Lunar Rover Tyre",
                "Vostok",
                "Vehicles/Parts/Tyres",
                45_000,
                "Puncture proof wire mesh",
            ),
            2,
        ),
        (
            "BETA-2",
            product(
                "Rover Battery",
                "Helios",
                "Vehicles/Parts/Power",
                120_000,
                "Lithium pack for long drives",
            ),
            1,
        ),
        (
            "GAMMA-1",
            product(
                "Star Tracker",
                "Tycho",
                "Navigation",
                300_000,
                "Celestial navigation sensor",
            ),
            3,
        ),
    ];
    for (sku, draft, stock) in items {
        engine.create_product(sku, draft).await.unwrap();
        engine.set_on_hand(sku, stock).await.unwrap();
    }
    for i in 0..45 {
        engine
            .create_product(
                &format!("MISC-{i:02}"),
                product(
                    &format!("Filler Widget {i}"),
                    "Generic",
                    "Misc",
                    100 + i,
                    "plain filler",
                ),
            )
            .await
            .unwrap();
    }
    engine.search_flush().await.unwrap();
}

fn req(q: &str) -> SearchRequest {
    SearchRequest {
        q: Some(q.to_owned()),
        ..Default::default()
    }
}

async fn skus(engine: &Engine, r: SearchRequest) -> Vec<String> {
    engine
        .search(r)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.product.sku.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_matches_fields_tolerates_typos_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    fixture(&engine).await;

    // Name, description, category, brand.
    assert_eq!(skus(&engine, req("headphones")).await[0], "ALPHA-1");
    assert_eq!(skus(&engine, req("puncture")).await, vec!["BETA-1"]);
    assert_eq!(skus(&engine, req("tyres")).await, vec!["BETA-1"]);
    assert_eq!(skus(&engine, req("kepler")).await, vec!["ALPHA-2"]);
    // Typos.
    assert_eq!(skus(&engine, req("hedphones")).await[0], "ALPHA-1");
    assert_eq!(skus(&engine, req("trakcer")).await[0], "GAMMA-1");
    // Category subtree.
    let cat = |c: &str| SearchRequest {
        category: Some(c.into()),
        ..Default::default()
    };
    let mut vehicles = skus(&engine, cat("Vehicles")).await;
    vehicles.sort();
    assert_eq!(vehicles, vec!["BETA-1", "BETA-2"]);
    assert_eq!(
        skus(&engine, cat("Vehicles/Parts/Tyres")).await,
        vec!["BETA-1"]
    );
    // Price range (inclusive).
    let mut ranged = skus(
        &engine,
        SearchRequest {
            min_price: Some(45_000),
            max_price: Some(120_000),
            ..Default::default()
        },
    )
    .await;
    ranged.sort();
    assert_eq!(ranged, vec!["BETA-1", "BETA-2"]);
    // In stock.
    let audio_in_stock = SearchRequest {
        category: Some("Audio".into()),
        in_stock: Some(true),
        ..Default::default()
    };
    assert_eq!(skus(&engine, audio_in_stock).await, vec!["ALPHA-1"]);
    // Sorts.
    let sorted = |s: &str| SearchRequest {
        category: Some("Vehicles".into()),
        sort: Some(s.into()),
        ..Default::default()
    };
    assert_eq!(
        skus(&engine, sorted("price_asc")).await,
        vec!["BETA-1", "BETA-2"]
    );
    assert_eq!(
        skus(&engine, sorted("price_desc")).await,
        vec!["BETA-2", "BETA-1"]
    );
    assert_eq!(
        skus(&engine, sorted("newest")).await,
        vec!["BETA-2", "BETA-1"]
    );
    assert_eq!(
        skus(
            &engine,
            SearchRequest {
                sort: Some("relevance".into()),
                ..req("rover tyre")
            }
        )
        .await[0],
        "BETA-1"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantities_and_codes_are_found_however_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    for (sku, name) in [
        ("SSD-A", "Portable SSD 1 TB, USB-C"),
        ("SSD-B", "Nimbus 1TB NVMe SSD"),
        ("SSD-C", "Nimbus 2TB NVMe SSD"),
        ("TONER-A", "Toner TN-2110 black"),
        ("TONER-B", "Toner cartridge TN2110"),
        ("TONER-C", "Toner TN-2220"),
        ("CELL-A", "AA2000 rechargeable cell"),
        ("PROJ-A", "Beamer projector"),
        ("PROJ-B", "Screen for projectors"),
    ] {
        engine
            .create_product(sku, product(name, "Brand", "Parts", 1_000, ""))
            .await
            .unwrap();
    }
    engine.search_flush().await.unwrap();
    let found = |q: &'static str| {
        let engine = &engine;
        async move {
            let mut v = skus(engine, req(q)).await;
            v.sort();
            v
        }
    };
    // A quantity, glued or apart, finds both spellings and not another quantity.
    for q in ["1tb ssd", "1 tb ssd", "ssd 1-TB"] {
        assert_eq!(found(q).await, ["SSD-A", "SSD-B"], "{q}");
    }
    // A code with or without its hyphen finds both spellings, not a neighbour.
    for q in ["tn-2110", "TN2110 toner"] {
        assert_eq!(found(q).await, ["TONER-A", "TONER-B"], "{q}");
    }
    // Glued codes are not split: the word "aa" is not in "AA2000" (typed with a space
    // after it: without one it may be the start of a word, and "aa2000" starts so).
    assert!(found("aa ").await.is_empty());
    assert_eq!(found("aa").await, ["CELL-A"]);
    // A whole word is searched as a word; a word being typed as a prefix.
    assert_eq!(skus(&engine, req("projector")).await[0], "PROJ-A");
    let typing = found("proj").await;
    assert_eq!(typing, ["PROJ-A", "PROJ-B"]);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_result_once_and_facets_count_matches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    fixture(&engine).await;

    for sort in ["price_asc", "newest", "relevance"] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = engine
                .search(SearchRequest {
                    q: Some("filler".into()),
                    sort: Some(sort.into()),
                    limit: Some(7),
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(page.total, 45);
            seen.extend(page.items.iter().map(|p| p.product.sku.to_string()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 45, "{sort}");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            45,
            "{sort}: each result exactly once"
        );
    }

    // Facets: each category value counts the products the same filter would return.
    let all = engine.search(SearchRequest::default()).await.unwrap();
    assert_eq!(all.total, 50);
    for (value, count) in &all.categories {
        let n = engine
            .search(SearchRequest {
                category: Some(value.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .total;
        assert_eq!(n as u64, *count, "category {value}");
    }
    assert_eq!(all.categories.iter().map(|(_, c)| c).sum::<u64>(), 50);
    for b in &all.prices {
        let max = b.max.map(|m| m as i64 - 1);
        let n = engine
            .search(SearchRequest {
                min_price: Some(b.min as i64),
                max_price: max,
                ..Default::default()
            })
            .await
            .unwrap()
            .total;
        assert_eq!(n as u64, b.count, "price bucket {b:?}");
    }
    assert_eq!(all.prices.iter().map(|b| b.count).sum::<u64>(), 50);
    // Brand facets count what the brand filter returns.
    assert_eq!(all.brands[0], ("Generic".to_owned(), 45));
    for (value, count) in &all.brands {
        let n = engine
            .search(SearchRequest {
                brand: Some(value.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .total;
        assert_eq!(n as u64, *count, "brand {value}");
    }
    let mut helios = skus(
        &engine,
        SearchRequest {
            brand: Some("Helios".into()),
            ..Default::default()
        },
    )
    .await;
    helios.sort();
    assert_eq!(helios, vec!["ALPHA-1", "BETA-2"]);
    // Drill-down: under a filter, facets are its children.
    let audio = engine
        .search(SearchRequest {
            category: Some("Audio".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audio.categories,
        vec![
            ("Audio/Headphones".to_owned(), 1),
            ("Audio/Headsets".to_owned(), 1)
        ]
    );
    // The category tree counts subtrees.
    let tree = engine.categories().await.unwrap();
    let vehicles = tree.iter().find(|n| n.path == "Vehicles").unwrap();
    assert_eq!(vehicles.count, 2);
    assert_eq!(vehicles.children[0].path, "Vehicles/Parts");
    assert_eq!(vehicles.children[0].children.len(), 2);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_searchable_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    let second = Duration::from_secs(1);
    let found = |q: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .search(req(q))
                .await
                .unwrap()
                .items
                .iter()
                .any(|p| p.product.sku.as_str() == "FRESH-1")
        }
    };
    engine
        .create_product(
            "FRESH-1",
            product("Quasar Lantern", "Helios", "Lights", 2_500, "bright"),
        )
        .await
        .unwrap();
    assert!(
        eventually(second, || found("quasar")).await,
        "created product is searchable"
    );
    engine
        .put_product(
            "FRESH-1",
            product("Pulsar Lantern", "Helios", "Lights", 2_500, "bright"),
        )
        .await
        .unwrap();
    assert!(
        eventually(second, || found("pulsar")).await,
        "updated name is searchable"
    );
    assert!(!found("quasar").await, "the old name is gone");
    // Stock going 0 → positive → 0 moves it in and out of the in-stock filter.
    let in_stock = || {
        let engine = engine.clone();
        async move {
            let r = SearchRequest {
                in_stock: Some(true),
                ..req("pulsar")
            };
            !engine.search(r).await.unwrap().items.is_empty()
        }
    };
    assert!(!in_stock().await);
    engine.set_on_hand("FRESH-1", 3).await.unwrap();
    assert!(
        eventually(second, in_stock).await,
        "restocked product enters the in-stock filter"
    );
    engine.reserve("FRESH-1", "r1", 3).await.unwrap();
    assert!(
        eventually(second, || async { !in_stock().await }).await,
        "fully reserved product leaves it"
    );
    engine.delete_product("FRESH-1").await.unwrap();
    assert!(
        eventually(second, || async { !found("pulsar").await }).await,
        "deleted product is gone"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_never_make_the_server_fail() {
    let app = spawn_app().await;
    app.create_product("SAFE-1", 100, 1).await;
    app.engine.search_flush().await.unwrap();
    let long = "a".repeat(10_000);
    let long_words = "word ".repeat(2_000);
    let hostile = [
        "name:*",
        "price:[0 TO 1]",
        "\"unbalanced",
        "(((",
        "[",
        "{}",
        "sku:SAFE-1 OR 1=1",
        "*",
        "?",
        "~",
        "^2",
        "a AND OR NOT b",
        "\u{0}\u{1}\u{7f}",
        "\u{202e}evil",
        "😀",
        "%",
        "\\",
        &long,
        &long_words,
    ];
    for q in hostile {
        for path in ["/api/v1/products", "/api/v1/search/suggest"] {
            let r = app
                .send(app.client.get(app.url(path)).query(&[("q", q)]))
                .await;
            assert!(
                r.status == 200 || r.status == 400,
                "{path} q={:?}: {}",
                &q[..q.len().min(20)],
                r.status
            );
            if r.status == 400 {
                assert_eq!(r.content_type, "application/problem+json");
            }
        }
    }
    // Private fields cannot be reached: a field-qualified query means just its words.
    for (qualified, words) in [
        ("in_stock:1", "in stock 1"),
        ("price:100", "price 100"),
        ("sku:SAFE-1", "sku SAFE 1"),
    ] {
        let a = app
            .send(
                app.client
                    .get(app.url("/api/v1/products"))
                    .query(&[("q", qualified)]),
            )
            .await;
        let b = app
            .send(
                app.client
                    .get(app.url("/api/v1/products"))
                    .query(&[("q", words)]),
            )
            .await;
        assert_eq!(
            (a.status, &a.body["items"]),
            (200, &b.body["items"]),
            "{qualified}"
        );
    }
    let bad_params = [
        "limit=0",
        "limit=101",
        "limit=abc",
        "sort=random",
        "cursor=zzz",
        "min_price=-1",
        "in_stock=maybe",
        "unknown=1",
        "cursor=o99999999",
    ];
    for p in bad_params {
        let r = app.get(&format!("/api/v1/products?{p}")).await;
        assert_eq!(r.status, 400, "{p}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_serves_search_categories_suggest_and_import() {
    let app = spawn_app().await;
    let body = [
        json!({"sku": "IMP-1", "name": "Comet Headset", "price": 4_500, "category": "Audio/Headsets", "stock": 4}).to_string(),
        "{broken".to_owned(),
        json!({"sku": "bad sku", "name": "x", "price": 1}).to_string(),
        json!({"sku": "IMP-2", "name": "Comet Headphones", "price": 9_900, "category": "Audio/Headphones"}).to_string(),
    ]
    .join("\n");
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products/import")))
                .body(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["imported"], 2);
    let failed: Vec<u64> = r.body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, vec![2, 3]);
    app.engine.search_flush().await.unwrap();
    let r = app.get("/api/v1/products?q=comet&sort=price_asc").await;
    assert_eq!(r.body["total"], 2);
    assert_eq!(r.body["items"][0]["sku"], "IMP-1");
    assert_eq!(r.body["items"][0]["available"], 4);
    assert!(
        r.body["facets"]["category"].is_array()
            && r.body["facets"]["price"].is_array()
            && r.body["facets"]["brand"].is_array()
    );
    let r = app.get("/api/v1/categories").await;
    assert_eq!(r.body["items"][0]["path"], "Audio");
    assert_eq!(r.body["items"][0]["count"], 2);
    let r = app.get("/api/v1/search/suggest?q=hea").await;
    let texts: Vec<&str> = r.body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"headset") && texts.contains(&"headphones"),
        "{texts:?}"
    );
    assert!(
        r.body["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sku"] == "IMP-1")
    );
    // Import needs the admin token; a JSON array works too.
    let arr = json!([{"sku": "IMP-3", "name": "Nova", "price": 1}]).to_string();
    assert_eq!(
        app.send(
            app.client
                .post(app.url("/api/v1/admin/products/import"))
                .body(arr.clone())
        )
        .await
        .status,
        401
    );
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products/import")))
                .body(arr),
        )
        .await;
    assert_eq!(r.body["imported"], 1);
    app.stop().await;
}

fn data_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

async fn import_file(engine: &Engine, files: &[&str]) -> emporium::ImportReport {
    use emporium::domain::import::parse_items;
    let mut items = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(data_file(f)).unwrap();
        let base = items.len();
        items.extend(parse_items(&body, base).unwrap());
    }
    engine.import_products(items, |_| {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_real_catalogs_import_and_are_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    let icecat = import_file(
        &engine,
        &[
            "chorus-icecat/products-1.json",
            "chorus-icecat/products-2.json",
            "chorus-icecat/products-3.json",
            "chorus-icecat/products-4.json",
        ],
    )
    .await;
    assert_eq!(
        icecat.imported,
        19_406,
        "{:?}",
        &icecat.failed[..icecat.failed.len().min(5)]
    );
    let bestbuy = import_file(&engine, &["bestbuy-cellphones-algolia/products.json"]).await;
    assert!(
        bestbuy.imported >= 3_200,
        "{} imported, {:?}",
        bestbuy.imported,
        &bestbuy.failed[..bestbuy.failed.len().min(5)]
    );
    engine.search_flush().await.unwrap();
    assert_eq!(engine.search_len() as usize, engine.product_count());
    // Icecat: brand and model are searchable.
    let toner = engine.search(req("xerox toner")).await.unwrap();
    assert!(toner.total > 0 && toner.items[0].product.name.to_lowercase().contains("toner"));
    // BestBuy: real category paths make a tree.
    let tree = engine.categories().await.unwrap();
    let phones = tree
        .iter()
        .find(|n| n.path == "Cell Phones")
        .expect("Cell Phones category");
    assert_eq!(phones.count as usize, bestbuy.imported);
    assert!(!phones.children.is_empty());
    engine.shutdown().await.unwrap();
}

/// Every SKU the index returns for an empty query, walking all pages.
async fn indexed_skus(engine: &Engine) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = engine
            .search(SearchRequest {
                limit: Some(100),
                cursor: cursor.clone(),
                sort: Some("price_asc".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.items.into_iter().map(|p| p.product.sku.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_bulk_import_leaves_an_index_that_agrees_with_the_store() {
    for round in 0..2u64 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = start_binary(&data, &[]).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let admin = |r: reqwest::RequestBuilder| r.bearer_auth(BINARY_TOKEN);
        // An acknowledged create + delete before the load: it must never come back.
        let r = admin(client.post(format!("{}/api/v1/admin/products", server.base)))
            .json(&json!({"sku": "GONE-1", "name": "Gone", "price": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(
            admin(client.delete(format!("{}/api/v1/admin/products/GONE-1", server.base)))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        let base = server.base.clone();
        let load = tokio::spawn(async move {
            for call in 0..3 {
                let body: String = (0..3_000)
                    .map(|i| json!({"sku": format!("BULK-{call}-{i:04}"), "name": format!("Bulk crate {i}"), "price": 100 + i}).to_string() + "\n")
                    .collect();
                let sent = client
                    .post(format!("{base}/api/v1/admin/products/import"))
                    .bearer_auth(BINARY_TOKEN)
                    .body(body)
                    .send()
                    .await;
                if sent.is_err() {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(400 + 300 * round)).await;
        server.kill9();
        let _ = load.await;

        // Restart: opening the engine replays what the index had not committed.
        let engine = open_engine(&data, |_| {}).await;
        engine.search_flush().await.unwrap();
        let mut stored = engine.product_skus().unwrap();
        let mut indexed = indexed_skus(&engine).await;
        stored.sort();
        indexed.sort();
        assert_eq!(
            indexed.len(),
            stored.len(),
            "round {round}: index and store disagree in size"
        );
        assert_eq!(
            indexed, stored,
            "round {round}: every stored product is searchable and nothing else is"
        );
        assert!(!indexed.contains(&"GONE-1".to_owned()));
        eprintln!(
            "round {round}: {} products consistent after kill -9 during import",
            stored.len()
        );
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_behind_missing_or_corrupt_is_brought_in_line_on_open() {
    use emporium::storage::{Store, StoreOptions, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open_engine(dir.path(), |_| {}).await;
        engine
            .create_product(
                "OLD-1",
                product("Old Comet Lamp", "Helios", "Lights", 100, "lamp"),
            )
            .await
            .unwrap();
        engine.search_flush().await.unwrap();
        engine.shutdown().await.unwrap();
    }
    // Behind: the store gets a product (with its queue entry, as every writer does) while
    // no indexer runs, as after a crash between the store write and the index commit.
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let p = product("Behind Nova Lamp", "Helios", "Lights", 200, "lamp")
            .into_product(
                emporium::domain::Sku::parse("NEW-1").unwrap(),
                "USD",
                1,
                None,
            )
            .unwrap();
        let mut batch = WriteBatch::default();
        batch.put(&store.tables().products, "NEW-1", &p).unwrap();
        store.enqueue_reindex(&mut batch, "NEW-1").unwrap();
        batch.remove(&store.tables().products, "OLD-1");
        store.enqueue_reindex(&mut batch, "OLD-1").unwrap();
        store.write(batch).unwrap();
        store.close().unwrap();
    }
    let found = |engine: Engine, q: &'static str| async move {
        engine
            .search(req(q))
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.product.sku.to_string())
            .collect::<Vec<_>>()
    };
    let engine = open_engine(dir.path(), |_| {}).await;
    assert_eq!(
        found(engine.clone(), "nova").await,
        vec!["NEW-1"],
        "the queued product was indexed on open"
    );
    assert!(
        found(engine.clone(), "comet").await.is_empty(),
        "the queued delete was applied on open"
    );
    engine.shutdown().await.unwrap();
    drop(engine);

    // Missing: the index directory is gone.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    assert_eq!(found(engine.clone(), "nova").await, vec!["NEW-1"]);
    engine.shutdown().await.unwrap();
    drop(engine);

    // Forced: `emporium reindex` opens with `rebuild_index`.
    let engine = open_engine(dir.path(), |c| c.rebuild_index = true).await;
    assert_eq!(found(engine.clone(), "nova").await, vec!["NEW-1"]);
    engine.shutdown().await.unwrap();
    drop(engine);

    // Corrupt: its metadata is garbage.
    std::fs::write(dir.path().join("index/meta.json"), b"{ not json").unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    assert_eq!(found(engine.clone(), "nova").await, vec!["NEW-1"]);
    assert_eq!(engine.search_len(), 1);
    engine.shutdown().await.unwrap();
}
