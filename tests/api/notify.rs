//! Email notifications: receipts and lifecycle mails from templates, template edits,
//! abandoned-cart reminders, exactly one receipt across `kill -9`, and real SMTP delivery
//! with retries (a real SMTP server, Python's aiosmtpd, on loopback).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emporium::Engine;
use serde_json::{Value, json};

use crate::checkout::{cart_with, checkout, checkout_body};
use crate::helpers::*;

/// The messages in the outbox `dir` whose id starts with `template`: id and text.
fn mails(dir: &Path, template: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = emporium::notify::mailer::read_outbox(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| id.starts_with(template))
        .collect();
    out.sort();
    out
}

/// The message with its quoted-printable encoding undone (soft line breaks, `=XX`
/// bytes), so that its text can be searched.
pub(crate) fn unfold(eml: &str) -> String {
    let joined = eml.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'='
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn number(order_id: &str) -> String {
    format!("{}-{}", &order_id[..4], &order_id[4..8])
}

pub(crate) async fn wait_for(dir: &Path, template: &str, n: usize) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        found = mails(dir, template);
        let done = found.len() >= n;
        async move { done }
    })
    .await;
    assert!(
        ok,
        "expected {n} {template} mails in {}, found {}",
        dir.display(),
        found.len()
    );
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_send_receipts_and_lifecycle_mails_from_editable_templates() {
    let app = spawn_app().await;
    let outbox = app._dir.path().join("outbox");
    app.create_product("MAIL-1", 1250, 10).await;
    let cart = cart_with(&app, &[("MAIL-1", 2)]).await;
    let r = checkout(&app, &cart, Some("a"), &checkout_body("tok_visa")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();

    let receipts = wait_for(&outbox, "order_confirmation", 1).await;
    let eml = unfold(&receipts[0].1);
    assert!(
        eml.contains(&format!("Subject: Your order {} is confirmed", number(&id))),
        "{eml}"
    );
    assert!(eml.contains("To: ada@example.com"));
    assert!(
        eml.contains("2 × Product MAIL-1") && eml.contains("25.00 USD"),
        "{eml}"
    );
    assert!(eml.contains("Tranquility Base"));
    assert!(eml.contains("text/html") && eml.contains("text/plain"));

    let list = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/notifications"))))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "sent");
    assert_eq!(items[0]["template"], "order_confirmation");
    assert_eq!(items[0]["about"], id.as_str());

    // Edit the receipt; the next order's mail uses it.
    let put = |body: Value| {
        app.send(
            app.admin(
                app.client
                    .put(app.url("/api/v1/admin/templates/order_confirmation")),
            )
            .json(&body),
        )
    };
    let r = put(
        json!({"subject": "Receipt {{ order.number }} from the Moon",
                       "text": "Total {{ order.total|money(order.currency) }}",
                       "html": "<p>{{ order.email }}</p>"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["customized"], true);
    let bad = put(json!({"subject": "x", "text": "{% for %}", "html": ""})).await;
    assert_eq!(
        (bad.status, bad.code()),
        (422, "validation_failed"),
        "{}",
        bad.body
    );
    let bad = put(json!({"subject": "x", "text": "{{ 1|nope }}", "html": ""})).await;
    assert_eq!(bad.status, 422);
    let got = app
        .send(
            app.admin(
                app.client
                    .get(app.url("/api/v1/admin/templates/order_confirmation")),
            ),
        )
        .await;
    assert_eq!(
        got.body["subject"],
        "Receipt {{ order.number }} from the Moon"
    );
    let all = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/templates"))))
        .await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        emporium::notify::templates::NAMES.len()
    );
    let missing = app
        .send(app.admin(app.client.get(app.url("/api/v1/admin/templates/nope"))))
        .await;
    assert_eq!(missing.status, 404);
    let anonymous = app
        .send(app.client.get(app.url("/api/v1/admin/templates")))
        .await;
    assert_eq!(anonymous.status, 401);

    let cart = cart_with(&app, &[("MAIL-1", 1)]).await;
    let r = checkout(&app, &cart, Some("b"), &checkout_body("tok_visa")).await;
    let id2 = r.json()["id"].as_str().unwrap().to_owned();
    let receipts = wait_for(&outbox, "order_confirmation", 2).await;
    let second = unfold(&receipts[1].1);
    assert!(
        second.contains(&format!("Subject: Receipt {} from the Moon", number(&id2))),
        "{second}"
    );
    assert!(second.contains("Total 12.50 USD"));

    // Lifecycle mails.
    let shipped = app
        .send(
            app.admin(
                app.client
                    .post(app.url(&format!("/api/v1/admin/orders/{id}/ship"))),
            )
            .json(&json!({"carrier": "Lunar Post", "tracking": "LP-42"})),
        )
        .await;
    assert_eq!(shipped.status, 200);
    let mail = wait_for(&outbox, "order_shipped", 1).await;
    assert!(unfold(&mail[0].1).contains("Tracking: LP-42"));
    let cancelled = app
        .post_json(&format!("/api/v1/orders/{id2}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200);
    wait_for(&outbox, "order_cancelled", 1).await;
    let cart = cart_with(&app, &[("MAIL-1", 1)]).await;
    let declined = checkout(&app, &cart, Some("c"), &checkout_body("tok_decline")).await;
    assert_eq!(declined.status, 402);
    let mail = wait_for(&outbox, "payment_failed", 1).await;
    assert!(unfold(&mail[0].1).contains("card declined"));
    app.stop().await;
}

async fn place(engine: &Engine, sku: &str, key: &str) -> String {
    let cart = cart_of(engine, sku, 1).await;
    engine
        .checkout(&cart, key, &checkout_request("tok_visa"))
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cart_with_an_email_gets_one_reminder_per_idle_period() {
    let dir = tempfile::tempdir().unwrap();
    // The default 24-hour idle period, on a clock the test moves.
    let clock = emporium::Clock::manual_from_now();
    let engine = open_engine(dir.path(), |c| c.clock = clock.clone()).await;
    engine
        .create_product("AB-1", draft("Moon boots", 9900))
        .await
        .unwrap();
    let cart = cart_of(&engine, "AB-1", 1).await;
    // A second idle cart, with no email: never reminded.
    let _anonymous = cart_of(&engine, "AB-1", 1).await;
    assert_eq!(
        engine.sweep_abandoned_carts().await.unwrap(),
        0,
        "no email yet"
    );
    engine
        .cart_set_email(&cart, "ada@example.com")
        .await
        .unwrap();
    assert_eq!(
        engine.sweep_abandoned_carts().await.unwrap(),
        0,
        "not idle yet"
    );
    clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(
        engine.sweep_abandoned_carts().await.unwrap(),
        0,
        "idle, but not a day"
    );
    clock.advance(Duration::from_secs(3600 + 1));
    assert_eq!(engine.sweep_abandoned_carts().await.unwrap(), 1);
    assert_eq!(
        engine.sweep_abandoned_carts().await.unwrap(),
        0,
        "reminded once"
    );
    let outbox = dir.path().join("outbox");
    let mail = wait_for(&outbox, "cart_abandoned", 1).await;
    assert!(unfold(&mail[0].1).contains("1 × Moon boots"));
    // A change (the shopper back a minute after the reminder) starts a new idle period.
    clock.advance(Duration::from_secs(60));
    engine.cart_add_item(&cart, "AB-1", 1).await.unwrap();
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(engine.sweep_abandoned_carts().await.unwrap(), 1);
    wait_for(&outbox, "cart_abandoned", 2).await;
    engine.shutdown().await.unwrap();
}

/// The `Message-ID` of a delivered mail.
fn message_id(mail: &str) -> String {
    unfold(mail)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Every delivery an SMTP server received of `order`'s receipt, by `Message-ID`.
fn receipts_of(smtp: &Smtp, order: &str) -> BTreeMap<String, usize> {
    let mut by_id = BTreeMap::new();
    for mail in smtp.received() {
        let text = unfold(&mail);
        if text.contains("is confirmed") && text.contains(&number(order)) {
            *by_id.entry(message_id(&mail)).or_default() += 1;
        }
    }
    by_id
}

/// Places an order of one `RCPT-1` on `server`; its id.
async fn order(server: &Server, key: String) -> String {
    let cart = server.cart_with("RCPT-1", 1).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/carts/{cart}/checkout", server.base))
        .header("Idempotency-Key", key)
        .json(&checkout_body("tok_visa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    order["id"].as_str().unwrap().to_owned()
}

/// Receipts go to a real SMTP server, which keeps every delivery (a file per message
/// received), so a second send of a receipt is seen — unlike the outbox, which
/// recognises a message it already holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_receipt_per_order_across_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let smtp_port = free_port();
    let smtp = Smtp::start(smtp_port, root.path().join("maildir")).await;
    let url = format!("smtp://127.0.0.1:{smtp_port}");
    let flags = ["--smtp-url", url.as_str()];
    let server = start_binary(&data, &flags).await;
    server
        .stock_product(BINARY_TOKEN, "RCPT-1", "Star chart", 500, 1000)
        .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(order(&server, format!("k{i}")).await);
    }
    // Killed right after the last order: its receipt may or may not have gone out.
    server.kill9();
    let server = start_binary(&data, &flags).await;
    let all_delivered = |ids: Vec<String>| {
        let smtp = &smtp;
        async move {
            eventually(Duration::from_secs(20), || {
                let done = ids.iter().all(|id| !receipts_of(smtp, id).is_empty());
                async move { done }
            })
            .await
        }
    };
    assert!(all_delivered(ids.clone()).await, "every receipt delivered");
    // One receipt per order: one message id each. A send the kill interrupted before its
    // outcome was recorded may go out again after the restart, with the same message id
    // (so a mail client shows one message); nothing else may repeat.
    let mut resent = 0;
    for id in &ids {
        let by_id = receipts_of(&smtp, id);
        assert_eq!(
            by_id.len(),
            1,
            "one receipt (one Message-ID) for order {id}: {by_id:?}"
        );
        let n = *by_id.values().next().unwrap();
        assert!(n <= 2, "order {id}: {n} deliveries");
        resent += n - 1;
    }
    eprintln!("{resent} receipts were in flight at the kill and went out again");

    // Without a kill, nothing is sent twice: not after a clean restart either, whose
    // dispatcher re-reads the events after its last stored offset.
    let mut more = Vec::new();
    for i in 0..6 {
        more.push(order(&server, format!("m{i}")).await);
    }
    assert!(all_delivered(more.clone()).await);
    assert!(server.terminate().success());
    let server = start_binary(&data, &flags).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &more {
        let by_id = receipts_of(&smtp, id);
        assert_eq!(by_id.values().sum::<usize>(), 1, "order {id}: {by_id:?}");
    }
    assert!(server.terminate().success());
}

/// The outbox (mailbox files, one per group of messages) keeps one copy of each receipt
/// across `kill -9`: a group whose file landed before the kill but whose sending was not
/// recorded is recognised after the restart, not written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_holds_exactly_one_receipt_per_order_across_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let outbox = data.join("outbox");
    let mut server = start_binary(&data, &[]).await;
    server
        .stock_product(BINARY_TOKEN, "RCPT-1", "Star chart", 500, 1000)
        .await;
    let mut ids = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            ids.push(order(&server, format!("k{round}-{i}")).await);
        }
        // Killed right after the last order: its receipt may or may not be out.
        server.kill9();
        server = start_binary(&data, &[]).await;
    }
    let receipts_of = |order: &str| {
        mails(&outbox, "order_confirmation")
            .iter()
            .filter(|(_, m)| unfold(m).contains(&number(order)))
            .count()
    };
    let all = eventually(Duration::from_secs(20), || {
        let done = ids.iter().all(|id| receipts_of(id) >= 1);
        async move { done }
    })
    .await;
    assert!(all, "every receipt written");
    for id in &ids {
        assert_eq!(receipts_of(id), 1, "order {id}");
    }
    assert_eq!(mails(&outbox, "order_confirmation").len(), ids.len());
    server.kill9();
}

/// A real SMTP server: Python's aiosmtpd writing to a Maildir.
pub(crate) struct Smtp {
    child: std::process::Child,
    maildir: PathBuf,
}

impl Smtp {
    fn ensure_installed() {
        let ok = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let installed = std::process::Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                installed,
                "this test needs Python's aiosmtpd (pip install aiosmtpd)"
            );
        }
    }

    pub(crate) async fn start(port: u16, maildir: PathBuf) -> Smtp {
        Self::ensure_installed();
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let up = eventually(Duration::from_secs(15), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "aiosmtpd did not start");
        Smtp { child, maildir }
    }

    pub(crate) fn received(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn notification_of(
    engine: &Engine,
    order_id: &str,
) -> Option<emporium::notify::Notification> {
    let (items, _) = engine.notifications(0, 1000).await.unwrap();
    items.into_iter().find(|n| n.subject_id == order_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_means_retries_then_a_visible_failure_and_smtp_back_means_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine = open_engine(dir.path(), |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.mail_max_attempts = 4;
        c.mail_retry_base = Duration::from_millis(250);
    })
    .await;
    engine
        .create_product("SMTP-1", draft("Comet dust", 700))
        .await
        .unwrap();
    engine.set_on_hand("SMTP-1", 10).await.unwrap();

    // Nothing listens: four attempts, then failed, with the error visible.
    let a = place(&engine, "SMTP-1", "a").await;
    let failed = eventually(Duration::from_secs(15), || async {
        notification_of(&engine, &a)
            .await
            .is_some_and(|n| n.status == emporium::notify::NotificationStatus::Failed)
    })
    .await;
    assert!(failed, "the mail to a dead server ends failed");
    let n = notification_of(&engine, &a).await.unwrap();
    assert_eq!(n.attempts, 4);
    assert!(n.last_error.is_some());

    // Another order while the server is down, then the server comes back: delivered.
    let b = place(&engine, "SMTP-1", "b").await;
    let retried = eventually(Duration::from_secs(10), || async {
        notification_of(&engine, &b)
            .await
            .is_some_and(|n| n.attempts >= 1)
    })
    .await;
    assert!(retried);
    let smtp = Smtp::start(port, dir.path().join("maildir")).await;
    let delivered = eventually(Duration::from_secs(15), || async {
        notification_of(&engine, &b)
            .await
            .is_some_and(|n| n.status == emporium::notify::NotificationStatus::Sent)
    })
    .await;
    assert!(delivered, "{:?}", notification_of(&engine, &b).await);
    let received = smtp.received();
    assert_eq!(received.len(), 1, "only the retried mail arrives");
    let mail = unfold(&received[0]);
    assert!(mail.contains(&number(&b)), "{mail}");
    assert!(mail.contains("Comet dust"));
    engine.shutdown().await.unwrap();
}
