//! What a hostile shopper or a long outage could do, and the bounds that stop it: failed
//! checkouts capped per cart, one payment-failure mail per cart per hour, failed checkouts
//! pruned, commits after a lapsed reservation, transient outcomes that do not stick, a
//! SKU's reservation bound, and a mail too large to store.

use std::time::Duration;

use emporium::EngineError;
use emporium::domain::inventory::MAX_RESERVATIONS;
use emporium::domain::order::OrderStatus;
use serde_json::{Value, json};

use crate::checkout::{cart_with, checkout, checkout_body};
use crate::helpers::*;

async fn notifications(app: &TestApp) -> Vec<Value> {
    let list = app
        .send(
            app.admin(
                app.client
                    .get(app.url("/api/v1/admin/notifications?limit=100")),
            ),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_looping_declined_payments_is_refused_after_five_and_mails_once() {
    let app = spawn_app().await;
    app.create_product("LOOP-1", 500, 10).await;
    let cart = cart_with(&app, &[("LOOP-1", 1)]).await;
    for i in 0..5 {
        let r = checkout(
            &app,
            &cart,
            Some(&format!("k{i}")),
            &checkout_body("tok_decline"),
        )
        .await;
        assert_eq!(r.status, 402, "{}", r.text);
    }
    // The sixth failure in the hour is not attempted: 429 with Retry-After, and nothing
    // is stored for it — not even for a card that would pay.
    let orders_before = app.engine.all_orders().unwrap().len();
    for token in ["tok_decline", "tok_visa"] {
        let r = app
            .client
            .post(app.url(&format!("/api/v1/carts/{cart}/checkout")))
            .header("Idempotency-Key", format!("late-{token}"))
            .json(&checkout_body(token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3000..=3600).contains(&retry), "Retry-After {retry}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "too_many_checkout_attempts", "{body}");
    }
    assert_eq!(app.engine.all_orders().unwrap().len(), orders_before);
    // A replay of an earlier key still answers what it answered.
    let again = checkout(&app, &cart, Some("k0"), &checkout_body("tok_decline")).await;
    assert_eq!(again.status, 402);

    // Five payment failures, one mail.
    let failed_events = app.engine.events(0, 1000).await.unwrap().0;
    let failed_events = failed_events
        .iter()
        .filter(|e| e.event.kind() == "PaymentFailed")
        .count();
    assert_eq!(failed_events, 5, "every failure is still an event");
    let seq = app
        .engine
        .events(0, 1000)
        .await
        .unwrap()
        .0
        .last()
        .unwrap()
        .seq;
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.engine.subscriber_offset("notifier") >= seq
        })
        .await
    );
    let mails: Vec<Value> = notifications(&app)
        .await
        .into_iter()
        .filter(|n| n["template"] == "payment_failed")
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checkouts_that_charged_nothing_are_pruned_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    // The default 30-day retention, on a clock the test moves.
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine
        .create_product("PR-1", draft("Prunable", 100))
        .await
        .unwrap();
    engine.set_on_hand("PR-1", 5).await.unwrap();
    let failed = cart_of(&engine, "PR-1", 1).await;
    let declined = engine
        .checkout(&failed, "d", &checkout_request("tok_decline"))
        .await;
    assert!(matches!(declined, Err(EngineError::PaymentDeclined(_))));
    let paid = cart_of(&engine, "PR-1", 1).await;
    let order = engine
        .checkout(&paid, "p", &checkout_request("tok_visa"))
        .await
        .unwrap();
    assert_eq!(engine.all_orders().unwrap().len(), 2);

    clock.advance(Duration::from_secs(29 * 24 * 3600));
    assert_eq!(
        engine.prune_failed_orders().await.unwrap(),
        0,
        "within 30 days"
    );
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(engine.prune_failed_orders().await.unwrap(), 1);
    let left = engine.all_orders().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].id.as_str(), left[0].status),
        (order.id.as_str(), OrderStatus::Paid)
    );
    assert_eq!(engine.prune_failed_orders().await.unwrap(), 0);
    engine.shutdown().await.unwrap();
}

/// A `tok_slow` checkout of one unit of `sku` (with `on_hand` in stock) whose hold lapses
/// while its charge is under way (the clock moves past the ten-minute TTL during the
/// 1.5 s charge), while another
/// shopper buys one unit with a fast card: the engine and the slow checkout's outcome.
async fn slow_charge_outlives_its_hold(
    dir: &std::path::Path,
    sku: &str,
    on_hand: i64,
) -> (
    emporium::Engine,
    Result<emporium::domain::order::Order, EngineError>,
) {
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir, |c| {
        c.clock = clock.clone();
        c.simulated_gateway_delay = Duration::from_millis(1500);
    })
    .await;
    engine
        .create_product(sku, draft("Scarce", 900))
        .await
        .unwrap();
    engine.set_on_hand(sku, on_hand).await.unwrap();
    let slow_cart = cart_of(&engine, sku, 1).await;
    let slow = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .checkout(&slow_cart, "slow", &checkout_request("tok_slow"))
                .await
        })
    };
    for held in [1, 0] {
        assert!(
            eventually(Duration::from_secs(5), || async {
                engine.inventory(sku).await.unwrap().reserved == held
            })
            .await,
            "the hold is taken, then lapses"
        );
        clock.advance(Duration::from_secs(10 * 60 + 1));
    }
    let fast_cart = cart_of(&engine, sku, 1).await;
    engine
        .checkout(&fast_cart, "fast", &checkout_request("tok_visa"))
        .await
        .unwrap();
    let outcome = slow.await.unwrap();
    (engine, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_that_outlived_its_reservation_is_refunded_when_the_stock_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, outcome) = slow_charge_outlives_its_hold(dir.path(), "LAPSE-1", 1).await;
    // The slow one is charged, finds no stock to commit, and is refunded: no paid order
    // without its stock, no charge kept without an order.
    match outcome {
        Err(EngineError::ItemsOutOfStock(skus)) => assert_eq!(skus, ["LAPSE-1"]),
        other => panic!("expected out of stock, got {other:?}"),
    }
    let inv = engine.inventory("LAPSE-1").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved), (0, 0), "sold exactly once");
    let charges = engine.gateway_charges().unwrap();
    assert_eq!(charges.len(), 2);
    let orders = engine.all_orders().unwrap();
    let failed = orders
        .iter()
        .find(|o| o.status == OrderStatus::Failed)
        .unwrap();
    let refunded = charges.iter().find(|c| c.key == failed.id).unwrap();
    assert_eq!(refunded.refunded, refunded.amount, "the charge is refunded");
    assert_eq!(
        failed.payment.as_ref().unwrap().status,
        emporium::domain::order::PaymentState::Refunded
    );
    let paid = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Paid)
        .count();
    assert_eq!(paid, 1);
    let (events, _) = engine.events(0, 1000).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(&e.event,
            emporium::domain::event::DomainEvent::OrderRefunded { order_id, .. } if *order_id == failed.id)),
        "the refund is an event (and the shopper is mailed)"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_that_outlived_its_reservation_takes_the_stock_that_is_still_there() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, outcome) = slow_charge_outlives_its_hold(dir.path(), "LAPSE-2", 2).await;
    let order = outcome.expect("the slow checkout is placed");
    assert_eq!(order.status, OrderStatus::Paid);
    let inv = engine.inventory("LAPSE-2").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved), (0, 0), "each unit sold once");
    assert!(
        engine
            .gateway_charges()
            .unwrap()
            .iter()
            .all(|c| c.refunded == 0)
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_not_the_keys_final_answer_and_a_retry_runs_once_more() {
    let app = spawn_app().await;
    app.create_product("BUSY-1", 300, 100_000).await;
    // Every reservation the SKU's record can hold is taken: the checkout cannot reserve,
    // for now.
    let mut holds = tokio::task::JoinSet::new();
    for i in 0..MAX_RESERVATIONS {
        let engine = app.engine.clone();
        holds.spawn(async move { engine.reserve("BUSY-1", &format!("hold-{i}"), 1).await });
    }
    while let Some(r) = holds.join_next().await {
        r.unwrap().unwrap();
    }
    assert!(matches!(
        app.engine.reserve("BUSY-1", "one-more", 1).await,
        Err(EngineError::TooManyReservations {
            max: MAX_RESERVATIONS
        })
    ));
    let cart = cart_with(&app, &[("BUSY-1", 1)]).await;
    let body = checkout_body("tok_visa");
    let first = checkout(&app, &cart, Some("same-key"), &body).await;
    assert_eq!(first.status, 503, "{}", first.text);
    assert_eq!(first.json()["code"], "unavailable");
    // Still full: the retry runs again (and is unavailable again).
    let second = checkout(&app, &cart, Some("same-key"), &body).await;
    assert_eq!(second.status, 503, "{}", second.text);

    app.engine
        .release_reservation("BUSY-1", "hold-0")
        .await
        .unwrap();
    let third = checkout(&app, &cart, Some("same-key"), &body).await;
    assert_eq!(third.status, 201, "{}", third.text);
    // From now on the key's answer is final: the same order, byte for byte.
    let fourth = checkout(&app, &cart, Some("same-key"), &body).await;
    assert_eq!((fourth.status, &fourth.text), (201, &third.text));
    let paid: Vec<_> = app
        .engine
        .all_orders()
        .unwrap()
        .into_iter()
        .filter(|o| o.status == OrderStatus::Paid)
        .collect();
    assert_eq!(paid.len(), 1, "one order, one charge");
    assert_eq!(app.engine.gateway_charges().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_too_large_to_store_is_marked_failed_and_the_queue_moves_on() {
    let app = spawn_app().await;
    app.create_product("MAIL-1", 300, 10).await;
    let put = |text: &str| {
        app.send(
            app.admin(
                app.client
                    .put(app.url("/api/v1/admin/templates/order_confirmation")),
            )
            .json(&json!({"subject": "Receipt", "text": text, "html": "<p>hi</p>"})),
        )
    };
    // A template that renders to ~100 KB: over the store's record limit.
    let r = put("{% for i in range(10000) %}0123456789{% endfor %}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let big = cart_with(&app, &[("MAIL-1", 1)]).await;
    assert_eq!(
        checkout(&app, &big, Some("a"), &checkout_body("tok_visa"))
            .await
            .status,
        201
    );
    // A mail is rendered when the notifier takes its order's event: wait for that
    // before the template changes back, or a notifier behind a loaded machine renders
    // the first receipt with the small template too.
    let first = eventually(Duration::from_secs(10), || async {
        let n = notifications(&app).await;
        n.len() == 1 && n[0]["status"] != "pending"
    })
    .await;
    assert!(first, "{:?}", notifications(&app).await);
    let r = put("Thanks for order {{ order.number }}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let small = cart_with(&app, &[("MAIL-1", 1)]).await;
    assert_eq!(
        checkout(&app, &small, Some("b"), &checkout_body("tok_visa"))
            .await
            .status,
        201
    );

    let settled = eventually(Duration::from_secs(10), || async {
        let n = notifications(&app).await;
        n.len() == 2 && n.iter().all(|n| n["status"] != "pending")
    })
    .await;
    let n = notifications(&app).await;
    assert!(settled, "{n:?}");
    assert_eq!(n[0]["status"], "failed", "{}", n[0]);
    assert!(
        n[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("record limit"),
        "{}",
        n[0]
    );
    assert_eq!(n[1]["status"], "sent", "{}", n[1]);
    assert!(app.engine.skipped_events("notifier").unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_time_out_count_against_a_cap_and_do_not_hold_up_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let app = emporium::app::Application::build(emporium::app::Settings {
        engine: test_config(dir.path()),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: ADMIN_TOKEN.into(),
        http: Default::default(),
        serve: emporium::http::ServeOptions {
            header_read_timeout: Duration::from_secs(2),
            max_connections: 2,
            drain_timeout: Duration::from_secs(5),
        },
        demo: false,
    })
    .await
    .unwrap();
    let addr = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let health = b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    // Two clients that send half a request line and stall hold both connections.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHo").await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is not served while they are open (the cap) …
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(health).await.unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
            .await
            .is_err(),
        "a connection over the cap is not served"
    );
    // … and is served once the header-read timeout has closed the stalled ones.
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .expect("served after the stalled connections were closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    for mut s in stalled {
        // Closed by the server (an end of stream, a reset, or a last 408 before it).
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the stalled connection was closed");
    }

    // A stalled connection open at shutdown does not hold it up.
    let mut late = TcpStream::connect(addr).await.unwrap();
    late.write_all(b"GET /he").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown finished")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_is_written_in_entries_under_the_journal_limit() {
    use emporium::domain::Sku;
    use emporium::domain::import::ImportItem;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    // 1,500 products of ~9 KB each: 13 MB that, written as one batch per 2,000-record
    // chunk, would be one journal entry of 13 MB (a sled blob file, never fsynced). The
    // store refuses any entry over its limit, so this import succeeds only if it splits.
    let items: Vec<_> = (0..1500)
        .map(|i| {
            let mut d = draft(&format!("Bulk product {i}"), 100 + i);
            d.description = format!("Long description {i}. ").repeat(400);
            let item = ImportItem {
                sku: Sku::parse(&format!("BULK-{i:05}")).unwrap(),
                draft: d,
                stock: Some(3),
            };
            (i as usize + 1, Ok(item))
        })
        .collect();
    let report = engine.import_products(items, |_| {}).await.unwrap();
    assert_eq!(
        (report.imported, report.failed.len()),
        (1500, 0),
        "{:?}",
        report.failed.first()
    );
    assert_eq!(engine.product_count(), 1500);
    assert_eq!(engine.product("BULK-01499").await.unwrap().available, 3);
    let (events, _) = engine.events(0, 1000).await.unwrap();
    assert_eq!(events.len(), 1000, "each product's event is logged");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_recommendations_can_be_asked_for() {
    let app = spawn_app().await;
    for i in 0..60 {
        app.create_product_in(&format!("R50-{i:02}"), "Optics/Lenses", 100 + i, 5)
            .await;
    }
    app.engine.search_flush().await.unwrap();
    let r = app
        .get("/api/v1/products/R50-00/recommendations?limit=50")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 50, "{}", r.body);
    let r = app
        .get("/api/v1/products/R50-00/recommendations?limit=51")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_order_list_pages_through_imported_history() {
    let app = spawn_app().await;
    app.create_product("HIST-1", 100, 5).await;
    let body: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"id": "past-{i}", "created_at": "2011-05-0{}T10:00:00Z", "items": [{{"sku": "HIST-1", "quantity": 1}}]}}"#,
                i + 1
            )
        })
        .collect();
    let r = app.import_orders(&body.join("\n")).await;
    assert_eq!(
        (r.status, r.body["imported"].as_u64()),
        (200, Some(5)),
        "{}",
        r.body
    );
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = "/api/v1/admin/orders?limit=2&status=delivered".to_owned();
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = app.send(app.admin(app.client.get(app.url(&url)))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for o in r.body["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..5).map(|i| format!("imported-past-{i}")).collect();
    assert_eq!(seen, want, "every imported order once, oldest first");
    app.stop().await;
}

/// The order import writes orders beside the order actors; that is safe only because no
/// actor can ever exist for an imported id (`imported-…` is not the shape of an order id
/// the engine routes to an actor), so the import stays the one writer of those keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_orders_are_never_routed_to_an_order_actor() {
    use emporium::domain::history::parse_past_orders;
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .create_product("IMP-1", draft("Old thing", 100))
        .await
        .unwrap();
    let records = parse_past_orders(
        r#"{"id": "a1", "created_at": "2011-05-01T10:00:00Z", "items": [{"sku": "IMP-1", "quantity": 1}]}"#,
    )
    .unwrap();
    assert_eq!(
        engine
            .import_orders(records, |_| {})
            .await
            .unwrap()
            .imported,
        1
    );
    let before = engine.stats().orders.activated;
    for result in [
        engine.order("imported-a1").await,
        engine.cancel_order("imported-a1").await,
        engine.refund_order("imported-a1").await,
    ] {
        assert!(
            matches!(result, Err(EngineError::NotFound("order"))),
            "{result:?}"
        );
    }
    assert_eq!(
        engine.stats().orders.activated,
        before,
        "no actor was activated"
    );
    let page = engine.orders(Some("delivered"), None, 10).await.unwrap();
    assert_eq!(page.items[0].id, "imported-a1", "the import's write stands");
    engine.shutdown().await.unwrap();
}
