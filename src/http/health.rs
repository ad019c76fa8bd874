//! Liveness and readiness.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use serde::Serialize;
use utoipa::ToSchema;

/// `/health` and `/ready`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// Liveness: answers while the process serves.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "Serving", body = StatusOut)),
)]
async fn health() -> axum::Json<StatusOut> {
    axum::Json(StatusOut { status: "ok" })
}

/// Readiness: 200 once storage is open and recovery is done.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusOut),
        (status = 503, description = "Still starting", body = StatusOut),
    ),
)]
async fn ready(State(s): State<AppState>) -> (StatusCode, axum::Json<StatusOut>) {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, axum::Json(StatusOut { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(StatusOut { status: "starting" }),
        )
    }
}

/// `GET /health`, `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    /// `ok`, `ready` or `starting`.
    #[schema(value_type = String)]
    pub status: &'static str,
}
