//! The checkout saga under `kill -9`: the real binary serves a checkout load with hot SKUs,
//! declines, gateway errors and slow payments, and is killed at random moments many times.
//! Clients retry interrupted checkouts with the same Idempotency-Key after each restart.
//! At the end the books must balance: every `201` order is paid; for every SKU
//! `initial = on_hand + reserved + sold`; nothing stays reserved or pending; the gateway
//! took at most one charge per order and `captured − refunded = Σ paid totals`; the event
//! log has each order's events exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emporium::domain::event::DomainEvent;
use emporium::domain::order::{CheckoutFailure, OrderStatus, Outcome};
use serde_json::{Value, json};

use crate::checkout::checkout_body;
use crate::helpers::{
    BINARY_TOKEN, cart_of, checkout_request, draft, eventually, open_engine, start_binary,
};

const CLIENTS: usize = 10;
const KILLS: usize = 6;

/// SKUs and their initial stock: two hot ones that sell out, four that do not.
const STOCK: [(&str, i64); 6] = [
    ("HOT-1", 25),
    ("HOT-2", 25),
    ("COLD-1", 100_000),
    ("COLD-2", 100_000),
    ("COLD-3", 100_000),
    ("COLD-4", 100_000),
];

/// A tiny deterministic generator (xorshift), seeded per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A checkout a client sent: where, with which key and body.
#[derive(Clone)]
struct Attempt {
    cart: String,
    key: String,
    body: Value,
}

#[derive(Default)]
struct Ledger {
    /// Keys whose answer never arrived (connection cut): retried after the restart.
    unanswered: Vec<Attempt>,
    /// Final answers by key: status and order id (for 201).
    answers: HashMap<String, (u16, Option<String>)>,
}

impl Ledger {
    fn answer(&mut self, key: &str, status: u16, body: &Value) {
        let id = (status == 201).then(|| body["id"].as_str().unwrap().to_owned());
        if let Some(prev) = self.answers.insert(key.to_owned(), (status, id.clone())) {
            assert_eq!(prev, (status, id), "a retried key got a different answer");
        }
    }
}

async fn send(client: &reqwest::Client, base: &str, a: &Attempt) -> Option<(u16, Value)> {
    let r = client
        .post(format!("{base}/api/v1/carts/{}/checkout", a.cart))
        .header("Idempotency-Key", &a.key)
        .json(&a.body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let body = r.json().await.ok()?;
    Some((status, body))
}

/// One shopper: new cart, 1–2 lines, checkout; until `stop`.
async fn shopper(
    client: reqwest::Client,
    base: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Acquire) {
        let Ok(r) = client.post(format!("{base}/api/v1/carts")).send().await else {
            return;
        };
        let Ok(cart) = r.json::<Value>().await else {
            return;
        };
        let cart = cart["id"].as_str().unwrap_or_default().to_owned();
        let lines = 1 + rng.below(2);
        for _ in 0..lines {
            let (sku, _) = STOCK[rng.below(STOCK.len() as u64) as usize];
            let added = client
                .post(format!("{base}/api/v1/carts/{cart}/items"))
                .json(&json!({"sku": sku, "quantity": 1 + rng.below(2)}))
                .send()
                .await;
            if added.is_err() {
                return;
            }
        }
        let token = match rng.below(20) {
            0 | 1 => "tok_decline",
            2 => "tok_error",
            3 => "tok_slow",
            _ => "tok_visa",
        };
        let attempt = Attempt {
            cart,
            key: format!("{seed}-{}", rng.next()),
            body: checkout_body(token),
        };
        match send(&client, &base, &attempt).await {
            Some((status, body)) => ledger.lock().unwrap().answer(&attempt.key, status, &body),
            None => {
                ledger.lock().unwrap().unanswered.push(attempt);
                return;
            }
        }
    }
}

/// Retries every other unanswered checkout with its key until it gets an answer; the rest
/// are abandoned, as shoppers who close the tab, and left to the server's recovery.
async fn retry_unanswered(client: &reqwest::Client, base: &str, ledger: &Mutex<Ledger>) {
    let pending = std::mem::take(&mut ledger.lock().unwrap().unanswered);
    for a in pending.into_iter().step_by(2) {
        let (status, body) = send(client, base, &a).await.expect("server is up");
        assert!(
            [201, 402, 409, 502].contains(&status),
            "retry got {status}: {body}"
        );
        ledger.lock().unwrap().answer(&a.key, status, &body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_keep_the_books_balanced_across_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let flags = ["--gateway-slow-ms", "150", "--recovery-interval-secs", "1"];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = start_binary(&data, &flags).await;
    for (sku, on_hand) in STOCK {
        server
            .stock_product(BINARY_TOKEN, sku, sku, 1000 + on_hand % 7, on_hand)
            .await;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut retried = 0;
    let mut dice = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                tokio::spawn(shopper(
                    client.clone(),
                    server.base.clone(),
                    (round * CLIENTS + i) as u64 * 7919 + 17,
                    stop.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + dice.below(1200))).await;
        server.kill9();
        stop.store(true, Ordering::Release);
        for t in tasks {
            t.await.unwrap();
        }
        server = start_binary(&data, &flags).await;
        retried += ledger.lock().unwrap().unanswered.len().div_ceil(2);
        retry_unanswered(&client, &server.base, &ledger).await;
    }

    // Every order a client was told about is there and paid.
    let answers = std::mem::take(&mut ledger.lock().unwrap().answers);
    let placed: Vec<&String> = answers.values().filter_map(|(_, id)| id.as_ref()).collect();
    assert!(
        placed.len() > 10,
        "the load placed orders ({})",
        placed.len()
    );
    let recovered = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|log| log.contains("recovery done"))
        .count();
    eprintln!(
        "{} checkouts answered ({} placed), {retried} retried after a kill, {recovered} restarts recovered orders or holds",
        answers.len(),
        placed.len()
    );
    for id in &placed {
        let r = server.get_json(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(r["status"], "paid", "{r}");
    }
    // Recovery, not client retries, finishes the abandoned checkouts: within 30 s of the
    // last restart nothing is pending and nothing is held.
    let settled = eventually(Duration::from_secs(30), || async {
        let pending: Value = client
            .get(format!(
                "{}/api/v1/admin/orders?status=pending&limit=1",
                server.base
            ))
            .bearer_auth(BINARY_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut held = 0;
        for (sku, _) in STOCK {
            let inv = server.get_json(&format!("/api/v1/inventory/{sku}")).await;
            held += inv["reserved"].as_u64().unwrap();
        }
        pending["items"].as_array().unwrap().is_empty() && held == 0
    })
    .await;
    assert!(
        settled,
        "orders pending or stock held 30 s after the restart"
    );
    assert!(server.terminate().success());

    // The books, read from the store.
    let engine = open_engine(&data, |_| {}).await;
    let orders = engine.all_orders().unwrap();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    let mut paid_total = 0u64;
    for o in &orders {
        assert!(
            !o.is_active(),
            "order {} left unfinished: {:?}",
            o.id,
            o.step
        );
        match o.status {
            OrderStatus::Paid => {
                paid_total += o.total;
                for l in &o.lines {
                    *sold.entry(l.sku.to_string()).or_default() += u64::from(l.quantity);
                }
                assert!(matches!(o.outcome, Some(Outcome::Placed)));
            }
            OrderStatus::Failed => assert!(matches!(o.outcome, Some(Outcome::Failed(_)))),
            other => panic!("order {} is {other:?}", o.id),
        }
    }
    for (sku, initial) in STOCK {
        let inv = engine.inventory(sku).await.unwrap();
        let s = sold.get(sku).copied().unwrap_or(0);
        assert_eq!(inv.reserved, 0, "{sku}: nothing left reserved");
        assert_eq!(
            initial as u64,
            inv.on_hand + inv.reserved + s,
            "{sku}: initial = on_hand + reserved + sold"
        );
    }
    let by_id: HashMap<&str, &emporium::domain::order::Order> =
        orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let charges = engine.gateway_charges().unwrap();
    let mut net = 0u64;
    for c in &charges {
        let o = by_id
            .get(c.key.as_str())
            .expect("every charge belongs to an order");
        match o.status {
            OrderStatus::Paid => {
                assert_eq!(c.refunded, 0);
                assert_eq!(c.amount, o.total);
                assert_eq!(o.payment.as_ref().unwrap().id, c.id);
            }
            _ => assert_eq!(c.refunded, c.amount, "a failed order's charge is refunded"),
        }
        net += c.amount - c.refunded;
    }
    assert_eq!(net, paid_total, "captured − refunded = Σ paid totals");
    let paid_orders = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Paid)
        .count();
    assert_eq!(engine.payments().unwrap().len(), paid_orders);

    // The event log: each order's events exactly once, in order.
    let mut seqs = Vec::new();
    let mut per_order: HashMap<String, Vec<&'static str>> = HashMap::new();
    let mut after = 0;
    loop {
        let (page, next) = engine.events(after, 1000).await.unwrap();
        for e in &page {
            seqs.push(e.seq);
            let (kind, id) = match &e.event {
                DomainEvent::OrderPaid { order_id, .. } => ("paid", order_id),
                DomainEvent::OrderPlaced { order_id, .. } => ("placed", order_id),
                DomainEvent::PaymentFailed { order_id, .. } => ("payment_failed", order_id),
                _ => continue,
            };
            per_order.entry(id.clone()).or_default().push(kind);
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free and ordered"
    );
    for o in &orders {
        let got = per_order.remove(&o.id).unwrap_or_default();
        let want: Vec<&str> = match (&o.status, &o.outcome) {
            (OrderStatus::Paid, _) => vec!["paid", "placed"],
            (
                _,
                Some(Outcome::Failed(CheckoutFailure::Declined(_) | CheckoutFailure::Gateway(_))),
            ) => {
                vec!["payment_failed"]
            }
            _ => vec![],
        };
        assert_eq!(got, want, "events of order {}", o.id);
    }
    assert!(per_order.is_empty(), "events of unknown orders");
    engine.shutdown().await.unwrap();
}

/// `kill -9` while a checkout's charge is under way, and a downtime longer than the
/// reservation TTL: on restart, recovery charges the order again (the gateway answers
/// with its one charge) before reservations may lapse — even though each recovery drive
/// gives up waiting sooner than the slow charge answers — so the paid order's stock is
/// deducted, exactly once, and nothing is left held or charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_interrupted_by_kill_9_outliving_its_reservation_is_settled_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // The recovery drive waits 1 s (request timeout − 1); the charge takes 2.5 s.
    let flags = [
        "--reservation-ttl-secs",
        "1",
        "--gateway-slow-ms",
        "2500",
        "--request-timeout-secs",
        "2",
        "--recovery-interval-secs",
        "1",
    ];
    let server = start_binary(&data, &flags).await;
    server
        .stock_product(BINARY_TOKEN, "LAST-1", "The last one", 4200, 1)
        .await;
    let cart = server.cart_with("LAST-1", 1).await;
    let base = server.base.clone();
    let attempt = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/carts/{cart}/checkout"))
            .header("Idempotency-Key", "slow")
            .json(&checkout_body("tok_slow"))
            .send()
            .await
    });
    // Reserved, and the charge under way.
    let held = eventually(Duration::from_secs(5), || async {
        server.get_json("/api/v1/inventory/LAST-1").await["reserved"] == 1
    })
    .await;
    assert!(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();
    let _ = attempt.await;
    // Down for longer than the reservation's TTL.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = start_binary(&data, &flags).await;
    let settled = eventually(Duration::from_secs(20), || async {
        let inv = server.get_json("/api/v1/inventory/LAST-1").await;
        inv["reserved"] == 0 && inv["on_hand"] == 0
    })
    .await;
    assert!(
        settled,
        "{}",
        server.get_json("/api/v1/inventory/LAST-1").await
    );
    // Startup held the reservations until the charge had answered (and did not rely on
    // the commit taking lapsed units again).
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("reservations stay held until they finish"),
        "recovery did not wait for the charge:\n{log}"
    );
    assert!(server.terminate().success());

    let engine = open_engine(&data, |_| {}).await;
    let orders = engine.all_orders().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, OrderStatus::Paid, "{:?}", orders[0].step);
    assert!(!orders[0].is_active());
    let inv = engine.inventory("LAST-1").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved), (0, 0), "sold exactly once");
    let charges = engine.gateway_charges().unwrap();
    assert_eq!(charges.len(), 1);
    assert_eq!((charges[0].amount, charges[0].refunded), (4200, 0));
    engine.shutdown().await.unwrap();
}

/// A drive cut short after the charge, with the lines already sold: the one write that
/// records both the payment and the placed order (issue 21) never happened. The store is
/// put in exactly that state — the order record back to the one the cart created (step
/// `Reserve`, with its index entries), the stock sold, the gateway holding the charge —
/// and on restart recovery must find the charge by lookup and place the order once: not
/// reserve the sold lines again (which would sell them twice, or fail the order and
/// refund a shopper whose goods are gone), not charge again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_cut_short_after_its_charge_and_sale_is_placed_once_on_recovery() {
    use emporium::storage::{Store, StoreOptions, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let slow = |c: &mut emporium::Config| c.simulated_gateway_delay = Duration::from_millis(500);
    let engine = open_engine(dir.path(), slow).await;
    engine
        .create_product("CUT-1", draft("Cut short", 700))
        .await
        .unwrap();
    engine.set_on_hand("CUT-1", 5).await.unwrap();
    let cart = cart_of(&engine, "CUT-1", 2).await;
    let checkout = {
        let engine = engine.clone();
        let cart = cart.clone();
        tokio::spawn(async move {
            engine
                .checkout(&cart, "cut", &checkout_request("tok_slow"))
                .await
        })
    };
    // The order as the cart created it, read while its charge is under way.
    let mut pending = None;
    for _ in 0..200 {
        if let Some(o) = engine.all_orders().unwrap().pop() {
            pending = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pending = pending.expect("the checkout created its order");
    assert_eq!(pending.status, OrderStatus::Pending);
    let placed = checkout.await.unwrap().expect("the checkout is placed");
    let sold = engine.inventory("CUT-1").await.unwrap();
    assert_eq!((sold.on_hand, sold.reserved), (3, 0));
    let events_before = engine.events(0, 1000).await.unwrap().0.len();
    engine.shutdown().await.unwrap();
    drop(engine);

    // Undo only the order's last write: what a crash just before it leaves.
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let tables = store.tables();
        let stored = tables.orders.get(&placed.id).unwrap().unwrap();
        let mut batch = WriteBatch::default();
        tables
            .stage_order(&mut batch, Some(&stored), &pending)
            .unwrap();
        batch.remove(&tables.payments, placed.id.as_str());
        store.write(batch).unwrap();
        store.close().unwrap();
    }

    let engine = open_engine(dir.path(), slow).await;
    let recovered = eventually(Duration::from_secs(10), || async {
        engine
            .all_orders()
            .unwrap()
            .first()
            .is_some_and(|o| !o.is_active())
    })
    .await;
    assert!(recovered, "recovery drove the order to its end");
    let order = engine.all_orders().unwrap().pop().unwrap();
    assert_eq!(order.status, OrderStatus::Paid, "{:?}", order.step);
    assert_eq!(order.outcome, Some(Outcome::Placed));
    assert_eq!(
        order.payment.as_ref().map(|p| p.id.clone()),
        placed.payment.as_ref().map(|p| p.id.clone())
    );
    let inv = engine.inventory("CUT-1").await.unwrap();
    assert_eq!((inv.on_hand, inv.reserved), (3, 0), "sold exactly once");
    let charges = engine.gateway_charges().unwrap();
    assert_eq!(charges.len(), 1, "charged once");
    assert_eq!((charges[0].amount, charges[0].refunded), (placed.total, 0));
    // The payment record is back, and the placing write logged the order's paid and placed
    // events (once more here, since this test's crash is staged after they were logged).
    let logged = engine.events(0, 1000).await.unwrap().0;
    let kinds: Vec<&str> = logged[events_before..]
        .iter()
        .map(|e| e.event.kind())
        .filter(|k| k.starts_with("Order"))
        .collect();
    assert_eq!(kinds, ["OrderPaid", "OrderPlaced"]);
    engine.shutdown().await.unwrap();
}
