//! Customer accounts over HTTP: registration, sessions, the profile, addresses, the order
//! history, throttling, and that one customer can never reach another's data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const PASSWORD: &str = "correct horse battery";

fn shipping() -> Value {
    json!({"name": "Ada", "line1": "1 Orbit Way", "city": "Base", "postal_code": "00001", "country": "US"})
}

impl TestApp {
    /// Registers `email` and signs in; the session token.
    async fn customer(&self, email: &str) -> String {
        let r = self
            .post_json(
                "/api/v1/customers",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        self.sign_in(email, PASSWORD).await
    }

    async fn sign_in(&self, email: &str, password: &str) -> String {
        let r = self
            .post_json(
                "/api/v1/sessions",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// `method path` with `token` as the bearer and `body` as JSON, if any.
    async fn as_customer(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn checkout_as(&self, token: Option<&str>, cart: &str, key: &str) -> Resp {
        let mut req = self
            .client
            .post(self.url(&format!("/api/v1/carts/{cart}/checkout")))
            .header("Idempotency-Key", key)
            .json(&json!({"email": "ada@example.com", "payment_token": "tok_visa", "shipping_address": shipping()}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_sign_in_read_update_and_sign_out() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/customers",
            json!({"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["email"], "ada@example.com", "normalised");
    assert!(r.body.get("password_hash").is_none() && r.body.get("password").is_none());
    // One account per email, whatever its case; the answer says no more than that.
    let again = app
        .post_json(
            "/api/v1/customers",
            json!({"email": "ADA@example.com", "password": "another password"}),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "email_taken"));
    for bad in [
        json!({"email": "not-an-email", "password": PASSWORD}),
        json!({"email": "b@example.com", "password": "short"}),
        json!({"email": "b@example.com", "password": PASSWORD, "name": "x".repeat(101)}),
    ] {
        let r = app.post_json("/api/v1/customers", bad).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "validation_failed"),
            "{}",
            r.body
        );
    }

    let res = app
        .client
        .post(app.url("/api/v1/sessions"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session: Value = res.json().await.unwrap();
    let token = session["token"].as_str().unwrap();
    assert_eq!(token.len(), 64, "256 bits, hex");
    assert!(session["expires_at"].as_str().is_some());
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(cookie.starts_with(&format!("emporium_session={token};")));

    // The bearer token and the cookie both work.
    let me = app
        .as_customer(token, reqwest::Method::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!((me.status, me.body["name"].as_str()), (200, Some("Ada")));
    let by_cookie = app
        .send(
            app.client
                .get(app.url("/api/v1/customers/me"))
                .header("cookie", format!("theme=dark; emporium_session={token}")),
        )
        .await;
    assert_eq!(by_cookie.status, 200);
    assert_eq!(by_cookie.body["id"], me.body["id"]);

    let patched = app
        .as_customer(
            token,
            reqwest::Method::PATCH,
            "/api/v1/customers/me",
            Some(json!({"name": "Ada L."})),
        )
        .await;
    assert_eq!(patched.body["name"], "Ada L.");
    let cleared = app
        .as_customer(
            token,
            reqwest::Method::PATCH,
            "/api/v1/customers/me",
            Some(json!({"name": null})),
        )
        .await;
    assert_eq!(cleared.body["name"], Value::Null);

    let out = app
        .as_customer(
            token,
            reqwest::Method::DELETE,
            "/api/v1/sessions/current",
            None,
        )
        .await;
    assert_eq!(out.status, 204);
    let after = app
        .as_customer(token, reqwest::Method::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!((after.status, after.code()), (401, "unauthorized"));
    let anonymous = app.get("/api/v1/customers/me").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.content_type, "application/problem+json");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_email_are_indistinguishable() {
    let app = spawn_app().await;
    app.customer("ada@example.com").await;
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post_json(
                    "/api/v1/sessions",
                    json!({"email": email, "password": "wrong password"}),
                )
                .await;
            (r.status, r.body)
        }
    };
    // Four of each: under the throttle (5 per account email).
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        known.push(attempt("ada@example.com").await);
        unknown.push(attempt("nobody@example.com").await);
    }
    let strip = |b: &Value| {
        let mut b = b.clone();
        b.as_object_mut().unwrap().remove("request_id");
        b.as_object_mut().unwrap().remove("instance");
        b
    };
    for ((s1, b1), (s2, b2)) in known.iter().zip(&unknown) {
        assert_eq!((*s1, *s2), (401, 401));
        assert_eq!(strip(b1), strip(b2), "the same body");
        assert_eq!(b1["code"], "invalid_credentials");
    }
    // The same work either way, which a stopwatch on a shared machine cannot show reliably:
    // `credentials::tests::an_unknown_email_costs_the_same_verification_as_a_wrong_password`
    // checks it by the Argon2 verifications run and the cost they run at.
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_account_whether_or_not_it_exists() {
    let clock = emporium::Clock::manual_from_now();
    let app = spawn_app_configured(|c| c.clock = clock.clone(), |_| {}).await;
    app.customer("ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            let r = app
                .post_json(
                    "/api/v1/sessions",
                    json!({"email": email, "password": "guess"}),
                )
                .await;
            assert_eq!(r.status, 401);
        }
        // The sixth is refused before any password is checked, even the right one.
        let res = app
            .client
            .post(app.url("/api/v1/sessions"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        let wait: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&wait), "{wait}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "too_many_login_attempts");
    }
    // Other accounts are not affected; the window passes.
    app.customer("bob@example.com").await;
    clock.advance(Duration::from_secs(15 * 60 + 1));
    app.sign_in("ada@example.com", PASSWORD).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_saved_replaced_removed_and_defaults_follow() {
    let app = spawn_app().await;
    let token = app.customer("ada@example.com").await;
    let add = app
        .as_customer(
            &token,
            reqwest::Method::POST,
            "/api/v1/customers/me/addresses",
            Some(shipping()),
        )
        .await;
    assert_eq!(add.status, 201, "{}", add.body);
    let id = add.body["id"].as_str().unwrap().to_owned();
    assert_eq!(add.body["city"], "Base");
    let me = app
        .as_customer(
            &token,
            reqwest::Method::PATCH,
            "/api/v1/customers/me",
            Some(json!({"default_shipping_address_id": id, "default_billing_address_id": id})),
        )
        .await;
    assert_eq!(me.body["default_shipping_address_id"], id.as_str());
    let mut moved = shipping();
    moved["city"] = json!("Tranquility");
    let put = app
        .as_customer(
            &token,
            reqwest::Method::PUT,
            &format!("/api/v1/customers/me/addresses/{id}"),
            Some(moved),
        )
        .await;
    assert_eq!(
        (put.status, put.body["city"].as_str()),
        (200, Some("Tranquility"))
    );
    let mut bad = shipping();
    bad["line1"] = json!("");
    let refused = app
        .as_customer(
            &token,
            reqwest::Method::POST,
            "/api/v1/customers/me/addresses",
            Some(bad),
        )
        .await;
    assert_eq!(refused.status, 422);
    let unknown_default = app
        .as_customer(
            &token,
            reqwest::Method::PATCH,
            "/api/v1/customers/me",
            Some(json!({"default_billing_address_id": "nope"})),
        )
        .await;
    assert_eq!(unknown_default.status, 404);
    let del = app
        .as_customer(
            &token,
            reqwest::Method::DELETE,
            &format!("/api/v1/customers/me/addresses/{id}"),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let me = app
        .as_customer(&token, reqwest::Method::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!(me.body["addresses"], json!([]));
    assert_eq!(me.body["default_shipping_address_id"], Value::Null);
    let list = app
        .as_customer(
            &token,
            reqwest::Method::GET,
            "/api/v1/customers/me/addresses",
            None,
        )
        .await;
    assert_eq!(list.body["items"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_checkout_is_in_the_history_and_a_guest_one_is_not() {
    let app = spawn_app().await;
    app.create_product("HIST-1", 1200, 10).await;
    let token = app.customer("ada@example.com").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        let cart = app.cart_with("HIST-1", 1).await;
        let r = app.checkout_as(Some(&token), &cart, &format!("k{i}")).await;
        assert_eq!(r.status, 201, "{}", r.body);
        mine.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // A guest order with the account's email is not the account's (not without a
    // verified email, which this account does not have).
    let guest = app.cart_with("HIST-1", 1).await;
    let r = app.checkout_as(None, &guest, "g").await;
    assert_eq!(r.status, 201);

    // Newest first, two to a page.
    let page = app
        .as_customer(
            &token,
            reqwest::Method::GET,
            "/api/v1/customers/me/orders?limit=2",
            None,
        )
        .await;
    let ids = |p: &Resp| -> Vec<String> {
        p.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), [mine[2].clone(), mine[1].clone()]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .as_customer(
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/customers/me/orders?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(ids(&rest), [mine[0].clone()]);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    let bad = app
        .as_customer(
            &token,
            reqwest::Method::GET,
            "/api/v1/customers/me/orders?cursor=zz",
            None,
        )
        .await;
    assert_eq!(bad.status, 400);

    // The admin finds the account by email and lists its orders.
    let found = app
        .admin_get("/api/v1/admin/customers?email=ADA@example.com")
        .await;
    let customer_id = found.body["items"][0]["id"].as_str().unwrap().to_owned();
    let orders = app
        .admin_get(&format!("/api/v1/admin/customers/{customer_id}/orders"))
        .await;
    assert_eq!(orders.body["items"].as_array().unwrap().len(), 3);
    let none = app
        .admin_get("/api/v1/admin/customers?email=nobody@example.com")
        .await;
    assert_eq!(none.body["items"], json!([]));
    let no_admin = app
        .get("/api/v1/admin/customers?email=ada@example.com")
        .await;
    assert_eq!(no_admin.status, 401);

    // Every change went to the event log, naming the account by id only.
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"CustomerRegistered") && kinds.contains(&"CustomerSignedIn"));
    for e in events.body["items"].as_array().unwrap() {
        if e["type"].as_str().unwrap().starts_with("Customer") {
            assert!(!e["data"].to_string().contains('@'), "{e}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_customer_reaches_another_customers_data_by_any_route() {
    let clock = emporium::Clock::manual_from_now();
    let app = spawn_app_configured(|c| c.clock = clock.clone(), |_| {}).await;
    app.create_product("BOLA-1", 500, 10).await;
    let a = app.customer("a@example.com").await;
    let b = app.customer("b@example.com").await;

    // B's things: an address, a cart attached at sign-in, an order.
    let b_address = app
        .as_customer(
            &b,
            reqwest::Method::POST,
            "/api/v1/customers/me/addresses",
            Some(shipping()),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_cart = app.cart_with("BOLA-1", 1).await;
    let attached = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "b@example.com", "password": PASSWORD, "cart_id": b_cart}),
        )
        .await;
    assert_eq!(attached.status, 201, "{}", attached.body);
    assert_eq!(attached.body["customer"]["cart_id"], b_cart.as_str());
    let b_order_cart = app.cart_with("BOLA-1", 1).await;
    let b_order = app.checkout_as(Some(&b), &b_order_cart, "b1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    use reqwest::Method as M;
    let item = json!({"sku": "BOLA-1", "quantity": 1});
    let attempts: Vec<(M, String, Option<Value>)> = vec![
        (
            M::PUT,
            format!("/api/v1/customers/me/addresses/{b_address}"),
            Some(shipping()),
        ),
        (
            M::DELETE,
            format!("/api/v1/customers/me/addresses/{b_address}"),
            None,
        ),
        (
            M::PATCH,
            "/api/v1/customers/me".into(),
            Some(json!({"default_shipping_address_id": b_address})),
        ),
        (M::GET, format!("/api/v1/carts/{b_cart}"), None),
        (
            M::GET,
            format!("/api/v1/carts/{b_cart}/recommendations"),
            None,
        ),
        (
            M::PATCH,
            format!("/api/v1/carts/{b_cart}"),
            Some(json!({"email": "x@example.com"})),
        ),
        (
            M::POST,
            format!("/api/v1/carts/{b_cart}/items"),
            Some(item.clone()),
        ),
        (
            M::PUT,
            format!("/api/v1/carts/{b_cart}/items/BOLA-1"),
            Some(json!({"quantity": 3})),
        ),
        (
            M::DELETE,
            format!("/api/v1/carts/{b_cart}/items/BOLA-1"),
            None,
        ),
        (M::GET, format!("/api/v1/orders/{b_order}"), None),
        (M::POST, format!("/api/v1/orders/{b_order}/cancel"), None),
    ];
    for (method, path, body) in &attempts {
        let r = app
            .as_customer(&a, method.clone(), path, body.clone())
            .await;
        assert_eq!(r.status, 404, "{method} {path} with A's token: {}", r.body);
        // Without any session, B's cart and order are not reachable either.
        if !path.starts_with("/api/v1/customers") {
            let mut req = app.client.request(method.clone(), app.url(path));
            if let Some(b) = body {
                req = req.json(b);
            }
            assert_eq!(
                app.send(req).await.status,
                404,
                "{method} {path} anonymously"
            );
        }
    }
    let checkout = app.checkout_as(Some(&a), &b_cart, "steal").await;
    assert_eq!(checkout.status, 404);
    // A attaching B's cart at sign-in is refused too.
    let grab = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "a@example.com", "password": PASSWORD, "cart_id": b_cart}),
        )
        .await;
    assert_eq!(grab.status, 404);
    // A's own reads show only A's.
    let a_orders = app
        .as_customer(&a, M::GET, "/api/v1/customers/me/orders", None)
        .await;
    assert_eq!(a_orders.body["items"], json!([]));
    let a_me = app
        .as_customer(&a, M::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!(a_me.body["email"], "a@example.com");

    // Nothing of B's changed; B still reaches all of it.
    let cart = app
        .as_customer(&b, M::GET, &format!("/api/v1/carts/{b_cart}"), None)
        .await;
    assert_eq!(cart.status, 200);
    assert_eq!(cart.body["items"][0]["quantity"], 1);
    let order = app
        .as_customer(&b, M::GET, &format!("/api/v1/orders/{b_order}"), None)
        .await;
    assert_eq!(order.body["status"], "paid");
    let me = app
        .as_customer(&b, M::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!(me.body["addresses"].as_array().unwrap().len(), 1);
    assert_eq!(me.body["default_shipping_address_id"], Value::Null);

    // A token that is malformed, unknown, or has lapsed is 401 on every route that takes one.
    for token in ["nonsense", &"0".repeat(64)] {
        let r = app
            .as_customer(token, M::GET, &format!("/api/v1/carts/{b_cart}"), None)
            .await;
        assert_eq!(r.status, 401);
    }
    clock.advance(Duration::from_secs(15 * 24 * 3600));
    for path in [
        "/api/v1/customers/me".to_owned(),
        format!("/api/v1/orders/{b_order}"),
    ] {
        let r = app.as_customer(&b, M::GET, &path, None).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_slides_while_used_and_lapses_when_idle() {
    let clock = emporium::Clock::manual_from_now();
    let app = spawn_app_configured(|c| c.clock = clock.clone(), |_| {}).await;
    let token = app.customer("ada@example.com").await;
    // Used every ten days, a fourteen-day session lives on.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(10 * 24 * 3600));
        let r = app
            .as_customer(&token, reqwest::Method::GET, "/api/v1/customers/me", None)
            .await;
        assert_eq!(r.status, 200);
    }
    // Idle past its expiry, it is gone.
    clock.advance(Duration::from_secs(14 * 24 * 3600 + 1));
    let r = app
        .as_customer(&token, reqwest::Method::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!(r.status, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_registration_survives_kill_9_and_no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_binary(&data, &[]).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);
    let password = "canary-password-7f3a9c";
    let r = client
        .post(url("/api/v1/customers"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = client
        .post(url("/api/v1/sessions"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    // The token travels as a header and as a cookie; both are used.
    let me = client
        .get(url("/api/v1/customers/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me = client
        .get(url("/api/v1/customers/me"))
        .header("cookie", format!("emporium_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    server.kill9();

    let server = start_binary(&data, &[]).await;
    let r = client
        .post(format!("{}/api/v1/sessions", server.base))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the account is there after kill -9");
    let me = client
        .get(format!("{}/api/v1/customers/me", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "and so is the session");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(server.terminate().success());
    let first_log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    let logs = format!("{log}{first_log}");
    assert!(
        logs.contains("/api/v1/customers/me"),
        "the requests were logged"
    );
    for secret in [token.as_str(), password] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    // Nor is the token in the store: only its digest.
    let store = std::fs::read_dir(data.join("store"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap_or_default())
        .collect::<Vec<_>>();
    for bytes in store {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is stored"
        );
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes())
        );
    }
}

/// The mailed token in a message: `{32 hex}.{64 hex}`.
fn token_in(mail: &str) -> String {
    let text = crate::notify::unfold(mail);
    let bytes = text.as_bytes();
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (0..bytes.len().saturating_sub(97))
        .find(|&i| {
            bytes[i..i + 32].iter().all(hex)
                && bytes[i + 32] == b'.'
                && bytes[i + 33..i + 97].iter().all(hex)
                && (i == 0 || !hex(&bytes[i - 1]))
        })
        .map(|i| text[i..i + 97].to_owned())
        .expect("a token in the mail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_is_mailed_works_once_and_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let smtp = crate::notify::Smtp::start(port, dir.path().join("maildir")).await;
    let clock = emporium::Clock::manual_from_now();
    let app = spawn_app_configured(
        |c| {
            c.clock = clock.clone();
            c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        },
        |_| {},
    )
    .await;
    let old_session = app.customer("ada@example.com").await;
    // Known or not, the answer is the same.
    for email in ["ada@example.com", "nobody@example.com", "not an email"] {
        let r = app
            .post_json("/api/v1/customers/password-reset", json!({"email": email}))
            .await;
        assert_eq!(r.status, 202, "{email}");
    }
    let mail = {
        let mut found = Vec::new();
        assert!(
            eventually(Duration::from_secs(15), || {
                found = smtp.received();
                let done = !found.is_empty();
                async move { done }
            })
            .await,
            "the reset mail arrived"
        );
        found.remove(0)
    };
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    let token = token_in(&mail);
    // The event log has a nonce, never the token.
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    assert!(events.body.to_string().contains("PasswordResetRequested"));
    assert!(!events.body.to_string().contains(&token));

    let confirm = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/customers/password-reset/confirm",
                json!({"token": token, "password": password}),
            )
            .await
        }
    };
    let short = confirm(token.clone(), "short").await;
    assert_eq!(
        short.status, 422,
        "a bad password does not use the token up"
    );
    let done = confirm(token.clone(), "a brand new password").await;
    assert_eq!(done.status, 204, "{}", done.body);
    // Once only; the old session and the old password are gone.
    let again = confirm(token.clone(), "yet another password").await;
    assert_eq!((again.status, again.code()), (422, "validation_failed"));
    let me = app
        .as_customer(
            &old_session,
            reqwest::Method::GET,
            "/api/v1/customers/me",
            None,
        )
        .await;
    assert_eq!(me.status, 401);
    let old = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status, 401);
    app.sign_in("ada@example.com", "a brand new password").await;

    // A token older than an hour does not work.
    clock.advance(Duration::from_secs(120));
    let r = app
        .post_json(
            "/api/v1/customers/password-reset",
            json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let mut found = Vec::new();
    assert!(
        eventually(Duration::from_secs(15), || {
            found = smtp.received();
            let done = found.len() >= 2;
            async move { done }
        })
        .await
    );
    let second = found
        .iter()
        .map(|m| token_in(m))
        .find(|t| *t != token)
        .unwrap();
    clock.advance(Duration::from_secs(3601));
    let late = confirm(second, "too late password").await;
    assert_eq!(late.status, 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_email_brings_its_guest_orders_into_the_history_and_nothing_else() {
    let app = spawn_app().await;
    app.create_product("VER-1", 700, 10).await;
    let order = |token: Option<String>, key: &'static str| {
        let app = &app;
        async move {
            let cart = app.cart_with("VER-1", 1).await;
            let r = app.checkout_as(token.as_deref(), &cart, key).await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    // Orders placed with ada@example.com: one as a guest, one by another account.
    let guest = order(None, "g").await;
    let bob = app.customer("bob@example.com").await;
    let bobs = order(Some(bob.clone()), "b").await;
    let ada = app.customer("ada@example.com").await;
    let history = |token: String| {
        let app = &app;
        async move {
            let r = app
                .as_customer(
                    &token,
                    reqwest::Method::GET,
                    "/api/v1/customers/me/orders",
                    None,
                )
                .await;
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(history(ada.clone()).await.is_empty(), "not by email alone");

    let asked = app
        .as_customer(
            &ada,
            reqwest::Method::POST,
            "/api/v1/customers/me/verify",
            Some(json!({})),
        )
        .await;
    assert_eq!(asked.status, 202);
    let outbox = app._dir.path().join("outbox");
    let mail = crate::notify::wait_for(&outbox, "email_verification", 1).await;
    let token = token_in(&mail[0].1);
    // Bob cannot use Ada's token.
    let stolen = app
        .as_customer(
            &bob,
            reqwest::Method::POST,
            "/api/v1/customers/me/verify",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(stolen.status, 422);
    let verified = app
        .as_customer(
            &ada,
            reqwest::Method::POST,
            "/api/v1/customers/me/verify",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["email_verified"], true);
    let own = order(Some(ada.clone()), "a").await;
    // Her own order and the guest order with her email; never Bob's.
    assert_eq!(history(ada.clone()).await, [own, guest]);
    assert_eq!(history(bob).await, [bobs]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_a_cart_attaches_it_and_merges_the_accounts_open_cart() {
    let app = spawn_app().await;
    app.create_product("MRG-X", 100, 50).await;
    app.create_product("MRG-Y", 100, 50).await;
    app.customer("ada@example.com").await;
    let add = |cart: String, sku: &'static str, quantity: i64| {
        let app = &app;
        async move {
            let r = app
                .post_json(
                    &format!("/api/v1/carts/{cart}/items"),
                    json!({"sku": sku, "quantity": quantity}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    let first = app.create_cart().await;
    add(first.clone(), "MRG-X", 2).await;
    let s = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "ada@example.com", "password": PASSWORD, "cart_id": first}),
        )
        .await;
    assert_eq!(s.body["customer"]["cart_id"], first.as_str());
    // Later, on another device, as a guest: one X and three Y; then she signs in.
    let second = app.create_cart().await;
    add(second.clone(), "MRG-X", 1).await;
    add(second.clone(), "MRG-Y", 3).await;
    let s = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "ada@example.com", "password": PASSWORD, "cart_id": second}),
        )
        .await;
    assert_eq!(s.status, 201, "{}", s.body);
    assert_eq!(s.body["customer"]["cart_id"], second.as_str());
    let token = s.body["token"].as_str().unwrap();
    let cart = app
        .as_customer(
            token,
            reqwest::Method::GET,
            &format!("/api/v1/carts/{second}"),
            None,
        )
        .await;
    let quantities: std::collections::BTreeMap<String, i64> = cart.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        quantities,
        [("MRG-X".to_owned(), 2), ("MRG-Y".to_owned(), 3)].into(),
        "the larger quantity per SKU"
    );
    // The attached cart is hers now: a guest holding its id no longer reaches it.
    assert_eq!(
        app.get(&format!("/api/v1/carts/{second}")).await.status,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_everything_and_erasure_keeps_only_what_the_books_need() {
    let app = spawn_app().await;
    app.create_product("ERA-1", 1500, 10).await;
    let token = app.customer("ada@example.com").await;
    app.as_customer(
        &token,
        reqwest::Method::POST,
        "/api/v1/customers/me/addresses",
        Some(shipping()),
    )
    .await;
    let cart = app.cart_with("ERA-1", 2).await;
    let order = app.checkout_as(Some(&token), &cart, "e").await;
    assert_eq!(order.status, 201);
    let order_id = order.body["id"].as_str().unwrap().to_owned();
    crate::notify::wait_for(&app._dir.path().join("outbox"), "order_confirmation", 1).await;

    let export = app
        .as_customer(
            &token,
            reqwest::Method::GET,
            "/api/v1/customers/me/export",
            None,
        )
        .await;
    assert_eq!(export.status, 200);
    let e = &export.body;
    assert_eq!(e["customer"]["email"], "ada@example.com");
    assert_eq!(e["customer"]["addresses"].as_array().unwrap().len(), 1);
    assert_eq!(e["orders"][0]["id"], order_id.as_str());
    assert_eq!(e["sessions"].as_array().unwrap().len(), 1);
    assert!(
        !export.body.to_string().contains(&token),
        "no token in the export"
    );
    assert!(
        !export.body.to_string().contains("argon2"),
        "no password hash"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let e = app
                .as_customer(
                    &token,
                    reqwest::Method::GET,
                    "/api/v1/customers/me/export",
                    None,
                )
                .await;
            e.body["notifications"]
                .as_array()
                .is_some_and(|n| n.iter().any(|m| m["template"] == "order_confirmation"))
        })
        .await,
        "the receipt is in the export"
    );

    let erased = app
        .as_customer(
            &token,
            reqwest::Method::DELETE,
            "/api/v1/customers/me",
            None,
        )
        .await;
    assert_eq!(erased.status, 204);
    let me = app
        .as_customer(&token, reqwest::Method::GET, "/api/v1/customers/me", None)
        .await;
    assert_eq!(me.status, 401);
    // The order keeps its lines and total; its email and address are gone.
    let orders = app.admin_get("/api/v1/admin/orders").await;
    let o = orders.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (o["total"].as_i64(), o["status"].as_str()),
        (Some(3000), Some("paid"))
    );
    assert_eq!(o["email"], "erased@erased.invalid");
    assert_eq!(o["shipping_address"]["line1"], "(erased)");
    assert!(!o.to_string().contains("Orbit Way"));
    // The account is gone from the admin's lookup, and the email is free again.
    let found = app
        .admin_get("/api/v1/admin/customers?email=ada@example.com")
        .await;
    assert_eq!(found.body["items"], json!([]));
    let again = app
        .post_json(
            "/api/v1/customers",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status, 201);
    let events = app.admin_get("/api/v1/admin/events?limit=1000").await;
    assert!(events.body.to_string().contains("CustomerErased"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_cookies_drop_only_the_secure_attribute() {
    let app = spawn_app_with(|h| h.secure_cookies = false).await;
    app.customer("ada@example.com").await;
    let res = app
        .client
        .post(app.url("/api/v1/sessions"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Signing out clears it.
    let token: Value = res.json().await.unwrap();
    let out = app
        .client
        .delete(app.url("/api/v1/sessions/current"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("emporium_session=;") && cleared.contains("Max-Age=0"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_with_accounts_shuts_down_cleanly_and_reopens_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(dir.path(), |_| {}).await;
    engine
        .register("ada@example.com", PASSWORD, Some("Ada"))
        .await
        .unwrap();
    let signed = engine
        .sign_in("ada@example.com", PASSWORD, None, None)
        .await
        .unwrap();
    // Shutdown stops the customer and registry actors too, releasing the store.
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = open_engine(dir.path(), |_| {}).await;
    let auth = engine.authenticate(&signed.token).await.unwrap();
    assert_eq!(
        engine.customer(&auth).await.unwrap().name.as_deref(),
        Some("Ada")
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_from_one_client_are_throttled_across_emails() {
    let app = spawn_app_configured(|c| c.login_limits.per_client = 3, |_| {}).await;
    app.customer("ada@example.com").await;
    // Three guesses at three different emails, all from 127.0.0.1 …
    for i in 0..3 {
        let r = app
            .post_json(
                "/api/v1/sessions",
                json!({"email": format!("guess{i}@example.com"), "password": "guess"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // … and this client is refused, even for another account with its right password.
    let r = app
        .post_json(
            "/api/v1/sessions",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "too_many_login_attempts"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_shoppers_own_products_rank_first_among_those_bought_with_one() {
    let app = spawn_app().await;
    let partners: Vec<String> = (1..=12).map(|i| format!("PART-{i}")).collect();
    for sku in partners.iter().map(String::as_str).chain(["QUERY", "MINE"]) {
        app.create_product(sku, 500, 10).await;
    }
    // Every partner was bought with QUERY in three orders, MINE in one.
    let mut lines = Vec::new();
    for (i, p) in partners.iter().enumerate() {
        for k in 0..3 {
            lines.push(format!(
                r#"{{"id": "h{i}-{k}", "created_at": "2011-05-01T10:00:00Z", "items": [{{"sku": "QUERY", "quantity": 1}}, {{"sku": "{p}", "quantity": 1}}]}}"#
            ));
        }
    }
    lines.push(r#"{"id": "m", "created_at": "2011-05-01T10:00:00Z", "items": [{"sku": "QUERY", "quantity": 1}, {"sku": "MINE", "quantity": 1}]}"#.into());
    let r = app.import_orders(&lines.join("\n")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Ada bought MINE before (on its own); Bob has bought nothing.
    let ada = app.customer("ada@example.com").await;
    let cart = app.cart_with("MINE", 1).await;
    assert_eq!(app.checkout_as(Some(&ada), &cart, "k").await.status, 201);
    let bob = app.customer("bob@example.com").await;

    let path = "/api/v1/products/QUERY/recommendations?limit=10";
    let skus = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    // A guest: the ten partners bought with it most; MINE is not among them.
    let guest = recommendations_as(&app, None, path).await;
    assert_eq!(guest.0, 200, "{}", guest.3);
    assert_eq!(skus(&guest.3).len(), 10);
    assert!(!skus(&guest.3).contains(&"MINE".to_owned()), "{}", guest.3);
    assert!(guest.1.starts_with("public"), "{}", guest.1);
    assert!(guest.2.contains("Authorization"), "{}", guest.2);
    // Ada: what she bought before comes first; the answer is hers alone.
    let hers = recommendations_as(&app, Some(&ada), path).await;
    assert_eq!(hers.0, 200, "{}", hers.3);
    assert_eq!(skus(&hers.3)[0], "MINE", "{}", hers.3);
    assert_eq!(hers.3["strategy"], "bought_together");
    assert_eq!(hers.1, "private, no-store");
    // Bob, with no orders, sees what a guest sees.
    let his = recommendations_as(&app, Some(&bob), path).await;
    assert_eq!(skus(&his.3), skus(&guest.3));
    // A session that is sent must be live.
    let stale = recommendations_as(&app, Some("not-a-session"), path).await;
    assert_eq!(stale.0, 401, "{}", stale.3);
    app.stop().await;
}

/// `GET path` as `token`'s customer (or a guest): status, `Cache-Control`, `Vary`, body.
async fn recommendations_as(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
) -> (u16, String, String, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache, vary) = (header("cache-control"), header("vary"));
    let status = r.status().as_u16();
    (status, cache, vary, r.json().await.unwrap())
}
