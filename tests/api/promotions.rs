//! Promotion codes: the admin's routes, and uses that stay exact under concurrency.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use emporium::EngineError;
use emporium::domain::pricing::{Reduction, Target};
use emporium::domain::promotion::PromotionDraft;

fn draft(limit: Option<u32>, per_customer: Option<u32>) -> PromotionDraft {
    PromotionDraft {
        reduction: Reduction::Percent(1_000),
        target: Target::Order,
        min_subtotal: 0,
        starts_at: None,
        ends_at: None,
        usage_limit: limit,
        per_customer_limit: per_customer,
        active: true,
        automatic: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_creates_reads_lists_replaces_and_deletes_codes() {
    let app = spawn_app().await;
    let post = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.send(
                app.admin(app.client.post(app.url("/api/v1/admin/promotions")))
                    .json(&body),
            )
            .await
        }
    };
    let r = post(json!({"code": "spring-10", "kind": "percent", "value": 1000, "usage_limit": 50}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["code"], "SPRING-10");
    assert_eq!(
        (r.body["remaining"].as_u64(), r.body["applies_to"].as_str()),
        (Some(50), Some("order"))
    );
    let again = post(json!({"code": "SPRING-10", "kind": "fixed", "value": 500})).await;
    assert_eq!((again.status, again.code()), (409, "already_exists"));
    for bad in [
        json!({"code": "X1", "kind": "percent", "value": 0}),
        json!({"code": "X2", "kind": "percent", "value": 10_001}),
        json!({"code": "X3", "kind": "fixed", "value": 100, "applies_to": "items"}),
        json!({"code": "X4", "kind": "fixed", "value": 100, "starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}),
        json!({"code": "no spaces", "kind": "fixed", "value": 100}),
        json!({"kind": "fixed", "value": 100}),
    ] {
        let r = post(bad.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "validation_failed"),
            "{bad}: {}",
            r.body
        );
    }
    let items = post(
        json!({"code": "HELMETS", "kind": "fixed", "value": 500, "applies_to": "items",
                            "categories": ["Space Suits"], "skus": ["HELM-01"],
                            "starts_at": "2027-01-01T00:00:00Z", "per_customer_limit": 1}),
    )
    .await;
    assert_eq!(items.status, 201, "{}", items.body);
    assert_eq!(items.body["starts_at"], "2027-01-01T00:00:00Z");

    let got = app.admin_get("/api/v1/admin/promotions/spring-10").await;
    assert_eq!(got.body["value"], 1000);
    let list = app.admin_get("/api/v1/admin/promotions").await;
    let codes: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["HELMETS", "SPRING-10"]);

    // A replacement keeps the uses.
    app.engine
        .reserve_promotion("SPRING-10", "order-1", "email:a@example.com")
        .await
        .unwrap();
    app.engine
        .commit_promotion("SPRING-10", "order-1")
        .await
        .unwrap();
    let put = app
        .send(
            app.admin(
                app.client
                    .put(app.url("/api/v1/admin/promotions/SPRING-10")),
            )
            .json(&json!({"kind": "fixed", "value": 700, "usage_limit": 10})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(
        (put.body["used"].as_u64(), put.body["remaining"].as_u64()),
        (Some(1), Some(9))
    );
    let other = app
        .send(
            app.admin(
                app.client
                    .put(app.url("/api/v1/admin/promotions/SPRING-10")),
            )
            .json(&json!({"code": "OTHER", "kind": "fixed", "value": 700})),
        )
        .await;
    assert_eq!(other.status, 422);

    let del = app
        .send(
            app.admin(
                app.client
                    .delete(app.url("/api/v1/admin/promotions/SPRING-10")),
            ),
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        app.admin_get("/api/v1/admin/promotions/SPRING-10")
            .await
            .status,
        404
    );
    assert_eq!(app.get("/api/v1/admin/promotions").await.status, 401);
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    assert!(events.body.to_string().contains("PromotionRedeemed"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_limited_to_50_uses_is_used_exactly_50_times_by_300_concurrent_checkouts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .create_promotion("HOT50", draft(Some(50), None))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let order = format!("order-{i:03}");
                let customer = format!("email:shopper{i}@example.com");
                match engine.reserve_promotion("HOT50", &order, &customer).await {
                    Ok(_) => {
                        engine.commit_promotion("HOT50", &order).await.unwrap();
                        true
                    }
                    Err(EngineError::PromotionExhausted) => false,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 50);
    let p = engine.promotion("hot50").await.unwrap();
    assert_eq!((p.used, p.holds.len(), p.remaining()), (50, 0, Some(0)));
    // Retries of a winner are answered again, not counted twice.
    engine
        .reserve_promotion("HOT50", "order-000", "email:shopper0@example.com")
        .await
        .ok();
    engine.commit_promotion("HOT50", "order-000").await.ok();
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = open_engine(dir.path(), |_| {}).await;
    assert_eq!(
        engine.promotion("HOT50").await.unwrap().used,
        50,
        "exact after a restart"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_limit_holds_and_a_lapsed_or_released_hold_frees_its_use() {
    let dir = tempfile::tempdir().unwrap();
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine
        .create_promotion("ONCE", draft(Some(2), Some(1)))
        .await
        .unwrap();
    let ada = "customer:0123456789abcdef0123456789abcdef";
    engine.reserve_promotion("ONCE", "o1", ada).await.unwrap();
    assert!(matches!(
        engine.reserve_promotion("ONCE", "o2", ada).await,
        Err(EngineError::PromotionCustomerLimit)
    ));
    engine.commit_promotion("ONCE", "o1").await.unwrap();
    assert!(matches!(
        engine.reserve_promotion("ONCE", "o3", ada).await,
        Err(EngineError::PromotionCustomerLimit)
    ));
    // Bob's hold lapses with the reservation TTL; the use is free again.
    engine
        .reserve_promotion("ONCE", "o4", "email:bob@example.com")
        .await
        .unwrap();
    assert!(matches!(
        engine
            .reserve_promotion("ONCE", "o5", "email:cy@example.com")
            .await,
        Err(EngineError::PromotionExhausted)
    ));
    clock.advance(Duration::from_secs(10 * 60 + 1));
    assert!(
        eventually(Duration::from_secs(5), || async {
            engine.promotion("ONCE").await.unwrap().holds.is_empty()
        })
        .await,
        "the actor's timer dropped the lapsed hold"
    );
    engine
        .reserve_promotion("ONCE", "o5", "email:cy@example.com")
        .await
        .unwrap();
    engine.release_promotion("ONCE", "o5").await.unwrap();
    assert_eq!(engine.promotion("ONCE").await.unwrap().remaining(), Some(1));
    // A full cancel gives the use back, to the total and to Ada (once: a repeat changes
    // nothing); a repeated commit is recognised and counts nothing.
    engine.commit_promotion("ONCE", "o1").await.unwrap();
    assert_eq!(engine.promotion("ONCE").await.unwrap().used, 1);
    engine.return_promotion("ONCE", "o1").await.unwrap();
    engine.return_promotion("ONCE", "o1").await.unwrap();
    assert_eq!(engine.promotion("ONCE").await.unwrap().used, 0);
    engine.reserve_promotion("ONCE", "o6", ada).await.unwrap();
    engine.commit_promotion("ONCE", "o6").await.unwrap();
    assert_eq!(engine.promotion("ONCE").await.unwrap().used, 1);
    engine.shutdown().await.unwrap();
}
