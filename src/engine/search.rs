//! Search use cases: catalog search with facets, the category tree, suggestions.

use super::{Engine, EngineError, ProductView, blocking};
use crate::search::{CategoryNode, PriceBucket, Ranking, SearchQuery, Sort, Suggestion};

/// A product search as callers express it; the engine validates every field.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Full-text query.
    pub q: Option<String>,
    /// Category path (matches the path and everything under it).
    pub category: Option<String>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Lowest price in minor units, inclusive.
    pub min_price: Option<i64>,
    /// Highest price in minor units, inclusive.
    pub max_price: Option<i64>,
    /// Only products with available stock.
    pub in_stock: Option<bool>,
    /// `relevance`, `price_asc`, `price_desc` or `newest`.
    pub sort: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Ranking method (evaluation only; shoppers always get the tuned ranking).
    pub ranking: Ranking,
}

/// One page of search results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Products of this page.
    pub items: Vec<ProductView>,
    /// All matches.
    pub total: usize,
    /// Matches per category (children of the category filter, or top level).
    pub categories: Vec<(String, u64)>,
    /// Matches per price bucket.
    pub prices: Vec<PriceBucket>,
    /// Matches per brand, most first.
    pub brands: Vec<(String, u64)>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// Longest accepted text query, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// Deepest page reachable by cursor.
pub const MAX_SEARCH_OFFSET: usize = 10_000;

impl Engine {
    /// Searches the catalog. Results reflect committed index state (within about a second
    /// of a write); `available` is read from the stock records.
    pub async fn search(&self, req: SearchRequest) -> Result<SearchPage, EngineError> {
        let bad = |m: &str| EngineError::BadQuery(m.to_owned());
        let text = req.q.unwrap_or_default();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(bad("q: at most 512 characters"));
        }
        let limit = req.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(bad("limit: must be between 1 and 100"));
        }
        let offset = match req.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => parse_cursor(c)
                .filter(|o| *o <= MAX_SEARCH_OFFSET)
                .ok_or_else(|| bad("cursor: not a cursor from this API"))?,
        };
        let price = |v: Option<i64>, name: &str| match v {
            Some(p) if p < 0 => Err(bad(&format!("{name}: must not be negative"))),
            other => Ok(other.map(|p| p as u64)),
        };
        let sort = match req.sort.as_deref() {
            None | Some("") => None,
            Some("relevance") => Some(Sort::Relevance),
            Some("price_asc") => Some(Sort::PriceAsc),
            Some("price_desc") => Some(Sort::PriceDesc),
            Some("newest") => Some(Sort::Newest),
            Some(_) => return Err(bad("sort: one of relevance, price_asc, price_desc, newest")),
        };
        let category = match req
            .category
            .as_deref()
            .map(crate::domain::product::normalize_category)
        {
            Some(Ok(c)) if !c.is_empty() => Some(c),
            Some(Err(e)) => return Err(bad(&e.to_string())),
            _ => None,
        };
        if req.brand.as_ref().is_some_and(|b| b.chars().count() > 200) {
            return Err(bad("brand: at most 200 characters"));
        }
        let query = SearchQuery {
            text,
            category,
            brand: req.brand,
            min_price: price(req.min_price, "min_price")?,
            max_price: price(req.max_price, "max_price")?,
            in_stock: req.in_stock.unwrap_or(false),
            sort,
            limit: limit as usize,
            offset,
            ranking: req.ranking,
        };
        let search = self.inner.search.clone();
        let started = std::time::Instant::now();
        let _slot = self
            .inner
            .search_slots
            .acquire()
            .await
            .map_err(|e| EngineError::unavailable_because("a search slot", e))?;
        let limit = query.limit;
        let hits = blocking(move || search.search(&query)).await?;
        metrics::histogram!("emporium_search_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let t = self.inner.store.tables();
        let mut items = Vec::with_capacity(hits.skus.len());
        for sku in &hits.skus {
            if let Some(product) = t.product(sku)? {
                let available = t.stock.get(sku)?.map_or(0, |s| s.available());
                items.push(ProductView { product, available });
            }
        }
        let next = offset + limit;
        let next_cursor =
            (next < hits.total && next <= MAX_SEARCH_OFFSET).then(|| format!("o{next}"));
        Ok(SearchPage {
            items,
            total: hits.total,
            categories: hits.categories,
            prices: hits.prices,
            brands: hits.brands,
            next_cursor,
        })
    }

    /// The category tree with product counts.
    pub async fn categories(&self) -> Result<Vec<CategoryNode>, EngineError> {
        let search = self.inner.search.clone();
        blocking(move || search.categories()).await
    }

    /// Completions for what a shopper has typed so far.
    pub async fn suggest(
        &self,
        prefix: &str,
        limit: Option<i64>,
    ) -> Result<Vec<Suggestion>, EngineError> {
        if prefix.chars().count() > MAX_QUERY_CHARS {
            return Err(EngineError::BadQuery("q: at most 512 characters".into()));
        }
        let limit = limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Err(EngineError::BadQuery(
                "limit: must be between 1 and 50".into(),
            ));
        }
        let (search, prefix) = (self.inner.search.clone(), prefix.to_owned());
        blocking(move || search.suggest(&prefix, limit as usize)).await
    }

    /// Waits until every catalog and stock change made so far is searchable.
    pub async fn search_flush(&self) -> Result<(), EngineError> {
        Ok(self.inner.indexer.flush().await?)
    }

    /// Number of products the search index holds.
    pub fn search_len(&self) -> u64 {
        self.inner.search.num_docs()
    }
}

fn parse_cursor(c: &str) -> Option<usize> {
    c.strip_prefix('o')?.parse().ok()
}
