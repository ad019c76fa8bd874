//! The built-in demo catalog: gear for space explorers (our own text), loaded by
//! `emporium serve` into an empty data directory unless `--no-demo` is given.

pub mod art;

use crate::domain::import::{ImportItem, Numbered, parse_items};

const CATALOG: &str = include_str!("catalog.ndjson");

/// The demo products with their line numbers, ready for `Engine::import_products`.
pub fn items() -> Vec<Numbered<ImportItem>> {
    parse_items(CATALOG, 0).expect("the demo catalog is NDJSON")
}

/// Draws each of `items` that has no image yet a picture ([`art::picture`]) and adds it
/// as its image, one at a time (meant for a background task after the demo load; the
/// variants are made on their first request). Stops at the first failure (the engine
/// closing): the rest keep no image.
pub async fn paint(
    engine: &crate::Engine,
    items: Vec<Numbered<ImportItem>>,
) -> Result<usize, crate::EngineError> {
    let mut painted = 0;
    for (_, item) in items {
        let Ok(item) = item else { continue };
        let sku = item.sku.to_string();
        let view = engine.product(&sku).await?;
        if !view.product.images.is_empty() {
            continue;
        }
        let category = item.draft.category.clone();
        let bytes = tokio::task::spawn_blocking({
            let sku = sku.clone();
            move || art::picture(&sku, &category)
        })
        .await
        .map_err(|e| crate::EngineError::unavailable_because("the demo painter", e))?;
        engine.add_product_image_lazily(&sku, bytes).await?;
        painted += 1;
    }
    Ok(painted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_catalog_is_valid_and_large_enough() {
        let items = super::items();
        assert!(items.len() >= 150);
        let mut categories = std::collections::BTreeSet::new();
        for (line, item) in &items {
            let item = item.as_ref().unwrap_or_else(|e| panic!("line {line}: {e}"));
            let depth = item.draft.category.split('/').count();
            assert!(
                (2..=3).contains(&depth),
                "line {line}: category depth {depth}"
            );
            assert!(
                item.draft.description.len() > 40 && item.draft.price > 0 && item.stock.is_some()
            );
            categories.insert(item.draft.category.clone());
        }
        assert!(categories.len() >= 20);
    }
}
