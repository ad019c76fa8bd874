//! Catalog use cases: products (read, create, replace, delete), bulk import, counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Engine, EngineError};
use crate::domain::Sku;
use crate::domain::import::{ImportItem, Numbered};
use crate::domain::product::{Product, ProductDraft};

/// A product with the stock a shopper can still buy.
#[derive(Debug, Clone)]
pub struct ProductView {
    /// The stored product (shared with the read cache: see [`crate::storage::DecodedCache`]).
    pub product: std::sync::Arc<Product>,
    /// On hand minus reservations.
    pub available: u64,
}

/// The outcome of a bulk import.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Products written.
    pub imported: usize,
    /// Refused records: line (1-based) and reason.
    pub failed: Vec<(usize, String)>,
}

/// Products written per catalog batch during an import.
const IMPORT_CHUNK: usize = 2_000;

impl Engine {
    /// A product with its available stock.
    pub async fn product(&self, sku: &str) -> Result<ProductView, EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        let product = self
            .read_product(&sku)
            .await?
            .ok_or(EngineError::NotFound("product"))?;
        let stock = self.inner.skus.get(sku.as_str()).await??;
        Ok(ProductView {
            product,
            available: stock.available(),
        })
    }

    /// Reads a product from the store once every product write is durable.
    pub(super) async fn read_product(
        &self,
        sku: &Sku,
    ) -> Result<Option<std::sync::Arc<Product>>, EngineError> {
        self.catalog_durable().await?;
        Ok(self.inner.store.tables().product(sku.as_str())?)
    }

    pub(super) async fn catalog_durable(&self) -> Result<(), EngineError> {
        let ticket = self.inner.catalog_ticket.load(Ordering::Acquire);
        Ok(self.inner.store.barrier().wait(ticket).await?)
    }

    /// Creates a product; `AlreadyExists` if the SKU is taken.
    pub async fn create_product(
        &self,
        sku: &str,
        draft: ProductDraft,
    ) -> Result<ProductView, EngineError> {
        let sku = Sku::parse(sku)?;
        let product = self.inner.catalog.create(&sku, &draft).await??;
        self.stored_view(product).await
    }

    /// Creates or replaces a product; the flag says whether it was created.
    pub async fn put_product(
        &self,
        sku: &str,
        draft: ProductDraft,
    ) -> Result<(ProductView, bool), EngineError> {
        let sku = Sku::parse(sku)?;
        let (product, created) = self.inner.catalog.put(&sku, &draft).await??;
        Ok((self.stored_view(product).await?, created))
    }

    /// Deletes a product (its stock record stays, so re-adding it keeps the count).
    pub async fn delete_product(&self, sku: &str) -> Result<(), EngineError> {
        let sku = Sku::parse(sku).map_err(|_| EngineError::NotFound("product"))?;
        Ok(self.inner.catalog.delete(&sku).await??)
    }

    pub(super) async fn stored_view(&self, product: Product) -> Result<ProductView, EngineError> {
        let stock = self.inner.skus.get(product.sku.as_str()).await??;
        Ok(ProductView {
            product: product.into(),
            available: stock.available(),
        })
    }

    /// Every SKU in the store, in order (a full scan: for tools and consistency checks).
    pub fn product_skus(&self) -> Result<Vec<String>, EngineError> {
        let products = self.inner.store.tables().products.values();
        Ok(products
            .map(|p| p.map(|p| p.sku.to_string()))
            .collect::<Result<_, _>>()?)
    }

    /// Number of products in the store.
    pub fn product_count(&self) -> usize {
        self.inner.store.tables().products.len()
    }

    /// Imports products (create or replace) in batches: each batch is one atomic store
    /// write and one durability wait; stock given in the records is then set through the
    /// SKU actors. `items` carry their line numbers; `on_progress` is told how many records
    /// were handled so far.
    pub async fn import_products(
        &self,
        items: Vec<Numbered<ImportItem>>,
        on_progress: impl Fn(usize),
    ) -> Result<ImportReport, EngineError> {
        let mut report = ImportReport::default();
        let mut done = 0;
        for chunk in items.chunks(IMPORT_CHUNK) {
            let mut batch = Vec::with_capacity(chunk.len());
            let mut lines = Vec::with_capacity(chunk.len());
            for (line, item) in chunk {
                match item {
                    Ok(it) => {
                        batch.push((it.sku.clone(), it.draft.clone()));
                        lines.push((*line, it.sku.clone(), it.stock));
                    }
                    Err(e) => report.failed.push((*line, e.to_string())),
                }
            }
            let batch = Arc::new(batch);
            let (n, refused) = self.inner.catalog.import(batch).await??;
            report.imported += n;
            for (i, e) in refused {
                report.failed.push((lines[i].0, e.to_string()));
                lines[i].2 = None; // not stored: no stock to set
            }
            // Stock goes through each SKU's actor, up to 64 at a time. A refused stock
            // level is reported on its line; a failing actor or store stops the import.
            let mut pending = tokio::task::JoinSet::new();
            let mut stock = lines
                .into_iter()
                .filter_map(|(line, sku, s)| s.map(|s| (line, sku, s)));
            loop {
                while pending.len() < 64 {
                    let Some((line, sku, on_hand)) = stock.next() else {
                        break;
                    };
                    let engine = self.clone();
                    pending.spawn(async move {
                        let r = engine.inner.skus.set_on_hand(sku.as_str(), on_hand).await;
                        (line, r)
                    });
                }
                let Some(joined) = pending.join_next().await else {
                    break;
                };
                let (line, r) =
                    joined.map_err(|e| EngineError::unavailable_because("an import task", e))?;
                if let Err(e) = r?.map_err(EngineError::from) {
                    report.failed.push((line, format!("stock: {e}")));
                }
            }
            done += chunk.len();
            on_progress(done);
        }
        report.failed.sort_by_key(|(line, _)| *line);
        Ok(report)
    }
}
