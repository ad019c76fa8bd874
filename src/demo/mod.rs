//! The built-in demo catalog: gear for space explorers (our own text), loaded by
//! `emporium serve` into an empty data directory unless `--no-demo` is given.

use crate::domain::import::{ImportItem, Numbered, parse_items};

const CATALOG: &str = include_str!("catalog.ndjson");

/// The demo products with their line numbers, ready for `Engine::import_products`.
pub fn items() -> Vec<Numbered<ImportItem>> {
    parse_items(CATALOG, 0).expect("the demo catalog is NDJSON")
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
