//! Products: public get, admin create/replace/delete.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};

use super::AppState;
use super::dto::{ProductIn, ProductOut};
use super::error::{ApiError, Code};
use super::extract::Json;

/// Public routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/products/{sku}", get(get_product))
}

/// Admin routes (behind the token).
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/products", post(create_product))
        .route(
            "/api/v1/admin/products/{sku}",
            put(put_product).delete(delete_product),
        )
}

async fn get_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
) -> Result<axum::Json<ProductOut>, ApiError> {
    Ok(axum::Json(s.engine.product(&sku).await?.into()))
}

async fn create_product(
    State(s): State<AppState>,
    Json(body): Json<ProductIn>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(sku) = body.sku.clone() else {
        return Err(ApiError::new(Code::ValidationFailed, "sku: is required").with("field", "sku"));
    };
    let view = s.engine.create_product(&sku, body.into_draft()).await?;
    let location = format!("/api/v1/products/{}", view.product.sku);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(ProductOut::from(view)),
    ))
}

async fn put_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
    Json(body): Json<ProductIn>,
) -> Result<impl IntoResponse, ApiError> {
    if body.sku.as_deref().is_some_and(|b| b != sku) {
        return Err(ApiError::new(
            Code::ValidationFailed,
            "sku: must match the SKU in the path",
        )
        .with("field", "sku"));
    }
    let (view, created) = s.engine.put_product(&sku, body.into_draft()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(ProductOut::from(view))))
}

async fn delete_product(
    State(s): State<AppState>,
    Path(sku): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.engine.delete_product(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}
