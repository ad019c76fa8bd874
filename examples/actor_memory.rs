//! Resident memory per idle cart actor.
//!
//! Stores N carts, restarts the engine so none is resident, then activates all N (one
//! read each) and reports the growth of resident set size and of live heap bytes per
//! actor. The heap figure counts every allocation made while activating (the actor's
//! task and mailbox, its state, the directory entry, and the cart's share of sled's page
//! cache), so it is an upper bound on the actor's own cost.
//! Then it shows passivation returning the resident count to zero.
//!
//! Run: `cargo run --release --example actor_memory -- 100000`
//!
//! `-- --bounded 10000000 60` instead stores that many carts, reopens the engine with its
//! default resident cap and passivation, and reads random carts from 16 tasks for 60 s,
//! printing the resident count and RSS every 10 s: memory stays bounded however many
//! carts are stored.

#![allow(unsafe_code)] // a counting GlobalAlloc needs it; nothing else in the crate does

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use emporium::{Config, Durability, Engine};

mod common;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config(dir: &std::path::Path, passivate: Duration) -> Config {
    let mut c = Config::new(dir);
    c.durability = Durability::Relaxed; // setup speed only; durability does not change memory
    c.passivate_after = passivate;
    // Every activated cart is meant to stay resident here: no cap.
    c.max_resident_actors = usize::MAX;
    c
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--measure") {
        return measure(std::path::Path::new(&args[2])).await;
    }
    if args.get(1).map(String::as_str) == Some("--bounded") {
        let n = args
            .get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000_000);
        let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
        return bounded(n, secs).await;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();

    let engine = Engine::open(config(dir.path(), Duration::from_secs(3600)))
        .await
        .unwrap();
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(engine.create_cart().await.unwrap().cart.id);
    }
    println!("stored {n} carts in {:.1?}", t.elapsed());
    engine.shutdown().await.unwrap();
    drop(engine);
    std::fs::write(dir.path().join("ids.txt"), ids.join("\n")).unwrap();

    // Measure in a fresh process, so memory this one freed cannot hide the growth.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--measure")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());

    // Passivation bounds the resident set however many carts are stored.
    let engine = Engine::open(config(dir.path(), Duration::from_millis(500)))
        .await
        .unwrap();
    for id in ids.iter().take(n.min(20_000)) {
        engine.cart(id).await.unwrap();
    }
    let peak = engine.stats().carts.resident;
    let t = Instant::now();
    while engine.stats().carts.resident > 0 && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "passivation: {peak} resident after a burst, {} resident {:.1?} later ({} passivated)",
        engine.stats().carts.resident,
        t.elapsed(),
        engine.stats().carts.passivated
    );
    engine.shutdown().await.unwrap();
}

async fn measure(dir: &std::path::Path) {
    let ids: Vec<String> = std::fs::read_to_string(dir.join("ids.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let n = ids.len();
    let engine = Engine::open(config(dir, Duration::from_secs(3600)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss0, heap0) = (common::rss_bytes(), LIVE.load(Ordering::Relaxed));
    let t = Instant::now();
    for id in &ids {
        engine.cart(id).await.unwrap();
    }
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss1, heap1) = (common::rss_bytes(), LIVE.load(Ordering::Relaxed));
    let resident = engine.stats().carts.resident;
    println!(
        "activated {resident} cart actors in {took:.1?} ({:.0} activations/s)",
        n as f64 / took.as_secs_f64()
    );
    println!(
        "RSS growth per resident idle cart actor:  {:.0} bytes",
        (rss1 - rss0) as f64 / n as f64
    );
    println!(
        "heap growth per resident idle cart actor: {:.0} bytes",
        (heap1 - heap0) as f64 / n as f64
    );
    println!(
        "total RSS with {resident} resident: {:.0} MiB",
        rss1 as f64 / 1048576.0
    );
    engine.shutdown().await.unwrap();
}

/// Many stored carts, random reads: the resident set and RSS stay bounded.
async fn bounded(n: usize, secs: u64) {
    let dir = tempfile::tempdir_in(std::env::var("BOUNDED_DIR").unwrap_or_else(|_| "/tmp".into()))
        .unwrap();
    // A working set of one in 20 (500,000 of 10M; `BOUNDED_KEEP_EVERY` to change), larger
    // than the resident cap.
    let keep_every = std::env::var("BOUNDED_KEEP_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t = Instant::now();
    let ids = common::store_carts(dir.path(), n, keep_every);
    println!("stored {n} carts in {:.1?}", t.elapsed());

    // The defaults of `serve`: 5-minute idle period, at most 100,000 resident a kind.
    let mut c = Config::new(dir.path());
    c.durability = Durability::Relaxed;
    if let Some(mb) = std::env::var("BOUNDED_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        c.cache_capacity_bytes = mb * 1024 * 1024;
    }
    let engine = Engine::open(c).await.unwrap();
    let ids = std::sync::Arc::new(ids);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let readers: Vec<_> = (0..16u64)
        .map(|k| {
            let (engine, ids) = (engine.clone(), ids.clone());
            tokio::spawn(async move {
                let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut reads = 0u64;
                while Instant::now() < deadline {
                    let i = common::xorshift(&mut x) % ids.len() as u64;
                    engine.cart(&ids[i as usize]).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10)).await;
        println!(
            "{:>4.0} s: {} resident carts, RSS {:.0} MiB, live heap {:.0} MiB",
            started.elapsed().as_secs_f64(),
            engine.stats().carts.resident,
            common::rss_bytes() as f64 / 1048576.0,
            LIVE.load(Ordering::Relaxed) as f64 / 1048576.0
        );
    }
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    println!(
        "{reads} random reads of {} carts ({:.0}/s)",
        ids.len(),
        reads as f64 / secs as f64
    );
    engine.shutdown().await.unwrap();
}
