//! Webhooks against a real HTTP receiver on loopback (a small axum server in the test)
//! that checks every delivery's Standard Webhooks signature and records the order events
//! arrive in: 1,000 events across 3 endpoints; an endpoint down, failing, resumed; a
//! replay; a wrong secret caught, then a rotation; SSRF refusals; and `kill -9` of the
//! real binary in the middle of a delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// What one receiving path has seen.
#[derive(Default)]
struct Mailbox {
    /// The secret it verifies with (`None`: answers 500).
    secret: Option<String>,
    /// Answers 503 to everything.
    down: bool,
    /// Waits this long before answering.
    delay: Duration,
    /// Sequence numbers of the verified deliveries, in arrival order.
    seqs: Vec<u64>,
    /// Deliveries whose signature did not verify.
    bad_signatures: usize,
    /// Requests while down.
    refused: usize,
}

/// The receiver: `POST /{name}` on loopback, one mailbox per name.
#[derive(Clone, Default)]
struct Receiver {
    boxes: Arc<Mutex<HashMap<String, Mailbox>>>,
    base: String,
}

async fn receive(
    State(r): State<Receiver>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (secret, down, delay) = {
        let mut boxes = r.boxes.lock().unwrap();
        let b = boxes.entry(name.clone()).or_default();
        (b.secret.clone(), b.down, b.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut boxes = r.boxes.lock().unwrap();
    let b = boxes.get_mut(&name).unwrap();
    if down {
        b.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Some(secret) = secret else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    if standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&body, &headers)
        .is_err()
    {
        b.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    let seq = v["seq"].as_u64().unwrap();
    // The stable id is the header, the body's id, and derived from the sequence number.
    assert_eq!(headers["webhook-id"], format!("evt_{seq}").as_str());
    assert_eq!(v["id"], format!("evt_{seq}"));
    assert!(v["type"].is_string() && v["timestamp"].is_string() && v["data"].is_object());
    b.seqs.push(seq);
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let r = Receiver {
            boxes: Default::default(),
            base,
        };
        let app = axum::Router::new()
            .route("/{name}", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Mailbox) -> T) -> T {
        f(self
            .boxes
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default())
    }

    fn seqs(&self, name: &str) -> Vec<u64> {
        self.with(name, |b| b.seqs.clone())
    }
}

/// An app that may deliver to loopback, retrying quickly.
async fn webhook_app(retry_period: Duration) -> TestApp {
    spawn_app_configured(
        |c| {
            c.webhooks.allow_loopback = true;
            c.webhooks.retry_base = Duration::from_millis(20);
            c.webhooks.retry_period = retry_period;
        },
        |_| {},
    )
    .await
}

/// Creates an endpoint; its id and secret.
async fn endpoint(app: &TestApp, url: &str, types: Value) -> (String, String) {
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/webhooks")))
                .json(&json!({"url": url, "event_types": types, "description": "a test receiver"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

/// Imports `n` products `{prefix}-{i}` in one call: `n` `ProductChanged` events.
async fn import(app: &TestApp, prefix: &str, n: usize) {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"sku": format!("{prefix}-{i}"), "name": format!("Thing {i}"), "price": 100 + i}))
        .collect();
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/products/import")))
                .json(&items),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// The sequence numbers of the log's events (of `kind`, if given), in order.
async fn logged(app: &TestApp, kind: Option<&str>) -> Vec<u64> {
    let (mut out, mut after) = (Vec::new(), 0);
    loop {
        let (events, next) = app.engine.events(after, 1000).await.unwrap();
        out.extend(
            events
                .iter()
                .filter(|e| kind.is_none_or(|k| e.event.kind() == k))
                .map(|e| e.seq),
        );
        match next {
            Some(n) => after = n,
            None => return out,
        }
    }
}

async fn wait_for(r: &Receiver, name: &str, want: &[u64]) {
    let ok = eventually(Duration::from_secs(60), || async {
        r.seqs(name).len() >= want.len()
    })
    .await;
    assert!(
        ok,
        "{name}: {} of {} delivered",
        r.seqs(name).len(),
        want.len()
    );
}

#[tokio::test]
async fn a_thousand_events_reach_three_endpoints_signed_and_in_log_order() {
    let app = webhook_app(Duration::from_secs(3600)).await;
    let r = Receiver::start().await;
    let mut ids = Vec::new();
    for (name, types) in [
        ("all", json!(["*"])),
        ("also-all", json!(["*"])),
        ("stock", json!(["StockChanged"])),
    ] {
        let (id, secret) = endpoint(&app, &r.url(name), types).await;
        r.with(name, |b| b.secret = Some(secret));
        ids.push(id);
    }
    // 500 products, then stock for each: 1,000 events of two types.
    import(&app, "W", 500).await;
    for i in 0..500 {
        app.set_on_hand(&format!("W-{i}"), 5).await;
    }
    let all = logged(&app, None).await;
    let stock = logged(&app, Some("StockChanged")).await;
    assert_eq!((all.len(), stock.len()), (1000, 500));
    wait_for(&r, "all", &all).await;
    wait_for(&r, "also-all", &all).await;
    wait_for(&r, "stock", &stock).await;
    // Exactly the log, in its order, with no duplicate and every signature good.
    assert_eq!(r.seqs("all"), all);
    assert_eq!(r.seqs("also-all"), all);
    assert_eq!(r.seqs("stock"), stock);
    for name in ["all", "also-all", "stock"] {
        assert_eq!(r.with(name, |b| b.bad_signatures), 0);
    }
    // The admin sees each endpoint caught up, and its attempts, newest first, by page.
    let end = *all.last().unwrap();
    let ok = eventually(Duration::from_secs(10), || async {
        let e = app
            .admin_get(&format!("/api/v1/admin/webhooks/{}", ids[2]))
            .await;
        e.body["delivered_through"] == json!(end)
    })
    .await;
    assert!(
        ok,
        "the StockChanged endpoint passes over the events after its last one"
    );
    let list = app.admin_get("/api/v1/admin/webhooks").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3);
    assert!(
        list.body["items"][0].get("secret").is_none(),
        "a secret is shown once"
    );
    let page = app
        .admin_get(&format!(
            "/api/v1/admin/webhooks/{}/deliveries?limit=100",
            ids[0]
        ))
        .await;
    assert_eq!(page.status, 200);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert_eq!(items[0]["seq"], json!(end));
    assert_eq!(items[0]["outcome"], "delivered");
    assert_eq!(items[0]["status_code"], 204);
    assert!(items[0]["latency_ms"].is_u64());
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let older = app
        .admin_get(&format!(
            "/api/v1/admin/webhooks/{}/deliveries?limit=100&cursor={cursor}",
            ids[0]
        ))
        .await;
    assert_eq!(older.body["items"][0]["seq"], json!(all[all.len() - 101]));
    // Metrics: deliveries by endpoint and outcome, lag per endpoint.
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "emporium_webhook_deliveries_total{{endpoint=\"{}\",outcome=\"delivered\"}} 1000",
            ids[0]
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "emporium_webhook_lag_events{{endpoint=\"{}\"}} 0",
        ids[1]
    )));
    // A replay from a sequence number delivers that tail again, in order.
    let from = all[700];
    let replay = app
        .send(
            app.admin(
                app.client
                    .post(app.url(&format!("/api/v1/admin/webhooks/{}/replay", ids[0]))),
            )
            .json(&json!({"after_seq": from})),
        )
        .await;
    assert_eq!(replay.status, 202, "{:?}", replay.body);
    let tail: Vec<u64> = all.iter().copied().filter(|&s| s > from).collect();
    let want: Vec<u64> = all.iter().chain(tail.iter()).copied().collect();
    wait_for(&r, "all", &want).await;
    assert_eq!(r.seqs("all"), want);
    // Past the log's end is refused.
    let r2 = app
        .send(
            app.admin(
                app.client
                    .post(app.url(&format!("/api/v1/admin/webhooks/{}/replay", ids[0]))),
            )
            .json(&json!({"after_seq": end + 10})),
        )
        .await;
    assert_eq!(r2.status, 422);
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_that_is_down_fails_then_resumes_in_order_without_holding_up_another() {
    let app = webhook_app(Duration::from_millis(800)).await;
    let r = Receiver::start().await;
    let (down_id, s1) = endpoint(&app, &r.url("down"), json!(["*"])).await;
    let (_, s2) = endpoint(&app, &r.url("up"), json!(["*"])).await;
    r.with("down", |b| {
        b.secret = Some(s1);
        b.down = true;
    });
    r.with("up", |b| b.secret = Some(s2));
    import(&app, "D", 20).await;
    let all = logged(&app, None).await;
    // The healthy endpoint gets everything while the other one is down.
    wait_for(&r, "up", &all).await;
    assert_eq!(r.seqs("up"), all);
    // The down one retries the first event (with backoff), then is marked failing.
    let path = format!("/api/v1/admin/webhooks/{down_id}");
    let failing = eventually(Duration::from_secs(20), || async {
        app.admin_get(&path).await.body["status"] == "failing"
    })
    .await;
    assert!(failing);
    let e = app.admin_get(&path).await.body;
    assert_eq!(e["retrying"]["seq"], json!(all[0]));
    assert_eq!(e["retrying"]["last_error"], "HTTP 503");
    assert!(e["failing_since"].is_string());
    let refused = r.with("down", |b| b.refused);
    assert!(
        refused >= 3,
        "retried before giving up ({refused} attempts)"
    );
    let attempts = app.admin_get(&format!("{path}/deliveries")).await.body;
    assert_eq!(attempts["items"][0]["status_code"], 503);
    assert_eq!(attempts["items"][0]["outcome"], "failed");
    // Back up: a failing endpoint waits for the admin.
    r.with("down", |b| b.down = false);
    import(&app, "E", 5).await;
    let all = logged(&app, None).await;
    wait_for(&r, "up", &all).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(r.seqs("down").is_empty(), "failing: nothing delivered");
    let resumed = app
        .send(app.admin(app.client.post(app.url(&format!("{path}/resume")))))
        .await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body["status"], "active");
    // It catches up, in order, from the event it failed on.
    wait_for(&r, "down", &all).await;
    assert_eq!(r.seqs("down"), all);
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_with_the_wrong_secret_refuses_until_the_secret_is_rotated() {
    let app = webhook_app(Duration::from_secs(3600)).await;
    let r = Receiver::start().await;
    let (id, secret) = endpoint(&app, &r.url("strict"), json!(["ProductChanged"])).await;
    // The receiver was configured with another secret.
    let (_, other) = endpoint(&app, &r.url("unused"), json!(["OrderPaid"])).await;
    r.with("strict", |b| b.secret = Some(other));
    import(&app, "S", 3).await;
    let caught = eventually(Duration::from_secs(10), || async {
        r.with("strict", |b| b.bad_signatures) >= 2
    })
    .await;
    assert!(caught, "the receiver detects the bad signature");
    assert!(r.seqs("strict").is_empty());
    let path = format!("/api/v1/admin/webhooks/{id}");
    let attempts = app
        .admin_get(&format!("{path}/deliveries?limit=5"))
        .await
        .body;
    assert_eq!(attempts["items"][0]["status_code"], 401);
    assert_eq!(attempts["items"][0]["error"], "HTTP 401");
    // The real secret verifies; a rotation's new one too, while the old one still signs.
    let rotated = app
        .send(app.admin(app.client.post(app.url(&format!("{path}/rotate-secret")))))
        .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated.body["signing_secrets"], 2);
    r.with("strict", |b| b.secret = Some(new_secret));
    let products = logged(&app, Some("ProductChanged")).await;
    wait_for(&r, "strict", &products).await;
    assert_eq!(r.seqs("strict"), products);
    r.with("strict", |b| b.secret = Some(secret));
    import(&app, "T", 1).await;
    let products = logged(&app, Some("ProductChanged")).await;
    wait_for(&r, "strict", &products).await;
    assert_eq!(
        r.seqs("strict"),
        products,
        "the old secret verifies during the overlap"
    );
    // A new URL: what comes next goes there, in order, and nothing more to the old one.
    let patched = app
        .send(
            app.admin(app.client.patch(app.url(&path)))
                .json(&json!({"url": r.url("moved"), "description": "moved"})),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["url"], r.url("moved"));
    let secret = r.with("strict", |b| b.secret.clone());
    r.with("moved", |b| b.secret = secret);
    let before = r.seqs("strict");
    import(&app, "U", 2).await;
    let fresh: Vec<u64> = logged(&app, Some("ProductChanged")).await[before.len()..].to_vec();
    wait_for(&r, "moved", &fresh).await;
    assert_eq!(r.seqs("moved"), fresh);
    assert_eq!(r.seqs("strict"), before);
    app.stop().await;
}

#[tokio::test]
async fn urls_that_are_not_http_or_reach_internal_addresses_are_refused() {
    // The default: no loopback either.
    let app = spawn_app().await;
    for url in [
        "http://10.0.0.5/hook",
        "http://192.168.1.20:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "https://user:pass@example.com/hook",
    ] {
        let r = app
            .send(
                app.admin(app.client.post(app.url("/api/v1/admin/webhooks")))
                    .json(&json!({"url": url, "event_types": ["*"]})),
            )
            .await;
        assert_eq!(r.status, 422, "{url}: {:?}", r.body);
        assert_eq!(r.content_type, "application/problem+json");
    }
    for (body, why) in [
        (
            json!({"url": "https://example.com/h", "event_types": []}),
            "no types",
        ),
        (
            json!({"url": "https://example.com/h", "event_types": ["Nope"]}),
            "unknown type",
        ),
        (
            json!({"url": "https://example.com/h", "event_types": ["*", "OrderPaid"]}),
            "star alone",
        ),
    ] {
        let r = app
            .send(
                app.admin(app.client.post(app.url("/api/v1/admin/webhooks")))
                    .json(&body),
            )
            .await;
        assert_eq!(r.status, 422, "{why}: {:?}", r.body);
    }
    assert_eq!(
        app.admin_get("/api/v1/admin/webhooks").await.body["items"],
        json!([]),
        "nothing refused was kept"
    );
    // A public URL is taken; changing it to an internal one is refused and changes nothing.
    let r = app
        .send(
            app.admin(app.client.post(app.url("/api/v1/admin/webhooks")))
                .json(
                    &json!({"url": "https://hooks.example.com/in", "event_types": ["OrderPaid"]}),
                ),
        )
        .await;
    assert_eq!(r.status, 201);
    let path = format!("/api/v1/admin/webhooks/{}", r.body["id"].as_str().unwrap());
    let patched = app
        .send(
            app.admin(app.client.patch(app.url(&path)))
                .json(&json!({"url": "http://10.1.1.1/"})),
        )
        .await;
    assert_eq!(patched.status, 422);
    assert_eq!(
        app.admin_get(&path).await.body["url"],
        "https://hooks.example.com/in"
    );
    // Without the admin token, nothing.
    let anon = app
        .send(app.client.get(app.url("/api/v1/admin/webhooks")))
        .await;
    assert_eq!(anon.status, 401);
    let gone = app.send(app.admin(app.client.delete(app.url(&path)))).await;
    assert_eq!(gone.status, 204);
    assert_eq!(app.admin_get(&path).await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn after_kill_9_in_the_middle_of_a_delivery_every_event_arrives_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let r = Receiver::start().await;
    let flags = ["--webhooks-allow-loopback"];
    let server = start_binary(&data, &flags).await;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/api/v1/admin/webhooks", server.base))
        .bearer_auth(BINARY_TOKEN)
        .json(&json!({"url": r.url("crash"), "event_types": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r.with("crash", |b| {
        b.secret = Some(created["secret"].as_str().unwrap().to_owned());
        b.delay = Duration::from_millis(3);
    });
    let items: Vec<Value> = (0..600)
        .map(|i| json!({"sku": format!("K-{i}"), "name": format!("Thing {i}"), "price": 100}))
        .collect();
    let imported = client
        .post(format!("{}/api/v1/admin/products/import", server.base))
        .bearer_auth(BINARY_TOKEN)
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 200);
    // Killed while delivering: some events are out, most are not.
    let midway = eventually(Duration::from_secs(30), || async {
        r.seqs("crash").len() >= 150
    })
    .await;
    assert!(midway);
    server.kill9();
    // A request the dead process sent may still be in the receiver's hands (it answers
    // after a delay): let it land before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = r.seqs("crash").len();
    assert!(before < 600, "killed in the middle ({before} delivered)");
    let server = start_binary(&data, &flags).await;
    let all_delivered = eventually(Duration::from_secs(60), || async {
        let seqs = r.seqs("crash");
        let mut unique = seqs.clone();
        unique.sort_unstable();
        unique.dedup();
        unique.len() >= 600
    })
    .await;
    let seqs = r.seqs("crash");
    assert!(all_delivered, "{} distinct of 600 delivered", {
        let mut u = seqs.clone();
        u.sort_unstable();
        u.dedup();
        u.len()
    });
    // In order, nothing skipped: each new event is the next one; a repeat only of the
    // batch in flight (at most 64 events) right after the restart.
    let first = seqs[0];
    let mut next = first;
    let mut repeats = 0;
    for &s in &seqs {
        if s == next {
            next += 1;
        } else {
            assert!(s < next, "event {next} skipped (got {s})");
            repeats += 1;
        }
    }
    assert_eq!(next - first, 600);
    assert!(
        repeats <= 64,
        "{repeats} repeats: more than the batch in flight"
    );
    // And those repeats are the last ones out before the kill.
    if repeats > 0 {
        assert_eq!(
            seqs[before],
            seqs[before - repeats],
            "the repeats start the restart"
        );
    }
    eprintln!("{before} delivered before the kill, {repeats} delivered again after it");
    assert_eq!(r.with("crash", |b| b.bad_signatures), 0);
    server.kill9();
}
