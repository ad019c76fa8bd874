//! The price book: what pricing needs besides the catalog and the cart — the store's
//! shipping zones, tax table and price mode, and the automatic promotions — held in
//! memory for every cart view and checkout, and kept current by their writers (the
//! engine for the settings, each promotion's actor for its own offer).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::domain::pricing::{Offer, PricingSettings};
use crate::domain::promotion::Promotion;
use crate::storage::{StorageError, Tables};

/// The key of the pricing settings in [`Tables::settings`].
pub const SETTINGS_KEY: &str = "pricing";

/// One consistent view of the book.
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// Shipping zones, tax table, price mode.
    pub settings: PricingSettings,
    /// The automatic promotions' offers, by code.
    pub automatic: BTreeMap<String, Offer>,
}

/// The shared, current [`Book`].
#[derive(Debug, Clone, Default)]
pub struct PriceBook(Arc<RwLock<Arc<Book>>>);

impl PriceBook {
    /// Reads the book from the store: the settings and every automatic promotion.
    pub fn load(tables: &Tables) -> Result<PriceBook, StorageError> {
        let settings = tables.settings.get(SETTINGS_KEY)?.unwrap_or_default();
        let mut automatic = BTreeMap::new();
        for page in tables.promotions.pages(500) {
            for (_, p) in page? {
                if p.draft.automatic {
                    automatic.insert(p.code.clone(), p.offer());
                }
            }
        }
        Ok(PriceBook(Arc::new(RwLock::new(Arc::new(Book {
            settings,
            automatic,
        })))))
    }

    /// The book as it is now.
    pub fn current(&self) -> Arc<Book> {
        self.0.read().expect("price book lock").clone()
    }

    fn change(&self, f: impl FnOnce(&mut Book)) {
        let mut guard = self.0.write().expect("price book lock");
        let mut next = Book::clone(&guard);
        f(&mut next);
        *guard = Arc::new(next);
    }

    /// The settings were stored.
    pub fn set_settings(&self, settings: PricingSettings) {
        self.change(|b| b.settings = settings);
    }

    /// Promotion `code` was stored as `promotion` (`None`: deleted). Called by the code's
    /// actor after its write, so changes to one code arrive in order.
    pub fn set_promotion(&self, code: &str, promotion: Option<&Promotion>) {
        let offer = promotion
            .filter(|p| p.draft.automatic)
            .map(Promotion::offer);
        let known = self.current().automatic.get(code) == offer.as_ref();
        if known {
            return;
        }
        self.change(|b| match offer {
            Some(o) => {
                b.automatic.insert(code.to_owned(), o);
            }
            None => {
                b.automatic.remove(code);
            }
        });
    }
}
