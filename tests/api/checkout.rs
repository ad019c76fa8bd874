//! Checkout over HTTP: the saga's outcomes, compensation, idempotency, the hot SKU.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::helpers::*;

pub fn checkout_body(token: &str) -> Value {
    json!({
        "email": "ada@example.com",
        "payment_token": token,
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "1 Orbit Way", "city": "Tranquility Base",
            "postal_code": "00001", "country": "US"
        }
    })
}

/// Status, raw body and Location of a checkout.
pub struct Raw {
    pub status: u16,
    pub text: String,
    pub location: Option<String>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

pub async fn checkout(app: &TestApp, cart: &str, key: Option<&str>, body: &Value) -> Raw {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/carts/{cart}/checkout")))
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.expect("checkout sent");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    Raw {
        status,
        text: res.text().await.unwrap(),
        location,
    }
}

pub async fn cart_with(app: &TestApp, items: &[(&str, i64)]) -> String {
    let cart = app.create_cart().await;
    for (sku, q) in items {
        let r = app
            .post_json(
                &format!("/api/v1/carts/{cart}/items"),
                json!({"sku": sku, "quantity": q}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    cart
}

async fn stock(app: &TestApp, sku: &str) -> (u64, u64, u64) {
    let r = app.get(&format!("/api/v1/inventory/{sku}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n = |k: &str| r.body[k].as_u64().unwrap();
    (n("on_hand"), n("reserved"), n("available"))
}

async fn event_types(app: &TestApp) -> Vec<(String, Value)> {
    let (events, _) = app.engine.events(0, 1000).await.unwrap();
    events
        .into_iter()
        .map(|e| {
            let v = serde_json::to_value(&e.event).unwrap();
            (e.event.kind().to_owned(), v["data"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_pays_commits_stock_closes_the_cart_and_logs_the_order() {
    let app = spawn_app().await;
    app.create_product("CK-A", 1250, 10).await;
    app.create_product("CK-B", 300, 5).await;
    let cart = cart_with(&app, &[("CK-A", 2), ("CK-B", 1)]).await;
    let r = checkout(&app, &cart, Some("k1"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.json();
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        r.location.as_deref(),
        Some(&*format!("/api/v1/orders/{id}"))
    );
    assert!(id.len() >= 24, "an id with at least 96 random bits");
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total"], 2 * 1250 + 300);
    assert_eq!(order["subtotal"], 2 * 1250 + 300);
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["email"], "ada@example.com");
    assert_eq!(order["items"][0]["line_total"], 2500);
    assert_eq!(order["items"][0]["name"], "Product CK-A");
    assert_eq!(order["payment"]["status"], "captured");
    assert_eq!(order["shipping_address"]["city"], "Tranquility Base");
    assert!(order.get("payment_token").is_none());
    let history: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "paid"]);

    assert_eq!(stock(&app, "CK-A").await, (8, 0, 8));
    assert_eq!(stock(&app, "CK-B").await, (4, 0, 4));
    let c = app.get(&format!("/api/v1/carts/{cart}")).await;
    assert_eq!(c.body["status"], "checked_out");
    let add = app
        .post_json(
            &format!("/api/v1/carts/{cart}/items"),
            json!({"sku": "CK-A", "quantity": 1}),
        )
        .await;
    assert_eq!((add.status, add.code()), (409, "cart_checked_out"));
    // A new key on a checked-out cart: refused, nothing charged twice.
    let again = checkout(&app, &cart, Some("k2"), &checkout_body("tok_visa")).await;
    assert_eq!(again.status, 409, "{}", again.text);

    let got = app.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["status"], "paid");

    let events = event_types(&app).await;
    let placed: Vec<_> = events.iter().filter(|(k, _)| k == "OrderPlaced").collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].1["order_id"], id);
    assert_eq!(placed[0].1["total"], 2800);
    assert_eq!(placed[0].1["items"].as_array().unwrap().len(), 2);
    assert_eq!(events.iter().filter(|(k, _)| k == "OrderPaid").count(), 1);
    // Paid comes before placed, and both after the stock they sold.
    let pos = |kind: &str| events.iter().position(|(k, _)| k == kind).unwrap();
    assert!(pos("OrderPaid") < pos("OrderPlaced"));
    assert_eq!(app.engine.payments().unwrap().len(), 1);
    assert_eq!(app.engine.gateway_charges().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_shoppers_race_for_fifty_units_and_exactly_fifty_win() {
    let app = Arc::new(spawn_app().await);
    app.create_product("HOT-1", 999, 50).await;
    let mut carts = Vec::new();
    for _ in 0..300 {
        carts.push(cart_with(&app, &[("HOT-1", 1)]).await);
    }
    // Watch the SKU while the race runs: available never exceeds what is on hand and the
    // units held never exceed it either.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !done.load(Ordering::Acquire) {
                let (on_hand, reserved, available) = stock(&app, "HOT-1").await;
                assert!(reserved <= on_hand && available == on_hand - reserved);
                samples += 1;
            }
            samples
        })
    };
    let tasks: Vec<_> = carts
        .into_iter()
        .enumerate()
        .map(|(i, cart)| {
            let app = app.clone();
            tokio::spawn(async move {
                checkout(
                    &app,
                    &cart,
                    Some(&format!("hot-{i}")),
                    &checkout_body("tok_visa"),
                )
                .await
            })
        })
        .collect();
    let (mut created, mut short) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            409 => {
                let body = r.json();
                assert_eq!(body["code"], "out_of_stock");
                assert_eq!(body["skus"], json!(["HOT-1"]));
                short += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    done.store(true, Ordering::Release);
    assert!(watcher.await.unwrap() > 0);
    assert_eq!((created, short), (50, 250));
    assert_eq!(stock(&app, "HOT-1").await, (0, 0, 0));
    assert_eq!(app.engine.gateway_charges().unwrap().len(), 50);
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_without_stock_fails_the_checkout_and_releases_every_other_line() {
    let app = spawn_app().await;
    app.create_product("ML-A", 100, 10).await;
    app.create_product("ML-B", 100, 3).await;
    app.create_product("ML-C", 100, 0).await;
    let cart = cart_with(&app, &[("ML-A", 2), ("ML-B", 5), ("ML-C", 1)]).await;
    let r = checkout(&app, &cart, Some("k"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let body = r.json();
    assert_eq!(body["code"], "out_of_stock");
    let skus: BTreeSet<&str> = body["skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(skus, BTreeSet::from(["ML-B", "ML-C"]));
    assert_eq!(stock(&app, "ML-A").await, (10, 0, 10));
    assert_eq!(stock(&app, "ML-B").await, (3, 0, 3));
    // The cart is open: fix it and check out again.
    let fix = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/carts/{cart}/items/ML-B")))
                .json(&json!({"quantity": 3})),
        )
        .await;
    assert_eq!(fix.status, 200, "{}", fix.body);
    let rm = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/carts/{cart}/items/ML-C"))),
        )
        .await;
    assert_eq!(rm.status, 200);
    let r = checkout(&app, &cart, Some("k2"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(stock(&app, "ML-B").await, (0, 0, 0));
    assert!(app.engine.payments().unwrap().len() == 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_and_gateway_errors_are_compensated_and_the_cart_stays_open() {
    let app = spawn_app().await;
    app.create_product("PAY-1", 700, 4).await;
    let cart = cart_with(&app, &[("PAY-1", 3)]).await;

    let declined = checkout(&app, &cart, Some("d"), &checkout_body("tok_decline")).await;
    assert_eq!(declined.status, 402, "{}", declined.text);
    assert_eq!(declined.json()["code"], "payment_declined");
    assert_eq!(stock(&app, "PAY-1").await, (4, 0, 4));

    let failed = checkout(&app, &cart, Some("e"), &checkout_body("tok_error")).await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    assert_eq!(failed.json()["code"], "payment_gateway_error");
    assert_eq!(stock(&app, "PAY-1").await, (4, 0, 4));
    assert!(
        app.engine.gateway_charges().unwrap().is_empty(),
        "nothing charged"
    );

    let c = app.get(&format!("/api/v1/carts/{cart}")).await;
    assert_eq!(c.body["status"], "open");
    let ok = checkout(&app, &cart, Some("v"), &checkout_body("tok_visa")).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(stock(&app, "PAY-1").await, (1, 0, 1));

    let events = event_types(&app).await;
    let failures: Vec<_> = events
        .iter()
        .filter(|(k, _)| k == "PaymentFailed")
        .collect();
    assert_eq!(failures.len(), 2);
    // Failed checkouts are not orders a shopper or the order list sees.
    let list = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/orders"))))
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_byte_for_byte() {
    let app = Arc::new(spawn_app().await);
    app.create_product("IDEM-1", 500, 100).await;

    // Missing key, empty cart, unknown cart.
    let cart = app.create_cart().await;
    let r = checkout(&app, &cart, None, &checkout_body("tok_visa")).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    let r = checkout(&app, &cart, Some("e"), &checkout_body("tok_visa")).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("empty_cart"))
    );
    let r = checkout(&app, &"0".repeat(32), Some("e"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 404);

    // Sequential replays.
    let cart = cart_with(&app, &[("IDEM-1", 2)]).await;
    let first = checkout(&app, &cart, Some("seq"), &checkout_body("tok_visa")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    for _ in 0..3 {
        let again = checkout(&app, &cart, Some("seq"), &checkout_body("tok_visa")).await;
        assert_eq!((again.status, &again.text), (201, &first.text));
        assert_eq!(again.location, first.location);
    }
    // Even after the order moved on, the replay is the first answer.
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let shipped = app
        .send(
            app.admin(
                app.client
                    .post(app.url(&format!("/api/v1/admin/orders/{id}/ship"))),
            ),
        )
        .await;
    assert_eq!(shipped.status, 200, "{}", shipped.body);
    let again = checkout(&app, &cart, Some("seq"), &checkout_body("tok_visa")).await;
    assert_eq!((again.status, &again.text), (201, &first.text));
    // Same key, different body.
    let reused = checkout(&app, &cart, Some("seq"), &checkout_body("tok_other")).await;
    assert_eq!(
        (reused.status, reused.json()["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(stock(&app, "IDEM-1").await.0, 98);

    // Twenty at once with one key: one order, one charge, identical answers.
    let cart = cart_with(&app, &[("IDEM-1", 1)]).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, cart) = (app.clone(), cart.clone());
            tokio::spawn(async move {
                checkout(&app, &cart, Some("burst"), &checkout_body("tok_slow")).await
            })
        })
        .collect();
    let mut answers = BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
        answers.insert(r.text);
    }
    assert_eq!(answers.len(), 1, "every answer is the same");
    assert_eq!(app.engine.gateway_charges().unwrap().len(), 2);
    assert_eq!(stock(&app, "IDEM-1").await.0, 97);

    // An error outcome is replayed too.
    let cart = cart_with(&app, &[("IDEM-1", 1)]).await;
    let d1 = checkout(&app, &cart, Some("dec"), &checkout_body("tok_decline")).await;
    let d2 = checkout(&app, &cart, Some("dec"), &checkout_body("tok_decline")).await;
    assert_eq!((d1.status, &d1.text), (402, &d2.text));
    assert_eq!(d2.status, 402);
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_being_checked_out_refuses_changes_and_other_checkouts() {
    let app = Arc::new(spawn_app().await);
    app.create_product("LOCK-1", 500, 10).await;
    let cart = cart_with(&app, &[("LOCK-1", 1)]).await;
    let slow = {
        let (app, cart) = (app.clone(), cart.clone());
        tokio::spawn(async move {
            checkout(&app, &cart, Some("slow"), &checkout_body("tok_slow")).await
        })
    };
    // Wait until the checkout holds the stock, then poke the cart.
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            stock(&app, "LOCK-1").await.1 == 1
        })
        .await
    );
    let add = app
        .post_json(
            &format!("/api/v1/carts/{cart}/items"),
            json!({"sku": "LOCK-1", "quantity": 1}),
        )
        .await;
    assert_eq!((add.status, add.code()), (409, "checkout_in_progress"));
    let other = checkout(&app, &cart, Some("other"), &checkout_body("tok_visa")).await;
    assert_eq!(
        (other.status, other.json()["code"].as_str()),
        (409, Some("checkout_in_progress"))
    );
    let r = slow.await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.engine.gateway_charges().unwrap().len(), 1);
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkout_bodies_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.create_product("BAD-1", 500, 10).await;
    let cart = cart_with(&app, &[("BAD-1", 1)]).await;
    let mut no_city = checkout_body("tok_visa");
    no_city["shipping_address"]["city"] = json!("  ");
    let mut bad_email = checkout_body("tok_visa");
    bad_email["email"] = json!("not-an-email");
    let mut total = checkout_body("tok_visa");
    total["total"] = json!(1);
    let mut status = checkout_body("tok_visa");
    status["status"] = json!("paid");
    for (body, want) in [
        (no_city, 422),
        (bad_email, 422),
        (total, 400),
        (status, 400),
    ] {
        let r = checkout(&app, &cart, Some("k"), &body).await;
        assert_eq!(r.status, want, "{}", r.text);
    }
    let long_key = "k".repeat(256);
    let r = checkout(&app, &cart, Some(&long_key), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(stock(&app, "BAD-1").await, (10, 0, 10));
    // The key was not burnt by the refused attempts.
    let ok = checkout(&app, &cart, Some("k"), &checkout_body("tok_visa")).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    app.stop().await;
}

async fn admin_post(app: &TestApp, path: &str, body: Option<Value>) -> Resp {
    let mut req = app.admin(app.client.post(app.url(path)));
    if let Some(b) = body {
        req = req.json(&b);
    }
    app.send(req).await
}

async fn place(app: &TestApp, items: &[(&str, i64)], key: &str) -> Value {
    let cart = cart_with(app, items).await;
    let r = checkout(app, &cart, Some(key), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn statuses(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_move_through_their_lifecycle_and_refuse_invalid_transitions() {
    let app = spawn_app().await;
    app.create_product("LC-1", 1000, 20).await;

    // paid → shipped → delivered → refunded
    let o = place(&app, &[("LC-1", 2)], "a").await;
    let id = o["id"].as_str().unwrap();
    let deliver_early = admin_post(&app, &format!("/api/v1/admin/orders/{id}/deliver"), None).await;
    assert_eq!(
        (deliver_early.status, deliver_early.code()),
        (409, "invalid_transition")
    );
    let shipped = admin_post(
        &app,
        &format!("/api/v1/admin/orders/{id}/ship"),
        Some(json!({"carrier": "Lunar Post", "tracking": "LP-1"})),
    )
    .await;
    assert_eq!(shipped.status, 200, "{}", shipped.body);
    assert_eq!(shipped.body["status"], "shipped");
    assert_eq!(shipped.body["shipment"]["tracking"], "LP-1");
    let cancel_late = app
        .post_json(&format!("/api/v1/orders/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (cancel_late.status, cancel_late.code()),
        (409, "invalid_transition")
    );
    let ship_twice = admin_post(&app, &format!("/api/v1/admin/orders/{id}/ship"), None).await;
    assert_eq!(ship_twice.status, 409);
    let delivered = admin_post(&app, &format!("/api/v1/admin/orders/{id}/deliver"), None).await;
    assert_eq!(delivered.body["status"], "delivered");
    let refunded = admin_post(&app, &format!("/api/v1/admin/orders/{id}/refund"), None).await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    assert_eq!(refunded.body["status"], "refunded");
    assert_eq!(refunded.body["payment"]["status"], "refunded");
    assert_eq!(
        statuses(&refunded.body),
        ["pending", "paid", "shipped", "delivered", "refunded"]
    );
    // Delivered goods are with the shopper: a refund does not put them back in stock.
    assert_eq!(stock(&app, "LC-1").await, (18, 0, 18));
    let refund_twice = admin_post(&app, &format!("/api/v1/admin/orders/{id}/refund"), None).await;
    assert_eq!(refund_twice.status, 409);

    // paid → cancelled (by the shopper): refunded and stock returned.
    let o = place(&app, &[("LC-1", 3)], "b").await;
    let id2 = o["id"].as_str().unwrap();
    assert_eq!(stock(&app, "LC-1").await, (15, 0, 15));
    let cancelled = app
        .post_json(&format!("/api/v1/orders/{id2}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["payment"]["status"], "refunded");
    assert_eq!(stock(&app, "LC-1").await, (18, 0, 18));
    let again = app
        .post_json(&format!("/api/v1/orders/{id2}/cancel"), json!({}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(stock(&app, "LC-1").await, (18, 0, 18), "returned once");

    // paid → refunded (not shipped): stock comes back too.
    let o = place(&app, &[("LC-1", 1)], "c").await;
    let id3 = o["id"].as_str().unwrap();
    let refunded = admin_post(&app, &format!("/api/v1/admin/orders/{id3}/refund"), None).await;
    assert_eq!(refunded.body["status"], "refunded");
    assert_eq!(stock(&app, "LC-1").await, (18, 0, 18));

    // The gateway's books: three charges, all refunded.
    let charges = app.engine.gateway_charges().unwrap();
    assert_eq!(charges.len(), 3);
    assert!(charges.iter().all(|c| c.refunded == c.amount));
    let payments = app.engine.payments().unwrap();
    assert!(payments.iter().all(|p| p.refunds.len() == 1));

    // Unknown orders, admin auth.
    let missing = app.get(&format!("/api/v1/orders/{}", "f".repeat(32))).await;
    assert_eq!(missing.status, 404);
    let missing = admin_post(
        &app,
        &format!("/api/v1/admin/orders/{}/ship", "f".repeat(32)),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    for path in [
        "/api/v1/admin/orders".to_owned(),
        format!("/api/v1/admin/orders/{id}/ship"),
        format!("/api/v1/admin/orders/{id}/deliver"),
        format!("/api/v1/admin/orders/{id}/refund"),
    ] {
        let method = if path.ends_with("orders") {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let r = app
            .send(app.client.request(method.clone(), app.url(&path)))
            .await;
        assert_eq!(r.status, 401, "{path}");
        let r = app
            .send(
                app.client
                    .request(method, app.url(&path))
                    .bearer_auth("wrong"),
            )
            .await;
        assert_eq!(r.status, 403, "{path}");
    }

    // Every transition is in the event log once.
    let events = event_types(&app).await;
    for kind in ["OrderShipped", "OrderDelivered", "OrderCancelled"] {
        assert_eq!(
            events.iter().filter(|(k, _)| k == kind).count(),
            1,
            "{kind}"
        );
    }
    assert_eq!(
        events.iter().filter(|(k, _)| k == "OrderRefunded").count(),
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_order_list_pages_by_status_and_walks_every_order_once() {
    let app = spawn_app().await;
    app.create_product("LS-1", 100, 100).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let o = place(&app, &[("LS-1", 1)], &format!("k{i}")).await;
        ids.push(o["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..3] {
        let r = admin_post(&app, &format!("/api/v1/admin/orders/{id}/ship"), None).await;
        assert_eq!(r.status, 200);
    }
    let walk = |status: Option<&'static str>| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut url = "/api/v1/admin/orders?limit=2".to_owned();
                if let Some(s) = status {
                    url.push_str(&format!("&status={s}"));
                }
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let r = app.send(app.admin(app.client.get(app.url(&url)))).await;
                assert_eq!(r.status, 200, "{}", r.body);
                for o in r.body["items"].as_array().unwrap() {
                    if let Some(s) = status {
                        assert_eq!(o["status"], s);
                    }
                    seen.push(o["id"].as_str().unwrap().to_owned());
                }
                match r.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            seen
        }
    };
    let all = walk(None).await;
    assert_eq!(all.len(), 7);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 7, "each once");
    let shipped = walk(Some("shipped")).await;
    assert_eq!(
        shipped.iter().collect::<BTreeSet<_>>(),
        ids[..3].iter().collect()
    );
    let paid = walk(Some("paid")).await;
    assert_eq!(
        paid.iter().collect::<BTreeSet<_>>(),
        ids[3..].iter().collect()
    );
    for bad in [
        "status=failed",
        "status=nope",
        "limit=0",
        "limit=101",
        "cursor=zzz",
    ] {
        let r = app
            .send(
                app.admin(
                    app.client
                        .get(app.url(&format!("/api/v1/admin/orders?{bad}"))),
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_does_not_answer_in_time_fails_the_checkout_without_a_charge() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |c| {
        c.simulated_gateway_delay = std::time::Duration::from_secs(2);
        c.gateway_policy.timeout = std::time::Duration::from_millis(200);
    })
    .await;
    engine
        .create_product("TO-1", draft("Slow", 100))
        .await
        .unwrap();
    engine.set_on_hand("TO-1", 5).await.unwrap();
    let cart = cart_of(&engine, "TO-1", 2).await;
    let request = checkout_request("tok_slow");
    let err = engine.checkout(&cart, "k", &request).await.unwrap_err();
    assert!(
        matches!(err, emporium::EngineError::PaymentGateway(_)),
        "{err:?}"
    );
    assert!(engine.gateway_charges().unwrap().is_empty());
    let inv = engine.inventory("TO-1").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved), (5, 0));
    // The same key answers the same; the cart is open for another try.
    let again = engine.checkout(&cart, "k", &request).await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    let mut visa = request.clone();
    visa.payment_token = "tok_visa".into();
    let order = engine.checkout(&cart, "k2", &visa).await.unwrap();
    assert_eq!(order.total, 200);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_kept_for_their_retention_and_then_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    // The default 48-hour retention, on a clock the test moves.
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine
        .create_product("KEEP-1", draft("Kept", 100))
        .await
        .unwrap();
    engine.set_on_hand("KEEP-1", 5).await.unwrap();
    let cart = cart_of(&engine, "KEEP-1", 1).await;
    let request = checkout_request("tok_visa");
    let first = engine.checkout(&cart, "k", &request).await.unwrap();
    // Within the retention: nothing is pruned, the replay is the first answer.
    assert_eq!(engine.prune_idempotency_keys().await.unwrap(), 0);
    assert_eq!(engine.checkout(&cart, "k", &request).await.unwrap(), first);
    clock.advance(std::time::Duration::from_secs(47 * 3600));
    assert_eq!(engine.prune_idempotency_keys().await.unwrap(), 0);
    clock.advance(std::time::Duration::from_secs(3600 + 1));
    assert_eq!(engine.prune_idempotency_keys().await.unwrap(), 1);
    // Forgotten: the same key is now a new attempt, refused because the cart is closed.
    assert!(matches!(
        engine.checkout(&cart, "k", &request).await,
        Err(emporium::EngineError::CartCheckedOut)
    ));
    assert_eq!(engine.gateway_charges().unwrap().len(), 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_that_lapsed_while_the_server_was_down_are_released_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    // The default ten-minute hold; the clock moves past it while the engine is down.
    let clock = emporium::Clock::manual_from_now();
    let ttl = |c: &mut emporium::Config| c.clock = clock.clone();
    let engine = open_engine(dir.path(), ttl).await;
    engine
        .create_product("EXP-1", draft("Held", 100))
        .await
        .unwrap();
    engine.set_on_hand("EXP-1", 1).await.unwrap();
    engine.reserve("EXP-1", "abandoned-hold", 1).await.unwrap();
    engine.shutdown().await.unwrap();
    drop(engine);
    clock.advance(std::time::Duration::from_secs(10 * 60 + 1));

    // Nothing addresses the SKU after the restart: only startup recovery can release the
    // hold, and the in-stock filter (the search index, not the SKU actor) shows it.
    let engine = open_engine(dir.path(), ttl).await;
    let in_stock = || async {
        engine.search_flush().await.unwrap();
        let page = engine
            .search(emporium::engine::SearchRequest {
                in_stock: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
        page.items.iter().any(|p| p.product.sku.as_str() == "EXP-1")
    };
    assert!(
        eventually(std::time::Duration::from_secs(5), in_stock).await,
        "the lapsed hold was released at startup"
    );
    engine.shutdown().await.unwrap();
}
