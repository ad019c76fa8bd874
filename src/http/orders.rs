//! Checkout and orders: `POST /carts/{id}/checkout`, the shopper's order routes and the
//! admin order routes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Shopper;
use super::carts::CartPath;
use super::error::{ApiError, Code};
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{BreakdownOut, LineOut, int, rfc3339};
use crate::domain::order::{Address, CheckoutRequest, Order, RefundPart, RefundedUnits};
use crate::domain::{Invalid, Sku};

/// Shopper routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(get_order))
        .routes(routes!(cancel))
}

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(ship))
        .routes(routes!(deliver))
        .routes(routes!(refund))
}

type OrderResult = Result<axum::Json<OrderOut>, ApiError>;

fn out(o: &Order) -> axum::Json<OrderOut> {
    axum::Json(OrderOut::from(o))
}

/// The idempotency key header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Checks the cart out: prices it, reserves the stock, charges the payment and places the
/// order. Retries with the same `Idempotency-Key` get the first answer, byte for byte.
#[utoipa::path(
    post,
    path = "/api/v1/carts/{id}/checkout",
    tag = "orders",
    params(
        CartPath,
        ("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters of the client's choice; required"),
    ),
    request_body = CheckoutIn,
    responses(
        (status = 201, description = "The order, paid; `Location` names it", body = OrderOut,
            headers(("Location" = String, description = "The order's URL"))),
        (status = 402, description = "The payment was declined (`payment_declined`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Out of stock, an empty or checked-out cart, or another checkout in progress", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is invalid, or the key was used with another body (`idempotency_key_reused`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 502, description = "The payment gateway failed (`payment_gateway_error`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn checkout(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CheckoutIn>,
) -> Result<impl IntoResponse, ApiError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => {
            return Err(ApiError::new(
                Code::IdempotencyKeyRequired,
                "send an Idempotency-Key header with a string of your choice",
            ));
        }
        Some(v) => v.to_str().map_err(|_| {
            ApiError::new(
                Code::InvalidRequest,
                "Idempotency-Key: 1 to 255 visible ASCII characters",
            )
        })?,
    };
    let order = s
        .engine
        .checkout_as(&id, key, &body.into(), viewer.as_ref())
        .await?;
    let location = format!("/api/v1/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        out(&order),
    ))
}

/// An order.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(OrderPath),
    responses((status = 200, description = "The order", body = OrderOut)),
)]
async fn get_order(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
) -> OrderResult {
    s.engine.check_order_access(&id, viewer.as_ref()).await?;
    Ok(out(&s.engine.order(&id).await?))
}

/// Cancels a paid order: the payment is refunded and the stock returned.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(OrderPath),
    responses(
        (status = 200, description = "The order, now `cancelled`", body = OrderOut),
        (status = 409, description = "Not `paid` (`invalid_transition`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn cancel(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
) -> OrderResult {
    s.engine.check_order_access(&id, viewer.as_ref()).await?;
    Ok(out(&s.engine.cancel_order(&id).await?))
}

/// Marks a paid order shipped.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{id}/ship",
    tag = "admin",
    params(OrderPath),
    request_body(content = Option<ShipIn>, description = "Carrier details (optional)"),
    responses(
        (status = 200, description = "The order, now `shipped`", body = OrderOut),
        (status = 409, description = "Not `paid` (`invalid_transition`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn ship(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> OrderResult {
    // No body, or JSON `null`, is no carrier details (the document says the body is
    // optional and may be `null`).
    let ship: Option<ShipIn> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidRequest, format!("body: {e}")))?
    };
    let ship = ship.unwrap_or_default();
    Ok(out(&s
        .engine
        .ship_order(&id, ship.carrier, ship.tracking)
        .await?))
}

/// Marks a shipped order delivered.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{id}/deliver",
    tag = "admin",
    params(OrderPath),
    responses(
        (status = 200, description = "The order, now `delivered`", body = OrderOut),
        (status = 409, description = "Not `shipped` (`invalid_transition`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn deliver(State(s): State<AppState>, Path(id): Path<String>) -> OrderResult {
    Ok(out(&s.engine.deliver_order(&id).await?))
}

/// Refunds a paid, shipped or delivered order: in full without a body (or `{}`), or
/// part of it — chosen units of its lines (`{"lines": [{"sku", "quantity"}]}`, each unit
/// at what it cost the customer: its share of the discounts taken, its tax included) or
/// an amount (`{"amount"}`). Never more than captured and not yet refunded; a part that
/// refunds the rest is the full refund. A partial refund keeps the status (the payment
/// becomes `partially_refunded`) and returns no stock.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{id}/refund",
    tag = "admin",
    params(OrderPath),
    request_body(content = Option<RefundIn>, description = "Optional: what part to refund"),
    responses(
        (status = 200, description = "The order: `refunded`, or with the partial refund recorded", body = OrderOut),
        (status = 409, description = "Not refundable (`invalid_transition`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "More than is left, an unknown line, both `lines` and `amount` (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn refund(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> OrderResult {
    let part: Option<RefundIn> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidRequest, format!("body: {e}")))?
    };
    let part = match part {
        None
        | Some(RefundIn {
            lines: None,
            amount: None,
        }) => None,
        Some(RefundIn {
            lines: Some(_),
            amount: Some(_),
        }) => {
            return Err(Invalid::new("amount", "give lines or amount, not both").into());
        }
        Some(RefundIn {
            lines: Some(lines), ..
        }) => Some(RefundPart::Lines(
            lines
                .into_iter()
                .map(|l| {
                    Ok(RefundedUnits {
                        sku: Sku::parse(&l.sku)?,
                        quantity: u32::try_from(l.quantity)
                            .map_err(|_| Invalid::new("lines.quantity", "at least 1"))?,
                    })
                })
                .collect::<Result<_, Invalid>>()?,
        )),
        Some(RefundIn {
            amount: Some(a), ..
        }) => Some(RefundPart::Amount(
            u64::try_from(a).map_err(|_| Invalid::new("amount", "at least 1"))?,
        )),
    };
    Ok(out(&match part {
        None => s.engine.refund_order(&id).await?,
        Some(part) => s.engine.refund_order_part(&id, part).await?,
    }))
}

/// `POST /admin/orders/{id}/refund`: what part to refund (neither: all of it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundIn {
    /// Units of lines to refund.
    #[serde(default)]
    pub lines: Option<Vec<RefundLineIn>>,
    /// An amount (minor units) to refund.
    #[serde(default, deserialize_with = "int::opt")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub amount: Option<i64>,
}

/// Units of one line to refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineIn {
    /// The line's SKU.
    pub sku: String,
    /// How many units.
    #[serde(deserialize_with = "int::de")]
    #[schema(minimum = 1, maximum = 999)]
    pub quantity: i64,
}

/// Query string of the admin list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only orders in this status.
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Orders per page, 1–100 (default 20).
    limit: Option<usize>,
}

/// Orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/orders",
    operation_id = "list_orders",
    tag = "admin",
    params(ListParams),
    responses((status = 200, description = "One page of orders", body = OrderPageOut)),
)]
async fn list(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<axum::Json<OrderPageOut>, ApiError> {
    let page = s
        .engine
        .orders(
            p.status.as_deref(),
            p.cursor.as_deref(),
            p.limit.unwrap_or(20),
        )
        .await?;
    Ok(axum::Json(OrderPageOut {
        items: page.items.iter().map(OrderOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
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
    /// ISO 3166-1 alpha-2 code (shipping zones and tax rates match it).
    country: String,
    /// State, province or region (tax rates may depend on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
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
            region: a.region,
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
            region: a.region.clone(),
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
    /// The shipping method's id (`GET /api/v1/carts/{id}/shipping-methods`); without
    /// it, the one chosen on the cart. Required when the store charges shipping.
    #[serde(default)]
    pub shipping_method: Option<String>,
}

impl From<CheckoutIn> for CheckoutRequest {
    fn from(c: CheckoutIn) -> Self {
        CheckoutRequest {
            email: c.email,
            payment_token: c.payment_token,
            shipping_address: c.shipping_address.into(),
            shipping_method: c.shipping_method,
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
    /// The bill, frozen at checkout.
    breakdown: BreakdownOut,
    /// The shipping method, if shipping was charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_method: Option<ShippingChoiceOut>,
    /// The promotion code used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_code: Option<String>,
    /// Minor units refunded so far (partial refunds; a full refund is the status).
    refunded: u64,
    /// Partial refunds, oldest first.
    refunds: Vec<RefundOut>,
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
            breakdown: (&o.pricing.breakdown).into(),
            shipping_method: o.pricing.shipping_method.as_ref().map(|(id, name)| {
                ShippingChoiceOut {
                    id: id.clone(),
                    name: name.clone(),
                }
            }),
            promotion_code: o.pricing.promotion.as_ref().map(|p| p.code.clone()),
            refunded: o.refunded_so_far(),
            refunds: o
                .refunds
                .iter()
                .map(|r| RefundOut {
                    amount: r.amount,
                    lines: r
                        .lines
                        .iter()
                        .map(|u| RefundedUnitsOut {
                            sku: u.sku.to_string(),
                            quantity: u.quantity,
                        })
                        .collect(),
                    at: rfc3339(r.at),
                })
                .collect(),
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

/// The shipping method of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShippingChoiceOut {
    id: String,
    name: String,
}

/// A partial refund of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundOut {
    /// Minor units given back.
    amount: u64,
    /// The units it was for (empty for an amount).
    lines: Vec<RefundedUnitsOut>,
    #[schema(format = DateTime)]
    at: String,
}

/// Units of a line refunded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundedUnitsOut {
    sku: String,
    quantity: u32,
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

/// `GET /admin/orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPageOut {
    /// This page of orders, newest first.
    pub items: Vec<OrderOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The `{id}` path parameter of the order routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order's id
    pub id: String,
}
