//! The catalog writer: a single entity (id `"catalog"`) that serialises product writes,
//! so that "create unless it exists" and "replace keeping `created_at`" are atomic.
//! Reads do not come here: they read the store directly (see `Engine::product`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::product::{Product, ProductDraft};
use crate::domain::{Invalid, Sku, now_millis};
use crate::storage::{StorageError, Store};

use super::entity::{Effect, Entity};

/// Commands the catalog accepts.
#[derive(Debug, Clone)]
pub(crate) enum CatalogCmd {
    Create(Sku, ProductDraft),
    Put(Sku, ProductDraft),
    Delete(Sku),
}

/// What a catalog write did.
#[derive(Debug, Clone)]
pub enum CatalogOutcome {
    /// The product as stored, and whether it was newly created.
    Stored(Product, bool),
    /// The product was deleted.
    Deleted,
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
        let products = &self.store.tables().products;
        let result = (|| {
            let now = now_millis();
            match cmd {
                CatalogCmd::Create(sku, draft) => {
                    if products.contains(sku.as_str())? {
                        return Err(CatalogFailure::AlreadyExists(sku));
                    }
                    let p = draft.into_product(sku, &self.currency, now, None)?;
                    products.put(p.sku.as_str(), &p)?;
                    Ok(CatalogOutcome::Stored(p, true))
                }
                CatalogCmd::Put(sku, draft) => {
                    let existing = products.get(sku.as_str())?;
                    let p = draft.into_product(sku, &self.currency, now, existing.as_ref())?;
                    products.put(p.sku.as_str(), &p)?;
                    Ok(CatalogOutcome::Stored(p, existing.is_none()))
                }
                CatalogCmd::Delete(sku) => {
                    if !products.contains(sku.as_str())? {
                        return Err(CatalogFailure::NotFound(sku));
                    }
                    products.remove(sku.as_str())?;
                    Ok(CatalogOutcome::Deleted)
                }
            }
        })();
        let wrote = result.is_ok();
        Effect {
            reply: result,
            wrote,
        }
    }

    fn wrote_at(&self, ticket: u64) {
        self.last_ticket.fetch_max(ticket, Ordering::AcqRel);
    }

    fn may_passivate(&self, _: &()) -> bool {
        false
    }
}
