//! Inventory: public stock read, admin set and restock.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};

use super::AppState;
use super::dto::{InventoryOut, RestockIn, SetOnHandIn};
use super::error::ApiError;
use super::extract::Json;

/// Public routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/inventory/{sku}", get(get_inventory))
}

/// Admin routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/inventory/{sku}", put(set_on_hand))
        .route("/api/v1/admin/inventory/{sku}/restock", post(restock))
}

type InventoryResult = Result<axum::Json<InventoryOut>, ApiError>;

async fn get_inventory(State(s): State<AppState>, Path(sku): Path<String>) -> InventoryResult {
    Ok(axum::Json(s.engine.inventory(&sku).await?.into()))
}

async fn set_on_hand(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<SetOnHandIn>,
) -> InventoryResult {
    Ok(axum::Json(
        s.engine.set_on_hand(&sku, body.on_hand).await?.into(),
    ))
}

async fn restock(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<RestockIn>,
) -> InventoryResult {
    Ok(axum::Json(
        s.engine.restock(&sku, body.quantity).await?.into(),
    ))
}
