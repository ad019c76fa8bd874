//! Mapping records from other systems onto products, for bulk import.
//!
//! Three shapes are recognised per record:
//! - **native**: the fields of `POST /admin/products` (`sku`, `name`, `price` in minor
//!   units, …) plus an optional `stock`;
//! - **Icecat** (Open Icecat / Chorus JSON: `id`, `title`, `supplier`, `price` in cents,
//!   `attr_t_*`): SKU = the Icecat id, name = title, brand = supplier, model = `name`,
//!   barcodes = `ean`, category = `attr_t_product_type` when present (Icecat has no tree),
//!   text attributes kept as attributes;
//! - **Algolia e-commerce** (BestBuy: `name`, `categories`, `brand`, `price` in dollars,
//!   `image`): SKU = the BestBuy SKU in the image URL, category = the path of `categories`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::product::{AttrValue, ProductDraft, limits};
use super::{Invalid, Sku};

/// A record with its 1-based line number, parsed or refused with a reason.
pub type Numbered<T> = (usize, Result<T, RecordError>);

/// Why one record of an import was refused (the others go on).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The line is not JSON.
    #[error("{0}")]
    Json(#[source] std::sync::Arc<serde_json::Error>),
    /// The record is JSON but not a valid product or order.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Why a whole import body was refused.
#[derive(Debug, thiserror::Error)]
#[error("not a JSON array: {0}")]
pub struct NotAnArray(#[source] serde_json::Error);

/// A product to import and, optionally, its stock on hand.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// Key.
    pub sku: Sku,
    /// Fields.
    pub draft: ProductDraft,
    /// Stock on hand to set, if the record says.
    pub stock: Option<i64>,
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps one record; `position` (0-based) names records that carry no id.
pub fn map_record(v: &Value, position: usize) -> Result<ImportItem, Invalid> {
    let obj = v
        .as_object()
        .ok_or_else(|| Invalid::new("record", "must be a JSON object"))?;
    if obj.contains_key("title") && obj.contains_key("supplier") && obj.contains_key("id") {
        icecat(obj)
    } else if obj.get("categories").is_some_and(Value::is_array) && obj.contains_key("image") {
        algolia(obj, position)
    } else {
        native(v)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Native {
    sku: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    price: i64,
    currency: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    #[serde(default)]
    images: Vec<String>,
    stock: Option<i64>,
    #[serde(default, rename = "available")]
    _available: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<serde::de::IgnoredAny>,
}

fn native(v: &Value) -> Result<ImportItem, Invalid> {
    let n: Native =
        serde_json::from_value(v.clone()).map_err(|e| Invalid::new("record", e.to_string()))?;
    let mut attributes = BTreeMap::new();
    for (k, v) in n.attributes {
        let value = match v {
            Value::Array(items) => AttrValue::Many(items.iter().filter_map(text).collect()),
            other => AttrValue::One(text(&other).ok_or_else(|| {
                Invalid::new(
                    "attributes",
                    format!("{k}: must be a string or a list of strings"),
                )
            })?),
        };
        attributes.insert(k, value);
    }
    Ok(ImportItem {
        sku: Sku::parse(&n.sku)?,
        draft: ProductDraft {
            weight_grams: None,
            tax_class: None,
            name: n.name,
            description: n.description,
            category: n.category,
            price: n.price,
            currency: n.currency,
            attributes,
            images: n.images,
        },
        stock: n.stock,
    })
}

fn icecat(o: &Map<String, Value>) -> Result<ImportItem, Invalid> {
    let id = o
        .get("id")
        .and_then(text)
        .ok_or_else(|| Invalid::new("id", "is required"))?;
    let sku = Sku::parse(&id)?;
    let name = o.get("title").and_then(text).unwrap_or_default();
    let price = o
        .get("price")
        .and_then(Value::as_i64)
        .ok_or_else(|| Invalid::new("price", "must be an integer number of cents"))?;
    let mut attributes = BTreeMap::new();
    if let Some(s) = o.get("supplier").and_then(text) {
        attributes.insert("brand".to_owned(), AttrValue::One(s));
    }
    if let Some(m) = o.get("name").and_then(text) {
        attributes.insert(
            "model".to_owned(),
            AttrValue::One(truncate(&m, limits::ATTRIBUTE_CHARS)),
        );
    }
    if let Some(eans) = o.get("ean").and_then(Value::as_array) {
        let list: Vec<String> = eans
            .iter()
            .filter_map(text)
            .take(limits::ATTRIBUTE_VALUES)
            .collect();
        if !list.is_empty() {
            attributes.insert("ean".to_owned(), AttrValue::Many(list));
        }
    }
    let mut category = String::new();
    for (k, v) in o {
        let Some(key) = k.strip_prefix("attr_t_") else {
            continue;
        };
        let Some(value) = text(v).filter(|s| !s.is_empty()) else {
            continue;
        };
        if key == "product_type" {
            category = truncate(&value.replace('/', "-"), limits::CATEGORY_SEGMENT_CHARS);
        }
        if attributes.len() < limits::ATTRIBUTES {
            attributes.insert(
                key.to_owned(),
                AttrValue::One(truncate(&value, limits::ATTRIBUTE_CHARS)),
            );
        }
    }
    let images = o
        .get("img_500x500")
        .and_then(text)
        .filter(|u| u.starts_with("http"))
        .into_iter()
        .collect();
    Ok(ImportItem {
        sku,
        draft: ProductDraft {
            weight_grams: None,
            tax_class: None,
            name: truncate(&name, limits::NAME_CHARS),
            description: truncate(
                &o.get("short_description")
                    .and_then(text)
                    .unwrap_or_default(),
                limits::DESCRIPTION_CHARS,
            ),
            category,
            price,
            currency: None,
            attributes,
            images,
        },
        stock: None,
    })
}

/// The BestBuy SKU in an Algolia image URL: `…/<sku>_sb.jpg`.
fn sku_from_image(url: &str) -> Option<String> {
    let file = url.rsplit('/').next()?;
    let digits: String = file.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

fn algolia(o: &Map<String, Value>, position: usize) -> Result<ImportItem, Invalid> {
    let image = o.get("image").and_then(text).unwrap_or_default();
    let sku =
        sku_from_image(&image).map_or_else(|| format!("BB-{position}"), |s| format!("BB-{s}"));
    let dollars = o
        .get("price")
        .and_then(Value::as_f64)
        .ok_or_else(|| Invalid::new("price", "must be a number"))?;
    let mut attributes = BTreeMap::new();
    if let Some(b) = o.get("brand").and_then(text) {
        attributes.insert("brand".to_owned(), AttrValue::One(b));
    }
    if let Some(p) = o.get("popularity").and_then(text) {
        attributes.insert("popularity".to_owned(), AttrValue::One(p));
    }
    let category = o
        .get("categories")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(text)
                .map(|s| s.replace('/', "-"))
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    Ok(ImportItem {
        sku: Sku::parse(&sku)?,
        draft: ProductDraft {
            weight_grams: None,
            tax_class: None,
            name: truncate(
                &o.get("name").and_then(text).unwrap_or_default(),
                limits::NAME_CHARS,
            ),
            description: truncate(
                &o.get("description").and_then(text).unwrap_or_default(),
                limits::DESCRIPTION_CHARS,
            ),
            category,
            price: (dollars * 100.0).round() as i64,
            currency: None,
            attributes,
            images: image
                .starts_with("http")
                .then_some(image)
                .into_iter()
                .collect(),
        },
        stock: None,
    })
}

/// Splits an import body into records with their line numbers: a JSON array (line =
/// 1-based position in the array) or NDJSON (line = line in the body; blank lines skipped).
pub fn split_records(body: &str) -> Result<Vec<Numbered<Value>>, NotAnArray> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(trimmed).map_err(NotAnArray)?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, Ok(v)))
            .collect());
    }
    Ok(body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let parsed = serde_json::from_str(l);
            (i + 1, parsed.map_err(|e| RecordError::Json(e.into())))
        })
        .collect())
}

/// Splits a body into records and maps each onto a product: what every importer (the
/// HTTP route, the CLI, the demo loader) does. `first_position` numbers records that carry
/// no id, so that several files imported together do not collide.
pub fn parse_items(
    body: &str,
    first_position: usize,
) -> Result<Vec<Numbered<ImportItem>>, NotAnArray> {
    Ok(split_records(body)?
        .into_iter()
        .enumerate()
        .map(|(i, (line, r))| {
            (
                line,
                r.and_then(|v| Ok(map_record(&v, first_position + i)?)),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn icecat_records_map_title_supplier_and_model() {
        let v = json!({"id": "3920564", "name": "006R90321", "title": "Xerox 006R90321 toner cartridge", "supplier": "Xerox",
                       "price": 4995, "ean": ["0095205603217"], "attr_t_product_type": "Toner cartridge", "attr_n_weight": 1.0});
        let item = map_record(&v, 0).unwrap();
        assert_eq!(item.sku.as_str(), "3920564");
        assert_eq!(item.draft.name, "Xerox 006R90321 toner cartridge");
        assert_eq!(item.draft.price, 4995);
        assert_eq!(item.draft.category, "Toner cartridge");
        assert_eq!(
            item.draft.attributes["brand"],
            AttrValue::One("Xerox".into())
        );
        assert_eq!(
            item.draft.attributes["model"],
            AttrValue::One("006R90321".into())
        );
        assert!(!item.draft.attributes.contains_key("attr_n_weight"));
    }

    #[test]
    fn algolia_records_take_the_sku_from_the_image_and_dollars_to_cents() {
        let v = json!({"name": "Phone", "description": "d", "brand": "Acme", "categories": ["Cell Phones", "Prepaid Phones"],
                       "price": 39.99, "image": "https://cdn-demo.algolia.com/bestbuy-0118/5477500_sb.jpg", "popularity": 10});
        let item = map_record(&v, 7).unwrap();
        assert_eq!(item.sku.as_str(), "BB-5477500");
        assert_eq!(item.draft.price, 3999);
        assert_eq!(item.draft.category, "Cell Phones/Prepaid Phones");
    }

    #[test]
    fn native_records_refuse_unknown_fields_and_floats() {
        assert!(map_record(&json!({"sku": "A", "name": "a", "price": 1, "stock": 3}), 0).is_ok());
        assert!(map_record(&json!({"sku": "A", "name": "a", "price": 1.5}), 0).is_err());
        assert!(
            map_record(
                &json!({"sku": "A", "name": "a", "price": 1, "colour": "x"}),
                0
            )
            .is_err()
        );
        assert!(map_record(&json!(["not", "an", "object"]), 0).is_err());
    }

    #[test]
    fn bodies_split_into_numbered_records() {
        let nd = "{\"a\":1}\n\n{bad\n{\"b\":2}\n";
        let recs = split_records(nd).unwrap();
        assert_eq!(
            recs.iter()
                .map(|(l, r)| (*l, r.is_ok()))
                .collect::<Vec<_>>(),
            vec![(1, true), (3, false), (4, true)]
        );
        let arr = split_records(" [{\"a\":1},{\"b\":2}]").unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[1].0, 2);
    }
}
