//! Products: the catalog's records and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Invalid, Millis, Sku};

/// A free-form attribute value: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrValue {
    /// A single value, e.g. `"brand": "Orbital"`.
    One(String),
    /// Several values, e.g. `"colors": ["white", "orange"]`.
    Many(Vec<String>),
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Stock keeping unit; the product's key.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Long description (plain text).
    pub description: String,
    /// Category path such as `"Space Suits/Helmets"`; empty when uncategorised.
    pub category: String,
    /// Price in minor units of `currency`.
    pub price: u64,
    /// ISO 4217 code; always the store's currency.
    pub currency: String,
    /// Free-form attributes (brand, colour, size …), used for facets later.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Image URLs.
    pub images: Vec<String>,
    /// Shipping weight of one unit, if known (weight-bound shipping methods use it).
    pub weight_grams: Option<u32>,
    /// Tax class, matched against the tax table's rates (`standard` by default).
    pub tax_class: String,
    /// When the product was first created.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
}

/// The fields a client supplies for a product; everything else is derived.
#[derive(Debug, Clone, Default)]
pub struct ProductDraft {
    /// See [`Product::name`].
    pub name: String,
    /// See [`Product::description`].
    pub description: String,
    /// See [`Product::category`].
    pub category: String,
    /// See [`Product::price`]; signed so that a negative input is a validation error.
    pub price: i64,
    /// If given, must equal the store's currency.
    pub currency: Option<String>,
    /// See [`Product::attributes`].
    pub attributes: BTreeMap<String, AttrValue>,
    /// See [`Product::images`].
    pub images: Vec<String>,
    /// See [`Product::weight_grams`]; signed so that a negative input is a validation error.
    pub weight_grams: Option<i64>,
    /// See [`Product::tax_class`]; `None` is `standard`.
    pub tax_class: Option<String>,
}

/// Upper bounds on product fields.
pub mod limits {
    /// Longest name, in characters.
    pub const NAME_CHARS: usize = 200;
    /// Longest description, in characters.
    pub const DESCRIPTION_CHARS: usize = 10_000;
    /// Deepest category path.
    pub const CATEGORY_LEVELS: usize = 5;
    /// Longest category segment, in characters.
    pub const CATEGORY_SEGMENT_CHARS: usize = 100;
    /// Highest price in minor units (ten billion units of currency).
    pub const PRICE: i64 = 1_000_000_000_000;
    /// Most attributes per product.
    pub const ATTRIBUTES: usize = 100;
    /// Longest attribute key or value, in characters.
    pub const ATTRIBUTE_CHARS: usize = 1_000;
    /// Most values in a list attribute.
    pub const ATTRIBUTE_VALUES: usize = 50;
    /// Most images per product.
    pub const IMAGES: usize = 20;
    /// Longest image URL.
    pub const IMAGE_CHARS: usize = 2_048;
    /// Heaviest unit, in grams (a tonne).
    pub const WEIGHT_GRAMS: i64 = 1_000_000;
}

/// The tax class of a product that names none.
pub const STANDARD_TAX_CLASS: &str = "standard";

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Normalises a category path: trims each segment, drops empty ones (so `"/A//B/"` is
/// `"A/B"`), and checks depth and length.
///
/// The limits apply to the path as sent (at most [`limits::CATEGORY_LEVELS`] segments
/// between slashes, each at most [`limits::CATEGORY_SEGMENT_CHARS`] characters), so that
/// the API document can state them exactly ([`CATEGORY_PATTERN`]).
pub fn normalize_category(path: &str) -> Result<String, Invalid> {
    let raw: Vec<&str> = path.split('/').collect();
    if raw.len() > limits::CATEGORY_LEVELS {
        return Err(Invalid::new(
            "category",
            format!("at most {} levels", limits::CATEGORY_LEVELS),
        ));
    }
    for s in &raw {
        check_len("category", s, limits::CATEGORY_SEGMENT_CHARS)?;
        if s.chars().any(char::is_control) {
            return Err(Invalid::new(
                "category",
                "must not contain control characters",
            ));
        }
    }
    let segments: Vec<&str> = raw
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    Ok(segments.join("/"))
}

/// What [`normalize_category`] accepts, as a regular expression (ECMA 262 and Python
/// alike) for the API document.
pub const CATEGORY_PATTERN: &str =
    "^[^/\\x00-\\x1f\\x7f-\\x9f]{0,100}(/[^/\\x00-\\x1f\\x7f-\\x9f]{0,100}){0,4}$";

impl Product {
    /// The product with one more image URL (a no-op if it has it), at most
    /// [`limits::IMAGES`].
    pub fn with_image(&self, url: String, now: Millis) -> Result<Product, Invalid> {
        let mut next = self.clone();
        if next.images.contains(&url) {
            return Ok(next);
        }
        if next.images.len() >= limits::IMAGES {
            return Err(Invalid::new(
                "images",
                format!("at most {} images", limits::IMAGES),
            ));
        }
        next.images.push(url);
        next.updated_at = now;
        Ok(next)
    }

    /// The product without the image URL `url`.
    pub fn without_image(&self, url: &str, now: Millis) -> Product {
        let mut next = self.clone();
        next.images.retain(|u| u != url);
        next.updated_at = now;
        next
    }
}

impl ProductDraft {
    /// Validates the draft into a product. `existing` is the stored product being
    /// replaced, whose creation time is kept.
    pub fn into_product(
        self,
        sku: Sku,
        currency: &str,
        now: Millis,
        existing: Option<&Product>,
    ) -> Result<Product, Invalid> {
        // Lengths count what was sent (as the API document declares them), before trimming.
        check_len("name", &self.name, limits::NAME_CHARS)?;
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(Invalid::new("name", "must not be empty"));
        }
        check_len("description", &self.description, limits::DESCRIPTION_CHARS)?;
        let category = normalize_category(&self.category)?;
        if !(0..=limits::PRICE).contains(&self.price) {
            return Err(Invalid::new(
                "price",
                format!("must be between 0 and {} minor units", limits::PRICE),
            ));
        }
        if self.currency.as_deref().is_some_and(|c| c != currency) {
            return Err(Invalid::new(
                "currency",
                format!("this store sells in {currency}"),
            ));
        }
        if self.attributes.len() > limits::ATTRIBUTES {
            return Err(Invalid::new(
                "attributes",
                format!("at most {} attributes", limits::ATTRIBUTES),
            ));
        }
        for (k, v) in &self.attributes {
            if k.trim().is_empty() {
                return Err(Invalid::new("attributes", "keys must not be empty"));
            }
            check_len("attributes", k, limits::ATTRIBUTE_CHARS)?;
            match v {
                AttrValue::One(s) => check_len("attributes", s, limits::ATTRIBUTE_CHARS)?,
                AttrValue::Many(list) => {
                    if list.len() > limits::ATTRIBUTE_VALUES {
                        return Err(Invalid::new(
                            "attributes",
                            format!("at most {} values per attribute", limits::ATTRIBUTE_VALUES),
                        ));
                    }
                    for s in list {
                        check_len("attributes", s, limits::ATTRIBUTE_CHARS)?;
                    }
                }
            }
        }
        if self.images.len() > limits::IMAGES {
            return Err(Invalid::new(
                "images",
                format!("at most {} images", limits::IMAGES),
            ));
        }
        for url in &self.images {
            check_len("images", url, limits::IMAGE_CHARS)?;
            if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
            {
                return Err(Invalid::new(
                    "images",
                    "must be http(s) URLs or absolute paths",
                ));
            }
        }
        let weight_grams = match self.weight_grams {
            None => None,
            Some(w) if (0..=limits::WEIGHT_GRAMS).contains(&w) => Some(w as u32),
            Some(_) => {
                return Err(Invalid::new(
                    "weight_grams",
                    format!("must be between 0 and {}", limits::WEIGHT_GRAMS),
                ));
            }
        };
        let tax_class = match self.tax_class.as_deref() {
            None => STANDARD_TAX_CLASS.to_owned(),
            Some(c) => super::pricing::tax_class(c).map_err(|m| Invalid::new("tax_class", m))?,
        };
        Ok(Product {
            sku,
            name,
            description: self.description,
            category,
            price: self.price as u64,
            currency: currency.to_owned(),
            attributes: self.attributes,
            images: self.images,
            weight_grams,
            tax_class,
            created_at: existing.map_or(now, |p| p.created_at),
            updated_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ProductDraft {
        ProductDraft {
            name: "Helmet".into(),
            price: 1999,
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_draft_becomes_a_product_in_the_store_currency() {
        let p = draft()
            .into_product(Sku::parse("H-1").unwrap(), "USD", 5, None)
            .unwrap();
        assert_eq!(
            (p.currency.as_str(), p.price, p.created_at, p.updated_at),
            ("USD", 1999, 5, 5)
        );
    }

    #[test]
    fn replacing_keeps_the_creation_time() {
        let first = draft()
            .into_product(Sku::parse("H-1").unwrap(), "USD", 5, None)
            .unwrap();
        let second = draft()
            .into_product(Sku::parse("H-1").unwrap(), "USD", 9, Some(&first))
            .unwrap();
        assert_eq!((second.created_at, second.updated_at), (5, 9));
    }

    #[test]
    fn bad_fields_are_refused_with_the_field_named() {
        let cases: Vec<(ProductDraft, &str)> = vec![
            (
                ProductDraft {
                    name: "  ".into(),
                    ..draft()
                },
                "name",
            ),
            (
                ProductDraft {
                    price: -1,
                    ..draft()
                },
                "price",
            ),
            (
                ProductDraft {
                    price: limits::PRICE + 1,
                    ..draft()
                },
                "price",
            ),
            (
                ProductDraft {
                    currency: Some("EUR".into()),
                    ..draft()
                },
                "currency",
            ),
            (
                ProductDraft {
                    category: "a/b/c/d/e/f".into(),
                    ..draft()
                },
                "category",
            ),
            (
                ProductDraft {
                    images: vec!["javascript:alert(1)".into()],
                    ..draft()
                },
                "images",
            ),
            (
                ProductDraft {
                    name: "x".repeat(201),
                    ..draft()
                },
                "name",
            ),
        ];
        for (d, field) in cases {
            let err = d
                .into_product(Sku::parse("X").unwrap(), "USD", 0, None)
                .unwrap_err();
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn category_paths_are_normalised() {
        assert_eq!(
            normalize_category(" Space Suits / Helmets/ ").unwrap(),
            "Space Suits/Helmets"
        );
        assert_eq!(normalize_category("").unwrap(), "");
    }
}
