//! The durable event log, for administrators: `GET /api/v1/admin/events?after=&limit=`.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::dto::rfc3339;
use super::error::{ApiError, Code};

/// Admin routes.
pub fn admin_router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/events", get(list))
}

/// Query string: `after` (a sequence number) or `cursor` (from a previous page), `limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    after: Option<u64>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    Query(p): Query<EventParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let after = match (p.after, p.cursor.as_deref()) {
        (_, Some(c)) => c.parse().map_err(|_| {
            ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
        })?,
        (Some(a), None) => a,
        (None, None) => 0,
    };
    let (events, next) = s.engine.events(after, p.limit.unwrap_or(100)).await?;
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            let v = serde_json::to_value(&e.event).unwrap_or(Value::Null);
            json!({"seq": e.seq, "type": e.event.kind(), "at": rfc3339(e.at), "data": v["data"]})
        })
        .collect();
    Ok(axum::Json(
        json!({"items": items, "next_cursor": next.map(|n| n.to_string())}),
    ))
}
