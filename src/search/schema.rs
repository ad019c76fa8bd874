//! The index schema and its analyzers, and how a product becomes a document.

use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TokenizerManager,
};
use tantivy::{Index, TantivyDocument};

use crate::domain::product::{AttrValue, Product};

/// Bumped when the schema or analyzers change: an index built by another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 6;

/// Analyzer for ranked text: words, lowercased, accents folded, English stems.
pub const STEMMED: &str = "emporium_stem";
/// Analyzer for completions: like [`STEMMED`] without stemming, so terms read as typed.
pub const WORDS: &str = "emporium_words";

/// Registers our analyzers on an index.
pub fn register_tokenizers(manager: &TokenizerManager) {
    let base = || {
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .filter(super::forms::CodeForms)
    };
    manager.register(
        STEMMED,
        base().filter(Stemmer::new(Language::English)).build(),
    );
    manager.register(WORDS, base().build());
}

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The product key (exact, stored).
    pub sku: Field,
    /// Product name.
    pub name: Field,
    /// Model numbers, part numbers, barcodes, the SKU.
    pub codes: Field,
    /// Brand / manufacturer / supplier.
    pub brand: Field,
    /// Category path words.
    pub category_text: Field,
    /// Description.
    pub description: Field,
    /// Other attribute values.
    pub attrs: Field,
    /// Name words unstemmed, for completions.
    pub name_words: Field,
    /// The head of the name: what the product is, before "for …" / "compatible with …".
    pub name_head: Field,
    /// Category path as a facet (matches the path and everything under it).
    pub category: Field,
    /// Brand as a facet (`/<brand>`), for brand counts and the brand filter.
    pub brand_facet: Field,
    /// Price in minor units.
    pub price: Field,
    /// 1 if available stock > 0.
    pub in_stock: Field,
    /// Creation time (ms), for `sort=newest`.
    pub created_at: Field,
}

fn text(analyzer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analyzer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

/// Builds the schema.
pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        sku: b.add_text_field("sku", STRING | STORED),
        name: b.add_text_field("name", text(STEMMED).set_stored()),
        codes: b.add_text_field("codes", text(STEMMED)),
        brand: b.add_text_field("brand", text(STEMMED)),
        category_text: b.add_text_field("category_text", text(STEMMED)),
        description: b.add_text_field("description", text(STEMMED)),
        attrs: b.add_text_field("attrs", text(STEMMED)),
        name_words: b.add_text_field("name_words", text(WORDS)),
        name_head: b.add_text_field("name_head", text(STEMMED)),
        category: b.add_facet_field("category", FacetOptions::default()),
        brand_facet: b.add_facet_field("brand_facet", FacetOptions::default()),
        price: b.add_u64_field("price", INDEXED | FAST),
        in_stock: b.add_u64_field("in_stock", INDEXED | FAST),
        created_at: b.add_i64_field("created_at", INDEXED | FAST),
    };
    (b.build(), fields)
}

/// Attribute keys whose value names the brand.
pub const BRAND_KEYS: [&str; 4] = ["brand", "supplier", "manufacturer", "vendor"];
/// Attribute keys whose value is a code a shopper may type.
pub const CODE_KEYS: [&str; 5] = ["model", "mpn", "part_number", "ean", "gtin"];

fn values(v: &AttrValue) -> Vec<&str> {
    match v {
        AttrValue::One(s) => vec![s.as_str()],
        AttrValue::Many(l) => l.iter().map(String::as_str).collect(),
    }
}

/// The part of a product name that says what the product is: the text before the first
/// " for ", " compatible with " or " fits " (an accessory *for* a printer is not a printer).
pub fn name_head(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    let cut = [" for ", " compatible with ", " fits "]
        .iter()
        .filter_map(|m| lower.find(m))
        .min();
    match cut {
        Some(i) if i > 0 && name.is_char_boundary(i) => &name[..i],
        _ => name,
    }
}

/// A brand as a facet: one segment, so a brand containing "/" stays one value.
pub fn brand_facet(brand: &str) -> Facet {
    Facet::from_path([brand.trim()])
}

/// The category path as a facet (`"A/B"` → `/A/B`), if the product has one.
pub fn category_facet(path: &str) -> Option<Facet> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (!segments.is_empty()).then(|| Facet::from_path(segments))
}

/// The search document of a product.
pub fn document(f: &Fields, p: &Product, in_stock: bool) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.sku, p.sku.as_str());
    doc.add_text(f.name, &p.name);
    doc.add_text(f.name_words, &p.name);
    doc.add_text(f.name_head, name_head(&p.name));
    doc.add_text(f.codes, p.sku.as_str());
    doc.add_text(f.description, &p.description);
    doc.add_text(f.category_text, p.category.replace('/', " "));
    if let Some(facet) = category_facet(&p.category) {
        doc.add_facet(f.category, facet);
    }
    for (k, v) in &p.attributes {
        let key = k.to_ascii_lowercase();
        let field = if BRAND_KEYS.contains(&key.as_str()) {
            if let AttrValue::One(b) = v {
                doc.add_facet(f.brand_facet, brand_facet(b));
            }
            f.brand
        } else if CODE_KEYS.contains(&key.as_str()) {
            f.codes
        } else {
            f.attrs
        };
        for s in values(v) {
            doc.add_text(field, s);
        }
    }
    doc.add_u64(f.price, p.price);
    doc.add_u64(f.in_stock, u64::from(in_stock));
    doc.add_i64(f.created_at, p.created_at);
    doc
}

/// Registers the analyzers on an opened or created index.
pub fn prepare(index: &Index) {
    register_tokenizers(index.tokenizers());
}
