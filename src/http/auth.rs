//! Admin (and, when configured, `/metrics`) authentication: `Authorization: Bearer
//! <token>`; missing → 401, wrong → 403.
//! The comparison takes the same time whatever the token, so it leaks nothing.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::error::{ApiError, Code};

/// Middleware guarding every `/api/v1/admin/...` route.
pub async fn require_admin(
    State(admin_token): State<std::sync::Arc<str>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require_bearer(&admin_token, "admin", req, next).await
}

/// Middleware guarding `/metrics` when a metrics token is configured.
pub async fn require_metrics(
    State(metrics_token): State<std::sync::Arc<str>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require_bearer(&metrics_token, "metrics", req, next).await
}

/// Runs `next` only for a request that presents `token` as its bearer token.
async fn require_bearer(
    token: &str,
    what: &str,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => Err(ApiError::new(
            Code::Unauthorized,
            format!("send Authorization: Bearer <{what} token>"),
        )),
        Some(t) if constant_time_eq::constant_time_eq(t.as_bytes(), token.as_bytes()) => {
            Ok(next.run(req).await)
        }
        Some(_) => Err(ApiError::new(
            Code::Forbidden,
            format!("the {what} token is not valid"),
        )),
    }
}
