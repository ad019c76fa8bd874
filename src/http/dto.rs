//! Wire types: what the JSON API reads and writes. Request types refuse unknown fields
//! (`400`), so a client cannot slip in a price, a total or a status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Millis;
use crate::domain::cart::CartStatus;
use crate::domain::order::{Address, CheckoutRequest, Order, OrderLine};
use crate::domain::product::{AttrValue, ProductDraft};
use crate::engine::{CartView, InventoryView, ProductView};

/// Renders stored milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An attribute value on the wire: a string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AttrIn {
    /// `"brand": "Orbital"`.
    One(String),
    /// `"colors": ["white"]`.
    Many(Vec<String>),
}

/// A product in a create/replace request.
#[derive(Debug, Deserialize)]
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
    pub _available: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<serde::de::IgnoredAny>,
    /// Read-only; ignored.
    #[serde(default, rename = "updated_at")]
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
#[derive(Debug, Serialize)]
pub struct ProductOut {
    sku: String,
    name: String,
    description: String,
    category: String,
    price: u64,
    currency: String,
    attributes: BTreeMap<String, Value>,
    images: Vec<String>,
    available: u64,
    created_at: String,
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct CartOut {
    id: String,
    items: Vec<LineOut>,
    subtotal: u64,
    total: u64,
    currency: String,
    item_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    created_at: String,
    updated_at: String,
    expires_at: String,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddItemIn {
    /// What to add.
    pub sku: String,
    /// How many (at least 1).
    pub quantity: i64,
}

/// `PUT /carts/{id}/items/{sku}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityIn {
    /// New quantity; 0 removes the line.
    pub quantity: i64,
}

/// `PATCH /carts/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchCartIn {
    /// The shopper's email.
    pub email: String,
}

/// Stock on the wire.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOnHandIn {
    /// New stock level.
    pub on_hand: i64,
}

/// `POST /admin/inventory/{sku}/restock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockIn {
    /// Units received (at least 1).
    pub quantity: i64,
}

/// A shipping address on the wire.
#[derive(Debug, Deserialize, Serialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutIn {
    /// Where the receipt goes.
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
#[derive(Debug, Serialize)]
pub struct PaymentOut {
    id: String,
    status: &'static str,
}

/// A history entry on the wire.
#[derive(Debug, Serialize)]
pub struct TransitionOut {
    status: &'static str,
    at: String,
}

/// Carrier details on the wire.
#[derive(Debug, Serialize)]
pub struct ShipmentOut {
    carrier: Option<String>,
    tracking: Option<String>,
}

/// An order on the wire.
#[derive(Debug, Serialize)]
pub struct OrderOut {
    id: String,
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
    created_at: String,
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipIn {
    /// Carrier name.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking: Option<String>,
}
