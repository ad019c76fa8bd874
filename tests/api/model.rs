//! Model-based test: random cart and inventory operations, with restarts of the engine in
//! between, run against the engine and against a plain in-memory model, compared after
//! every step and after every restart.

use std::collections::{BTreeMap, BTreeSet};

use emporium::{Engine, EngineError};
use proptest::prelude::*;

use crate::helpers::*;

const SKUS: [&str; 3] = ["M-0", "M-1", "M-2"];

#[derive(Debug, Clone)]
enum Op {
    NewCart,
    Add(usize, usize, i64),
    Set(usize, usize, i64),
    Remove(usize, usize),
    SetOnHand(usize, i64),
    Restock(usize, i64),
    Reserve(usize, u8, u32),
    Commit(usize, u8),
    Release(usize, u8),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::NewCart),
        4 => (0..4usize, 0..3usize, -2..600i64).prop_map(|(c, s, q)| Op::Add(c, s, q)),
        2 => (0..4usize, 0..3usize, -1..1001i64).prop_map(|(c, s, q)| Op::Set(c, s, q)),
        1 => (0..4usize, 0..3usize).prop_map(|(c, s)| Op::Remove(c, s)),
        2 => (0..3usize, -1..40i64).prop_map(|(s, n)| Op::SetOnHand(s, n)),
        1 => (0..3usize, 0..10i64).prop_map(|(s, n)| Op::Restock(s, n)),
        3 => (0..3usize, 0..4u8, 1..8u32).prop_map(|(s, r, q)| Op::Reserve(s, r, q)),
        2 => (0..3usize, 0..4u8).prop_map(|(s, r)| Op::Commit(s, r)),
        2 => (0..3usize, 0..4u8).prop_map(|(s, r)| Op::Release(s, r)),
        1 => Just(Op::Restart),
    ]
}

/// The plain model.
#[derive(Default, Debug)]
struct Model {
    carts: Vec<(String, Vec<(String, u32)>)>,
    on_hand: BTreeMap<String, u64>,
    reservations: BTreeMap<String, BTreeMap<String, u32>>,
    committed: BTreeMap<String, BTreeSet<String>>,
}

impl Model {
    fn reserved(&self, sku: &str) -> u64 {
        self.reservations
            .get(sku)
            .map_or(0, |r| r.values().map(|&q| u64::from(q)).sum())
    }
    fn stock(&self, sku: &str) -> (u64, u64) {
        (
            self.on_hand.get(sku).copied().unwrap_or(0),
            self.reserved(sku),
        )
    }
    /// Model of "set quantity" (`add` = false) or "add" (`add` = true); returns whether it succeeds.
    fn change(&mut self, cart: usize, sku: &str, q: i64, add: bool) -> bool {
        let lines = &mut self.carts[cart].1;
        let current = lines.iter().find(|(s, _)| s == sku).map_or(0, |l| l.1) as i64;
        let target = if add {
            if q < 1 {
                return false;
            }
            current + q
        } else {
            q
        };
        if !(0..=999).contains(&target) {
            return false;
        }
        match lines.iter().position(|(s, _)| s == sku) {
            Some(i) if target == 0 => {
                lines.remove(i);
            }
            Some(i) => lines[i].1 = target as u32,
            None if target == 0 => {}
            None => lines.push((sku.to_owned(), target as u32)),
        }
        true
    }
}

async fn check_all(engine: &Engine, model: &Model) {
    for (id, lines) in &model.carts {
        let view = engine.cart(id).await.unwrap();
        let got: Vec<(String, u32)> = view
            .cart
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), l.quantity))
            .collect();
        assert_eq!(&got, lines, "cart {id}");
        let subtotal: u64 = lines.iter().map(|(_, q)| u64::from(*q) * 100).sum();
        assert_eq!(view.priced.subtotal, subtotal);
    }
    for sku in SKUS {
        let inv = engine.inventory(sku).await.unwrap();
        assert_eq!(
            (inv.on_hand, inv.reserved),
            model.stock(sku),
            "stock of {sku}"
        );
        assert_eq!(inv.available, inv.on_hand - inv.reserved);
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = open_engine(dir.path(), |_| {}).await;
    for sku in SKUS {
        engine.create_product(sku, draft(sku, 100)).await.unwrap();
    }
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::NewCart => {
                let id = engine.create_cart().await.unwrap().cart.id;
                model.carts.push((id, Vec::new()));
            }
            Op::Add(c, s, q) | Op::Set(c, s, q) if c < model.carts.len() => {
                let add = matches!(op, Op::Add(..));
                let id = model.carts[c].0.clone();
                let got = if add {
                    engine.cart_add_item(&id, SKUS[s], q).await
                } else {
                    engine.cart_set_quantity(&id, SKUS[s], q).await
                };
                assert_eq!(
                    got.is_ok(),
                    model.change(c, SKUS[s], q, add),
                    "{op:?} -> {got:?}"
                );
                if let Err(e) = got {
                    assert!(matches!(e, EngineError::Invalid(_)), "{e:?}");
                }
            }
            Op::Remove(c, s) if c < model.carts.len() => {
                let id = model.carts[c].0.clone();
                engine.cart_remove_item(&id, SKUS[s]).await.unwrap();
                model.change(c, SKUS[s], 0, false);
            }
            Op::SetOnHand(s, n) => {
                let got = engine.set_on_hand(SKUS[s], n).await;
                let ok = n >= 0 && n as u64 >= model.reserved(SKUS[s]);
                assert_eq!(got.is_ok(), ok, "{op:?} -> {got:?}");
                if ok {
                    model.on_hand.insert(SKUS[s].into(), n as u64);
                }
            }
            Op::Restock(s, n) => {
                let got = engine.restock(SKUS[s], n).await;
                assert_eq!(got.is_ok(), n >= 1);
                if n >= 1 {
                    *model.on_hand.entry(SKUS[s].into()).or_default() += n as u64;
                }
            }
            Op::Reserve(s, r, q) => {
                let rid = format!("r{r}");
                let got = engine.reserve(SKUS[s], &rid, q).await;
                let (on_hand, reserved) = model.stock(SKUS[s]);
                let existing = model
                    .reservations
                    .get(SKUS[s])
                    .and_then(|m| m.get(&rid))
                    .copied();
                let was_committed = model
                    .committed
                    .get(SKUS[s])
                    .is_some_and(|c| c.contains(&rid));
                let ok = match existing {
                    Some(e) => e == q,
                    None => !was_committed && u64::from(q) <= on_hand - reserved,
                };
                assert_eq!(got.is_ok(), ok, "{op:?} -> {got:?}");
                if ok {
                    model
                        .reservations
                        .entry(SKUS[s].into())
                        .or_default()
                        .insert(rid, q);
                }
            }
            Op::Commit(s, r) => {
                let rid = format!("r{r}");
                let got = engine.commit_reservation(SKUS[s], &rid).await;
                let held = model
                    .reservations
                    .get_mut(SKUS[s])
                    .and_then(|m| m.remove(&rid));
                let was_committed = model
                    .committed
                    .get(SKUS[s])
                    .is_some_and(|c| c.contains(&rid));
                assert_eq!(
                    got.is_ok(),
                    held.is_some() || was_committed,
                    "{op:?} -> {got:?}"
                );
                if let Some(q) = held {
                    *model.on_hand.get_mut(SKUS[s]).unwrap() -= u64::from(q);
                    model
                        .committed
                        .entry(SKUS[s].into())
                        .or_default()
                        .insert(rid);
                }
            }
            Op::Release(s, r) => {
                engine
                    .release_reservation(SKUS[s], &format!("r{r}"))
                    .await
                    .unwrap();
                if let Some(m) = model.reservations.get_mut(SKUS[s]) {
                    m.remove(&format!("r{r}"));
                }
            }
            Op::Restart => {
                engine.shutdown().await.unwrap();
                drop(engine);
                engine = open_engine(dir.path(), |_| {}).await;
                check_all(&engine, &model).await;
            }
            _ => {}
        }
    }
    check_all(&engine, &model).await;
    engine.shutdown().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn carts_and_inventory_match_a_plain_model_across_restarts(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
