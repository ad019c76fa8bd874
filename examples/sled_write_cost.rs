//! What one write costs in sled 0.34 here: a single insert against a 3-key `apply_batch`
//! and a 3-tree transaction, for a few value sizes. The gap (an atomic batch rolls sled's
//! I/O buffer and takes a global write lock) is why multi-key writes go through our own
//! journal (`src/storage/journal.rs`).
//!
//! Run: `cargo run --release --example sled_write_cost`

use sled::Transactional;
use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(Some(500))
        .open()
        .unwrap();
    let (a, b, c) = (
        db.open_tree("a").unwrap(),
        db.open_tree("b").unwrap(),
        db.open_tree("c").unwrap(),
    );
    let n = 50_000u64;
    for size in [100usize, 600, 1500] {
        let val = vec![7u8; size];
        let start = Instant::now();
        for i in 0..n {
            a.insert(
                format!("s{size}{:032x}", i.wrapping_mul(0x9e3779b97f4a7c15)),
                val.clone(),
            )
            .unwrap();
        }
        println!(
            "{size}B single insert: {:.1} µs",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let start = Instant::now();
        for i in 0..n {
            let mut bt = sled::Batch::default();
            for j in 0..3 {
                bt.insert(
                    format!("b{size}{j}{:032x}", i.wrapping_mul(0x9e3779b97f4a7c15)).as_bytes(),
                    val.clone(),
                );
            }
            a.apply_batch(bt).unwrap();
        }
        println!(
            "{size}B batch of 3, one tree: {:.1} µs",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let start = Instant::now();
        for i in 0..n {
            let k = format!("t{size}{:032x}", i.wrapping_mul(0x9e3779b97f4a7c15));
            (&a, &b, &c)
                .transaction(|(x, y, z)| {
                    x.insert(k.as_bytes(), val.clone())?;
                    y.insert(k.as_bytes(), val.clone())?;
                    z.insert(k.as_bytes(), val.clone())?;
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .unwrap();
        }
        println!(
            "{size}B transaction over 3 trees: {:.1} µs",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
