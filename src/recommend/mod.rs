//! Recommendations: "bought together" from orders, "viewed together" from sessions.
//!
//! The [`Recommender`] is an event-log subscriber: every `OrderPlaced` and `OrderImported`
//! is a basket it learns ([`stats::CoStats`]). Product views with a session id are baskets
//! of "viewed together" pairs (each new view pairs with the session's earlier views).
//! Answers come from memory. The model is saved to `DATA_DIR/recommender.snapshot` now
//! and then and at shutdown, with the sequence number of the last event it learned; on
//! start it loads the snapshot and the event log is replayed from that number on — so it
//! survives restarts without re-learning all history, and never learns an order twice.
//! Views are not in the event log: those since the last snapshot are lost in a crash.

pub mod intern;
pub mod names;
pub mod stats;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::dispatcher::{Delivery, Subscriber};
use crate::domain::event::{DomainEvent, LoggedEvent};
use crate::storage::{Record, StorageError, Store, codec};
use intern::top_k;
use names::NameIndex;
use stats::{CoStats, Scoring};

/// Views remembered per session (older ones drop out).
const SESSION_VIEWS: usize = 20;
/// Sessions remembered (the oldest are forgotten first). Session ids are chosen by
/// clients (`X-Session-Id`, at most 128 bytes), so this bounds what they can make the
/// server hold: at most 20,000 × (128 + 20 × 64) bytes ≈ 28 MB, however many they send.
const MAX_SESSIONS: usize = 20_000;
/// Candidates taken from each of bought-together and name similarity before blending.
const BLEND_CANDIDATES: usize = 200;
/// Products taken from each item's list when a basket's lists are fused.
const BASKET_CANDIDATES: usize = 50;
/// Most items of a basket whose lists are fused: its latest ones (bounds the cost of
/// a large cart; older items weigh little by then).
pub const BASKET_CONTEXT: usize = 3;

/// What the recommender knows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    /// Orders as baskets.
    pub bought: CoStats,
    /// Sessions as baskets of viewed products.
    pub viewed: CoStats,
    /// The sequence number of the last event learned.
    pub learned_through: u64,
    #[serde(skip)]
    sessions: HashMap<String, VecDeque<String>>,
    #[serde(skip)]
    session_order: VecDeque<String>,
}

impl Record for Model {
    const VERSION: u8 = 1;
    const NAME: &'static str = "recommender snapshot";
}

impl Model {
    /// Learns one order.
    pub fn learn_order<S: AsRef<str>>(&mut self, items: &[S], at_ms: i64, scoring: &Scoring) {
        let w = CoStats::basket_weight(scoring, items.len(), at_ms);
        self.bought.learn(items, w, scoring);
    }

    /// Records that `session` viewed `sku`: it pairs with the session's earlier views.
    pub fn view(&mut self, session: &str, sku: &str, at_ms: i64, scoring: &Scoring) {
        if !self.sessions.contains_key(session) {
            if self.session_order.len() >= MAX_SESSIONS
                && let Some(old) = self.session_order.pop_front()
            {
                self.sessions.remove(&old);
            }
            self.session_order.push_back(session.to_owned());
        }
        let seen = self.sessions.entry(session.to_owned()).or_default();
        if seen.iter().any(|s| s == sku) {
            return;
        }
        let w = CoStats::basket_weight(scoring, 2, at_ms);
        for earlier in seen.iter() {
            self.viewed.learn(&[earlier.as_str(), sku], w, scoring);
        }
        if seen.is_empty() {
            self.viewed.learn(&[sku], w, scoring);
        }
        seen.push_back(sku.to_owned());
        if seen.len() > SESSION_VIEWS {
            seen.pop_front();
        }
    }
}

/// Views waiting for the model's lock, at most (older ones are dropped first).
const MAX_PENDING_VIEWS: usize = 10_000;

/// The recommender: a shared model, its scoring, and where it is saved.
///
/// Request handlers never wait for the model's lock behind a snapshot: a snapshot is
/// encoded under the *read* lock with `saving` set, and writers stay off the lock while it
/// is (they never queue for it, so no reader queues behind a writer either). A product
/// view, the one write a request makes, takes the lock only if it is free at once;
/// otherwise it is parked in `pending_views` and applied by the next writer.
pub struct Recommender {
    model: RwLock<Model>,
    /// Views that found the model locked, applied by the next writer.
    pending_views: std::sync::Mutex<VecDeque<(String, String, i64)>>,
    /// Set while a snapshot is encoded: writers keep off the lock.
    saving: std::sync::atomic::AtomicBool,
    /// The model changed since the last snapshot.
    dirty: std::sync::atomic::AtomicBool,
    names: RwLock<NameIndex>,
    scoring: Scoring,
    path: PathBuf,
}

/// The subscriber name (its offset key).
pub const SUBSCRIBER: &str = "recommender";

impl Recommender {
    /// Loads the snapshot in `data_dir`, if any.
    pub fn open(data_dir: &Path, scoring: Scoring) -> Result<Recommender, StorageError> {
        let path = data_dir.join("recommender.snapshot");
        let model = match std::fs::read(&path) {
            Ok(bytes) => codec::decode(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Model::default(),
            Err(e) => return Err(StorageError::io(format!("reading {}", path.display()), e)),
        };
        Ok(Recommender {
            model: RwLock::new(model),
            pending_views: Default::default(),
            saving: Default::default(),
            dirty: Default::default(),
            names: RwLock::default(),
            scoring,
            path,
        })
    }

    /// The sequence number of the last event the model learned.
    pub fn learned_through(&self) -> u64 {
        self.model.read().expect("model lock").learned_through
    }

    /// The model for writing, if that is possible at once: not while a snapshot is
    /// encoded, and never by queueing for the lock. Views parked meanwhile are applied
    /// first.
    fn try_model_mut(&self) -> Option<std::sync::RwLockWriteGuard<'_, Model>> {
        use std::sync::atomic::Ordering;
        if self.saving.load(Ordering::Acquire) {
            return None;
        }
        let mut m = self.model.try_write().ok()?;
        let parked = std::mem::take(&mut *self.pending_views.lock().expect("views lock"));
        for (session, sku, at) in parked {
            m.view(&session, &sku, at, &self.scoring);
        }
        self.dirty.store(true, Ordering::Release);
        Some(m)
    }

    /// The model for writing, waiting (off the lock) while a snapshot is encoded: for
    /// background writers and tools.
    fn model_mut(&self) -> std::sync::RwLockWriteGuard<'_, Model> {
        loop {
            if let Some(m) = self.try_model_mut() {
                return m;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Saves the model if it changed (written to a temporary file, synced, renamed).
    /// Encoding holds only the read lock: readers go on meanwhile.
    pub fn save(&self) -> Result<bool, StorageError> {
        use std::sync::atomic::Ordering;
        struct Saving<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Saving<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let bytes = {
            let _saving = Saving(&self.saving);
            self.saving.store(true, Ordering::Release);
            if !self.dirty.swap(false, Ordering::AcqRel) {
                return Ok(false);
            }
            let m = self.model.read().expect("model lock");
            codec::encode(&*m)
        };
        let written = bytes.and_then(|bytes| self.write_snapshot(&bytes));
        if written.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        written.map(|()| true)
    }

    fn write_snapshot(&self, bytes: &[u8]) -> Result<(), StorageError> {
        let io = |e: std::io::Error| StorageError::io("saving the recommender", e);
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(bytes).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Records a product view in a session. Never waits for the model's lock: if it is
    /// taken, the view is parked and applied by the next writer (at most
    /// 10,000 wait; beyond that the oldest are dropped — views are a
    /// signal, not a record).
    pub fn view(&self, session: &str, sku: &str, at_ms: i64) {
        if let Some(mut m) = self.try_model_mut() {
            m.view(session, sku, at_ms, &self.scoring);
            return;
        }
        let mut parked = self.pending_views.lock().expect("views lock");
        if parked.len() >= MAX_PENDING_VIEWS {
            parked.pop_front();
        }
        parked.push_back((session.to_owned(), sku.to_owned(), at_ms));
    }

    /// Learns an event (idempotent: events at or before `learned_through` are skipped).
    pub fn learn(&self, event: &LoggedEvent) {
        let mut m = self.model_mut();
        self.learn_into(&mut m, event);
    }

    /// [`Recommender::learn`] if the model can be written at once; whether it was.
    pub fn try_learn(&self, event: &LoggedEvent) -> bool {
        match self.try_model_mut() {
            Some(mut m) => {
                self.learn_into(&mut m, event);
                true
            }
            None => false,
        }
    }

    fn learn_into(&self, m: &mut Model, event: &LoggedEvent) {
        if event.seq <= m.learned_through {
            return;
        }
        match &event.event {
            DomainEvent::OrderPlaced { items, .. } => {
                let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
                m.learn_order(&skus, event.at, &self.scoring);
            }
            DomainEvent::OrderImported {
                items, created_at, ..
            } => {
                let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
                m.learn_order(&skus, *created_at, &self.scoring);
            }
            _ => {}
        }
        m.learned_through = event.seq;
    }

    /// Candidates for `sku`, best first, each with where it came from: bought together
    /// (with name similarity blended in: `bought_together`, or `similar` for a product
    /// only its name brought), then viewed together (scored on its own scale); for a
    /// product without bought-together partners, then products named like it (`similar`).
    pub fn related(&self, sku: &str, limit: usize) -> Vec<(String, &'static str)> {
        self.related_with(sku, limit, &self.scoring)
    }

    /// [`Recommender::related`] ranked with another scoring's ranking knobs (`beta`,
    /// `min_support`, `name_weight`, `name_shrink`; the learning knobs are the model's):
    /// evaluations compare rankings without learning the orders again.
    pub fn related_with(
        &self,
        sku: &str,
        limit: usize,
        scoring: &Scoring,
    ) -> Vec<(String, &'static str)> {
        self.related_for(sku, limit, scoring, None)
    }

    /// [`Recommender::related_with`] for a shopper who bought `own` before (product →
    /// how many of their orders had it): of the products bought with `sku`, those they
    /// bought themselves weigh more ([`Scoring::own_weight`]). A returning customer's
    /// next basket repeats much of their earlier ones (BENCHMARKS.md).
    pub fn related_for(
        &self,
        sku: &str,
        limit: usize,
        scoring: &Scoring,
        own: Option<&HashMap<String, u32>>,
    ) -> Vec<(String, &'static str)> {
        let m = self.model.read().expect("model lock");
        let mut bought = m.bought.related(sku, scoring, limit.max(BLEND_CANDIDATES));
        if let (Some(own), true) = (own, scoring.own_weight > 0.0) {
            let lift = |n: u32| 1.0 + scoring.own_weight * f64::from(n).ln_1p();
            let taken: std::collections::HashSet<Arc<str>> =
                bought.iter().map(|(s, _)| s.clone()).collect();
            for (s, x) in bought.iter_mut() {
                if let Some(&n) = own.get(&**s) {
                    *x *= lift(n);
                }
            }
            // Their own products bought with this one but past the candidates taken.
            if let Some(score) = m.bought.scorer(sku, scoring) {
                for (s, &n) in own {
                    if s != sku
                        && !taken.contains(s.as_str())
                        && let Some(x) = score(s)
                    {
                        bought.push((Arc::from(s.as_str()), x * lift(n)));
                    }
                }
            }
            // Blended as a guest's list is: the best `BLEND_CANDIDATES` (or `limit`).
            bought = top_k(bought, limit.max(BLEND_CANDIDATES), |x, y| {
                y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0))
            });
        }
        let seen = f64::from(m.bought.count(sku).max(1));
        let weight = scoring.name_weight * (1.0 + scoring.name_shrink / seen);
        let mut out = self.blend_names(sku, bought, limit, weight);
        let viewed = Scoring {
            min_support: 1,
            ..*scoring
        };
        let cold = out.is_empty();
        for (s, _) in m.viewed.related(sku, &viewed, limit) {
            if !out.iter().any(|(o, _)| **o == *s) {
                out.push((s.to_string(), "viewed_together"));
            }
        }
        // Never bought with anything (new, or bought too rarely to count): products named
        // like it — on the UCI history 2.5–3.5× the hit-rate of best sellers for such
        // products (see BENCHMARKS.md).
        if cold && out.len() < limit && scoring.name_weight > 0.0 {
            let similar = self.names.read().expect("names lock").similar(sku, limit);
            for (s, _) in similar {
                if out.len() < limit && !out.iter().any(|(o, _)| **o == *s) {
                    out.push((s.to_string(), "similar"));
                }
            }
        }
        out
    }

    /// Recommendations for a whole basket (a cart; its items in the order they were
    /// added): the lists of its latest [`BASKET_CONTEXT`] items
    /// ([`Recommender::related_for`], so names, views and the shopper's own products count
    /// as they do for one product) fused by reciprocal rank ([`Scoring::basket_fusion`]),
    /// each weighing [`Scoring::basket_decay`] times the one added after it: what was
    /// added last says most about what comes next. Nothing already in the basket is
    /// offered.
    pub fn related_to_basket(
        &self,
        basket: &[&str],
        limit: usize,
        scoring: &Scoring,
        own: Option<&HashMap<String, u32>>,
    ) -> Vec<(String, &'static str)> {
        let mut context: Vec<&str> = Vec::new();
        for &sku in basket.iter().rev() {
            if context.len() >= BASKET_CONTEXT {
                break;
            }
            if !context.contains(&sku) {
                context.push(sku);
            }
        }
        let depth = limit.max(BASKET_CANDIDATES);
        let mut fused: HashMap<String, (f64, f64, &'static str)> = HashMap::new();
        for (age, sku) in context.iter().enumerate() {
            let weight = scoring.basket_decay.powi(age as i32);
            for (rank, (s, why)) in self
                .related_for(sku, depth, scoring, own)
                .into_iter()
                .enumerate()
            {
                if basket.contains(&s.as_str()) {
                    continue;
                }
                let add = weight / (scoring.basket_fusion + rank as f64);
                let e = fused.entry(s).or_insert((0.0, 0.0, why));
                e.0 += add;
                // Where it came from: the list that put it highest.
                if add > e.1 {
                    (e.1, e.2) = (add, why);
                }
            }
        }
        top_k(fused.into_iter().collect(), limit, |x, y| {
            y.1.0.total_cmp(&x.1.0).then_with(|| x.0.cmp(&y.0))
        })
        .into_iter()
        .map(|(s, (_, _, why))| (s, why))
        .collect()
    }

    /// Blends name similarity into bought-together scores (each normalised by its best
    /// so the weight means the same for every product). A product never bought with
    /// anything gets nothing here (see `related`).
    fn blend_names(
        &self,
        sku: &str,
        bought: Vec<(Arc<str>, f64)>,
        limit: usize,
        weight: f64,
    ) -> Vec<(String, &'static str)> {
        let Some(best) = bought.first().map(|b| b.1.max(f64::MIN_POSITIVE)) else {
            return Vec::new();
        };
        let mut scored: HashMap<Arc<str>, (f64, &'static str)> = bought
            .into_iter()
            .map(|(s, x)| (s, (x / best, "bought_together")))
            .collect();
        if weight > 0.0 {
            for (s, sim) in self
                .names
                .read()
                .expect("names lock")
                .similar(sku, BLEND_CANDIDATES)
            {
                scored.entry(s).or_insert((0.0, "similar")).0 += weight * sim;
            }
        }
        top_k(scored.into_iter().collect(), limit, |x, y| {
            y.1.0.total_cmp(&x.1.0).then_with(|| x.0.cmp(&y.0))
        })
        .into_iter()
        .map(|(s, (_, why))| (s.to_string(), why))
        .collect()
    }

    /// Sets the name of a product (`None`: it was deleted), for name similarity.
    pub fn set_name(&self, sku: &str, name: Option<&str>) {
        self.names.write().expect("names lock").set(sku, name);
    }

    /// Sets the name of `sku` to what `read` finds now. The read happens under the names
    /// lock, as do the reads of [`Recommender::load_names`], so whichever applies last
    /// also read last: a concurrent load can never put back a name older than an update.
    pub fn refresh_name<E>(
        &self,
        sku: &str,
        read: impl FnOnce() -> Result<Option<String>, E>,
    ) -> Result<(), E> {
        let mut names = self.names.write().expect("names lock");
        let name = read()?;
        names.set(sku, name.as_deref());
        Ok(())
    }

    /// Loads every product's name from `products` (a scan of the product table), a chunk
    /// at a time under the names lock (see [`Recommender::refresh_name`]); returns how many.
    pub fn load_names<E>(
        &self,
        products: impl Iterator<Item = Result<crate::domain::product::Product, E>>,
    ) -> Result<usize, E> {
        const CHUNK: usize = 1_000;
        let mut products = products.peekable();
        let mut loaded = 0;
        while products.peek().is_some() {
            let mut names = self.names.write().expect("names lock");
            for p in products.by_ref().take(CHUNK) {
                let p = p?;
                names.set(p.sku.as_str(), Some(&p.name));
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// The scoring it ranks with.
    pub fn scoring(&self) -> &Scoring {
        &self.scoring
    }

    /// Learns one order placed at `at_ms` (tools and evaluations; the engine learns from
    /// the event log).
    pub fn learn_order<S: AsRef<str>>(&self, items: &[S], at_ms: i64) {
        self.model_mut().learn_order(items, at_ms, &self.scoring);
    }

    /// Best sellers (raw counts), best first.
    pub fn bestsellers(&self, limit: usize) -> Vec<String> {
        let m = self.model.read().expect("model lock");
        m.bought
            .popular(limit)
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect()
    }

    /// Orders learned and distinct products seen.
    pub fn size(&self) -> (u64, usize) {
        let m = self.model.read().expect("model lock");
        (m.bought.baskets(), m.bought.len())
    }
}

/// The subscriber face of a shared recommender: learns orders, and keeps product names
/// current from `ProductChanged` (reading the product's present name from the store, so
/// a re-delivered event is harmless).
pub struct Learner {
    /// What learns.
    pub recommender: Arc<Recommender>,
    /// Where product names are read.
    pub store: Store,
}

impl Subscriber for Learner {
    fn name(&self) -> &str {
        SUBSCRIBER
    }

    fn handle<'a>(&'a self, event: &'a LoggedEvent) -> Delivery<'a> {
        Box::pin(async move {
            if let DomainEvent::ProductChanged { sku, .. } = &event.event {
                self.recommender.refresh_name(sku, || {
                    let product = self.store.tables().product(sku)?;
                    Ok::<_, StorageError>(product.map(|p| p.name.clone()))
                })?;
            }
            // Off the lock while a snapshot is being encoded (see `Recommender`).
            while !self.recommender.try_learn(event) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventItem;

    fn placed(seq: u64, skus: &[&str]) -> LoggedEvent {
        LoggedEvent {
            seq,
            at: 1_300_000_000_000,
            event: DomainEvent::OrderPlaced {
                order_id: format!("o{seq}"),
                items: skus
                    .iter()
                    .map(|s| EventItem {
                        sku: (*s).into(),
                        quantity: 1,
                        unit_price: 1,
                    })
                    .collect(),
                total: 1,
                currency: "USD".into(),
                breakdown: Default::default(),
                promotion_code: None,
            },
        }
    }

    /// The SKUs of `related_to_basket` with the default scoring.
    fn basket_list(
        rec: &Recommender,
        basket: &[&str],
        limit: usize,
        own: Option<&HashMap<String, u32>>,
    ) -> Vec<String> {
        rec.related_to_basket(basket, limit, rec.scoring(), own)
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    #[test]
    fn a_basket_gets_what_goes_with_its_latest_items_and_nothing_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recommender::open(dir.path(), Scoring::default()).unwrap();
        for k in 0..3 {
            rec.learn_order(&["TENT", "PEGS"], k);
            rec.learn_order(&["LAMP", "BULB"], k);
            rec.learn_order(&["TENT", "LAMP", "ROPE"], k);
        }
        let skus = |basket: &[&str]| basket_list(&rec, basket, 3, None);
        // What goes with both leads, then the latest item's partner before the older
        // one's; nothing already in the basket comes back.
        assert_eq!(skus(&["TENT", "LAMP"]), ["ROPE", "BULB", "PEGS"]);
        assert_eq!(skus(&["LAMP", "TENT"]), ["ROPE", "PEGS", "BULB"]);
        // One item: its own list.
        let one: Vec<String> = rec.related("LAMP", 3).into_iter().map(|(s, _)| s).collect();
        assert_eq!(skus(&["LAMP"]), one);
        assert!(skus(&[]).is_empty());
    }

    #[test]
    fn a_shoppers_own_products_rise_in_a_baskets_list_too() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recommender::open(dir.path(), Scoring::default()).unwrap();
        for k in 0..3 {
            rec.learn_order(&["TENT", "PEGS"], k);
        }
        rec.learn_order(&["TENT", "MINE"], 3);
        let skus = |own: Option<&HashMap<String, u32>>| basket_list(&rec, &["TENT"], 2, own);
        assert_eq!(skus(None), ["PEGS", "MINE"]);
        let own: HashMap<String, u32> = [("MINE".to_owned(), 2)].into_iter().collect();
        assert_eq!(skus(Some(&own)), ["MINE", "PEGS"]);
    }

    #[test]
    fn learning_is_idempotent_by_sequence_and_survives_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recommender::open(dir.path(), Scoring::default()).unwrap();
        r.learn(&placed(1, &["A", "B"]));
        r.learn(&placed(2, &["A", "B", "C"]));
        r.learn(&placed(2, &["A", "B", "C"])); // redelivered
        assert_eq!(r.size().0, 2);
        r.view("s1", "A", 1_300_000_000_000);
        r.view("s1", "D", 1_300_000_000_000);
        assert!(r.save().unwrap());
        assert!(!r.save().unwrap(), "nothing new to save");
        let again = Recommender::open(dir.path(), Scoring::default()).unwrap();
        assert_eq!(again.learned_through(), 2);
        assert_eq!(again.size().0, 2);
        let related = again.related("A", 10);
        assert_eq!(related[0], ("B".to_owned(), "bought_together"));
        assert!(related.contains(&("D".to_owned(), "viewed_together")));
        assert_eq!(again.bestsellers(1), ["A"]);
    }

    #[test]
    fn a_shoppers_own_products_rise_among_those_bought_with_the_query() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recommender::open(dir.path(), Scoring::default()).unwrap();
        // B was bought with A three times, C once; D never with A.
        for seq in 1..=3 {
            r.learn(&placed(seq, &["A", "B"]));
        }
        r.learn(&placed(4, &["A", "C"]));
        r.learn(&placed(5, &["D"]));
        let skus = |own: Option<&HashMap<String, u32>>, s: &Scoring| -> Vec<String> {
            r.related_for("A", 10, s, own)
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        };
        let d = Scoring::default();
        assert_eq!(skus(None, &d), ["B", "C"]);
        // A shopper who bought C (and D, and A itself) before: C first; D, never bought
        // with A, and A itself stay out.
        let own: HashMap<String, u32> = [("C", 1), ("D", 5), ("A", 2)]
            .into_iter()
            .map(|(s, n)| (s.to_owned(), n))
            .collect();
        assert_eq!(skus(Some(&own), &d), ["C", "B"]);
        // Not weighed at all: the list everyone gets.
        let off = Scoring {
            own_weight: 0.0,
            ..d
        };
        assert_eq!(skus(Some(&own), &off), ["B", "C"]);
        // Past the candidates taken (250 partners bought with A twice): C is still found
        // by its own pair score.
        let mut seq = 10;
        for i in 0..250 {
            for _ in 0..2 {
                seq += 1;
                r.learn(&placed(seq, &["A", &format!("P{i}")]));
            }
        }
        assert!(!skus(None, &d).contains(&"C".to_owned()));
        assert_eq!(skus(Some(&own), &d)[0], "C");
    }

    #[test]
    fn names_weigh_more_for_a_product_bought_in_few_orders() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recommender::open(dir.path(), Scoring::default()).unwrap();
        for (sku, name) in [
            ("A", "red woolly hottie white heart"),
            ("C", "red woolly hottie white star"),
            ("B", "garden party bunting"),
        ] {
            r.set_name(sku, Some(name));
        }
        // A catalog around them, so the shared words are rare ones.
        for i in 0..20 {
            r.set_name(&format!("F{i}"), Some(&format!("gift{i} box{i}")));
        }
        // A bought once, with B.
        r.learn(&placed(1, &["A", "B"]));
        let first = |s: &Scoring| r.related_with("A", 5, s)[0].clone();
        let flat = Scoring {
            name_shrink: 0.0,
            ..Scoring::default()
        };
        assert_eq!(first(&flat), ("B".to_owned(), "bought_together"));
        // Seen in one order, the product named like it comes first.
        assert_eq!(first(&Scoring::default()), ("C".to_owned(), "similar"));
        // Bought with B in 40 orders, B is evidence enough again.
        for seq in 2..=40 {
            r.learn(&placed(seq, &["A", "B"]));
        }
        assert_eq!(
            first(&Scoring::default()),
            ("B".to_owned(), "bought_together")
        );
    }

    #[test]
    fn a_spray_of_client_chosen_sessions_keeps_the_session_memory_bounded() {
        let mut m = Model::default();
        let scoring = Scoring::default();
        for i in 0..(MAX_SESSIONS * 3) {
            m.view(&format!("session-{i}"), "A", 1_300_000_000_000, &scoring);
        }
        assert_eq!(m.sessions.len(), MAX_SESSIONS);
        assert_eq!(m.session_order.len(), MAX_SESSIONS);
        for v in 0..(SESSION_VIEWS * 3) {
            m.view("busy", &format!("P{v}"), 1_300_000_000_000, &scoring);
        }
        assert_eq!(m.sessions["busy"].len(), SESSION_VIEWS);
    }

    #[test]
    fn a_snapshot_being_encoded_holds_up_neither_views_nor_recommendations() {
        let dir = tempfile::tempdir().unwrap();
        let r = Arc::new(Recommender::open(dir.path(), Scoring::default()).unwrap());
        r.learn(&placed(1, &["A", "B"]));
        r.learn(&placed(2, &["A", "B"]));
        // What `save` holds while it encodes: the flag and the read lock.
        r.saving.store(true, std::sync::atomic::Ordering::Release);
        let encoding = r.model.read().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let handler = {
            let r = r.clone();
            std::thread::spawn(move || {
                // A request handler's calls: neither may wait for the snapshot.
                r.view("s", "A", 1_300_000_000_000);
                r.view("s", "C", 1_300_000_000_000);
                let related = r.related("A", 5);
                tx.send(related).unwrap();
            })
        };
        let related = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the handler did not wait for the snapshot");
        assert_eq!(related[0].0, "B");
        handler.join().unwrap();
        assert!(!r.try_learn(&placed(3, &["A", "D"])), "writers keep off");
        drop(encoding);
        r.saving.store(false, std::sync::atomic::Ordering::Release);
        // The parked views are applied by the next writer.
        r.learn(&placed(3, &["A", "D"]));
        assert_eq!(r.learned_through(), 3);
        let related = r.related("C", 5);
        assert!(
            related
                .iter()
                .any(|(s, why)| s == "A" && *why == "viewed_together"),
            "{related:?}"
        );
    }
}
