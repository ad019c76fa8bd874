//! The durable event log, for administrators: `GET /api/v1/admin/events?after=&limit=`.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Code};
use super::wire::rfc3339;

/// Admin routes.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Query string: `after` (a sequence number) or `cursor` (from a previous page), `limit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Events after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// `next_cursor` of the previous page (wins over `after`).
    cursor: Option<String>,
    /// Events per page, 1–1000 (default 100).
    limit: Option<i64>,
}

/// The durable domain event log, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/events",
    operation_id = "list_events",
    tag = "admin",
    params(EventParams),
    responses((status = 200, description = "One page of events", body = EventPageOut)),
)]
async fn list(
    State(s): State<AppState>,
    Query(p): Query<EventParams>,
) -> Result<axum::Json<EventPageOut>, ApiError> {
    let after = match (p.after, p.cursor.as_deref()) {
        (_, Some(c)) => c.parse().map_err(|_| {
            ApiError::new(Code::InvalidRequest, "cursor: not a cursor from this API")
        })?,
        (Some(a), None) => u64::try_from(a)
            .map_err(|_| ApiError::new(Code::InvalidRequest, "after: must not be negative"))?,
        (None, None) => 0,
    };
    let (events, next) = s.engine.events(after, p.limit.unwrap_or(100)).await?;
    let items = events
        .iter()
        .map(|e| {
            let v = serde_json::to_value(&e.event).unwrap_or(Value::Null);
            EventOut {
                seq: e.seq,
                kind: e.event.kind().to_owned(),
                at: rfc3339(e.at),
                data: v["data"].clone(),
            }
        })
        .collect();
    Ok(axum::Json(EventPageOut {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// An event of the durable log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Its sequence number (gapless, in commit order).
    pub seq: u64,
    /// Its type, e.g. `OrderPlaced`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was committed.
    #[schema(format = DateTime)]
    pub at: String,
    /// Its data (shape depends on the type).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `GET /admin/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageOut {
    /// Events after the cursor, oldest first.
    pub items: Vec<EventOut>,
    /// Pass as `cursor` for the next page; `null` at the end of the log.
    pub next_cursor: Option<String>,
}
