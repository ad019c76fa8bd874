//! The catalog writer: a single entity (id `"catalog"`) that serialises product writes,
//! so that "create unless it exists" and "replace keeping `created_at`" are atomic.
//! Every write also enqueues the SKU for the search indexer in the same atomic batch.
//! Reads do not come here: they read the store directly (see `Engine::product`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::event::{DomainEvent, ProductChange};
use crate::domain::product::{Product, ProductDraft};
use crate::domain::{Invalid, Sku};
use crate::storage::{GroupWriter, StorageError, Store, WriteBatch};

use super::entity::{Answer, CallError, Directory, Effect, Entity};

/// The id of the one catalog writer.
const CATALOG: &str = "catalog";

/// The typed face of the catalog writer.
#[derive(Clone)]
pub(crate) struct CatalogHandle(pub(crate) Arc<Directory<CatalogEntity>>);

impl CatalogHandle {
    async fn stored(&self, cmd: CatalogCmd) -> Answer<(Product, bool), CatalogFailure> {
        Ok(match self.0.call(CATALOG, || cmd.clone()).await? {
            Ok(CatalogOutcome::Stored(product, created)) => Ok((product, created)),
            Ok(_) => return Err(CallError::Failed(CatalogEntity::KIND)),
            Err(e) => Err(e),
        })
    }

    /// Creates a product (`AlreadyExists` if the SKU is taken).
    pub async fn create(&self, sku: &Sku, draft: &ProductDraft) -> Answer<Product, CatalogFailure> {
        let stored = self
            .stored(CatalogCmd::Create(sku.clone(), draft.clone()))
            .await?;
        Ok(stored.map(|(p, _)| p))
    }

    /// Creates or replaces a product; whether it was created.
    pub async fn put(
        &self,
        sku: &Sku,
        draft: &ProductDraft,
    ) -> Answer<(Product, bool), CatalogFailure> {
        self.stored(CatalogCmd::Put(sku.clone(), draft.clone()))
            .await
    }

    /// Adds or removes one of a product's image URLs.
    pub async fn edit_images(
        &self,
        sku: &Sku,
        edit: ImageEdit,
    ) -> Answer<(Product, bool), CatalogFailure> {
        self.stored(CatalogCmd::Images(sku.clone(), edit)).await
    }

    /// Deletes a product.
    pub async fn delete(&self, sku: &Sku) -> Answer<(), CatalogFailure> {
        Ok(self
            .0
            .call(CATALOG, || CatalogCmd::Delete(sku.clone()))
            .await?
            .map(|_| ()))
    }

    /// Creates or replaces many products: how many were written, and the refused ones by
    /// index.
    pub async fn import(
        &self,
        items: Arc<Vec<(Sku, ProductDraft)>>,
    ) -> Answer<(usize, Vec<(usize, Invalid)>), CatalogFailure> {
        Ok(
            match self
                .0
                .call(CATALOG, || CatalogCmd::Import(items.clone()))
                .await?
            {
                Ok(CatalogOutcome::Imported(n, refused)) => Ok((n, refused)),
                Ok(_) => return Err(CallError::Failed(CatalogEntity::KIND)),
                Err(e) => Err(e),
            },
        )
    }
}

/// Commands the catalog accepts.
#[derive(Debug, Clone)]
pub(crate) enum CatalogCmd {
    Create(Sku, ProductDraft),
    Put(Sku, ProductDraft),
    Delete(Sku),
    /// Creates or replaces many products in one atomic batch. Each item is validated on
    /// its own; invalid ones are reported by index and the rest are written.
    Import(Arc<Vec<(Sku, ProductDraft)>>),
    /// Adds or removes one image URL of a product, keeping everything else.
    Images(Sku, ImageEdit),
}

/// A change to a product's images.
#[derive(Debug, Clone)]
pub enum ImageEdit {
    /// Append this URL (a no-op if it is there).
    Add(String),
    /// Remove this URL.
    Remove(String),
}

/// What a catalog write did.
#[derive(Debug, Clone)]
pub enum CatalogOutcome {
    /// The product as stored, and whether it was newly created.
    Stored(Product, bool),
    /// The product was deleted.
    Deleted,
    /// An import batch: how many were written, and the refused ones by index.
    Imported(usize, Vec<(usize, Invalid)>),
}

/// Why a catalog write failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogFailure {
    /// `Create` of a SKU that exists.
    #[error("product {0} already exists")]
    AlreadyExists(Sku),
    /// `Delete` of a SKU that does not exist.
    #[error("product {0} not found")]
    NotFound(Sku),
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) struct CatalogEntity {
    pub store: Store,
    pub currency: String,
    /// Barrier ticket of the newest product write; product reads wait for it so that no
    /// reader sees a product a crash could take back.
    pub last_ticket: Arc<AtomicU64>,
    /// Wakes the search indexer after a write.
    pub on_change: Arc<dyn Fn() + Send + Sync>,
}

impl CatalogEntity {
    fn run(&self, cmd: CatalogCmd) -> Result<CatalogOutcome, CatalogFailure> {
        let products = &self.store.tables().products;
        let now = self.store.clock().now();
        let mut batch = WriteBatch::default();
        let mut events = Vec::new();
        let outcome = match cmd {
            CatalogCmd::Create(sku, draft) => {
                if products.contains(sku.as_str())? {
                    return Err(CatalogFailure::AlreadyExists(sku));
                }
                let p = draft.into_product(sku, &self.currency, now, None)?;
                self.stage_put(&mut batch, &mut events, &p, true)?;
                CatalogOutcome::Stored(p, true)
            }
            CatalogCmd::Put(sku, draft) => {
                let existing = products.get(sku.as_str())?;
                let p = draft.into_product(sku, &self.currency, now, existing.as_ref())?;
                self.stage_put(&mut batch, &mut events, &p, existing.is_none())?;
                CatalogOutcome::Stored(p, existing.is_none())
            }
            CatalogCmd::Images(sku, edit) => {
                let existing = products
                    .get(sku.as_str())?
                    .ok_or_else(|| CatalogFailure::NotFound(sku.clone()))?;
                let p = match edit {
                    ImageEdit::Add(url) => existing.with_image(url, now)?,
                    ImageEdit::Remove(url) => existing.without_image(&url, now),
                };
                self.stage_put(&mut batch, &mut events, &p, false)?;
                CatalogOutcome::Stored(p, false)
            }
            CatalogCmd::Delete(sku) => {
                if !products.contains(sku.as_str())? {
                    return Err(CatalogFailure::NotFound(sku));
                }
                batch.remove(products, sku.as_str());
                self.store.enqueue_reindex(&mut batch, sku.as_str())?;
                events.push(DomainEvent::ProductChanged {
                    sku: sku.to_string(),
                    change: ProductChange::Deleted,
                });
                CatalogOutcome::Deleted
            }
            CatalogCmd::Import(items) => {
                // Each product is its own group (product, re-index entry, event); the
                // groups go out in writes that each stay under the journal's limit.
                let mut writer = GroupWriter::new(&self.store);
                let mut failed = Vec::new();
                let mut written = 0;
                for (i, (sku, draft)) in items.iter().enumerate() {
                    let existing = products.get(sku.as_str())?;
                    let p = match draft.clone().into_product(
                        sku.clone(),
                        &self.currency,
                        now,
                        existing.as_ref(),
                    ) {
                        Ok(p) => p,
                        Err(e) => {
                            failed.push((i, e));
                            continue;
                        }
                    };
                    let (mut one, mut one_events) = (WriteBatch::default(), Vec::new());
                    let staged = self
                        .stage_put(&mut one, &mut one_events, &p, existing.is_none())
                        .and_then(|()| writer.add(one, one_events));
                    match staged {
                        Ok(()) => written += 1,
                        Err(StorageError::TooLarge(n)) => failed.push((
                            i,
                            Invalid::new("product", format!("{n} bytes encoded, over the limit")),
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
                writer.flush()?;
                CatalogOutcome::Imported(written, failed)
            }
        };
        self.store.write_with_events(batch, &events)?;
        Ok(outcome)
    }

    /// Stages a product write, its re-index entry and its event.
    fn stage_put(
        &self,
        batch: &mut WriteBatch,
        events: &mut Vec<DomainEvent>,
        p: &Product,
        created: bool,
    ) -> Result<(), StorageError> {
        batch.put(&self.store.tables().products, p.sku.as_str(), p)?;
        self.store.enqueue_reindex(batch, p.sku.as_str())?;
        let change = if created {
            ProductChange::Created
        } else {
            ProductChange::Updated
        };
        events.push(DomainEvent::ProductChanged {
            sku: p.sku.to_string(),
            change,
        });
        Ok(())
    }
}

impl Entity for CatalogEntity {
    const KIND: &'static str = "catalog";
    type State = ();
    type Cmd = CatalogCmd;
    type Reply = Result<CatalogOutcome, CatalogFailure>;

    fn load(&self, _: &str) -> Result<(), StorageError> {
        Ok(())
    }

    async fn handle(&self, _: &str, _: &mut (), cmd: CatalogCmd) -> Effect<Self::Reply> {
        let result = self.run(cmd);
        let wrote = result.is_ok();
        Effect::new(result, wrote)
    }

    fn wrote_at(&self, ticket: u64) {
        self.last_ticket.fetch_max(ticket, Ordering::AcqRel);
        (self.on_change)();
    }

    fn may_passivate(&self, _: &()) -> bool {
        false
    }
}
