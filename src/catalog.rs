//! The catalog's read side for the use cases that price things: a cart priced from the
//! stored products. (The catalog's writes go through its actor, `actors/catalog.rs`; the
//! rule itself is pure, [`crate::domain::cart::price`].)

use crate::domain::cart::{Cart, CatalogEntry, PricedCart, price};
use crate::storage::{StorageError, Tables};

/// Prices `cart` from the catalog as stored; a failed read is an error, never a silently
/// missing line (a product deleted since it was added is left out, as `price` says).
pub fn price_cart(tables: &Tables, cart: &Cart) -> Result<PricedCart, StorageError> {
    let mut failed = None;
    let priced = price(cart, |sku| match tables.product(sku.as_str()) {
        Ok(p) => p.map(|p| CatalogEntry {
            name: p.name.clone(),
            unit_price: p.price,
        }),
        Err(e) => {
            failed.get_or_insert(e);
            None
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(priced),
    }
}
