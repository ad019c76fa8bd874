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

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "emporium_session";

/// The session token a request presents: `Authorization: Bearer <token>`, else the
/// session cookie.
fn session_token(parts: &axum::http::request::Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| cookie(&parts.headers, SESSION_COOKIE))
}

/// The value of cookie `name` in a request's headers.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (n, value) = c.trim().split_once('=')?;
            (n == name).then(|| value.trim().to_owned())
        })
}

/// A signed-in customer, required: a request without a valid session is `401`.
pub struct Customer(pub crate::engine::Authenticated);

/// The shopper: signed in, or a guest (`None`). A session that is presented but unknown,
/// ended or lapsed is `401`, not a guest: a client must know its session is gone.
pub struct Shopper(pub Option<crate::engine::Authenticated>);

impl axum::extract::FromRequestParts<super::AppState> for Shopper {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_token(parts) {
            None => Ok(Shopper(None)),
            Some(token) => Ok(Shopper(Some(state.engine.authenticate(&token).await?))),
        }
    }
}

impl axum::extract::FromRequestParts<super::AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        match Shopper::from_request_parts(parts, state).await? {
            Shopper(Some(auth)) => Ok(Customer(auth)),
            Shopper(None) => Err(ApiError::new(
                Code::Unauthorized,
                "sign in first: send Authorization: Bearer <session token> or the session cookie",
            )),
        }
    }
}
