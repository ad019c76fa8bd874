//! Full-text search over the catalog (tantivy), derived from the store.
//!
//! - [`schema`]: fields, analyzers, product → document.
//! - [`query`]: shopper text → query (lenient by construction: words only).
//! - [`indexer`]: the one thread that owns the `IndexWriter`; it drains the store's
//!   `index_queue`, commits in batches with the last applied sequence number as the commit
//!   payload, and reloads the reader. On start it replays what the queue still holds, and
//!   rebuilds from the store if the index is missing, corrupt or from another schema.
//! - [`SearchIndex`]: queries, facets, categories, suggestions; readers see commits only.
//!
//! Architecture invariant: the store is the truth; the index can always be rebuilt from
//! it and never holds a product the store does not.

mod facets;
pub mod forms;
pub mod indexer;
pub mod query;
pub mod schema;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use tantivy::collector::{Collector, Count, FacetCollector, SegmentCollector, TopDocs};

use facets::ChildCounts;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Facet, IndexRecordOption, Value};
use tantivy::{
    DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
};

pub use query::{Ranking, Weights};
use schema::Fields;

/// Errors of the search layer, each with its cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index error: {0}")]
    Index(#[source] Arc<tantivy::TantivyError>),
    /// A file operation on the index directory failed.
    #[error("search index I/O error while {doing}: {source}")]
    Io {
        /// What the index was doing.
        doing: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Reading the store (to index it) failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The indexer thread has stopped.
    #[error("the indexer has stopped")]
    Stopped,
}

impl SearchError {
    pub(crate) fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> SearchError {
        let doing = doing.into();
        move |e| SearchError::Io {
            doing,
            source: Arc::new(e),
        }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(Arc::new(e))
    }
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Best match first (the default with a text query).
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Most recently created first (the default without a text query).
    Newest,
}

/// A search request (already validated by the engine).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Shopper's text.
    pub text: String,
    /// Category path: matches it and everything under it.
    pub category: Option<String>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Lowest price, inclusive (minor units).
    pub min_price: Option<u64>,
    /// Highest price, inclusive (minor units).
    pub max_price: Option<u64>,
    /// Only products with available stock.
    pub in_stock: bool,
    /// Order.
    pub sort: Option<Sort>,
    /// Page size.
    pub limit: usize,
    /// Results to skip.
    pub offset: usize,
    /// Ranking method for text queries.
    pub ranking: Ranking,
}

/// A price bucket: `[min, max)` in minor units (`max` None = no upper bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceBucket {
    /// Inclusive lower bound.
    pub min: u64,
    /// Exclusive upper bound.
    pub max: Option<u64>,
    /// Matching products in it.
    pub count: u64,
}

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct SearchHits {
    /// SKUs of this page, in order.
    pub skus: Vec<String>,
    /// All matching products.
    pub total: usize,
    /// Matching products per child category of the filter (or per top-level category).
    pub categories: Vec<(String, u64)>,
    /// Matching products per price bucket (non-empty buckets only).
    pub prices: Vec<PriceBucket>,
    /// Matching products per brand, most first (at most [`MAX_BRAND_FACETS`]).
    pub brands: Vec<(String, u64)>,
}

/// Most brand values returned as facets.
pub const MAX_BRAND_FACETS: usize = 20;

/// A node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryNode {
    /// Full path, e.g. `"Space Suits/Helmets"`.
    pub path: String,
    /// Last segment.
    pub name: String,
    /// Products in it or below it.
    pub count: u64,
    /// Sub-categories.
    pub children: Vec<CategoryNode>,
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// Text to show.
    pub text: String,
    /// The product, when the suggestion is a product name.
    pub sku: Option<String>,
}

/// Price bucket edges in minor units.
const PRICE_EDGES: [u64; 10] = [
    0, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
];

/// The searchable index: reader side. The writer lives in the [`indexer`].
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    synonyms: query::Synonyms,
}

fn facet_to_path(f: &Facet) -> String {
    f.to_path().join("/")
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if missing. Returns whether it had to be
    /// created fresh (missing, corrupt or another schema version), i.e. needs a rebuild.
    pub fn open(dir: &Path) -> Result<(SearchIndex, bool), SearchError> {
        let (schema, fields) = schema::build();
        let opened = Index::open_in_dir(dir)
            .ok()
            .filter(|i| i.schema() == schema);
        let (index, fresh) = match opened {
            Some(i) => (i, false),
            None => {
                if dir.exists() {
                    tracing::warn!(dir = %dir.display(), "search index missing, corrupt or from another version: rebuilding");
                    std::fs::remove_dir_all(dir)
                        .map_err(SearchError::io(format!("removing {}", dir.display())))?;
                }
                std::fs::create_dir_all(dir)
                    .map_err(SearchError::io(format!("creating {}", dir.display())))?;
                (Index::create_in_dir(dir, schema)?, true)
            }
        };
        schema::prepare(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((
            SearchIndex {
                synonyms: query::synonyms(
                    &mut index
                        .tokenizers()
                        .get(schema::STEMMED)
                        .expect("analyzer registered"),
                ),
                index,
                reader,
                fields,
            },
            fresh,
        ))
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// The fields.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Makes the latest commit visible to searches.
    pub fn reload(&self) -> Result<(), SearchError> {
        Ok(self.reader.reload()?)
    }

    fn analyzer(&self, name: &str) -> tantivy::tokenizer::TextAnalyzer {
        self.index
            .tokenizers()
            .get(name)
            .expect("analyzer registered")
    }

    fn filters(&self, q: &SearchQuery) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        // Filters select; they never change a score.
        let filter = |query: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
        };
        let term = |t: Term| filter(Box::new(TermQuery::new(t, IndexRecordOption::Basic)));
        let mut out = Vec::new();
        if let Some(facet) = q.category.as_deref().and_then(schema::category_facet) {
            out.push(term(Term::from_facet(f.category, &facet)));
        }
        if let Some(b) = q.brand.as_deref().filter(|b| !b.trim().is_empty()) {
            out.push(term(Term::from_facet(
                f.brand_facet,
                &schema::brand_facet(b),
            )));
        }
        if q.min_price.is_some() || q.max_price.is_some() {
            let bound = |v: Option<u64>| {
                v.map_or(Bound::Unbounded, |v| {
                    Bound::Included(Term::from_field_u64(f.price, v))
                })
            };
            out.push(filter(Box::new(RangeQuery::new(
                bound(q.min_price),
                bound(q.max_price),
            ))));
        }
        if q.in_stock {
            out.push(term(Term::from_field_u64(f.in_stock, 1)));
        }
        out
    }

    /// The query for one stage: `strict` = every word must match; `typos` = words may
    /// match with typos.
    /// `partial`: the last word, if it may be the start of a longer one
    /// ([`SearchIndex::partial_word`]).
    fn build_query(
        &self,
        q: &SearchQuery,
        strict: bool,
        typos: bool,
        partial: Option<&str>,
    ) -> Box<dyn Query> {
        let stemmed = query::words(&mut self.analyzer(schema::STEMMED), &q.text);
        let mut clauses = self.filters(q);
        match query::text_query(
            &self.fields,
            &stemmed,
            partial,
            q.ranking,
            query::Stage { strict, typos },
            &self.synonyms,
        ) {
            Some(t) => clauses.push((Occur::Must, t)),
            None if clauses.is_empty() => return Box::new(AllQuery),
            None => {}
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The last word of `text` if the shopper may still be typing it: nothing follows it
    /// and — unless `whole_words_too` (suggestions) — no product name has it as a whole
    /// word. A search for "projector" is for projectors, not for "projectors-compatible"
    /// words; "proj" is a word being typed. (Cross-validated on the development queries,
    /// a prefix bonus for whole words lowered NDCG@10 in 43 of 50 folds.)
    fn partial_word(
        &self,
        searcher: &Searcher,
        text: &str,
        whole_words_too: bool,
    ) -> Option<String> {
        if text.ends_with(char::is_whitespace) {
            return None;
        }
        let last = query::words(&mut self.analyzer(schema::WORDS), text).pop()?;
        let whole = || {
            searcher
                .doc_freq(&Term::from_field_text(self.fields.name_words, &last))
                .is_ok_and(|n| n > 0)
        };
        (whole_words_too || !whole()).then_some(last)
    }

    /// Runs a search: one page of SKUs, the total, and facets for the whole result set.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchHits, SearchError> {
        let searcher = self.reader.searcher();
        let has_text = !q.text.trim().is_empty();
        // Each stage runs only if the one before found nothing: most queries are spelled
        // right and never pay for typo tolerance. The baseline is plain BM25: one OR stage.
        let stages: &[(bool, bool)] = match (has_text, q.ranking) {
            (false, _) => &[(true, false)],
            (true, Ranking::Bm25Baseline) => &[(false, false)],
            (true, _) => &[(true, false), (true, true), (false, true)],
        };
        let mut hits = SearchHits::default();
        let partial = self.partial_word(&searcher, &q.text, false);
        for &(strict, typos) in stages {
            let query = self.build_query(q, strict, typos, partial.as_deref());
            hits = self.run(&searcher, q, &*query)?;
            if hits.total > 0 {
                break;
            }
        }
        Ok(hits)
    }

    fn run(
        &self,
        searcher: &Searcher,
        q: &SearchQuery,
        query: &dyn Query,
    ) -> Result<SearchHits, SearchError> {
        let parent = q
            .category
            .as_deref()
            .and_then(schema::category_facet)
            .unwrap_or_else(Facet::root);
        let facets = (
            ChildCounts::new("category", &parent),
            ChildCounts::new("brand_facet", &Facet::root()),
        );
        let prices = PriceHistogram;
        let top = TopDocs::with_limit(q.limit.max(1)).and_offset(q.offset);
        let sort = q.sort.unwrap_or(if q.text.trim().is_empty() {
            Sort::Newest
        } else {
            Sort::Relevance
        });
        let collectors = (Count, facets, prices);
        let ((total, facet_counts, price_counts), docs) = match sort {
            Sort::Relevance => collect(searcher, query, collectors, top.order_by_score())?,
            Sort::PriceAsc => collect(
                searcher,
                query,
                collectors,
                top.order_by_fast_field::<u64>("price", Order::Asc),
            )?,
            Sort::PriceDesc => collect(
                searcher,
                query,
                collectors,
                top.order_by_fast_field::<u64>("price", Order::Desc),
            )?,
            Sort::Newest => collect(
                searcher,
                query,
                collectors,
                top.order_by_fast_field::<i64>("created_at", Order::Desc),
            )?,
        };
        // SKUs come from the doc store (LZ4 blocks behind the reader's block cache). The
        // string fast field was measured slower: each lookup decompressed a zstd dictionary
        // block with a fresh context, over half of a search's CPU.
        let mut skus = Vec::with_capacity(docs.len());
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(sku) = doc.get_first(self.fields.sku).and_then(|v| v.as_str()) {
                skus.push(sku.to_owned());
            }
        }
        let (facet_counts, brand_counts) = facet_counts;
        let mut brands: Vec<(String, u64)> = brand_counts
            .into_iter()
            .map(|(f, c)| (facets::path_of(&f), c))
            .collect();
        brands.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        brands.truncate(MAX_BRAND_FACETS);
        let categories = facet_counts
            .into_iter()
            .map(|(f, c)| (facets::path_of(&f), c))
            .collect();
        let prices = price_counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| PriceBucket {
                min: PRICE_EDGES[i],
                max: PRICE_EDGES.get(i + 1).copied(),
                count: *c,
            })
            .collect();
        Ok(SearchHits {
            skus,
            total,
            categories,
            prices,
            brands,
        })
    }

    /// The category tree with product counts (each node counts its whole subtree).
    pub fn categories(&self) -> Result<Vec<CategoryNode>, SearchError> {
        let searcher = self.reader.searcher();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut frontier = vec![Facet::root()];
        // One pass per level; paths are at most `CATEGORY_LEVELS` deep.
        for _ in 0..=crate::domain::product::limits::CATEGORY_LEVELS {
            if frontier.is_empty() {
                break;
            }
            let mut fc = FacetCollector::for_field("category");
            for f in &frontier {
                fc.add_facet(f.clone());
            }
            let got = searcher.search(&AllQuery, &fc)?;
            let mut next = Vec::new();
            for parent in &frontier {
                for (child, count) in got.get(parent.clone()) {
                    counts.insert(facet_to_path(child), count);
                    next.push(child.clone());
                }
            }
            frontier = next;
        }
        fn build(prefix: &str, counts: &BTreeMap<String, u64>) -> Vec<CategoryNode> {
            counts
                .iter()
                .filter(|(path, _)| match path.rsplit_once('/') {
                    Some((parent, _)) => parent == prefix,
                    None => prefix.is_empty(),
                })
                .map(|(path, &count)| CategoryNode {
                    path: path.clone(),
                    name: path.rsplit('/').next().unwrap_or(path).to_owned(),
                    count,
                    children: build(path, counts),
                })
                .collect()
        }
        Ok(build("", &counts))
    }

    /// Completions for a prefix: frequent name words first, then product names.
    pub fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>, SearchError> {
        let raw = query::words(&mut self.analyzer(schema::WORDS), prefix);
        let Some(last) = raw.last() else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let mut out: Vec<Suggestion> = Vec::new();
        if raw.len() == 1 {
            // Words starting with the prefix, by how many products use them.
            let mut words: BTreeMap<String, u32> = BTreeMap::new();
            for seg in searcher.segment_readers() {
                let inv = seg.inverted_index(self.fields.name_words)?;
                let mut stream = inv
                    .terms()
                    .range()
                    .ge(last.as_bytes())
                    .into_stream()
                    .map_err(SearchError::io("reading the suggestion terms"))?;
                let mut seen = 0;
                while stream.advance() && seen < 2_000 {
                    seen += 1;
                    let key = stream.key();
                    if !key.starts_with(last.as_bytes()) {
                        break;
                    }
                    if let Ok(w) = std::str::from_utf8(key) {
                        *words.entry(w.to_owned()).or_default() += stream.value().doc_freq;
                    }
                }
            }
            let mut ranked: Vec<(String, u32)> = words.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            out.extend(
                ranked
                    .into_iter()
                    .take(limit.div_ceil(2))
                    .map(|(text, _)| Suggestion { text, sku: None }),
            );
        }
        // Then product names matching every word, the last one as a prefix.
        let q = SearchQuery {
            text: prefix.to_owned(),
            limit: limit.saturating_sub(out.len()).max(1),
            ..Default::default()
        };
        let top = TopDocs::with_limit(q.limit).order_by_score();
        let partial = self.partial_word(&searcher, prefix, true);
        let query = self.build_query(&q, true, false, partial.as_deref());
        for (_, addr) in searcher.search(&*query, &top)? {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let field = |f| doc.get_first(f).and_then(|v| v.as_str()).map(str::to_owned);
            if let (Some(name), Some(sku)) = (field(self.fields.name), field(self.fields.sku)) {
                out.push(Suggestion {
                    text: name,
                    sku: Some(sku),
                });
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Number of documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// Runs `query` with the facet and count collectors and a top-docs collector in one
/// pass, whatever the top-docs collector sorts by.
fn collect<C, K>(
    searcher: &Searcher,
    query: &dyn Query,
    counts: C,
    top: impl Collector<Fruit = Vec<(K, DocAddress)>>,
) -> Result<(C::Fruit, Vec<DocAddress>), SearchError>
where
    C: Collector,
{
    let (counted, docs) = searcher.search(query, &(counts, top))?;
    Ok((counted, docs.into_iter().map(|(_, a)| a).collect()))
}

/// Counts matching documents per price bucket.
struct PriceHistogram;

struct PriceSegment {
    column: tantivy::columnar::Column<u64>,
    counts: Vec<u64>,
}

impl Collector for PriceHistogram {
    type Fruit = Vec<u64>;
    type Child = PriceSegment;

    fn for_segment(
        &self,
        _: u32,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<PriceSegment> {
        Ok(PriceSegment {
            column: reader.fast_fields().u64("price")?,
            counts: vec![0; PRICE_EDGES.len()],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut total = vec![0; PRICE_EDGES.len()];
        for f in fruits {
            for (t, c) in total.iter_mut().zip(f) {
                *t += c;
            }
        }
        Ok(total)
    }
}

impl SegmentCollector for PriceSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: u32, _: tantivy::Score) {
        if let Some(price) = self.column.first(doc) {
            let bucket = PRICE_EDGES
                .partition_point(|&edge| edge <= price)
                .saturating_sub(1);
            self.counts[bucket] += 1;
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}
