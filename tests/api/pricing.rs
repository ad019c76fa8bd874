//! Prices a shop can charge, over HTTP: shipping zones and methods, the tax table, promotion
//! codes on carts (and their refusals), automatic promotions, the bill frozen on the order,
//! in `OrderPlaced` and in the receipt; partial refunds; a hot code raced by 300 checkouts
//! and its count kept across `kill -9` of the real binary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::checkout;
use crate::helpers::*;
use crate::notify::{unfold, wait_for};

/// A German address (the zone and tax rates below are for DE).
fn de_body(token: &str, method: Option<&str>) -> Value {
    let mut body = json!({
        "email": "ada@example.com",
        "payment_token": token,
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "Unter den Linden 1", "city": "Berlin",
            "postal_code": "10117", "country": "DE"
        }
    });
    if let Some(m) = method {
        body["shipping_method"] = json!(m);
    }
    body
}

async fn admin_put(app: &TestApp, path: &str, body: Value) -> Resp {
    app.send(app.admin(app.client.put(app.url(path))).json(&body))
        .await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> Resp {
    app.send(app.admin(app.client.post(app.url(path))).json(&body))
        .await
}

/// Zones (DE/AT with a letter up to 500 g and a parcel free above 100.00; US ground), VAT
/// 19 % / 7 % reduced / 19 % on shipping in DE, and a product of each class.
async fn set_up_shop(app: &TestApp) {
    let r = admin_put(
        app,
        "/api/v1/admin/shipping",
        json!({"zones": [
            {"id": "dach", "name": "Germany and Austria", "countries": ["de", "AT"], "methods": [
                {"id": "letter", "name": "Letter", "rate": 190, "max_weight_grams": 500},
                {"id": "parcel", "name": "Parcel", "rate": 490, "free_above": 10000}
            ]},
            {"id": "us", "name": "United States", "countries": ["US"], "methods": [
                {"id": "ground", "name": "Ground", "rate": 900}
            ]}
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["zones"][0]["countries"], json!(["DE", "AT"]));
    let r = admin_put(
        app,
        "/api/v1/admin/tax",
        json!({"prices_include_tax": false, "rates": [
            {"name": "VAT", "country": "DE", "tax_class": "standard", "rate_bp": 1900},
            {"name": "VAT", "country": "DE", "tax_class": "reduced", "rate_bp": 700},
            {"name": "VAT", "country": "DE", "tax_class": "shipping", "rate_bp": 1900}
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (sku, price, class, grams) in [
        ("SUIT-1", 4000, "standard", 2000),
        ("BOOK-1", 1000, "reduced", 300),
    ] {
        let r = admin_post(
            app,
            "/api/v1/admin/products",
            json!({"sku": sku, "name": sku, "price": price, "category": "Gear/Things",
                   "tax_class": class, "weight_grams": grams}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["tax_class"], class);
        app.set_on_hand(sku, 1000).await;
    }
}

async fn add(app: &TestApp, cart: &str, sku: &str, quantity: i64) -> Resp {
    app.post_json(
        &format!("/api/v1/carts/{cart}/items"),
        json!({"sku": sku, "quantity": quantity}),
    )
    .await
}

async fn apply(app: &TestApp, cart: &str, code: &str) -> Resp {
    app.post_json(
        &format!("/api/v1/carts/{cart}/promotions"),
        json!({"code": code}),
    )
    .await
}

fn sum(v: &Value, key: &str) -> u64 {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["amount"].as_u64().unwrap())
        .sum()
}

/// The bill adds up as the document says.
fn adds_up(b: &Value) {
    let added = if b["tax_included"].as_bool().unwrap() {
        0
    } else {
        sum(b, "tax")
    };
    assert_eq!(
        b["total"].as_u64().unwrap() + sum(b, "discounts"),
        b["subtotal"].as_u64().unwrap() + b["shipping"].as_u64().unwrap() + added,
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_shows_the_bill_and_the_order_freezes_it_in_its_event_and_receipt() {
    let app = spawn_app().await;
    set_up_shop(&app).await;
    let r = admin_post(
        &app,
        "/api/v1/admin/promotions",
        json!({"code": "spring10", "kind": "percent", "value": 1000}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cart = app.create_cart().await;
    add(&app, &cart, "SUIT-1", 2).await;
    let r = add(&app, &cart, "BOOK-1", 1).await;
    // No address yet: no tax, no shipping; the store ships, so a method is wanted.
    assert_eq!(r.body["breakdown"]["subtotal"], 9000);
    assert_eq!(r.body["breakdown"]["total"], 9000);
    assert_eq!(r.body["shipping_problem"], "shipping_method_required");

    // The code, in any case.
    let r = apply(&app, &cart, "Spring10").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["promotion_code"], "SPRING10");
    assert_eq!(
        r.body["breakdown"]["discounts"],
        json!([{"code": "SPRING10", "automatic": false, "amount": 900}])
    );

    // The address: tax appears; the methods for 4.3 kg to DE: the parcel only (the
    // letter carries 500 g), free-above not reached (8 100 after the discount).
    let r = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/carts/{cart}")))
                .json(&json!({"shipping_address": de_body("x", None)["shipping_address"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    adds_up(&r.body["breakdown"]);
    let methods = app
        .get(&format!("/api/v1/carts/{cart}/shipping-methods"))
        .await;
    assert_eq!(methods.status, 200, "{}", methods.body);
    assert_eq!(
        methods.body["items"],
        json!([{"id": "parcel", "name": "Parcel", "rate": 490, "free_above": 10000, "charge": 490}])
    );
    let us = app
        .get(&format!("/api/v1/carts/{cart}/shipping-methods?country=us"))
        .await;
    assert_eq!(us.body["items"][0]["id"], "ground");
    let nowhere = app
        .get(&format!("/api/v1/carts/{cart}/shipping-methods?country=JP"))
        .await;
    assert_eq!(nowhere.body["items"], json!([]));
    let bad = app
        .get(&format!(
            "/api/v1/carts/{cart}/shipping-methods?country=Germany"
        ))
        .await;
    assert_eq!((bad.status, bad.code()), (422, "validation_failed"));

    // Checkout: without a method, with one that does not carry this, then the parcel.
    let r = checkout(&app, &cart, Some("k0"), &de_body("tok_visa", None)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["code"], "shipping_method_required");
    let r = checkout(
        &app,
        &cart,
        Some("k1"),
        &de_body("tok_visa", Some("letter")),
    )
    .await;
    assert_eq!(
        r.json()["code"],
        "shipping_method_not_applicable",
        "{}",
        r.text
    );
    let r = checkout(
        &app,
        &cart,
        Some("k2"),
        &de_body("tok_visa", Some("parcel")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.json();
    let b = &order["breakdown"];
    // 9 000 − 10 % = 8 100 (allotted 7 200 suits, 900 book); shipping 490; VAT 19 % on
    // 7 200 + 490 = 1 461.10 → 1 461, 7 % on 900 = 63.
    assert_eq!(b["subtotal"], 9000);
    assert_eq!(b["shipping"], 490);
    assert_eq!(
        b["tax"],
        json!([
            {"name": "VAT", "rate_bp": 1900, "amount": 1461},
            {"name": "VAT", "rate_bp": 700, "amount": 63}
        ])
    );
    assert_eq!(b["total"], 8100 + 490 + 1461 + 63);
    assert_eq!(order["total"], b["total"]);
    assert_eq!(
        order["shipping_method"],
        json!({"id": "parcel", "name": "Parcel"})
    );
    assert_eq!(order["promotion_code"], "SPRING10");
    adds_up(b);

    // Frozen: the tax table and the code change; the order does not.
    admin_put(
        &app,
        "/api/v1/admin/tax",
        json!({"prices_include_tax": false, "rates": []}),
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let again = app.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(again.body["breakdown"], order["breakdown"]);
    let promo = app.admin_get("/api/v1/admin/promotions/SPRING10").await;
    assert_eq!(promo.body["used"], 1);

    // The event carries the bill; the receipt shows it.
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    let placed = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "OrderPlaced")
        .expect("OrderPlaced")
        .clone();
    assert_eq!(placed["data"]["breakdown"]["total"], b["total"]);
    assert_eq!(placed["data"]["promotion_code"], "SPRING10");
    assert!(
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "PromotionRedeemed" && e["data"]["order_id"] == id)
    );
    let receipt = &wait_for(&app._dir.path().join("outbox"), "order_confirmation", 1).await[0];
    let text = unfold(&receipt.1);
    for needle in [
        "Discount SPRING10: -9.00 USD",
        "Shipping (Parcel): 4.90 USD",
        "VAT 19%: 14.61 USD",
        "VAT 7%: 0.63 USD",
        "Total: 101.14 USD",
    ] {
        assert!(
            text.contains(needle),
            "{needle} not in the receipt:\n{text}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_codes_say_why_and_change_nothing_and_automatic_promotions_stack() {
    let app = spawn_app().await;
    app.create_product_in("HELM-1", "Space Suits/Helmets", 5000, 100)
        .await;
    app.create_product_in("SOCK-1", "Socks", 500, 100).await;
    for body in [
        json!({"code": "OLD", "kind": "percent", "value": 1000, "ends_at": "2020-01-01T00:00:00Z"}),
        json!({"code": "LATER", "kind": "percent", "value": 1000, "starts_at": "2099-01-01T00:00:00Z"}),
        json!({"code": "OFF", "kind": "percent", "value": 1000, "active": false}),
        json!({"code": "BIG", "kind": "fixed", "value": 1000, "min_subtotal": 100000}),
        json!({"code": "HELMETS", "kind": "percent", "value": 2000, "applies_to": "items", "categories": ["Space Suits"]}),
        json!({"code": "ONCE", "kind": "fixed", "value": 100, "usage_limit": 0}),
        json!({"code": "FIVE", "kind": "fixed", "value": 500}),
        json!({"code": "AUTO-SHIP", "kind": "percent", "value": 10000, "applies_to": "shipping", "automatic": true}),
    ] {
        let r = admin_post(&app, "/api/v1/admin/promotions", body.clone()).await;
        assert_eq!(r.status, 201, "{body}: {}", r.body);
    }
    let limited_auto = admin_post(
        &app,
        "/api/v1/admin/promotions",
        json!({"code": "AUTO-LIMIT", "kind": "fixed", "value": 1, "automatic": true, "usage_limit": 5}),
    )
    .await;
    assert_eq!(
        (limited_auto.status, limited_auto.code()),
        (422, "validation_failed")
    );
    let cart = app.cart_with("SOCK-1", 2).await;
    let before = app.get(&format!("/api/v1/carts/{cart}")).await.body;
    for (code, expect) in [
        ("NOPE", "promotion_unknown"),
        ("not a code!", "promotion_unknown"),
        ("AUTO-SHIP", "promotion_unknown"),
        ("OLD", "promotion_expired"),
        ("LATER", "promotion_expired"),
        ("OFF", "promotion_expired"),
        ("BIG", "promotion_not_applicable"),
        ("HELMETS", "promotion_not_applicable"),
        ("ONCE", "promotion_exhausted"),
    ] {
        let r = apply(&app, &cart, code).await;
        assert_eq!((r.status, r.code()), (422, expect), "{code}: {}", r.body);
        assert_eq!(r.content_type, "application/problem+json");
    }
    let after = app.get(&format!("/api/v1/carts/{cart}")).await.body;
    assert_eq!(after, before, "a refused code changed the cart");
    assert!(after.get("promotion_code").is_none());

    // A code that applies; a second code replaces it; removing it.
    add(&app, &cart, "HELM-1", 1).await;
    let r = apply(&app, &cart, "helmets").await;
    assert_eq!(
        r.body["breakdown"]["discounts"],
        json!([{"code": "HELMETS", "automatic": false, "amount": 1000}])
    );
    let r = apply(&app, &cart, "FIVE").await;
    assert_eq!(r.body["promotion_code"], "FIVE");
    assert_eq!(r.body["breakdown"]["total"], 6000 - 500);
    let gone = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/carts/{cart}/promotions/HELMETS"))),
        )
        .await;
    assert_eq!(gone.status, 404, "not the cart's code");
    let r = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/carts/{cart}/promotions/five"))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("promotion_code").is_none());
    assert_eq!(r.body["breakdown"]["total"], 6000);

    // A shop with shipping: the automatic free shipping applies with the code.
    admin_put(
        &app,
        "/api/v1/admin/shipping",
        json!({"zones": [{"id": "us", "name": "US", "countries": ["US"], "methods": [
            {"id": "ground", "name": "Ground", "rate": 900}]}]}),
    )
    .await;
    apply(&app, &cart, "HELMETS").await;
    let r = checkout(
        &app,
        &cart,
        Some("k"),
        &json!({"email": "ada@example.com", "payment_token": "tok_visa", "shipping_method": "ground",
                "shipping_address": {"name": "Ada", "line1": "1 Orbit Way", "city": "Base",
                                     "postal_code": "1", "country": "US", "region": "CA"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = &r.json()["breakdown"];
    assert_eq!(
        b["discounts"],
        json!([
            {"code": "HELMETS", "automatic": false, "amount": 1000},
            {"code": "AUTO-SHIP", "automatic": true, "amount": 900}
        ])
    );
    assert_eq!(
        (b["shipping"].as_u64(), b["total"].as_u64()),
        (Some(900), Some(5000))
    );
    assert_eq!(r.json()["shipping_address"]["region"], "CA");

    // Settings are checked whole.
    for (path, body) in [
        (
            "/api/v1/admin/shipping",
            json!({"zones": [{"id": "a", "name": "A", "countries": ["US"]}, {"id": "b", "name": "B", "countries": ["us"]}]}),
        ),
        (
            "/api/v1/admin/shipping",
            json!({"zones": [{"id": "a", "name": "A", "countries": ["USA"]}]}),
        ),
        (
            "/api/v1/admin/shipping",
            json!({"zones": [{"id": "a", "name": "A", "countries": ["US"], "methods": [{"id": "m", "name": "M", "rate": -1}]}]}),
        ),
        (
            "/api/v1/admin/tax",
            json!({"prices_include_tax": false, "rates": [{"name": "T", "country": "US", "tax_class": "standard", "rate_bp": 10001}]}),
        ),
        (
            "/api/v1/admin/tax",
            json!({"prices_include_tax": false, "rates": [{"name": "T", "country": "US", "tax_class": "x y", "rate_bp": 1}]}),
        ),
    ] {
        let r = admin_put(&app, path, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "validation_failed"),
            "{body}: {}",
            r.body
        );
    }
    let shipping = app.admin_get("/api/v1/admin/shipping").await;
    assert_eq!(
        shipping.body["zones"][0]["id"], "us",
        "a refused document changed nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusive_prices_show_their_tax_and_partial_refunds_never_exceed_the_capture() {
    let app = spawn_app().await;
    set_up_shop(&app).await;
    admin_put(
        &app,
        "/api/v1/admin/tax",
        json!({"prices_include_tax": true, "rates": [
            {"name": "VAT", "country": "DE", "tax_class": "standard", "rate_bp": 1900},
            {"name": "VAT", "country": "DE", "tax_class": "reduced", "rate_bp": 700}
        ]}),
    )
    .await;
    admin_post(
        &app,
        "/api/v1/admin/promotions",
        json!({"code": "ONE-USE", "kind": "fixed", "value": 1000, "usage_limit": 1}),
    )
    .await;
    let cart = app.create_cart().await;
    add(&app, &cart, "SUIT-1", 3).await;
    add(&app, &cart, "BOOK-1", 1).await;
    apply(&app, &cart, "ONE-USE").await;
    let r = checkout(&app, &cart, Some("k"), &de_body("tok_visa", Some("parcel"))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.json();
    let b = &order["breakdown"];
    assert_eq!(b["tax_included"], true);
    // 13 000 − 1 000 (allotted 923/77): suits 11 077, book 923; parcel free above 100.00.
    assert_eq!(
        (b["shipping"].as_u64(), b["total"].as_u64()),
        (Some(0), Some(12_000))
    );
    adds_up(b);
    let id = order["id"].as_str().unwrap().to_owned();
    let refund = |body: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            app.send(
                app.admin(
                    app.client
                        .post(app.url(&format!("/api/v1/admin/orders/{id}/refund"))),
                )
                .json(&body),
            )
            .await
        }
    };
    // One suit of three: a third of what the suits cost, rounded down.
    let r = refund(json!({"lines": [{"sku": "SUIT-1", "quantity": 1}]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "paid");
    assert_eq!(r.body["refunded"], 11_077 / 3);
    assert_eq!(r.body["payment"]["status"], "partially_refunded");
    for (bad, code) in [
        (
            json!({"lines": [{"sku": "SUIT-1", "quantity": 3}]}),
            "validation_failed",
        ),
        (
            json!({"lines": [{"sku": "NOPE", "quantity": 1}]}),
            "validation_failed",
        ),
        (json!({"amount": 12_000}), "validation_failed"),
        (json!({"amount": 0}), "validation_failed"),
        (json!({"amount": 5, "lines": []}), "validation_failed"),
    ] {
        let r = refund(bad.clone()).await;
        assert_eq!((r.status, r.code()), (422, code), "{bad}: {}", r.body);
    }
    let r = refund(json!({"amount": 1000})).await;
    assert_eq!(r.body["refunded"], 11_077 / 3 + 1000);
    assert_eq!(r.body["refunds"].as_array().unwrap().len(), 2);
    let read = app.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(read.body["refunded"], 11_077 / 3 + 1000);
    // A full refund after partial ones gives back the rest.
    let r = refund(json!({})).await;
    assert_eq!(r.body["status"], "refunded", "{}", r.body);
    assert_eq!(r.body["payment"]["status"], "refunded");
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    let refunded: Vec<u64> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "OrderRefunded")
        .map(|e| e["data"]["amount"].as_u64().unwrap())
        .collect();
    assert_eq!(refunded, [11_077 / 3, 1000, 12_000 - 11_077 / 3 - 1000]);
    let again = refund(json!({"amount": 1})).await;
    assert_eq!((again.status, again.code()), (409, "invalid_transition"));

    // A refund keeps the code's use; a cancelled order gives it back.
    let used = app.admin_get("/api/v1/admin/promotions/ONE-USE").await;
    assert_eq!(used.body["remaining"], 0);
    admin_post(
        &app,
        "/api/v1/admin/promotions",
        json!({"code": "COMEBACK", "kind": "fixed", "value": 100, "usage_limit": 1}),
    )
    .await;
    let first = app.create_cart().await;
    add(&app, &first, "BOOK-1", 1).await;
    apply(&app, &first, "COMEBACK").await;
    let placed = checkout(
        &app,
        &first,
        Some("k"),
        &de_body("tok_visa", Some("letter")),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    let second = app.create_cart().await;
    add(&app, &second, "BOOK-1", 1).await;
    assert_eq!(
        apply(&app, &second, "COMEBACK").await.code(),
        "promotion_exhausted"
    );
    let placed_id = placed.json()["id"].as_str().unwrap().to_owned();
    let cancel = app
        .post_json(&format!("/api/v1/orders/{placed_id}/cancel"), json!({}))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    let back = app.admin_get("/api/v1/admin/promotions/COMEBACK").await;
    assert_eq!(
        (back.body["used"].as_u64(), back.body["remaining"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(apply(&app, &second, "COMEBACK").await.status, 200);
    app.stop().await;
}

/// Checks out `cart` on the binary at `base` with `key`; `None` if the answer was lost.
async fn binary_checkout(
    client: &reqwest::Client,
    base: &str,
    cart: &str,
    key: &str,
) -> Option<(u16, Value)> {
    let r = client
        .post(format!("{base}/api/v1/carts/{cart}/checkout"))
        .header("Idempotency-Key", key)
        .json(&crate::checkout::checkout_body("tok_visa"))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_limited_to_50_uses_discounts_exactly_50_of_300_racing_checkouts_across_kill_9() {
    use futures_util::StreamExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let flags = ["--recovery-interval-secs", "1"];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut server = start_binary(&data, &flags).await;
    server
        .stock_product(BINARY_TOKEN, "HOT-1", "Hot", 2000, 10_000)
        .await;
    let r = client
        .post(format!("{}/api/v1/admin/promotions", server.base))
        .bearer_auth(BINARY_TOKEN)
        .json(&json!({"code": "HOT50", "kind": "percent", "value": 5000, "usage_limit": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // 300 carts, each holding the code (none is used yet, so each takes it).
    let base = server.base.clone();
    let carts: Vec<String> = futures_util::stream::iter(0..300)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let cart: Value = client
                    .post(format!("{base}/api/v1/carts"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let cart = cart["id"].as_str().unwrap().to_owned();
                for (path, body) in [
                    ("items", json!({"sku": "HOT-1", "quantity": 1})),
                    ("promotions", json!({"code": "hot50"})),
                ] {
                    let r = client
                        .post(format!("{base}/api/v1/carts/{cart}/{path}"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
                cart
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    // All 300 at once; the process is killed while they run, once the first 30 have
    // been answered (so some answers arrive, some are lost, some checkouts are mid-saga).
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let race: Vec<_> = carts
        .iter()
        .map(|cart| {
            let (client, base, cart) = (client.clone(), base.clone(), cart.clone());
            let answered = answered.clone();
            tokio::spawn(async move {
                let a = binary_checkout(&client, &base, &cart, "k").await;
                if a.is_some() {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                a
            })
        })
        .collect();
    eventually(Duration::from_secs(30), || {
        let n = answered.load(std::sync::atomic::Ordering::Relaxed);
        async move { n >= 30 }
    })
    .await;
    server.kill9();
    let mut answers: Vec<Option<(u16, Value)>> = Vec::new();
    for t in race {
        answers.push(t.await.unwrap());
    }
    let lost = answers.iter().filter(|a| a.is_none()).count();
    server = start_binary(&data, &flags).await;
    // Every checkout whose answer was lost is asked again with its key.
    for (cart, answer) in carts.iter().zip(answers.iter_mut()) {
        if answer.is_none() {
            *answer = binary_checkout(&client, &server.base, cart, "k").await;
        }
    }
    let mut paid = 0;
    for (status, body) in answers.iter().map(|a| a.as_ref().expect("answered")) {
        match status {
            201 => {
                paid += 1;
                assert_eq!(body["promotion_code"], "HOT50");
                assert_eq!(body["total"], 1000, "{body}");
            }
            422 => assert_eq!(body["code"], "promotion_exhausted", "{body}"),
            other => panic!("checkout answered {other}: {body}"),
        }
    }
    assert_eq!(
        paid, 50,
        "exactly the limit is discounted ({lost} answers lost to the kill)"
    );
    eprintln!("{lost} of 300 checkout answers were lost to the kill and asked again");
    // The code's books agree, once recovery has settled every hold.
    let promo = |server: &Server| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            client
                .get(format!("{base}/api/v1/admin/promotions/HOT50"))
                .bearer_auth(BINARY_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let settled = eventually(Duration::from_secs(20), || {
        let p = promo(&server);
        async move { p.await["held"] == 0 }
    })
    .await;
    assert!(settled, "holds left: {}", promo(&server).await);
    let p = promo(&server).await;
    assert_eq!(
        (p["used"].as_u64(), p["remaining"].as_u64()),
        (Some(50), Some(0))
    );
    // And again after another kill.
    server.kill9();
    let server = start_binary(&data, &flags).await;
    let p = promo(&server).await;
    assert_eq!(
        (p["used"].as_u64(), p["held"].as_u64()),
        (Some(50), Some(0))
    );
    server.kill9();
}
