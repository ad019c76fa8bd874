//! Bad input over HTTP gets the right 4xx problem+json and changes nothing.

use serde_json::{Value, json};

use crate::helpers::*;

fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(
        r.content_type, "application/problem+json",
        "body: {}",
        r.body
    );
    assert_eq!(r.code(), code, "body: {}", r.body);
    assert_eq!(r.body["status"], status);
    assert!(
        r.body["title"].is_string() && r.body["type"].is_string() && r.body["detail"].is_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cart_requests_are_refused_and_leave_the_cart_unchanged() {
    let app = spawn_app().await;
    app.create_product("OK-1", 500, 10).await;
    let cart = app.create_cart().await;
    let items = format!("/api/v1/carts/{cart}/items");
    assert_eq!(
        app.post_json(&items, json!({"sku": "OK-1", "quantity": 2}))
            .await
            .status,
        200
    );
    let before = app.get(&format!("/api/v1/carts/{cart}")).await.body;

    let raw = |body: &'static str| {
        app.client
            .post(app.url(&items))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (raw("{not json"), 400, "invalid_request"),
        (
            raw(r#"{"sku": "OK-1", "quantity": "two"}"#),
            400,
            "invalid_request",
        ),
        (
            raw(r#"{"sku": "OK-1", "quantity": 1.5}"#),
            400,
            "invalid_request",
        ),
        (
            raw(r#"{"sku": "OK-1", "quantity": 1, "unit_price": 1}"#),
            400,
            "invalid_request",
        ),
        (raw(r#"{"sku": "OK-1"}"#), 400, "invalid_request"),
        (
            raw(r#"{"sku": "OK-1", "quantity": 99999999999999999999999}"#),
            400,
            "invalid_request",
        ),
        (
            raw(r#"{"sku": "OK-1", "quantity": -3}"#),
            422,
            "validation_failed",
        ),
        (
            raw(r#"{"sku": "OK-1", "quantity": 0}"#),
            422,
            "validation_failed",
        ),
        (
            raw(r#"{"sku": "OK-1", "quantity": 998}"#),
            422,
            "validation_failed",
        ),
        (
            raw(r#"{"sku": "NOPE-9", "quantity": 1}"#),
            404,
            "unknown_sku",
        ),
        (
            raw(r#"{"sku": "bad sku!", "quantity": 1}"#),
            422,
            "validation_failed",
        ),
        (
            app.client
                .post(app.url(&items))
                .body(r#"{"sku": "OK-1", "quantity": 1}"#),
            415,
            "unsupported_media_type",
        ),
        (
            app.client
                .post(app.url(&items))
                .header("content-type", "application/json")
                .body(format!(r#"{{"sku": "{}"}}"#, "A".repeat(1_100_000))),
            413,
            "payload_too_large",
        ),
        (
            app.client
                .put(app.url(&format!("{items}/OK-1")))
                .json(&json!({"quantity": 1000})),
            422,
            "validation_failed",
        ),
        (
            app.client
                .put(app.url(&format!("{items}/OK-1")))
                .json(&json!({"quantity": -1})),
            422,
            "validation_failed",
        ),
        (
            app.client
                .patch(app.url(&format!("/api/v1/carts/{cart}")))
                .json(&json!({"email": "not-an-email"})),
            422,
            "validation_failed",
        ),
        (
            app.client
                .patch(app.url(&format!("/api/v1/carts/{cart}")))
                .json(&json!({"email": "a@b.co", "status": "checked_out"})),
            400,
            "invalid_request",
        ),
        (
            app.client.delete(app.url(&format!("/api/v1/carts/{cart}"))),
            405,
            "method_not_allowed",
        ),
    ];
    for (req, status, code) in cases {
        let r = app.send(req).await;
        assert_problem(&r, status, code);
    }
    assert_eq!(
        app.get(&format!("/api/v1/carts/{cart}")).await.body,
        before,
        "the cart is unchanged"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_not_found() {
    let app = spawn_app().await;
    let cases = [
        "/api/v1/carts/0123456789abcdef0123456789abcdef",
        "/api/v1/carts/not-a-cart",
        "/api/v1/products/NOPE",
        "/api/v1/products/bad%20sku",
        "/api/v1/inventory/NOPE",
        "/api/v1/nothing-here",
        "/api/v1/",
    ];
    for path in cases {
        assert_problem(&app.get(path).await, 404, "not_found");
    }
    // `/` is the shop (issue 19); an unknown page is an HTML 404 (tests/api/storefront.rs).
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let r = app
        .post_json(
            "/api/v1/carts/0123456789abcdef0123456789abcdef/items",
            json!({"sku": "X", "quantity": 1}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_right_token() {
    let app = spawn_app().await;
    app.create_product("ADM-1", 100, 1).await;
    let routes: Vec<(reqwest::Method, &str, Value)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/admin/products",
            json!({"sku": "NEW-1", "name": "x", "price": 1}),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/admin/products/ADM-1",
            json!({"name": "x", "price": 1}),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/admin/products/ADM-1",
            Value::Null,
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/admin/inventory/ADM-1",
            json!({"on_hand": 99}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/inventory/ADM-1/restock",
            json!({"quantity": 5}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/products/import",
            json!([{"sku": "NEW-2", "name": "x", "price": 1}]),
        ),
        (reqwest::Method::GET, "/api/v1/admin/events", Value::Null),
        (reqwest::Method::GET, "/api/v1/admin/orders", Value::Null),
        (
            reqwest::Method::POST,
            "/api/v1/admin/orders/import",
            json!([{"id": "x", "created_at": 1, "items": [{"sku": "ADM-1", "quantity": 1}]}]),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/orders/0123456789abcdef0123456789abcdef/ship",
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/orders/0123456789abcdef0123456789abcdef/deliver",
            Value::Null,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/orders/0123456789abcdef0123456789abcdef/refund",
            Value::Null,
        ),
        (reqwest::Method::GET, "/api/v1/admin/templates", Value::Null),
        (
            reqwest::Method::GET,
            "/api/v1/admin/templates/order_confirmation",
            Value::Null,
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/admin/templates/order_confirmation",
            json!({"subject": "pwned", "text": "x", "html": "x"}),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/admin/notifications",
            Value::Null,
        ),
    ];
    for (method, path, body) in &routes {
        let req = || {
            let r = app.client.request(method.clone(), app.url(path));
            if body.is_null() { r } else { r.json(body) }
        };
        assert_problem(&app.send(req()).await, 401, "unauthorized");
        assert_problem(
            &app.send(req().bearer_auth("wrong-token")).await,
            403,
            "forbidden",
        );
        assert_problem(
            &app.send(req().header("authorization", "Basic dGVzdA=="))
                .await,
            401,
            "unauthorized",
        );
    }
    // Nothing changed.
    let p = app.get("/api/v1/products/ADM-1").await;
    assert_eq!(
        (
            p.body["name"].as_str(),
            p.body["price"].as_i64(),
            p.body["available"].as_i64()
        ),
        (Some("Product ADM-1"), Some(100), Some(1))
    );
    assert_eq!(app.get("/api/v1/products/NEW-1").await.status, 404);
    assert_eq!(app.get("/api/v1/products/NEW-2").await.status, 404);
    assert!(
        !app.engine
            .template("order_confirmation")
            .unwrap()
            .customized
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_and_ids_are_unguessable() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/api/v1/products"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/carts"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // Cart ids: 52 hex digits (96 random bits, the time, a MAC), all different; a forged
    // one — any digit changed — is no cart.
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let id = app.create_cart().await;
        assert!(id.len() == 52 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(ids.insert(id));
    }
    let id = ids.iter().next().unwrap().clone();
    assert_eq!(app.get(&format!("/api/v1/carts/{id}")).await.status, 200);
    for i in [0, 13, 30, 51] {
        let mut forged = id.clone().into_bytes();
        forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        let r = app.get(&format!("/api/v1/carts/{forged}")).await;
        assert_eq!(r.status, 404, "{forged}");
        let r = app
            .send(
                app.client
                    .post(app.url(&format!("/api/v1/carts/{forged}/items")))
                    .json(&serde_json::json!({"sku": "X", "quantity": 1})),
            )
            .await;
        assert_eq!(r.status, 404, "{forged}");
        assert_eq!(r.body["code"], "not_found", "{}", r.body);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_products_and_stock_changes_are_refused() {
    let app = spawn_app().await;
    app.create_product("INV-1", 100, 3).await;
    let post = |body: Value| {
        app.admin(app.client.post(app.url("/api/v1/admin/products")))
            .json(&body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            post(json!({"sku": "INV-1", "name": "dup", "price": 1})),
            409,
            "already_exists",
        ),
        (
            post(json!({"sku": "bad/sku", "name": "x", "price": 1})),
            422,
            "validation_failed",
        ),
        (
            post(json!({"name": "no sku", "price": 1})),
            422,
            "validation_failed",
        ),
        (
            post(json!({"sku": "N-1", "name": "x", "price": -1})),
            422,
            "validation_failed",
        ),
        (
            post(json!({"sku": "N-1", "name": "x", "price": 1, "currency": "EUR"})),
            422,
            "validation_failed",
        ),
        (
            post(json!({"sku": "N-1", "name": "", "price": 1})),
            422,
            "validation_failed",
        ),
        (
            post(json!({"sku": "N-1", "name": "x", "price": "1"})),
            400,
            "invalid_request",
        ),
        (
            post(json!({"sku": "N-1", "name": "x", "price": 1, "stock": 5})),
            400,
            "invalid_request",
        ),
        (
            app.admin(app.client.put(app.url("/api/v1/admin/products/INV-1")))
                .json(&json!({"sku": "OTHER", "name": "x", "price": 1})),
            422,
            "validation_failed",
        ),
        (
            app.admin(app.client.delete(app.url("/api/v1/admin/products/NOPE"))),
            404,
            "not_found",
        ),
        (
            app.admin(app.client.put(app.url("/api/v1/admin/inventory/INV-1")))
                .json(&json!({"on_hand": -1})),
            422,
            "validation_failed",
        ),
        (
            app.admin(app.client.put(app.url("/api/v1/admin/inventory/NOPE")))
                .json(&json!({"on_hand": 1})),
            404,
            "not_found",
        ),
        (
            app.admin(
                app.client
                    .post(app.url("/api/v1/admin/inventory/INV-1/restock")),
            )
            .json(&json!({"quantity": 0})),
            422,
            "validation_failed",
        ),
        (
            app.admin(
                app.client
                    .post(app.url("/api/v1/admin/inventory/INV-1/restock")),
            )
            .json(&json!({"quantity": 2_000_000_000i64})),
            422,
            "validation_failed",
        ),
    ];
    for (req, status, code) in cases {
        assert_problem(&app.send(req).await, status, code);
    }
    let inv = app.get("/api/v1/inventory/INV-1").await.body;
    assert_eq!(
        (inv["on_hand"].as_i64(), inv["available"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(app.get("/api/v1/products/N-1").await.status, 404);

    // Read-only fields sent back from a GET are ignored, not trusted.
    let mut fetched = app.get("/api/v1/products/INV-1").await.body;
    fetched["available"] = json!(1_000_000);
    fetched["price"] = json!(150);
    let r = app
        .send(
            app.admin(app.client.put(app.url("/api/v1/admin/products/INV-1")))
                .json(&fetched),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["price"].as_i64(), r.body["available"].as_i64()),
        (Some(150), Some(3))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_speaks_the_contract() {
    let app = spawn_app().await;
    let r = app.get("/health").await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
    assert_eq!(app.get("/ready").await.status, 200);
    app.create_product("H-1", 1999, 7).await;
    let p = app.get("/api/v1/products/H-1").await;
    for field in [
        "sku",
        "name",
        "description",
        "category",
        "price",
        "currency",
        "attributes",
        "images",
        "available",
        "created_at",
        "updated_at",
    ] {
        assert!(
            p.body.get(field).is_some(),
            "product lacks {field}: {}",
            p.body
        );
    }
    let res = app
        .client
        .post(app.url("/api/v1/carts"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let cart: Value = res.json().await.unwrap();
    let id = cart["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/carts/{id}"));
    assert!(id.len() >= 24, "ids carry at least 96 random bits");
    let r = app
        .post_json(
            &format!("/api/v1/carts/{id}/items"),
            json!({"sku": "H-1", "quantity": 2}),
        )
        .await;
    assert_eq!(r.body["items"][0]["line_total"], 3998);
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/carts/{id}/items/H-1")))
                .json(&json!({"quantity": 5})),
        )
        .await;
    assert_eq!(r.body["items"][0]["quantity"], 5);
    let r = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/carts/{id}")))
                .json(&json!({"email": "ada@example.com"})),
        )
        .await;
    assert_eq!(r.body["email"], "ada@example.com");
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/carts/{id}/items/H-1")))
                .json(&json!({"quantity": 0})),
        )
        .await;
    assert_eq!(
        (
            r.body["items"].as_array().unwrap().len(),
            r.body["total"].as_i64()
        ),
        (0, Some(0))
    );
    let r = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/carts/{id}/items/H-1"))),
        )
        .await;
    assert_eq!(r.status, 200);
    for field in [
        "id",
        "items",
        "subtotal",
        "total",
        "currency",
        "item_count",
        "created_at",
        "updated_at",
        "expires_at",
        "status",
    ] {
        assert!(
            r.body.get(field).is_some(),
            "cart lacks {field}: {}",
            r.body
        );
    }
    let r = app
        .send(
            app.admin(
                app.client
                    .post(app.url("/api/v1/admin/inventory/H-1/restock")),
            )
            .json(&json!({"quantity": 3})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"sku": "H-1", "on_hand": 10, "reserved": 0, "available": 10})
    );
    let r = app
        .send(app.admin(app.client.delete(app.url("/api/v1/admin/products/H-1"))))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.get("/api/v1/products/H-1").await.status, 404);
    // Ids are random: many carts share no prefix pattern and never repeat.
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        assert!(ids.insert(app.create_cart().await));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_store_refuses_changes_nothing() {
    let app = spawn_app().await;
    app.create_product("BIG-1", 100, 2).await;
    let before = app.get("/api/v1/products/BIG-1").await.body;
    // Every field is within its own limit, but the encoded record (~60 KB) is over the store's.
    let attributes: serde_json::Map<String, Value> = (0..60)
        .map(|i| (format!("a{i}"), json!("x".repeat(1_000))))
        .collect();
    let huge = json!({"name": "Huge", "price": 5, "attributes": attributes});
    let r = app
        .send(
            app.admin(app.client.put(app.url("/api/v1/admin/products/BIG-1")))
                .json(&huge),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(
        app.get("/api/v1/products/BIG-1").await.body,
        before,
        "the stored product is unchanged"
    );
    let mut create = huge.clone();
    create["sku"] = json!("BIG-2");
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products")))
                .json(&create),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(
        app.get("/api/v1/products/BIG-2").await.status,
        404,
        "nothing was created"
    );
    // In an import the oversized record is reported on its line and the others are written.
    let body = [json!({"sku": "OK-9", "name": "fine", "price": 1}), create]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products/import")))
                .body(body),
        )
        .await;
    assert_eq!(
        (
            r.body["imported"].as_u64(),
            r.body["failed"][0]["line"].as_u64()
        ),
        (Some(1), Some(2)),
        "{}",
        r.body
    );
    assert_eq!(app.get("/api/v1/products/BIG-2").await.status, 404);
    let events = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/events?limit=1000"))))
        .await
        .body;
    let skus: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["sku"].as_str())
        .collect();
    assert!(
        !skus.contains(&"BIG-2"),
        "no event for a write that did not happen"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(|o| o.rate_limit = Some((2.0, 3.0))).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .client
            .get(app.url("/api/v1/products/NOPE"))
            .send()
            .await
            .unwrap();
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").cloned()));
    }
    assert_eq!(
        statuses.iter().map(|s| s.0).collect::<Vec<_>>(),
        [404, 404, 404, 429, 429]
    );
    assert_eq!(statuses[3].1.as_ref().unwrap(), "1");
    let r = app.get("/api/v1/products/NOPE").await;
    assert_eq!((r.status, r.code()), (429, "too_many_requests"));
    // Health and admin routes are not shopper routes.
    assert_eq!(app.get("/health").await.status, 200);
    let admin = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/orders"))))
        .await;
    assert_eq!(admin.status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_bound_are_shed_and_health_still_answers() {
    let app = std::sync::Arc::new(spawn_app_with(|o| o.max_in_flight = 2).await);
    app.create_product("SHED-1", 100, 10).await;
    let mut carts = Vec::new();
    for _ in 0..3 {
        carts.push(crate::checkout::cart_with(&app, &[("SHED-1", 1)]).await);
    }
    // Two slow checkouts hold both slots…
    let slow: Vec<_> = carts[..2]
        .iter()
        .map(|c| {
            let (app, c) = (app.clone(), c.clone());
            tokio::spawn(async move {
                crate::checkout::checkout(
                    &app,
                    &c,
                    Some("k"),
                    &crate::checkout::checkout_body("tok_slow"),
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // …so a third request is shed at once, while /health answers.
    let shed = app.get("/api/v1/products/SHED-1").await;
    assert_eq!((shed.status, shed.code()), (503, "unavailable"));
    assert_eq!(app.get("/health").await.status, 200);
    for t in slow {
        assert_eq!(t.await.unwrap().status, 201);
    }
    assert_eq!(app.get("/api/v1/products/SHED-1").await.status, 200);
    let app = std::sync::Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}
