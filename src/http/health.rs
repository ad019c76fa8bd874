//! Liveness and readiness.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;

/// `/health` and `/ready`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn ready(State(s): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, axum::Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "starting"})),
        )
    }
}
