//! Inventory: public stock read, admin set and restock.

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;
use super::openapi::{PROBLEM_JSON, Problem};
use super::wire::{SkuPath, int};
use crate::engine::InventoryView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Public routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_inventory))
}

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_on_hand))
        .routes(routes!(restock))
}

type InventoryResult = Result<axum::Json<InventoryOut>, ApiError>;

/// Stock of a product.
#[utoipa::path(
    get,
    path = "/api/v1/inventory/{sku}",
    tag = "inventory",
    params(SkuPath),
    responses((status = 200, description = "On hand, reserved and available", body = InventoryOut)),
)]
async fn get_inventory(State(s): State<AppState>, Path(sku): Path<String>) -> InventoryResult {
    Ok(axum::Json(s.engine.inventory(&sku).await?.into()))
}

/// Sets the units on hand (a stock count).
#[utoipa::path(
    put,
    path = "/api/v1/admin/inventory/{sku}",
    tag = "admin",
    params(SkuPath),
    request_body = SetOnHandIn,
    responses(
        (status = 200, description = "The stock now", body = InventoryOut),
        (status = 409, description = "Below what is reserved (`stock_conflict`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Out of range (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn set_on_hand(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<SetOnHandIn>,
) -> InventoryResult {
    Ok(axum::Json(
        s.engine.set_on_hand(&sku, body.on_hand).await?.into(),
    ))
}

/// Adds received units.
#[utoipa::path(
    post,
    path = "/api/v1/admin/inventory/{sku}/restock",
    tag = "admin",
    params(SkuPath),
    request_body = RestockIn,
    responses(
        (status = 200, description = "The stock now", body = InventoryOut),
        (status = 409, description = "The stock would exceed 1,000,000,000 units (`stock_conflict`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Out of range (`validation_failed`)", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
async fn restock(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<RestockIn>,
) -> InventoryResult {
    Ok(axum::Json(
        s.engine.restock(&sku, body.quantity).await?.into(),
    ))
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
