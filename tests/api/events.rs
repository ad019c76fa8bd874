//! The durable event log: every state change has its event exactly once, in order, also
//! across crashes; subscribers get every event in order and resume from their offset.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emporium::domain::event::{DomainEvent, LoggedEvent, ProductChange};
use emporium::{Delivery, Engine, Subscriber};
use serde_json::{Value, json};

use crate::helpers::*;

async fn all_events(engine: &Engine) -> Vec<LoggedEvent> {
    engine.events(0, 1000).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_has_its_event_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .create_product("EV-1", draft("Ev", 100))
        .await
        .unwrap();
    engine
        .put_product("EV-1", draft("Ev two", 120))
        .await
        .unwrap();
    engine.set_on_hand("EV-1", 5).await.unwrap();
    engine.reserve("EV-1", "r1", 2).await.unwrap(); // a hold is not a stock change
    engine.commit_reservation("EV-1", "r1").await.unwrap();
    engine.reserve("EV-1", "r2", 1).await.unwrap();
    engine.release_reservation("EV-1", "r2").await.unwrap();
    assert!(engine.set_on_hand("EV-1", -1).await.is_err()); // refused: no event
    engine.delete_product("EV-1").await.unwrap();
    let sku = || "EV-1".to_owned();
    let expected = vec![
        DomainEvent::ProductChanged {
            sku: sku(),
            change: ProductChange::Created,
        },
        DomainEvent::ProductChanged {
            sku: sku(),
            change: ProductChange::Updated,
        },
        DomainEvent::StockChanged {
            sku: sku(),
            on_hand: 5,
            available: 5,
        },
        DomainEvent::StockChanged {
            sku: sku(),
            on_hand: 3,
            available: 3,
        },
        DomainEvent::ProductChanged {
            sku: sku(),
            change: ProductChange::Deleted,
        },
    ];
    let events = all_events(&engine).await;
    assert_eq!(
        events.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "no gaps"
    );
    // Paging.
    let (page, next) = engine.events(2, 2).await.unwrap();
    assert_eq!(
        (page.iter().map(|e| e.seq).collect::<Vec<_>>(), next),
        (vec![3, 4], Some(4))
    );
    // The numbering continues after a restart.
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .create_product("EV-2", draft("Ev", 100))
        .await
        .unwrap();
    assert_eq!(all_events(&engine).await.last().unwrap().seq, 6);
    engine.shutdown().await.unwrap();
}

/// Records what it is given; fails the first delivery of `fail_seq` once.
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
    fail_seq: u64,
    failed: Mutex<bool>,
}

impl Subscriber for Recorder {
    fn name(&self) -> &str {
        "test-recorder"
    }
    fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a> {
        Box::pin(async move {
            let mut failed = self.failed.lock().unwrap();
            if event.seq == self.fail_seq && !*failed {
                *failed = true;
                return Err(emporium::dispatcher::DeliveryError::Missing(
                    "an injected failure",
                ));
            }
            self.seen.lock().unwrap().push(event.seq);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_every_event_in_order_and_resumes_from_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = || {
        Arc::new(Recorder {
            seen: seen.clone(),
            fail_seq: 4,
            failed: Mutex::new(false),
        })
    };
    {
        let engine = open_engine(dir.path(), |_| {}).await;
        engine.subscribe(recorder());
        for i in 0..10 {
            engine
                .create_product(&format!("S-{i}"), draft("S", 1))
                .await
                .unwrap();
        }
        assert!(
            eventually(Duration::from_secs(10), || async {
                seen.lock().unwrap().len() == 10
            })
            .await
        );
        assert_eq!(
            *seen.lock().unwrap(),
            (1..=10).collect::<Vec<u64>>(),
            "in order, the failed one retried, none skipped"
        );
        // The offset is stored once the subscriber has caught up.
        assert!(
            eventually(Duration::from_secs(5), || async {
                engine.subscriber_offset("test-recorder") == 10
            })
            .await
        );
        engine.shutdown().await.unwrap();
    }
    seen.lock().unwrap().clear();
    let engine = open_engine(dir.path(), |_| {}).await;
    for i in 10..15 {
        engine
            .create_product(&format!("S-{i}"), draft("S", 1))
            .await
            .unwrap();
    }
    engine.subscribe(recorder());
    assert!(
        eventually(Duration::from_secs(10), || async {
            seen.lock().unwrap().len() == 5
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        (11..=15).collect::<Vec<u64>>(),
        "resumed after its offset"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_pages_through_the_log() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_product(&format!("E-{i}"), 100, 1).await;
    }
    let r = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/events?limit=4"))))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["type"], "ProductChanged");
    assert_eq!(items[0]["data"], json!({"sku": "E-0", "change": "created"}));
    assert_eq!(items[1]["type"], "StockChanged");
    assert!(items[0]["at"].as_str().unwrap().ends_with('Z'));
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = app
        .send(
            app.admin(
                app.client
                    .get(app.url(&format!("/api/v1/admin/events?cursor={cursor}&limit=100"))),
            ),
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["items"][0]["seq"], 5);
    assert_eq!(r.body["next_cursor"], Value::Null);
    assert_eq!(
        app.send(app.client.get(app.url("/api/v1/admin/events")))
            .await
            .status,
        401
    );
    for bad in ["limit=0", "limit=5000", "cursor=x", "after=-1"] {
        let r = app
            .send(
                app.admin(
                    app.client
                        .get(app.url(&format!("/api/v1/admin/events?{bad}"))),
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_log_and_the_state_agree_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3u64 {
        let server = start_binary(&data, &[]).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for c in 0..4 {
            let (client, base) = (client.clone(), server.base.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                for i in 0.. {
                    let sku = format!("K{round}-{c}-{i}");
                    let r = client
                        .post(format!("{base}/api/v1/admin/products"))
                        .bearer_auth(BINARY_TOKEN)
                        .json(&json!({"sku": sku, "name": "k", "price": 1}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 201 => ok.push(sku),
                        _ => return ok,
                    }
                }
                ok
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 200 * round)).await;
        server.kill9();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
    }
    let engine = open_engine(&data, |_| {}).await;
    let events = all_events_paged(&engine).await;
    assert!(
        events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "no gaps in the log"
    );
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        if let DomainEvent::ProductChanged {
            sku,
            change: ProductChange::Created,
        } = &e.event
        {
            *created.entry(sku.clone()).or_default() += 1;
        }
    }
    let stored: Vec<String> = engine.product_skus().unwrap();
    assert!(
        created.values().all(|&n| n == 1),
        "no state change has two events"
    );
    assert_eq!(
        created.keys().cloned().collect::<Vec<_>>(),
        stored,
        "an event for every stored product and for nothing else"
    );
    for sku in &acked {
        assert!(
            created.contains_key(sku),
            "acknowledged {sku} is in the log"
        );
    }
    eprintln!(
        "{} acknowledged creates over 3 kills; {} stored, {} events",
        acked.len(),
        stored.len(),
        events.len()
    );
    engine.shutdown().await.unwrap();
}

async fn all_events_paged(engine: &Engine) -> Vec<LoggedEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = engine.events(after, 1000).await.unwrap();
        out.extend(page);
        match next {
            Some(n) => after = n,
            None => return out,
        }
    }
}
