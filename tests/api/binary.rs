//! The `emporium` binary: token handling and graceful shutdown.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_one_is_generated_stored_privately_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_binary(&data, &["--no-token"]).await;
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let client = reqwest::Client::new();
    let admin = |t: &str| {
        client
            .put(format!("{}/api/v1/admin/products/T-1", server.base))
            .bearer_auth(t)
            .json(&json!({"name": "t", "price": 1}))
    };
    assert_eq!(admin(&token).send().await.unwrap().status(), 201);
    assert_eq!(admin("guess").send().await.unwrap().status(), 403);
    let log_path = server.log.clone();
    assert!(server.terminate().success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("admin-token"),
        "the log says where the token is"
    );
    assert!(
        !log.contains(token.trim()),
        "the token itself is never logged"
    );

    // A restart reuses the stored token.
    let server = start_binary(&data, &["--no-token"]).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/api/v1/products/T-1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_cleanly_with_exit_zero_and_keeps_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/admin/products", server.base))
        .bearer_auth(BINARY_TOKEN)
        .json(&json!({"sku": "S-1", "name": "s", "price": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = start_binary(dir.path(), &[]).await;
    let r = client
        .get(format!("{}/api/v1/products/S-1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(server.terminate().success());
}

#[test]
fn serve_help_tells_how_to_restrict_metrics_and_bound_clients() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--metrics-token",
        "--rate-limit-per-sec",
        "--max-connections",
        "--header-read-timeout-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("/metrics"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_at_start_when_no_rate_limit_is_set_and_not_when_one_is() {
    let root = tempfile::tempdir().unwrap();
    let warning = "no per-client rate limit";
    let open = start_binary(&root.path().join("open"), &[]).await;
    let limited = start_binary(
        &root.path().join("limited"),
        &["--rate-limit-per-sec", "50"],
    )
    .await;
    let (open_log, limited_log) = (open.log.clone(), limited.log.clone());
    assert!(open.terminate().success());
    assert!(limited.terminate().success());
    let open_log = std::fs::read_to_string(open_log).unwrap();
    assert!(
        open_log
            .lines()
            .any(|l| l.contains("WARN") && l.contains(warning)),
        "{open_log}"
    );
    assert!(
        !std::fs::read_to_string(limited_log)
            .unwrap()
            .contains(warning)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_serves_the_demo_catalog_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(dir.path(), &["--demo"]).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", server.base)).send();
    let all: serde_json::Value = get("/api/v1/products?limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 150, "demo catalog has {total} products");
    let tree: serde_json::Value = get("/api/v1/categories")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deep = tree["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["children"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(deep, "the demo categories form a tree");
    let helmets: serde_json::Value = get("/api/v1/products?q=helmet")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(helmets["total"].as_u64().unwrap() > 0);
    // A deleted demo product stays deleted: the demo loads only into an empty store.
    let r = client
        .delete(format!("{}/api/v1/admin/products/H-001", server.base))
        .bearer_auth(BINARY_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(server.terminate().success());
    let server = start_binary(dir.path(), &["--demo"]).await;
    let r = reqwest::get(format!("{}/api/v1/products/H-001", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_checkouts_lets_them_finish_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--gateway-slow-ms", "700"];
    let server = start_binary(dir.path(), &flags).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    server
        .stock_product(BINARY_TOKEN, "TERM-1", "t", 5, 100)
        .await;
    let mut carts = Vec::new();
    for _ in 0..8 {
        carts.push(server.cart_with("TERM-1", 1).await);
    }
    // Eight slow checkouts in flight when SIGTERM arrives.
    let tasks: Vec<_> = carts
        .iter()
        .map(|cart| {
            let (client, url) = (
                client.clone(),
                format!("{base}/api/v1/carts/{cart}/checkout"),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("Idempotency-Key", "k")
                    .json(&crate::checkout::checkout_body("tok_slow"))
                    .send()
                    .await
                    .expect("an in-flight request is answered, not cut");
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap();
                (status, body["id"].as_str().map(str::to_owned))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "within the grace period"
    );
    let mut placed = Vec::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, 201);
        placed.push(id.unwrap());
    }
    let server = start_binary(dir.path(), &flags).await;
    for id in &placed {
        let r = server.get_json(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(r["status"], "paid");
    }
    let inv = server.get_json("/api/v1/inventory/TERM-1").await;
    assert_eq!(
        (inv["on_hand"].as_u64(), inv["reserved"].as_u64()),
        (Some(92), Some(0))
    );
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_spans_and_nothing_secret_or_personal() {
    const ADMIN: &str = "canary-admin-token-5f1e";
    const WRONG: &str = "canary-wrong-token-9c2b";
    const PAY: &str = "tok_canary_7d3a";
    const EMAIL: &str = "canary.shopper.42@example.com";
    const STREET: &str = "Canary Crater Road 42";
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(
        dir.path(),
        &["--no-token", "--admin-token", ADMIN, "--log-format", "json"],
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    server.stock_product(ADMIN, "LOG-1", "l", 5, 5).await;
    let wrong = client
        .get(format!("{base}/api/v1/admin/orders"))
        .bearer_auth(WRONG)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let cart = server.cart_with("LOG-1", 1).await;
    client
        .patch(format!("{base}/api/v1/carts/{cart}"))
        .json(&json!({"email": EMAIL}))
        .send()
        .await
        .unwrap();
    let mut body = crate::checkout::checkout_body(PAY);
    body["email"] = json!(EMAIL);
    body["shipping_address"]["line1"] = json!(STREET);
    let r = client
        .post(format!("{base}/api/v1/carts/{cart}/checkout"))
        .header("Idempotency-Key", "log-key")
        .header("X-Request-Id", "canary-request-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "canary-request-1");
    // A declined one too (its failure is logged) and a receipt (the notifier runs).
    let r = client
        .get(format!("{base}/api/v1/products/LOG-1?cart_id={cart}"))
        .header("X-Session-Id", EMAIL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log_path = server.log.clone();
    assert!(server.terminate().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    for canary in [ADMIN, WRONG, PAY, EMAIL, STREET] {
        assert!(!log.contains(canary), "{canary} leaked into the log");
    }
    // One span per request, with the matched route, status and request id.
    let checkout_line = log
        .lines()
        .find(|l| l.contains("canary-request-1") && l.contains("request finished"))
        .unwrap_or_else(|| panic!("no request line for the checkout in:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(checkout_line).unwrap();
    let span = &v["span"];
    assert_eq!(
        span["route"], "/api/v1/carts/{id}/checkout",
        "{checkout_line}"
    );
    assert_eq!(span["status"], 201);
    assert_eq!(span["method"], "POST");
    assert!(v["fields"]["latency_ms"].as_f64().is_some());
    assert!(
        !checkout_line.contains(&cart),
        "ids in paths stay out of the route label"
    );
}

/// The server runs without transparent huge pages (they cost 12–16 % of its CPU under
/// strict checkouts: see BENCHMARKS.md, issue 21).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(&dir.path().join("data"), &[]).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    // Kernels since 5.0 report the process's setting; older ones say nothing.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    assert!(server.terminate().success());
}

/// Voluntary context switches of the server's sled I/O threads so far (each wake-up
/// that finds nothing to do ends in one; preemption by a busy machine does not count).
#[cfg(target_os = "linux")]
fn sled_io_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("sled-io") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// The vendored sled's I/O pool wakes one thread per buffer it is handed, not all seven
/// idle ones (`vendor/README.md`; half the server's context switches under checkouts).
/// Sequential durable writes each wait for their own flush, and each flush hands sled's
/// pool a buffer: with the published sled every one woke all seven threads.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flush_wakes_one_sled_io_thread_not_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary(&dir.path().join("data"), &[]).await;
    server
        .stock_product(BINARY_TOKEN, "WAKE-1", "Wake", 100, 1)
        .await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let writes = 200u64;
    let before = sled_io_switches(pid);
    for n in 0..writes {
        let r = client
            .put(format!("{}/api/v1/admin/inventory/WAKE-1", server.base))
            .bearer_auth(BINARY_TOKEN)
            .json(&serde_json::json!({"on_hand": n + 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Measured: 2.1 voluntary switches per write with the patch, 8.2 without it.
    let per_write = (sled_io_switches(pid) - before) as f64 / writes as f64;
    eprintln!("{per_write:.1} sled I/O thread switches per durable write");
    assert!(
        per_write < 5.0,
        "{per_write:.1} sled I/O thread switches per durable write"
    );
    assert!(server.terminate().success());
}
