//! Recommendations and order history: the engine's face of `crate::recommend`.

use std::sync::Arc;
use std::time::Duration;

use super::customers::{Authenticated, MAX_HISTORY_PAGE};
use super::{Engine, EngineError, ImportReport, ProductView};
use crate::domain::event::{DomainEvent, EventItem};
use crate::domain::history::PastOrder;
use crate::domain::import::Numbered;
use crate::domain::order::{Order, OrderLine};
use crate::recommend::{Learner, Recommender, SUBSCRIBER};
use crate::storage::{GroupWriter, StorageError, WriteBatch};

/// Past orders written per store batch during an import.
const HISTORY_CHUNK: usize = 256;
/// How often a changed recommender model is saved.
const SAVE_EVERY: Duration = Duration::from_secs(30);
/// Longest session id accepted for view tracking.
const MAX_SESSION: usize = 128;
/// Longest an order import waits for the recommender to learn what it imported.
const LEARN_WAIT: Duration = Duration::from_secs(60);
/// Best sellers looked at when filling free slots of a recommendation list.
const BESTSELLERS_SCANNED: usize = 500;

/// The longest recommendation list asked for.
const MAX_RECOMMENDATIONS: usize = 50;

/// A recommendation list's length must be 1 to [`MAX_RECOMMENDATIONS`].
fn check_limit(limit: usize) -> Result<(), EngineError> {
    if (1..=MAX_RECOMMENDATIONS).contains(&limit) {
        Ok(())
    } else {
        Err(EngineError::BadQuery(format!(
            "limit: must be between 1 and {MAX_RECOMMENDATIONS}"
        )))
    }
}

/// Recommendations for a product or a cart.
#[derive(Debug, Clone)]
pub struct Recommendations {
    /// Products, best first.
    pub items: Vec<ProductView>,
    /// How the first was found: `bought_together`, `similar` (named like this product:
    /// blended into bought together, or for a product never bought with anything),
    /// `viewed_together`, `category_bestsellers`, `bestsellers` or `category`.
    pub strategy: &'static str,
}

impl Engine {
    /// Loads the recommender's snapshot, rewinds its event delivery to what the snapshot
    /// has learned, starts reading every product's name (for name similarity), and starts
    /// learning and saving.
    pub(super) fn start_recommender(&self) -> Result<(), EngineError> {
        let rec = self.inner.recommender.clone();
        crate::dispatcher::set_offset(&self.inner.store, SUBSCRIBER, rec.learned_through())?;
        // Every product's name, read in the background (a large catalog takes a while;
        // until then recommendations go without name similarity); `ProductChanged`
        // events keep them current, and the two cannot race (see `refresh_name`).
        let (names_of, store) = (rec.clone(), self.inner.store.clone());
        // A blocking task: shutdown waits for it (aborting cannot stop it) before the
        // store closes.
        self.keep(tokio::task::spawn_blocking(move || {
            match names_of.load_names(store.tables().products.values()) {
                Ok(n) => tracing::debug!(products = n, "recommender: names loaded"),
                Err(e) => tracing::warn!(error = %e, "recommender: could not read product names"),
            }
        }));
        self.subscribe(Arc::new(Learner {
            recommender: rec.clone(),
            store: self.inner.store.clone(),
        }));
        self.every(SAVE_EVERY, |engine| async move {
            let rec = engine.inner.recommender.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = rec.save() {
                    tracing::warn!(error = %e, "could not save the recommender");
                }
            })
            .await;
        });
        Ok(())
    }

    /// The sequence number of the newest event in the log (0 if none).
    pub fn event_log_end(&self) -> Result<u64, EngineError> {
        Ok(self.inner.store.tables().events.last_key()?.unwrap_or(0))
    }

    /// Saves the recommender's model now (shutdown, tests).
    pub fn save_recommender(&self) -> Result<(), EngineError> {
        self.inner.recommender.save()?;
        Ok(())
    }

    /// The recommender (for tools and benchmarks).
    pub fn recommender(&self) -> &Arc<Recommender> {
        &self.inner.recommender
    }

    /// Records a product view in a shopper's session (feeds "viewed together").
    pub fn record_view(&self, session: &str, sku: &str) {
        if session.is_empty() || session.len() > MAX_SESSION {
            return;
        }
        self.inner
            .recommender
            .view(session, sku, self.inner.store.clock().now());
    }

    fn in_stock_product(&self, sku: &str) -> Result<Option<ProductView>, StorageError> {
        let tables = self.inner.store.tables();
        let Some(product) = tables.product(sku)? else {
            return Ok(None);
        };
        let available = tables.stock.get(sku)?.map_or(0, |s| s.available());
        Ok((available > 0).then_some(ProductView { product, available }))
    }

    /// The best-selling products in stock, best first (at most `limit`, 1–50); too few
    /// orders yet, and the rest are filled from the catalog (in stock, by relevance).
    pub async fn bestsellers(&self, limit: usize) -> Result<Vec<ProductView>, EngineError> {
        let limit = limit.clamp(1, 50);
        let mut items: Vec<ProductView> = Vec::with_capacity(limit);
        for s in self.inner.recommender.bestsellers(BESTSELLERS_SCANNED) {
            if items.len() >= limit {
                break;
            }
            if let Some(p) = self.in_stock_product(&s)? {
                items.push(p);
            }
        }
        if items.len() < limit {
            let page = self
                .search(super::SearchRequest {
                    in_stock: Some(true),
                    limit: Some(limit as i64),
                    ..super::SearchRequest::default()
                })
                .await?;
            for p in page.items {
                if items.len() >= limit {
                    break;
                }
                if !items.iter().any(|i| i.product.sku == p.product.sku) {
                    items.push(p);
                }
            }
        }
        Ok(items)
    }

    /// Products related to `sku`, best first: bought together (with products named like
    /// it blended in), then viewed together, then — for a product never bought with
    /// anything — products named like it ([`Recommender::related`]); slots still free are
    /// filled with best sellers of the same category, then overall, then (no history at
    /// all) other products of the category. Never the product itself, never one out of
    /// stock. `strategy` says where the first came from.
    pub async fn recommendations(
        &self,
        sku: &str,
        limit: usize,
    ) -> Result<Recommendations, EngineError> {
        self.recommendations_for(sku, limit, None).await
    }

    /// The products in a signed-in shopper's latest orders, each with how many of those
    /// orders had it (`None` for a guest).
    async fn products_bought_by(
        &self,
        shopper: Option<&Authenticated>,
    ) -> Result<Option<std::collections::HashMap<String, u32>>, EngineError> {
        let Some(shopper) = shopper else {
            return Ok(None);
        };
        // No wait for the barrier: the orders only weigh the ranking, and an order not
        // yet durable is never shown as one.
        let (orders, _) = self.history(&shopper.customer_id, None, MAX_HISTORY_PAGE)?;
        let mut own = std::collections::HashMap::new();
        for order in &orders {
            for line in &order.lines {
                *own.entry(line.sku.as_str().to_owned()).or_default() += 1;
            }
        }
        Ok(Some(own))
    }

    /// [`Engine::recommendations`] for a shopper: a signed-in customer's own earlier
    /// orders (their latest [`MAX_HISTORY_PAGE`], as their order history shows them) lift
    /// the products they bought before among those bought with `sku`
    /// ([`crate::recommend::stats::Scoring::own_weight`]). A guest (`None`) gets the list
    /// everyone gets.
    pub async fn recommendations_for(
        &self,
        sku: &str,
        limit: usize,
        shopper: Option<&Authenticated>,
    ) -> Result<Recommendations, EngineError> {
        check_limit(limit)?;
        let me = self.product(sku).await?.product;
        let own = self.products_bought_by(shopper).await?;
        let related = self.inner.recommender.related_for(
            me.sku.as_str(),
            limit * 4,
            self.inner.recommender.scoring(),
            own.as_ref(),
        );
        self.served(related, &[me.sku.as_str()], &me.category, limit)
            .await
    }

    /// Recommendations for a cart: what goes with the products in it, the latest added
    /// counting most ([`Recommender::related_to_basket`]), never one already in it; free
    /// slots filled as for a product ([`Engine::recommendations`]), from the category of
    /// the product added last. An empty cart gets best sellers. `shopper` as in
    /// [`Engine::recommendations_for`]; the caller checks that the cart is theirs to see.
    pub async fn cart_recommendations(
        &self,
        id: &str,
        limit: usize,
        shopper: Option<&Authenticated>,
    ) -> Result<Recommendations, EngineError> {
        check_limit(limit)?;
        super::check_id(id, "cart")?;
        let cart = self.inner.carts.get(id).await??;
        let skus: Vec<&str> = cart.lines.iter().map(|l| l.sku.as_str()).collect();
        let own = self.products_bought_by(shopper).await?;
        let related = self.inner.recommender.related_to_basket(
            &skus,
            limit * 4,
            self.inner.recommender.scoring(),
            own.as_ref(),
        );
        let category = match skus.last() {
            Some(last) => self
                .inner
                .store
                .tables()
                .product(last)?
                .map(|p| p.category.clone())
                .unwrap_or_default(),
            None => String::new(),
        };
        self.served(related, &skus, &category, limit).await
    }

    /// The list served from `related` (best first, each with where it came from): in
    /// stock, never one of `exclude`, free slots filled with best sellers of `category`,
    /// then overall, then (no history at all) other products of `category`.
    async fn served(
        &self,
        related: Vec<(String, &'static str)>,
        exclude: &[&str],
        category: &str,
        limit: usize,
    ) -> Result<Recommendations, EngineError> {
        let mut items = Vec::new();
        let mut strategy = None;
        let take = |items: &mut Vec<ProductView>, s: &str| -> Result<bool, StorageError> {
            if exclude.contains(&s)
                || items
                    .iter()
                    .any(|p: &ProductView| p.product.sku.as_str() == s)
            {
                return Ok(false);
            }
            Ok(match self.in_stock_product(s)? {
                Some(p) => {
                    items.push(p);
                    true
                }
                None => false,
            })
        };
        for (s, why) in related {
            if items.len() >= limit {
                break;
            }
            if take(&mut items, &s)? && strategy.is_none() {
                strategy = Some(why);
            }
        }
        // Slots the related products leave free are filled: best sellers of the same
        // category, then overall, then (no history at all) other products of the category.
        if items.len() < limit {
            let best = self.inner.recommender.bestsellers(BESTSELLERS_SCANNED);
            if !category.is_empty() {
                let tables = self.inner.store.tables();
                for s in &best {
                    if items.len() >= limit {
                        break;
                    }
                    let same = tables.product(s)?.is_some_and(|p| p.category == category);
                    if same && take(&mut items, s)? && strategy.is_none() {
                        strategy = Some("category_bestsellers");
                    }
                }
            }
            for s in &best {
                if items.len() >= limit {
                    break;
                }
                if take(&mut items, s)? && strategy.is_none() {
                    strategy = Some("bestsellers");
                }
            }
        }
        if items.len() < limit && !category.is_empty() {
            let page = self
                .search(super::SearchRequest {
                    category: Some(category.to_owned()),
                    in_stock: Some(true),
                    // Enough to fill the list past the excluded products, within the
                    // search's own page bound.
                    limit: Some((2 * limit + exclude.len()).min(100) as i64),
                    ..Default::default()
                })
                .await?;
            for p in page.items {
                if items.len() >= limit {
                    break;
                }
                if take(&mut items, p.product.sku.as_str())? && strategy.is_none() {
                    strategy = Some("category");
                }
            }
        }
        Ok(Recommendations {
            items,
            strategy: strategy.unwrap_or("none"),
        })
    }

    /// Imports past orders from another system as history (status `delivered`, no stock
    /// change, no mail): each teaches the recommender. An order whose id was imported
    /// before is skipped, so importing a file twice changes nothing. Returns once the
    /// orders are durable and (waiting up to a minute) learned by the recommender.
    pub async fn import_orders(
        &self,
        records: Vec<Numbered<PastOrder>>,
        mut progress: impl FnMut(usize),
    ) -> Result<ImportReport, EngineError> {
        let tables = self.inner.store.tables();
        let currency = self.inner.config.currency.clone();
        let mut report = ImportReport {
            imported: 0,
            failed: Vec::new(),
        };
        let mut done = 0;
        for chunk in records.chunks(HISTORY_CHUNK) {
            // Each order (with its index entries and event) is one group; the groups go
            // out in writes that stay under the journal's limit.
            let mut writer = GroupWriter::new(&self.inner.store);
            for (line, r) in chunk {
                let o = match r {
                    Ok(o) => o,
                    Err(e) => {
                        report.failed.push((*line, e.to_string()));
                        continue;
                    }
                };
                let id = format!("imported-{}", o.id);
                if tables.orders.contains(id.as_str())? {
                    continue;
                }
                let lines: Vec<OrderLine> = o
                    .items
                    .iter()
                    .map(|i| {
                        let p = tables.products.get(i.sku.as_str()).ok().flatten();
                        let unit_price = i.unit_price.or(p.as_ref().map(|p| p.price)).unwrap_or(0);
                        OrderLine {
                            sku: i.sku.clone(),
                            name: p.map_or_else(|| i.sku.to_string(), |p| p.name),
                            quantity: i.quantity,
                            unit_price,
                            line_total: unit_price.saturating_mul(u64::from(i.quantity)),
                        }
                    })
                    .collect();
                let event = DomainEvent::OrderImported {
                    order_id: id.clone(),
                    created_at: o.created_at,
                    items: EventItem::of(&lines),
                };
                let order = Order::imported(
                    id,
                    o.email.clone().unwrap_or_default(),
                    lines,
                    currency.clone(),
                    o.created_at,
                );
                let mut batch = WriteBatch::default();
                tables.stage_order(&mut batch, None, &order)?;
                match writer.add(batch, vec![event]) {
                    Ok(()) => report.imported += 1,
                    Err(StorageError::TooLarge(n)) => report
                        .failed
                        .push((*line, format!("{n} bytes encoded, over the limit"))),
                    Err(e) => return Err(e.into()),
                }
            }
            writer.flush()?;
            done += chunk.len();
            progress(done);
        }
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.ticket()).await?;
        // Whoever imports history asks for recommendations next: answer once the
        // recommender has learned it (it learns from the event log, asynchronously).
        if report.imported > 0 {
            let end = self.event_log_end()?;
            if !self.recommender_caught_up(end, LEARN_WAIT).await {
                tracing::warn!(
                    through = end,
                    "import: the recommender has not learned the imported orders yet"
                );
            }
        }
        Ok(report)
    }

    /// Waits (at most `limit`) until the recommender has learned every event up to `seq`;
    /// whether it has.
    pub async fn recommender_caught_up(&self, seq: u64, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while self.inner.recommender.learned_through() < seq {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}
