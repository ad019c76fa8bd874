//! A full disk: the data directory on a small tmpfs. Mounting one needs root: elsewhere the
//! test says loudly that it did not run, and where `EMPORIUM_REQUIRE_DISK_FULL_TEST` is set
//! (`.ci/run`, which runs as root) not running is a failure, never a silent pass. When a flush fails for lack of space, writes answer `507` and
//! are not acknowledged, reads keep working and `/ready` turns 503; after space is freed
//! and the process restarted, everything acknowledged is there and writes work again.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::helpers::*;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the filesystem is full (to the last 4 KiB).
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096] {
        let buf = vec![0xA5u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.flush();
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("mnt");
    let Some(_fs) = Tmpfs::mount(&mnt, 48) else {
        let why = "mounting a tmpfs failed: it needs root (CAP_SYS_ADMIN)";
        assert!(
            std::env::var_os("EMPORIUM_REQUIRE_DISK_FULL_TEST").is_none(),
            "the full-disk test must run here, but {why}"
        );
        eprintln!(
            "\n!!! SKIPPED a_full_disk_refuses_writes_…: {why}; nothing about a full disk was tested. \
             Run the tests as root (as .ci/run does) to exercise it.\n"
        );
        return;
    };
    // The data directory is the tmpfs itself; the server's log goes beside it, outside.
    let server = start_binary(&mnt, &[]).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    server
        .stock_product(BINARY_TOKEN, "DF-1", "Oxygen Canister", 1500, 1_000_000)
        .await;

    // A cart with a line, acknowledged before the disk fills.
    let new_cart = || async {
        let r = client
            .post(format!("{base}/api/v1/carts"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        (status, body["id"].as_str().unwrap_or("").to_owned(), body)
    };
    let add = |id: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .post(format!("{base}/api/v1/carts/{id}/items"))
                .json(&json!({"sku": "DF-1", "quantity": 2}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, before, _) = new_cart().await;
    assert_eq!(status, 201);
    assert_eq!(add(before.clone()).await.0, 200);

    fill(&mnt.join("filler"));

    // Writes (a cart's first line) until one is refused; after the first refusal, none is
    // acknowledged. Making a cart writes nothing (the id is the empty cart), so it is
    // answered throughout.
    let mut acknowledged = vec![before.clone()];
    let mut refused = Vec::new();
    for _ in 0..500 {
        let (status, id, body) = new_cart().await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = add(id.clone()).await;
        if status == 200 {
            assert!(
                refused.is_empty(),
                "a write was acknowledged after one was refused"
            );
            acknowledged.push(id);
            continue;
        }
        assert!(matches!(status, 503 | 507), "{status}: {body}");
        refused.push((status, body));
        if refused.len() >= 20 {
            break;
        }
    }
    eprintln!(
        "disk full: {} carts acknowledged, then refused: {:?}",
        acknowledged.len(),
        refused
            .iter()
            .map(|(s, b)| (*s, b["code"].clone()))
            .collect::<Vec<_>>()
    );
    assert!(!refused.is_empty(), "the disk never filled up");
    assert!(
        refused
            .iter()
            .any(|(s, b)| *s == 507 && b["code"] == "insufficient_storage"),
        "no 507 insufficient_storage among {refused:?}"
    );

    // Reads keep working; readiness says the node should not take writes.
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    assert_eq!(get("/health").await.unwrap().status(), 200);
    assert_eq!(get("/ready").await.unwrap().status(), 503);
    assert_eq!(get("/api/v1/products/DF-1").await.unwrap().status(), 200);
    assert_eq!(
        get("/api/v1/products?q=oxygen").await.unwrap().status(),
        200
    );
    let r = get(&format!("/api/v1/carts/{before}")).await.unwrap();
    assert_eq!(r.status(), 200);

    // Free the space and restart: everything acknowledged is there; writes work again.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let status = server.terminate();
    assert!(
        !status.success(),
        "a server whose store failed exits non-zero"
    );
    let server = start_binary(&mnt, &[]).await;
    let base = server.base.clone();
    for id in &acknowledged {
        let r = client
            .get(format!("{base}/api/v1/carts/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged cart {id} lost");
        let cart: serde_json::Value = r.json().await.unwrap();
        assert_eq!(cart["items"][0]["quantity"], 2, "{cart}");
    }
    let r = client
        .post(format!("{base}/api/v1/carts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(server.terminate().success());
}
