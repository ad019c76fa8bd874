//! Criterion benches of the engine facade (what is benchmarked is what is served).
//!
//! - `actor/round_trip_*`: a message to a resident entity actor and its reply (a read of
//!   an empty cart), from one caller and from 64 at once.
//! - `cart_add/strict` and `cart_add/relaxed`: one cart, sequential adds — the latency of
//!   one durable write (strict waits for a flush + fdatasync).
//! - `cart_add_concurrent/strict_64`: 64 carts written concurrently — group commit at work.
//! - `sku/reserve_release_hot_*`: reserve + release on one SKU, 64 (or 256) in flight;
//!   `sku/reserve_commit_hot_strict`: reserve + commit (a sale: a stock change and its
//!   event) on one SKU, 64 in flight.
//! - `activation/cart_from_store`: activating a passivated cart actor.
//! - `checkout/facade_{1,3}_lines_strict`: one checkout saga (price, reserve, charge,
//!   commit, close the cart), sequential; `checkout/flows_64_strict`: 64 shoppers each
//!   creating a cart, adding 2 items and checking out, concurrently.
//! - `sku/reserve_commit_64_skus_strict`: reserve + commit spread over 64 SKUs.
//! - `reads/product_get`, `reads/recommendations`: the read paths (a product with its
//!   stock; recommendations from a model learned from 2,000 orders).
//! - `customers/sign_in`, `customers/sign_in_wrong_password`: a sign-in (Argon2id at
//!   OWASP's minimum cost, and a durable session write) and a refused one (the hash
//!   alone); `customers/authenticated_cart_read`: a session lookup, the cart's ownership
//!   check and its read.
//! - `codec/order_encode`, `codec/order_decode`: the storage codec on a 3-line order.
//!
//! Run: `cargo bench --bench engine`. With `CI` set, sizes shrink.

/// mimalloc: sled copies a leaf node on every write, and glibc's allocator made that the
/// largest cost of a checkout (measured in-process: 1.0k → 1.9k checkouts/s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emporium::domain::Sku;
use emporium::domain::history::parse_past_orders;
use emporium::domain::order::{Address, CheckoutRequest, Order, OrderLine};
use emporium::domain::product::ProductDraft;
use emporium::{Config, Durability, Engine};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

async fn engine(dir: &std::path::Path, durability: Durability) -> Engine {
    let mut c = Config::new(dir);
    c.durability = durability;
    let e = Engine::open(c).await.unwrap();
    if e.product("BENCH").await.is_err() {
        e.create_product(
            "BENCH",
            ProductDraft {
                name: "Bench".into(),
                price: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        e.set_on_hand("BENCH", 1_000_000_000).await.unwrap();
        for sku in LINES {
            let draft = ProductDraft {
                name: sku.into(),
                price: 250,
                ..Default::default()
            };
            e.create_product(sku, draft).await.unwrap();
            e.set_on_hand(sku, 1_000_000_000).await.unwrap();
        }
    }
    e
}

const LINES: [&str; 3] = ["LINE-1", "LINE-2", "LINE-3"];

fn checkout_request() -> CheckoutRequest {
    CheckoutRequest {
        email: "bench@example.com".into(),
        payment_token: "tok_visa".into(),
        shipping_address: Address {
            name: "Bench".into(),
            line1: "1 Orbit Way".into(),
            line2: None,
            city: "Base".into(),
            postal_code: "1".into(),
            country: "US".into(),
            region: None,
        },
        shipping_method: None,
    }
}

/// A cart holding one unit of each of the first `lines` SKUs.
async fn filled_cart(e: &Engine, lines: usize) -> String {
    let id = e.create_cart().await.unwrap().cart.id;
    for sku in &LINES[..lines] {
        e.cart_add_item(&id, sku, 1).await.unwrap();
    }
    id
}

fn checkout(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("checkout");
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(engine(dir.path(), Durability::Strict));
    let request = checkout_request();
    g.throughput(Throughput::Elements(1));
    for lines in [1, 3] {
        g.bench_function(format!("facade_{lines}_lines_strict"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cart = rt.block_on(filled_cart(&e, lines));
                    let start = Instant::now();
                    rt.block_on(e.checkout(&cart, "k", &request)).unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    let tasks = 64;
    g.throughput(Throughput::Elements(tasks as u64));
    g.bench_function("flows_64_strict", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (e, request) = (e.clone(), request.clone());
            async move {
                concurrent(tasks, iters, move |_, _| {
                    let (e, request) = (e.clone(), request.clone());
                    async move {
                        let cart = filled_cart(&e, 2).await;
                        e.checkout(&cart, "k", &request).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    // The same flow with a promotion code on the cart: its use is reserved and
    // committed by the code's actor inside the saga (an unlimited code, so every checkout
    // takes one).
    rt.block_on(e.create_promotion("BENCH", promotion_draft(None)))
        .unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("facade_3_lines_with_code_strict", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cart = rt.block_on(async {
                    let cart = filled_cart(&e, 3).await;
                    e.cart_apply_promotion(&cart, "BENCH").await.unwrap();
                    cart
                });
                let start = Instant::now();
                rt.block_on(e.checkout(&cart, "k", &request)).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.throughput(Throughput::Elements(tasks as u64));
    g.bench_function("flows_64_with_code_strict", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (e, request) = (e.clone(), request.clone());
            async move {
                concurrent(tasks, iters, move |_, _| {
                    let (e, request) = (e.clone(), request.clone());
                    async move {
                        let cart = filled_cart(&e, 2).await;
                        e.cart_apply_promotion(&cart, "BENCH").await.unwrap();
                        e.checkout(&cart, "k", &request).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    // The hot code: 300 checkouts at once for a code with 50 uses (a fresh code each
    // round); 50 go through, 250 are refused `PromotionExhausted`.
    g.throughput(Throughput::Elements(300));
    g.sample_size(10);
    let round = std::sync::atomic::AtomicU64::new(0);
    g.bench_function("hot_code_300_checkouts_50_uses_strict", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let code = format!("HOT{}", round.fetch_add(1, Ordering::Relaxed));
                let carts = rt.block_on(async {
                    e.create_promotion(&code, promotion_draft(Some(50)))
                        .await
                        .unwrap();
                    let mut carts = Vec::new();
                    for _ in 0..300 {
                        let cart = filled_cart(&e, 1).await;
                        e.cart_apply_promotion(&cart, &code).await.unwrap();
                        carts.push(cart);
                    }
                    carts
                });
                let start = Instant::now();
                let placed = rt.block_on(async {
                    let runs = carts.iter().map(|cart| {
                        let (e, request) = (e.clone(), request.clone());
                        let cart = cart.clone();
                        tokio::spawn(async move { e.checkout(&cart, "k", &request).await.is_ok() })
                    });
                    let mut placed = 0;
                    for r in futures_util::future::join_all(runs).await {
                        placed += usize::from(r.unwrap());
                    }
                    placed
                });
                total += start.elapsed();
                assert_eq!(placed, 50);
            }
            total
        })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

/// A promotion taking 10 % off the order, with at most `limit` uses.
fn promotion_draft(limit: Option<u32>) -> emporium::domain::promotion::PromotionDraft {
    emporium::domain::promotion::PromotionDraft {
        reduction: emporium::domain::pricing::Reduction::Percent(1_000),
        target: emporium::domain::pricing::Target::Order,
        min_subtotal: 0,
        starts_at: None,
        ends_at: None,
        usage_limit: limit,
        per_customer_limit: None,
        active: true,
        automatic: false,
    }
}

fn cart_add(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("cart_add");
    g.throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("strict", Durability::Strict),
        ("relaxed", Durability::Relaxed),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let e = rt.block_on(engine(dir.path(), mode));
        let id = rt.block_on(e.create_cart()).unwrap().cart.id;
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                // Toggle between 1 and 2 units so the line never hits the 999 cap.
                e.cart_set_quantity(&id, "BENCH", 1).await.unwrap();
            })
        });
        rt.block_on(e.shutdown()).unwrap();
    }
    g.finish();
}

/// Runs `per_task` operations in each of `tasks` concurrent tasks; returns the elapsed time.
async fn concurrent<F, Fut>(tasks: usize, per_task: u64, op: F) -> Duration
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                op(t, i).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    start.elapsed()
}

/// The cost of one message to a resident entity actor and its reply, through the facade:
/// a read of an empty cart (directory lookup, mailbox, handler, reply; no write to wait for).
fn actor_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("actor");
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(engine(dir.path(), Durability::Strict));
    let tasks = 64;
    let carts: Vec<String> = (0..tasks)
        .map(|_| rt.block_on(e.create_cart()).unwrap().cart.id)
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip_one_caller", |b| {
        b.to_async(&rt).iter(|| {
            let (e, id) = (e.clone(), carts[0].clone());
            async move {
                e.cart(&id).await.unwrap();
            }
        })
    });
    g.throughput(Throughput::Elements(tasks as u64));
    g.bench_function("round_trip_64_callers", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (e, carts) = (e.clone(), std::sync::Arc::new(carts.clone()));
            async move {
                concurrent(tasks, iters, move |t, _| {
                    let (e, carts) = (e.clone(), carts.clone());
                    async move {
                        e.cart(&carts[t]).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

fn cart_add_concurrent(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("cart_add_concurrent");
    let tasks = 64;
    g.throughput(Throughput::Elements(tasks as u64));
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(engine(dir.path(), Durability::Strict));
    let carts: Vec<String> = (0..tasks)
        .map(|_| rt.block_on(e.create_cart()).unwrap().cart.id)
        .collect();
    g.bench_function("strict_64", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (e, carts) = (e.clone(), carts.clone());
            async move {
                concurrent(tasks, iters, move |t, i| {
                    let (e, id) = (e.clone(), carts[t].clone());
                    async move {
                        e.cart_set_quantity(&id, "BENCH", 1 + (i % 2) as i64)
                            .await
                            .unwrap();
                    }
                })
                .await
            }
        })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn sku_hot(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("sku");
    // (name, durability, tasks in flight, whether the second step commits or releases)
    for (name, mode, tasks, commit) in [
        ("reserve_release_hot_strict", Durability::Strict, 64, false),
        (
            "reserve_release_hot_strict_256",
            Durability::Strict,
            256,
            false,
        ),
        (
            "reserve_release_hot_relaxed",
            Durability::Relaxed,
            64,
            false,
        ),
        ("reserve_commit_hot_strict", Durability::Strict, 64, true),
    ] {
        g.throughput(Throughput::Elements(tasks as u64 * 2));
        let dir = tempfile::tempdir().unwrap();
        let e = rt.block_on(engine(dir.path(), mode));
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let e = e.clone();
                async move {
                    concurrent(tasks, iters, move |_, _| {
                        let e = e.clone();
                        async move {
                            // Unique across samples: a committed id is remembered.
                            let rid = format!("r{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
                            e.reserve("BENCH", &rid, 1).await.unwrap();
                            if commit {
                                e.commit_reservation("BENCH", &rid).await.unwrap();
                            } else {
                                e.release_reservation("BENCH", &rid).await.unwrap();
                            }
                        }
                    })
                    .await
                }
            })
        });
        rt.block_on(e.shutdown()).unwrap();
    }
    g.finish();
}

fn activation(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("activation");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let n = if ci() { 500 } else { 20_000 };
    let ids: Vec<String> = {
        let e = rt.block_on(engine(dir.path(), Durability::Relaxed));
        let ids = (0..n)
            .map(|_| rt.block_on(e.create_cart()).unwrap().cart.id)
            .collect();
        rt.block_on(e.shutdown()).unwrap();
        ids
    };
    g.bench_function("cart_from_store", |b| {
        b.iter_custom(|iters| {
            // A fresh engine each sample, so every call activates a passivated cart.
            let e = rt.block_on(engine(dir.path(), Durability::Strict));
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let id = &ids[(i as usize) % ids.len()];
                let start = Instant::now();
                rt.block_on(e.cart(id)).unwrap();
                total += start.elapsed();
            }
            rt.block_on(e.shutdown()).unwrap();
            total
        })
    });
    g.finish();
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("reads");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(engine(dir.path(), Durability::Strict));
    // History for the recommender: 2,000 orders over the three line SKUs and BENCH.
    let body: String = (0..2000)
        .map(|i| {
            let a = LINES[i % 3];
            let b = if i % 2 == 0 { "BENCH" } else { LINES[(i + 1) % 3] };
            format!(
                r#"{{"id": "b{i}", "created_at": 1304244000000, "items": [{{"sku": "{a}", "quantity": 1}}, {{"sku": "{b}", "quantity": 1}}]}}"#
            ) + "\n"
        })
        .collect();
    rt.block_on(async {
        e.import_orders(parse_past_orders(&body).unwrap(), |_| {})
            .await
            .unwrap();
        // The import answers once the recommender has learned it.
        assert!(e.recommender().learned_through() >= e.event_log_end().unwrap());
    });
    g.bench_function("product_get", |b| {
        b.to_async(&rt)
            .iter(|| async { e.product("LINE-1").await.unwrap() })
    });
    g.bench_function("recommendations", |b| {
        b.to_async(&rt)
            .iter(|| async { e.recommendations("LINE-1", 10).await.unwrap() })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

/// Customer accounts: signing in (an Argon2id verify at OWASP's minimum cost, then a
/// durable session write), a wrong password (the verify alone: nothing is written), and
/// what an authenticated cart read costs (the session lookup, the ownership check, the
/// cart actor's read).
fn customers(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("customers");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(async {
        let mut c = Config::new(dir.path());
        // Failed sign-ins are measured, not throttled.
        c.login_limits.per_account = usize::MAX;
        c.login_limits.per_client = usize::MAX;
        Engine::open(c).await.unwrap()
    });
    let password = "bench password 1";
    let cart = rt.block_on(async {
        e.register("bench@example.com", password, None)
            .await
            .unwrap();
        let signed = e
            .sign_in("bench@example.com", password, None, None)
            .await
            .unwrap();
        let auth = e.authenticate(&signed.token).await.unwrap();
        let cart = e.create_cart().await.unwrap().cart.id;
        e.create_product(
            "CUST-1",
            ProductDraft {
                name: "Customer bench".into(),
                price: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        e.cart_add_item(&cart, "CUST-1", 1).await.unwrap();
        e.attach_cart(&auth, &cart).await.unwrap();
        cart
    });
    g.bench_function("sign_in", |b| {
        b.to_async(&rt).iter(|| async {
            e.sign_in("bench@example.com", password, None, None)
                .await
                .unwrap()
        })
    });
    g.bench_function("sign_in_wrong_password", |b| {
        b.to_async(&rt).iter(|| async {
            e.sign_in("bench@example.com", "wrong password", None, None)
                .await
                .unwrap_err()
        })
    });
    // A session of its own: the sign-ins above ended the oldest (an account keeps 20).
    let token = rt.block_on(async {
        e.sign_in("bench@example.com", password, None, None)
            .await
            .unwrap()
            .token
    });
    g.sample_size(50);
    g.bench_function("authenticated_cart_read", |b| {
        b.to_async(&rt).iter(|| async {
            let auth = e.authenticate(&token).await.unwrap();
            e.check_cart_access(&cart, Some(&auth)).await.unwrap();
            e.cart(&cart).await.unwrap()
        })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

fn sku_many(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("sku");
    let tasks = 64;
    g.throughput(Throughput::Elements(tasks as u64 * 2));
    let dir = tempfile::tempdir().unwrap();
    let e = rt.block_on(engine(dir.path(), Durability::Strict));
    let skus: Vec<String> = (0..tasks).map(|i| format!("MANY-{i}")).collect();
    rt.block_on(async {
        for s in &skus {
            let draft = ProductDraft {
                name: s.clone(),
                price: 1,
                ..Default::default()
            };
            e.create_product(s, draft).await.unwrap();
            e.set_on_hand(s, 1_000_000_000).await.unwrap();
        }
    });
    // Reservation ids must never repeat across samples (a committed id is remembered).
    let round = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    g.bench_function("reserve_commit_64_skus_strict", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (e, skus) = (e.clone(), skus.clone());
            let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                concurrent(tasks, iters, move |t, i| {
                    let (e, sku) = (e.clone(), skus[t].clone());
                    async move {
                        let rid = format!("m{r}-{t}-{i}");
                        e.reserve(&sku, &rid, 1).await.unwrap();
                        e.commit_reservation(&sku, &rid).await.unwrap();
                    }
                })
                .await
            }
        })
    });
    rt.block_on(e.shutdown()).unwrap();
    g.finish();
}

fn codec(c: &mut Criterion) {
    use emporium::storage::codec;
    let mut g = c.benchmark_group("codec");
    let engine_free_order = {
        let line = OrderLine {
            sku: Sku::parse("LINE-1").unwrap(),
            name: "Aurora EVA Helmet".into(),
            quantity: 2,
            unit_price: 249_900,
            line_total: 499_800,
        };
        Order::new(
            "0123456789abcdef0123456789abcdef".into(),
            "fedcba9876543210fedcba9876543210".into(),
            checkout_request(),
            vec![line.clone(), line.clone(), line],
            emporium::domain::order::OrderPricing {
                breakdown: emporium::domain::pricing::Breakdown::plain(&[499_800; 3]),
                ..Default::default()
            },
            "USD".into(),
            1_700_000_000_000,
        )
    };
    let bytes = codec::encode(&engine_free_order).unwrap();
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("order_encode", |b| {
        b.iter(|| codec::encode(&engine_free_order).unwrap())
    });
    g.bench_function("order_decode", |b| {
        b.iter(|| codec::decode::<Order>(&bytes).unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    let c = Criterion::default();
    if ci() {
        c.sample_size(10)
            .measurement_time(Duration::from_secs(1))
            .warm_up_time(Duration::from_millis(200))
    } else {
        c
    }
}

criterion_group! { name = benches; config = config(); targets = actor_round_trip, cart_add, cart_add_concurrent, sku_hot, sku_many, activation, checkout, reads, customers, codec }
criterion_main!(benches);
