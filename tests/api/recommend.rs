//! Recommendations: bought together, viewed together, fallbacks, order-history import,
//! a model that survives restarts, and the association maths against the published
//! Groceries figures.

use std::time::Duration;

use emporium::recommend::stats::{CoStats, Scoring};
use serde_json::json;

use crate::checkout::{cart_with, checkout, checkout_body};
use crate::helpers::*;

async fn recs(app: &TestApp, sku: &str) -> Resp {
    app.get(&format!("/api/v1/products/{sku}/recommendations?limit=5"))
        .await
}

fn skus(r: &Resp) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_bought_together_comes_first_and_fallbacks_fill_in() {
    let app = spawn_app().await;
    for sku in ["RA", "RB", "RC", "RD", "RE"] {
        app.create_product_in(sku, "Gear/Tools", 100, 100).await;
    }
    app.create_product_in("RX", "Food/Snacks", 100, 100).await;
    app.create_product_in("RY", "Food/Snacks", 100, 100).await;

    // No history: other products of the category (from the search index, which follows
    // the store within a second).
    let fallback = eventually(Duration::from_secs(5), || async {
        let r = recs(&app, "RX").await;
        r.status == 200 && r.body["strategy"] == "category" && skus(&r) == ["RY"]
    })
    .await;
    assert!(fallback, "{}", recs(&app, "RX").await.body);
    assert_eq!(recs(&app, "NOPE").await.status, 404);
    let bad = app.get("/api/v1/products/RA/recommendations?limit=0").await;
    assert_eq!(bad.status, 400);

    // RA goes with RB three times, with RC once (a two-line order) and with RD once (a
    // three-line order).
    for (i, lines) in [
        vec![("RA", 1), ("RB", 1)],
        vec![("RA", 1), ("RB", 2)],
        vec![("RA", 1), ("RB", 1), ("RD", 1)],
        vec![("RA", 1), ("RC", 1)],
        vec![("RB", 1), ("RD", 1)],
        vec![("RE", 1)],
    ]
    .into_iter()
    .enumerate()
    {
        let cart = cart_with(&app, &lines).await;
        let r = checkout(
            &app,
            &cart,
            Some(&format!("k{i}")),
            &checkout_body("tok_visa"),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let learned = eventually(Duration::from_secs(5), || async {
        skus(&recs(&app, "RA").await).first().map(String::as_str) == Some("RB")
    })
    .await;
    assert!(learned, "{}", recs(&app, "RA").await.body);
    let r = recs(&app, "RA").await;
    assert_eq!(r.body["strategy"], "bought_together");
    assert!(!skus(&r).contains(&"RA".to_owned()), "never itself");
    // Most often bought together first; of two bought once with it, the one from the
    // smaller order (a pair in a short order is stronger evidence).
    let related: Vec<String> = app
        .engine
        .recommender()
        .related("RA", 10)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(related, ["RB", "RC", "RD"]);
    // RE, bought but never with RA, fills a free slot as a best seller of the category.
    assert_eq!(skus(&r), ["RB", "RC", "RD", "RE"]);

    // Out of stock products are never recommended.
    app.set_on_hand("RB", 0).await;
    assert!(!skus(&recs(&app, "RA").await).contains(&"RB".to_owned()));

    // A product never bought with anything: best sellers of its category.
    let r = recs(&app, "RX").await;
    assert_eq!(r.body["strategy"], "bestsellers", "{}", r.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_gets_what_goes_with_its_latest_products_and_nothing_already_in_it() {
    let app = spawn_app().await;
    for sku in ["TENT", "PEGS", "LAMP", "BULB", "MUG", "SOAP"] {
        app.create_product_in(sku, "Outdoor/Camping", 500, 10).await;
    }
    // TENT goes with PEGS, LAMP with BULB, three times each; MUG sells most, on its own.
    let mut lines = Vec::new();
    for k in 0..3 {
        for (id, a, b) in [("t", "TENT", "PEGS"), ("l", "LAMP", "BULB")] {
            lines.push(format!(
                r#"{{"id": "{id}{k}", "created_at": "2011-05-01T10:00:00Z", "items": [{{"sku": "{a}", "quantity": 1}}, {{"sku": "{b}", "quantity": 1}}]}}"#
            ));
        }
    }
    for k in 0..8 {
        lines.push(format!(
            r#"{{"id": "m{k}", "created_at": "2011-05-01T10:00:00Z", "items": [{{"sku": "MUG", "quantity": 1}}]}}"#
        ));
    }
    let r = app.import_orders(&lines.join("\n")).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let cart = app.cart_with("TENT", 1).await;
    let path = format!("/api/v1/carts/{cart}/recommendations?limit=4");
    let r = app.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(skus(&r)[0], "PEGS", "{}", r.body);
    assert_eq!(r.body["strategy"], "bought_together");
    // LAMP added last: what goes with it comes first, then what goes with the tent;
    // nothing in the cart; a free slot goes to the best seller.
    let added = app
        .post_json(
            &format!("/api/v1/carts/{cart}/items"),
            json!({"sku": "LAMP", "quantity": 1}),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let r = app.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = skus(&r);
    assert_eq!(&got[..3], ["BULB", "PEGS", "MUG"], "{}", r.body);
    assert!(!got.contains(&"TENT".into()) && !got.contains(&"LAMP".into()));
    // Out of stock is never offered.
    app.set_on_hand("BULB", 0).await;
    assert_eq!(skus(&app.get(&path).await)[0], "PEGS");

    // An empty cart: best sellers.
    let empty = app.create_cart().await;
    let r = app
        .get(&format!("/api/v1/carts/{empty}/recommendations"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["strategy"], "bestsellers");
    assert_eq!(skus(&r)[0], "MUG");
    // Bad input: a list too long, a cart that does not exist.
    let bad = app
        .get(&format!("/api/v1/carts/{cart}/recommendations?limit=51"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.content_type, "application/problem+json");
    let missing = app
        .get(&format!("/api/v1/carts/{}/recommendations", "c".repeat(32)))
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_viewed_in_one_session_recommend_each_other() {
    let app = spawn_app().await;
    for sku in ["VA", "VB", "VC"] {
        app.create_product_in(sku, "Optics/Lenses", 100, 10).await;
    }
    for session in ["s1", "s2"] {
        for sku in ["VA", "VB"] {
            let r = app
                .send(
                    app.client
                        .get(app.url(&format!("/api/v1/products/{sku}")))
                        .header("X-Session-Id", session),
                )
                .await;
            assert_eq!(r.status, 200);
        }
    }
    let cart = app.create_cart().await;
    app.get(&format!("/api/v1/products/VC?cart_id={cart}"))
        .await;
    app.get(&format!("/api/v1/products/VA?cart_id={cart}"))
        .await;
    let r = recs(&app, "VB").await;
    assert_eq!(r.body["strategy"], "viewed_together", "{}", r.body);
    assert_eq!(skus(&r)[0], "VA");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_history_teaches_recommendations_without_stock_changes_or_mail() {
    let app = spawn_app().await;
    for sku in ["HX", "HY", "HZ"] {
        app.create_product_in(sku, "Home/Kitchen", 100, 10).await;
    }
    let body = [
        r#"{"id": "p1", "created_at": "2011-05-01T10:00:00Z", "items": [{"sku": "HX", "quantity": 1}, {"sku": "HY", "quantity": 2, "unit_price": 350}]}"#,
        r#"{"id": "p2", "created_at": "2011-05-02T10:00:00Z", "email": "a@b.co", "items": [{"sku": "HX", "quantity": 1}, {"sku": "HY", "quantity": 1}]}"#,
        r#"{"id": "p3", "created_at": "not a time", "items": [{"sku": "HX", "quantity": 1}]}"#,
        r#"{"id": "p4", "created_at": 1304244000000, "items": [{"sku": "GONE", "quantity": 1}, {"sku": "HZ", "quantity": 1}]}"#,
    ]
    .join("\n");
    let r = app.import_orders(&body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["imported"], 3);
    assert_eq!(r.body["failed"][0]["line"], 3);
    // Importing again changes nothing.
    let again = app.import_orders(&body).await;
    assert_eq!(again.body["imported"], 0);
    // Stock is untouched and nothing is mailed.
    let inv = app.get("/api/v1/inventory/HX").await;
    assert_eq!(inv.body["on_hand"], 10);
    // Learned by the time the import answered: no waiting.
    let r = recs(&app, "HX").await;
    assert_eq!(r.body["strategy"], "bought_together", "{}", r.body);
    assert_eq!(skus(&r).first().map(String::as_str), Some("HY"));
    // Kept as history: delivered orders in the admin list.
    let list = app
        .send(
            app.admin(
                app.client
                    .get(app.url("/api/v1/admin/orders?status=delivered")),
            ),
        )
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3);
    assert!(
        !app._dir.path().join("outbox").exists()
            || std::fs::read_dir(app._dir.path().join("outbox"))
                .unwrap()
                .count()
                == 0
    );

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_import_answers_once_the_recommender_has_learned_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    // Wide baskets: learning them (every pair of 150 lines) is far slower than storing
    // them, so an import that did not wait would answer well before the model has them.
    let body: String = (0..300)
        .map(|i| {
            let items: Vec<String> = (0..150)
                .map(|j| format!(r#"{{"sku": "W{}", "quantity": 1}}"#, (i * 7 + j) % 400))
                .collect();
            format!(
                r#"{{"id": "w{i}", "created_at": 1304244000000, "items": [{}]}}"#,
                items.join(",")
            ) + "\n"
        })
        .collect();
    let report = import(&engine, &body).await;
    assert_eq!(report.imported, 300);
    // No polling: the import's answer means learned.
    assert_eq!(
        engine.recommender().learned_through(),
        engine.event_log_end().unwrap()
    );
    assert_eq!(engine.recommender().size().0, 300);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_comes_back_from_its_snapshot_without_relearning() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    for sku in ["SX", "SY"] {
        engine.create_product(sku, draft(sku, 100)).await.unwrap();
        engine.set_on_hand(sku, 5).await.unwrap();
    }
    let body: String = (0..50)
        .map(|i| format!(r#"{{"id": "o{i}", "created_at": 1304244000000, "items": [{{"sku": "SX", "quantity": 1}}, {{"sku": "SY", "quantity": 1}}]}}"#) + "\n")
        .collect();
    let report = import(&engine, &body).await;
    assert_eq!(report.imported, 50);
    let end = engine.event_log_end().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            engine.recommender().learned_through() >= end
        })
        .await
    );
    engine.shutdown().await.unwrap();
    drop(engine);
    assert!(dir.path().join("recommender.snapshot").exists());

    // Right after opening — before any event could be redelivered — the model is whole.
    let engine = open_engine(dir.path(), |_| {}).await;
    assert_eq!(engine.recommender().learned_through(), end);
    assert_eq!(engine.recommender().size().0, 50);
    let r = engine.recommendations("SX", 5).await.unwrap();
    assert_eq!(
        (r.strategy, r.items[0].product.sku.as_str()),
        ("bought_together", "SY")
    );
    // And nothing is learned twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(engine.recommender().size().0, 50);
    engine.shutdown().await.unwrap();
}

/// Imports past orders given as NDJSON into `engine` (answers once they are learned).
async fn import(engine: &emporium::Engine, ndjson: &str) -> emporium::engine::ImportReport {
    let records = emporium::domain::history::parse_past_orders(ndjson).unwrap();
    engine.import_orders(records, |_| {}).await.unwrap()
}

/// Waits until the recommender relates `sku` to exactly `want` (sku, where it came from),
/// in that order — before the served list fills its free slots.
async fn until_related(engine: &emporium::Engine, sku: &str, want: &[(&str, &str)]) {
    let now = || {
        let related = engine.recommender().related(sku, 10);
        related
            .iter()
            .map(|(s, why)| (s.clone(), why.to_string()))
            .collect::<Vec<_>>()
    };
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(s, why)| (s.to_string(), why.to_string()))
        .collect();
    let reached = eventually(Duration::from_secs(5), || async { now() == want }).await;
    assert!(reached, "{:?}", now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_like_this_products_follow_what_was_bought_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    for (sku, name) in [
        ("LA", "Paper lantern pink"),
        ("LB", "Steel hammer"),
        ("LC", "Paper lantern blue"),
        ("LD", "Wool socks"),
    ] {
        engine.create_product(sku, draft(name, 100)).await.unwrap();
        engine.set_on_hand(sku, 5).await.unwrap();
    }
    let body: String = (0..2)
        .map(|i| format!(r#"{{"id": "n{i}", "created_at": 1304244000000, "items": [{{"sku": "LA", "quantity": 1}}, {{"sku": "LB", "quantity": 1}}]}}"#) + "\n")
        .collect();
    import(&engine, &body).await;
    // Bought together first; then the product named like it, never bought with it; the
    // unrelated one not at all.
    until_related(
        &engine,
        "LA",
        &[("LB", "bought_together"), ("LC", "similar")],
    )
    .await;
    let served = engine.recommendations("LA", 2).await.unwrap();
    assert_eq!(served.strategy, "bought_together");
    assert_eq!(
        served
            .items
            .iter()
            .map(|p| p.product.sku.as_str())
            .collect::<Vec<_>>(),
        ["LB", "LC"]
    );
    // Renames are followed (through ProductChanged events).
    engine
        .put_product("LC", draft("Garden hose", 100))
        .await
        .unwrap();
    engine
        .put_product("LD", draft("Paper lantern green", 100))
        .await
        .unwrap();
    let now = [("LB", "bought_together"), ("LD", "similar")];
    until_related(&engine, "LA", &now).await;
    engine.shutdown().await.unwrap();
    drop(engine);
    // After a restart the names come from the product table (no event is re-delivered:
    // the snapshot has learned them all).
    let engine = open_engine(dir.path(), |_| {}).await;
    until_related(&engine, "LA", &now).await;
    // A product never bought: products named like it, before any best seller.
    until_related(&engine, "LD", &[("LA", "similar")]).await;
    let r = engine.recommendations("LD", 5).await.unwrap();
    assert_eq!(r.strategy, "similar");
    assert_eq!(r.items[0].product.sku.as_str(), "LA");
    engine.shutdown().await.unwrap();
}

#[test]
fn association_maths_matches_the_published_groceries_figures() {
    let csv = std::fs::read_to_string("../shared/data/arules-groceries/groceries_transactions.csv")
        .expect("the Groceries fixture");
    let mut baskets: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for line in csv.lines().skip(1) {
        let (id, item) = line.split_once(',').unwrap();
        baskets
            .entry(id.parse().unwrap())
            .or_default()
            .push(item.trim_matches('"').to_owned());
    }
    let mut s = CoStats::default();
    for items in baskets.values() {
        s.learn(items, 1.0, &Scoring::plain());
    }
    assert_eq!(s.baskets(), 9835);
    assert_eq!(s.count("whole milk"), 2513);
    assert!((s.support("whole milk", None) - 0.2555).abs() < 5e-5);
    assert_eq!(s.count("yogurt"), 1372);
    assert_eq!(s.pair_count("other vegetables", "whole milk"), 736);
    assert!((s.support("other vegetables", Some("whole milk")) - 0.0748).abs() < 5e-5);
    assert_eq!(s.pair_count("rolls/buns", "whole milk"), 557);
    assert_eq!(s.pair_count("whole milk", "yogurt"), 551);
    assert_eq!(s.pair_count("root vegetables", "whole milk"), 481);
    assert_eq!(s.pair_count("other vegetables", "root vegetables"), 466);
    assert!((s.confidence("other vegetables", "whole milk") - 0.3868).abs() < 5e-5);
    assert!((s.lift("other vegetables", "whole milk") - 1.5136).abs() < 5e-5);
}
