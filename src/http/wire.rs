//! Wire types more than one resource uses: a product (shown by products, search and
//! recommendations), an order or cart line, the `{sku}` path parameter, integers as JSON
//! Schema counts them, and timestamps. Each resource's own wire types live beside its
//! handlers (realworld-axum-sqlx's layout).

use super::products::AttrIn;
use crate::domain::order::OrderLine;
use crate::domain::product::AttrValue;
use crate::engine::ProductView;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Integers on the wire as JSON Schema counts them: `3` and `3.0` alike (a number with
/// no fractional part is an integer there, and generated clients may send either).
pub mod int {
    use serde::{Deserialize, Deserializer, de::Error};

    /// An integer field.
    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Num {
            Int(i64),
            Big(u64),
            Float(f64),
        }
        match Num::deserialize(d)? {
            Num::Int(i) => Ok(i),
            Num::Big(n) => Err(D::Error::custom(format!("{n} is out of range"))),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            Num::Float(f) => Err(D::Error::custom(format!("{f} is not an integer"))),
        }
    }

    /// An optional integer field (`null` or absent is `None`; use with `default`).
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(deserialize_with = "de")] i64);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

pub use crate::domain::rfc3339;

/// A product as shoppers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductOut {
    sku: String,
    name: String,
    description: String,
    category: String,
    price: u64,
    currency: String,
    /// Free-form attributes: each a string or a list of strings.
    #[schema(value_type = BTreeMap<String, AttrIn>)]
    attributes: BTreeMap<String, Value>,
    images: Vec<String>,
    /// Weight of one unit in grams, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    weight_grams: Option<u32>,
    /// Tax class.
    tax_class: String,
    /// On hand minus reservations.
    available: u64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<ProductView> for ProductOut {
    fn from(v: ProductView) -> Self {
        let p = std::sync::Arc::unwrap_or_clone(v.product);
        ProductOut {
            sku: p.sku.to_string(),
            name: p.name,
            description: p.description,
            category: p.category,
            price: p.price,
            currency: p.currency,
            attributes: p
                .attributes
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        AttrValue::One(s) => Value::String(s),
                        AttrValue::Many(l) => Value::from(l),
                    };
                    (k, v)
                })
                .collect(),
            images: p.images,
            weight_grams: p.weight_grams,
            tax_class: p.tax_class,
            available: v.available,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A priced line on the wire (cart and order lines have the same shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct LineOut {
    sku: String,
    name: String,
    quantity: u32,
    unit_price: u64,
    line_total: u64,
}

impl From<&OrderLine> for LineOut {
    fn from(l: &OrderLine) -> Self {
        LineOut {
            sku: l.sku.to_string(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            line_total: l.line_total,
        }
    }
}

/// The `{sku}` path parameter of the product and inventory routes (documentation only:
/// handlers take the raw string and the engine checks it with `Sku::parse`).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SkuPath {
    /// The product's SKU
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
}

/// A discount on the bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountOut {
    /// The code (or an automatic promotion's name).
    code: Option<String>,
    /// Whether it applied without being entered.
    automatic: bool,
    /// Minor units taken off.
    amount: u64,
}

/// A tax on the bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxOut {
    /// Its name (`VAT` …).
    name: String,
    /// Basis points (1900 = 19 %).
    rate_bp: u64,
    /// Minor units.
    amount: u64,
}

/// What an order costs, and why: `total = subtotal − Σ discounts + shipping + Σ tax`
/// (tax added only when `tax_included` is false). All amounts in minor units; a
/// percentage is rounded half up where it is taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownOut {
    /// Sum of the lines at catalog prices.
    subtotal: u64,
    /// Discounts, in the order they applied.
    discounts: Vec<DiscountOut>,
    /// The shipping charge (before shipping discounts, which are among `discounts`).
    shipping: u64,
    /// Tax lines.
    tax: Vec<TaxOut>,
    /// Whether the tax is included in the prices (shown, not added).
    tax_included: bool,
    /// What the customer pays.
    total: u64,
}

impl From<&crate::domain::pricing::Breakdown> for BreakdownOut {
    fn from(b: &crate::domain::pricing::Breakdown) -> Self {
        BreakdownOut {
            subtotal: b.subtotal,
            discounts: b
                .discounts
                .iter()
                .map(|d| DiscountOut {
                    code: d.code.clone(),
                    automatic: d.automatic,
                    amount: d.amount,
                })
                .collect(),
            shipping: b.shipping,
            tax: b
                .tax
                .iter()
                .map(|t| TaxOut {
                    name: t.name.clone(),
                    rate_bp: t.rate_bp,
                    amount: t.amount,
                })
                .collect(),
            tax_included: b.tax_included,
            total: b.total,
        }
    }
}
