//! Crash safety: the real binary is killed with SIGKILL in the middle of a write load and
//! restarted; every acknowledged write must be there. A negative control runs the same
//! test with `--durability relaxed` and must see losses, which shows the test can catch one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::start_binary;

const TOKEN: &str = crate::helpers::BINARY_TOKEN;
const CLIENTS: usize = 4;

/// What one client had acknowledged when the server died.
#[derive(Default, Clone)]
struct Acked {
    restocks: u64,
    cart_adds: u64,
    cart: String,
}

/// One round: load from several clients, kill -9 after `run_for`, restart, compare.
/// Returns how many acknowledged writes were missing after the restart.
async fn round(durability: &str, run_for: Duration) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(dir.path(), &["--durability", durability]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = server.base.clone();
    let mut carts = Vec::new();
    for i in 0..CLIENTS {
        let sku = format!("CRASH-{i}");
        let r = client
            .post(format!("{base}/api/v1/admin/products"))
            .bearer_auth(TOKEN)
            .json(&json!({"sku": sku, "name": sku, "price": 100}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let cart: Value = client
            .post(format!("{base}/api/v1/carts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        carts.push(cart["id"].as_str().unwrap().to_owned());
    }
    // A fresh barrier point so that setup itself is durable in either mode.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, cart) in carts.into_iter().enumerate() {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let sku = format!("CRASH-{i}");
            let mut acked = Acked {
                cart: cart.clone(),
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                // Alternate two kinds of writes: a stock change and a cart change.
                let restock = client
                    .post(format!("{base}/api/v1/admin/inventory/{sku}/restock"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await;
                match restock {
                    Ok(r) if r.status() == 200 => acked.restocks += 1,
                    _ => break,
                }
                if acked.cart_adds < 999 {
                    let add = client
                        .post(format!("{base}/api/v1/carts/{cart}/items"))
                        .json(&json!({"sku": sku, "quantity": 1}))
                        .send()
                        .await;
                    match add {
                        Ok(r) if r.status() == 200 => acked.cart_adds += 1,
                        _ => break,
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(run_for).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }

    let server = start_binary(dir.path(), &["--durability", durability]).await;
    let mut missing = 0;
    for (i, a) in acked.iter().enumerate() {
        assert!(a.restocks > 0, "the load made progress before the kill");
        let inv = server
            .get_json(&format!("/api/v1/inventory/CRASH-{i}"))
            .await;
        let on_hand = inv["on_hand"].as_u64().unwrap_or(0);
        // At most one unacknowledged write per client can have landed too.
        assert!(on_hand <= a.restocks + 1, "more stock than was ever sent");
        missing += a.restocks.saturating_sub(on_hand);
        let cart = server.get_json(&format!("/api/v1/carts/{}", a.cart)).await;
        let qty = cart["items"][0]["quantity"].as_u64().unwrap_or(0);
        assert!(qty <= a.cart_adds + 1);
        missing += a.cart_adds.saturating_sub(qty);
    }
    server.kill9();
    let total: u64 = acked.iter().map(|a| a.restocks + a.cart_adds).sum();
    eprintln!(
        "{durability}: {total} acknowledged writes before kill -9, {missing} missing after restart"
    );
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_when_the_process_is_killed() {
    for i in 0..4u64 {
        let missing = round("strict", Duration::from_millis(400 + 150 * i)).await;
        assert_eq!(
            missing, 0,
            "round {i}: {missing} acknowledged writes lost in strict mode"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_relaxed_durability_does_lose_acknowledged_writes() {
    let mut total = 0;
    for i in 0..6u64 {
        total += round("relaxed", Duration::from_millis(300 + 70 * i)).await;
        if total > 0 {
            break;
        }
    }
    assert!(
        total > 0,
        "relaxed mode lost nothing in 6 kills: the crash test could not detect a loss"
    );
}
