//! Wire types: what the JSON API reads and writes. Request types refuse unknown fields
//! (`400`), so a client cannot slip in a price, a total or a status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::domain::Millis;
use crate::domain::cart::CartStatus;
use crate::domain::order::{Address, CheckoutRequest, Order, OrderLine};
use crate::domain::product::{AttrValue, ProductDraft};
use crate::engine::{CartView, InventoryView, ProductView};

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
}

/// Renders stored milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An attribute value on the wire: a string or a list of strings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AttrIn {
    /// `"brand": "Orbital"`.
    One(String),
    /// `"colors": ["white"]`.
    Many(Vec<String>),
}

/// A product in a create/replace request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// Required on create; on replace, if present, must equal the path's SKU.
    pub sku: Option<String>,
    /// Display name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Category path.
    #[serde(default)]
    pub category: String,
    /// Price in minor units.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "int::de")]
    pub price: i64,
    /// Must be the store's currency if given.
    pub currency: Option<String>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrIn>,
    /// Image URLs.
    #[serde(default)]
    pub images: Vec<String>,
    /// Read-only; accepted so that a fetched product can be sent back, and ignored.
    #[serde(default, rename = "available")]
    #[schema(ignore)]
    pub _available: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "created_at")]
    #[schema(ignore)]
    pub _created_at: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    pub _updated_at: Option<serde::de::IgnoredAny>,
}

impl ProductIn {
    /// The domain draft.
    pub fn into_draft(self) -> ProductDraft {
        ProductDraft {
            name: self.name,
            description: self.description,
            category: self.category,
            price: self.price,
            currency: self.currency,
            attributes: self
                .attributes
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        AttrIn::One(s) => AttrValue::One(s),
                        AttrIn::Many(l) => AttrValue::Many(l),
                    };
                    (k, v)
                })
                .collect(),
            images: self.images,
        }
    }
}

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

/// A cart on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartOut {
    id: String,
    items: Vec<LineOut>,
    subtotal: u64,
    total: u64,
    currency: String,
    item_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// `open` or `checked_out`.
    #[schema(value_type = String)]
    status: &'static str,
}

impl From<CartView> for CartOut {
    fn from(v: CartView) -> Self {
        let c = v.cart;
        CartOut {
            id: c.id,
            items: v
                .priced
                .lines
                .into_iter()
                .map(|l| LineOut::from(&OrderLine::from(l)))
                .collect(),
            subtotal: v.priced.subtotal,
            total: v.priced.total,
            currency: v.currency,
            item_count: v.priced.item_count,
            email: c.email,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            expires_at: rfc3339(c.expires_at),
            status: match c.status {
                CartStatus::Open => "open",
                CartStatus::CheckedOut => "checked_out",
            },
        }
    }
}

/// `POST /carts/{id}/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemIn {
    /// What to add.
    pub sku: String,
    /// How many (at least 1; a line holds at most 999).
    #[schema(minimum = 1, maximum = 999)]
    #[serde(deserialize_with = "int::de")]
    pub quantity: i64,
}

/// `PUT /carts/{id}/items/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityIn {
    /// New quantity; 0 removes the line.
    #[schema(minimum = 0, maximum = 999)]
    #[serde(deserialize_with = "int::de")]
    pub quantity: i64,
}

/// `PATCH /carts/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCartIn {
    /// The shopper's email.
    #[schema(format = Email)]
    pub email: String,
}

/// Stock on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryOut {
    sku: String,
    on_hand: u64,
    reserved: u64,
    available: u64,
}

impl From<InventoryView> for InventoryOut {
    fn from(v: InventoryView) -> Self {
        InventoryOut {
            sku: v.sku,
            on_hand: v.on_hand,
            reserved: v.reserved,
            available: v.available,
        }
    }
}

/// `PUT /admin/inventory/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOnHandIn {
    /// New stock level.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "int::de")]
    pub on_hand: i64,
}

/// `POST /admin/inventory/{sku}/restock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockIn {
    /// Units received (at least 1).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "int::de")]
    pub quantity: i64,
}

/// A shipping address on the wire.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressIn {
    name: String,
    line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
}

impl From<AddressIn> for Address {
    fn from(a: AddressIn) -> Self {
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<&Address> for AddressIn {
    fn from(a: &Address) -> Self {
        AddressIn {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }
    }
}

/// `POST /carts/{id}/checkout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutIn {
    /// Where the receipt goes.
    #[schema(format = Email)]
    pub email: String,
    /// The payment method's token.
    pub payment_token: String,
    /// Where the goods go.
    pub shipping_address: AddressIn,
}

impl From<CheckoutIn> for CheckoutRequest {
    fn from(c: CheckoutIn) -> Self {
        CheckoutRequest {
            email: c.email,
            payment_token: c.payment_token,
            shipping_address: c.shipping_address.into(),
        }
    }
}

/// A payment on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentOut {
    id: String,
    /// `pending`, `paid`, `failed`, `refunded` …
    #[schema(value_type = String)]
    status: &'static str,
}

/// A history entry on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionOut {
    #[schema(value_type = String)]
    status: &'static str,
    #[schema(format = DateTime)]
    at: String,
}

/// Carrier details on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentOut {
    carrier: Option<String>,
    tracking: Option<String>,
}

/// An order on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderOut {
    id: String,
    /// `pending`, `paid`, `shipped`, `delivered`, `cancelled`, `refunded`, `failed`.
    #[schema(value_type = String)]
    status: &'static str,
    email: String,
    items: Vec<LineOut>,
    subtotal: u64,
    total: u64,
    currency: String,
    shipping_address: AddressIn,
    payment: Option<PaymentOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipment: Option<ShipmentOut>,
    history: Vec<TransitionOut>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&Order> for OrderOut {
    fn from(o: &Order) -> Self {
        OrderOut {
            id: o.id.clone(),
            status: o.status.as_str(),
            email: o.email.clone(),
            items: o.lines.iter().map(LineOut::from).collect(),
            subtotal: o.subtotal,
            total: o.total,
            currency: o.currency.clone(),
            shipping_address: (&o.shipping_address).into(),
            payment: o.payment.as_ref().map(|p| PaymentOut {
                id: p.id.clone(),
                status: p.status.as_str(),
            }),
            shipment: o.shipment.as_ref().map(|s| ShipmentOut {
                carrier: s.carrier.clone(),
                tracking: s.tracking.clone(),
            }),
            history: o
                .history
                .iter()
                .map(|t| TransitionOut {
                    status: t.status.as_str(),
                    at: rfc3339(t.at),
                })
                .collect(),
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

/// `POST /admin/orders/{id}/ship`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipIn {
    /// Carrier name.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking: Option<String>,
}

/// One value of a facet with how many results have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValueOut {
    /// The value (a category path, a brand).
    pub value: String,
    /// Matching products with it.
    pub count: u64,
}

/// A price range with how many results fall in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBucketOut {
    /// Lowest price in the range (minor units, inclusive).
    pub min: u64,
    /// Upper end (exclusive); `null` for the open-ended last range.
    pub max: Option<u64>,
    /// Matching products in it.
    pub count: u64,
}

/// Facets of a search, for the current query and filters.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsOut {
    /// Counts per child category of the filtered category (or of the root).
    pub category: Vec<FacetValueOut>,
    /// Counts per price range.
    pub price: Vec<PriceBucketOut>,
    /// Counts per brand, most first.
    pub brand: Vec<FacetValueOut>,
}

/// `GET /products`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPageOut {
    /// This page of results.
    pub items: Vec<ProductOut>,
    /// All results of the query.
    pub total: u64,
    /// Facet counts.
    pub facets: FacetsOut,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A node of the category tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryOut {
    /// Full path, e.g. `Space Suits/Helmets`.
    pub path: String,
    /// Last segment of the path.
    pub name: String,
    /// Products in this category and everything under it.
    pub count: u64,
    /// Subcategories.
    #[schema(no_recursion)]
    pub children: Vec<CategoryOut>,
}

impl From<&crate::search::CategoryNode> for CategoryOut {
    fn from(n: &crate::search::CategoryNode) -> Self {
        CategoryOut {
            path: n.path.clone(),
            name: n.name.clone(),
            count: n.count,
            children: n.children.iter().map(CategoryOut::from).collect(),
        }
    }
}

/// `GET /categories`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoriesOut {
    /// Top-level categories.
    pub items: Vec<CategoryOut>,
}

/// One completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionOut {
    /// The completed text (a word or a product name).
    pub text: String,
    /// The product, when the completion is a product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// `GET /search/suggest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionsOut {
    /// Completions, best first.
    pub suggestions: Vec<SuggestionOut>,
}

/// A refused record of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportFailureOut {
    /// Its line (NDJSON) or position (array), from 1.
    pub line: usize,
    /// Why it was refused.
    pub error: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReportOut {
    /// Records stored.
    pub imported: usize,
    /// Records refused, by line.
    pub failed: Vec<ImportFailureOut>,
}

impl From<&crate::engine::ImportReport> for ImportReportOut {
    fn from(r: &crate::engine::ImportReport) -> Self {
        ImportReportOut {
            imported: r.imported,
            failed: r
                .failed
                .iter()
                .map(|(line, error)| ImportFailureOut {
                    line: *line,
                    error: error.clone(),
                })
                .collect(),
        }
    }
}

/// `GET /products/{sku}/recommendations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationsOut {
    /// Related products, best first (in stock, never the product itself).
    pub items: Vec<ProductOut>,
    /// Where the first came from: `bought_together`, `similar` (a product named like
    /// this one), `viewed_together`, `category_bestsellers`, `bestsellers` or `category`;
    /// the rest of the list may be filled from the later ones.
    pub strategy: String,
}

/// `GET /admin/orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPageOut {
    /// This page of orders, newest first.
    pub items: Vec<OrderOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// An event of the durable log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Its sequence number (gapless, in commit order).
    pub seq: u64,
    /// Its type, e.g. `OrderPlaced`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was committed.
    #[schema(format = DateTime)]
    pub at: String,
    /// Its data (shape depends on the type).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `GET /admin/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageOut {
    /// Events after the cursor, oldest first.
    pub items: Vec<EventOut>,
    /// Pass as `cursor` for the next page; `null` at the end of the log.
    pub next_cursor: Option<String>,
}

/// An email template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateOut {
    /// Which email: `order_confirmation`, `order_shipped`, `order_cancelled`,
    /// `order_refunded`, `payment_failed`, `abandoned_cart`.
    pub name: String,
    /// Subject line (a template).
    pub subject: String,
    /// Plain-text body (a template).
    pub text: String,
    /// HTML body (a template).
    pub html: String,
    /// Whether it was changed from the built-in default.
    pub customized: bool,
    /// When it was last changed; `null` for the default.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

impl From<&crate::engine::TemplateView> for TemplateOut {
    fn from(v: &crate::engine::TemplateView) -> Self {
        TemplateOut {
            name: v.name.to_owned(),
            subject: v.template.subject.clone(),
            text: v.template.text.clone(),
            html: v.template.html.clone(),
            customized: v.customized,
            updated_at: v.template.updated_at.map(rfc3339),
        }
    }
}

/// `GET /admin/templates`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatesOut {
    /// Every template.
    pub items: Vec<TemplateOut>,
}

/// An email the store sent or is sending.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOut {
    /// Its Message-ID.
    pub id: String,
    /// The template it was rendered from.
    pub template: String,
    /// The recipient.
    pub to: String,
    /// The rendered subject.
    pub subject: String,
    /// The order or cart it is about.
    pub about: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was delivered.
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
}

/// `GET /admin/notifications`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPageOut {
    /// This page, oldest first.
    pub items: Vec<NotificationOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /health`, `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    /// `ok`, `ready` or `starting`.
    #[schema(value_type = String)]
    pub status: &'static str,
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

/// The `{id}` path parameter of the cart routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartPath {
    /// The cart's id
    pub id: String,
}

/// The `{id}` and `{sku}` path parameters of a cart line.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartLinePath {
    /// The cart's id
    pub id: String,
    /// The line's SKU
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
}

/// The `{id}` path parameter of the order routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order's id
    pub id: String,
}
