//! Carts: create, read, add/set/remove lines, record the email.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Shopper;
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{LineOut, int, rfc3339};
use crate::domain::cart::CartStatus;
use crate::domain::order::OrderLine;
use crate::engine::CartView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Shopper routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart, patch_cart))
        .routes(routes!(add_item))
        .routes(routes!(set_quantity, remove_item))
}

type CartResult = Result<axum::Json<CartOut>, ApiError>;

/// Creates an empty cart with a fresh random id.
#[utoipa::path(
    post,
    path = "/api/v1/carts",
    tag = "carts",
    responses((status = 201, description = "The new cart; `Location` names it", body = CartOut,
        headers(("Location" = String, description = "The cart's URL")))),
)]
async fn create_cart(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let view = s.engine.create_cart().await?;
    let location = format!("/api/v1/carts/{}", view.cart.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(CartOut::from(view)),
    ))
}

/// A cart, priced from the catalog.
#[utoipa::path(
    get,
    path = "/api/v1/carts/{id}",
    tag = "carts",
    params(CartPath),
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 404, description = "Unknown or expired cart (`not_found`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn get_cart(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(s.engine.cart(&id).await?.into()))
}

/// Adds to a line's quantity (creating the line).
#[utoipa::path(
    post,
    path = "/api/v1/carts/{id}/items",
    tag = "carts",
    params(CartPath),
    request_body = AddItemIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 404, description = "Unknown cart (`not_found`) or SKU (`unknown_sku`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Quantity below 1 or a line over the maximum (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn add_item(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Json(body): Json<AddItemIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine
            .cart_add_item(&id, &body.sku, body.quantity)
            .await?
            .into(),
    ))
}

/// Sets a line's quantity; 0 removes the line.
#[utoipa::path(
    put,
    path = "/api/v1/carts/{id}/items/{sku}",
    tag = "carts",
    params(CartLinePath),
    request_body = SetQuantityIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Quantity out of range (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn set_quantity(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path((id, sku)): Path<(String, String)>,
    Json(body): Json<SetQuantityIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine
            .cart_set_quantity(&id, &sku, body.quantity)
            .await?
            .into(),
    ))
}

/// Removes a line.
#[utoipa::path(
    delete,
    path = "/api/v1/carts/{id}/items/{sku}",
    tag = "carts",
    params(CartLinePath),
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn remove_item(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path((id, sku)): Path<(String, String)>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine.cart_remove_item(&id, &sku).await?.into(),
    ))
}

/// Records the shopper's email (abandoned-cart reminders use it).
#[utoipa::path(
    patch,
    path = "/api/v1/carts/{id}",
    tag = "carts",
    params(CartPath),
    request_body = PatchCartIn,
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 409, description = "The cart is checked out or being checked out", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Not a valid email address (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn patch_cart(
    State(s): State<AppState>,
    Shopper(viewer): Shopper,
    Path(id): Path<String>,
    Json(body): Json<PatchCartIn>,
) -> CartResult {
    s.engine.check_cart_access(&id, viewer.as_ref()).await?;
    Ok(axum::Json(
        s.engine.cart_set_email(&id, &body.email).await?.into(),
    ))
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
