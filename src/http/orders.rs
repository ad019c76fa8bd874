//! Checkout and orders: `POST /carts/{id}/checkout`, the shopper's order routes and the
//! admin order routes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::dto::{CheckoutIn, OrderOut, ShipIn};
use super::error::{ApiError, Code};
use super::extract::Json;
use crate::domain::order::Order;

/// Shopper routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/carts/{id}/checkout", post(checkout))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel))
}

/// Admin routes.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/orders", get(list))
        .route("/api/v1/admin/orders/{id}/ship", post(ship))
        .route("/api/v1/admin/orders/{id}/deliver", post(deliver))
        .route("/api/v1/admin/orders/{id}/refund", post(refund))
}

type OrderResult = Result<axum::Json<OrderOut>, ApiError>;

fn out(o: &Order) -> axum::Json<OrderOut> {
    axum::Json(OrderOut::from(o))
}

/// The idempotency key header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

async fn checkout(
    State(s): State<AppState>,
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
    let order = s.engine.checkout(&id, key, &body.into()).await?;
    let location = format!("/api/v1/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        out(&order),
    ))
}

async fn get_order(State(s): State<AppState>, Path(id): Path<String>) -> OrderResult {
    Ok(out(&s.engine.order(&id).await?))
}

async fn cancel(State(s): State<AppState>, Path(id): Path<String>) -> OrderResult {
    Ok(out(&s.engine.cancel_order(&id).await?))
}

async fn ship(State(s): State<AppState>, Path(id): Path<String>, body: Bytes) -> OrderResult {
    let ship: ShipIn = if body.iter().all(u8::is_ascii_whitespace) {
        ShipIn::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidRequest, format!("body: {e}")))?
    };
    Ok(out(&s
        .engine
        .ship_order(&id, ship.carrier, ship.tracking)
        .await?))
}

async fn deliver(State(s): State<AppState>, Path(id): Path<String>) -> OrderResult {
    Ok(out(&s.engine.deliver_order(&id).await?))
}

async fn refund(State(s): State<AppState>, Path(id): Path<String>) -> OrderResult {
    Ok(out(&s.engine.refund_order(&id).await?))
}

/// Query string of the admin list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let page = s
        .engine
        .orders(
            p.status.as_deref(),
            p.cursor.as_deref(),
            p.limit.unwrap_or(20),
        )
        .await?;
    let items: Vec<OrderOut> = page.items.iter().map(OrderOut::from).collect();
    Ok(axum::Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}
