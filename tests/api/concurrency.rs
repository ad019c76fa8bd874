//! Concurrent access to one entity is serialised by its actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_reservations_against_fifty_in_stock_yield_exactly_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .create_product("HOT-1", draft("Hot item", 100))
        .await
        .unwrap();
    engine.set_on_hand("HOT-1", 50).await.unwrap();

    let min_seen = Arc::new(AtomicU64::new(u64::MAX));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let engine = engine.clone();
        let min_seen = min_seen.clone();
        tasks.push(tokio::spawn(async move {
            let r = engine.reserve("HOT-1", &format!("order-{i}"), 1).await;
            if let Ok(v) = &r {
                // `available` as each reply saw it; on_hand - reserved can never underflow.
                assert!(v.reserved <= v.on_hand);
                min_seen.fetch_min(v.available, Ordering::Relaxed);
            }
            r.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 50);
    let inv = engine.inventory("HOT-1").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved, inv.available), (50, 50, 0));
    assert_eq!(min_seen.load(Ordering::Relaxed), 0);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_concurrent_adds_of_one_over_http_make_sixty() {
    let app = spawn_app().await;
    app.create_product("ADD-1", 250, 1000).await;
    let cart = app.create_cart().await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let app = app.clone();
        let cart = cart.clone();
        tasks.push(tokio::spawn(async move {
            let r = app
                .post_json(
                    &format!("/api/v1/carts/{cart}/items"),
                    json!({"sku": "ADD-1", "quantity": 1}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = app.get(&format!("/api/v1/carts/{cart}")).await;
    assert_eq!(r.body["items"][0]["quantity"], 60);
    assert_eq!(r.body["subtotal"], 60 * 250);
    assert_eq!(r.body["item_count"], 60);
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_messages_to_one_cart_start_one_actor() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine.create_product("A", draft("A", 1)).await.unwrap();
    let id = engine.create_cart().await.unwrap().cart.id;
    // Stop everything resident by reopening, so the next messages all race to activate.
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = open_engine(dir.path(), |_| {}).await;
    let before = engine.stats().carts.activated;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let engine = engine.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            engine.cart_add_item(&id, "A", 1).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(engine.stats().carts.activated - before, 1);
    assert_eq!(engine.cart(&id).await.unwrap().cart.lines[0].quantity, 32);
    engine.shutdown().await.unwrap();
}
