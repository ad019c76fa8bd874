//! Carts: create, read, add/set/remove lines, record the email.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{post, put};

use super::AppState;
use super::dto::{AddItemIn, CartOut, PatchCartIn, SetQuantityIn};
use super::error::ApiError;
use super::extract::Json;

/// Shopper routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/carts", post(create_cart))
        .route(
            "/api/v1/carts/{id}",
            axum::routing::get(get_cart).patch(patch_cart),
        )
        .route("/api/v1/carts/{id}/items", post(add_item))
        .route(
            "/api/v1/carts/{id}/items/{sku}",
            put(set_quantity).delete(remove_item),
        )
}

type CartResult = Result<axum::Json<CartOut>, ApiError>;

async fn create_cart(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let view = s.engine.create_cart().await?;
    let location = format!("/api/v1/carts/{}", view.cart.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(CartOut::from(view)),
    ))
}

async fn get_cart(State(s): State<AppState>, Path(id): Path<String>) -> CartResult {
    Ok(axum::Json(s.engine.cart(&id).await?.into()))
}

async fn add_item(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<AddItemIn>,
) -> CartResult {
    Ok(axum::Json(
        s.engine
            .cart_add_item(&id, &body.sku, body.quantity)
            .await?
            .into(),
    ))
}

async fn set_quantity(
    State(s): State<AppState>,
    Path((id, sku)): Path<(String, String)>,
    Json(body): Json<SetQuantityIn>,
) -> CartResult {
    Ok(axum::Json(
        s.engine
            .cart_set_quantity(&id, &sku, body.quantity)
            .await?
            .into(),
    ))
}

async fn remove_item(
    State(s): State<AppState>,
    Path((id, sku)): Path<(String, String)>,
) -> CartResult {
    Ok(axum::Json(
        s.engine.cart_remove_item(&id, &sku).await?.into(),
    ))
}

async fn patch_cart(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<PatchCartIn>,
) -> CartResult {
    Ok(axum::Json(
        s.engine.cart_set_email(&id, &body.email).await?.into(),
    ))
}
